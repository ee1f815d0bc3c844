"""What is sent to an app: only what it stores, with what it requires filled in.

An app's Schemas (RFC 7643 §7, as discovered and overridden: connectors/discovery.py,
connectors/overrides.py) say which attributes and sub-attributes it has and their
mutability. `render` drops from a body what the app does not have, what is
`readOnly` there, and, outside a whole object, what is `immutable` (it is set on
create only, RFC 7643 §7); it fills a required sub-attribute the directory has
enough to derive (`FILLS`). Drift compares the same rendering, so an attribute the
app never stores is never drift. `report` says all of this for `targets show`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from scimsync.connectors.contract import ChangeSet
from scimsync.connectors.discovery import AppAttribute, Discovered
from scimsync.protocol.resources import RESOURCE_TYPES
from scimsync.protocol.schema import Attribute

Doc = dict[str, Any]
KEPT = frozenset({"schemas", "id"})
# Common attributes (RFC 7643 §3.1) are not part of a schema: sent unless it lists them.
COMMON = frozenset({"externalId"})
# The hub's own attributes a report goes through: core and enterprise, not the NHI one.
REPORTED = {"User": 2, "Group": 1}


def _formatted(item: Doc, base: str) -> str | None:
    parts = [item.get(k) for k in ("honorificPrefix", "givenName", "middleName",
                                   "familyName", "honorificSuffix")]
    return " ".join(p for p in parts if isinstance(p, str) and p) or None


def _member_ref(item: Doc, base: str) -> str | None:
    value = item.get("value")
    return f"{base}/Users/{quote(str(value), safe='')}" if value else None


# (resource type, attribute, sub-attribute) -> how it is derived, and from what.
FILLS: dict[tuple[str, str, str], tuple[Callable[[Doc, str], str | None], str]] = {
    ("User", "name", "formatted"): (_formatted, "name.givenName and name.familyName"),
    ("Group", "members", "$ref"): (_member_ref, "the app's URL and the member's remote id"),
}


def _keep(attr: AppAttribute | None, whole: bool) -> bool:
    if attr is None or attr.mutability == "readOnly":
        return False
    return whole or attr.mutability != "immutable"


def _shape(node: AppAttribute, value: Any) -> Any:
    """A value's sub-attributes the app stores; `immutable` ones stay, being part of
    the value set (RFC 7643 §7 bounds the attribute, not a value added to it)."""
    if isinstance(value, list):
        return [_shape(node, v) for v in value]
    if isinstance(value, dict):
        return {k: _shape(a, v) for k, v in value.items()
                if _keep(a := node.child(k), True) and a is not None}
    return value


def render(found: Discovered, kind: str, body: Doc, base: str, whole: bool = True) -> Doc:
    """`body` as it is sent to the app: a whole object (POST, PUT) or, with `whole`
    false, the attributes a PATCH sets."""
    root = found.root(kind)
    if root.open and not root.sub:
        return body  # the app did not say what it stores: send everything
    out: Doc = {}
    for key, value in body.items():
        attr = root.child(key)
        if key in KEPT or (key in COMMON and key.lower() not in root.sub):
            out[key] = value
        elif _keep(attr, whole) and attr is not None:
            shaped = _shape(attr, value)
            if shaped != {} or value == {}:  # nothing it stores is left: not sent
                out[key] = shaped
    _fill(root, kind, out, base)
    if isinstance(out.get("schemas"), list):
        out["schemas"] = [s for s in out["schemas"] if s in out or s not in body]
    return out


def changed(found: Discovered, kind: str, changes: ChangeSet, base: str) -> ChangeSet:
    """A change set with only what the app stores: attributes it does not have are
    neither set nor cleared (RFC 7644 §3.5.2)."""
    root = found.root(kind)
    if root.open and not root.sub:
        return changes
    return ChangeSet(changes.desired, render(found, kind, changes.set, base, whole=False),
                     [k for k in changes.clear if _keep(root.child(k), False)],
                     changes.add_members, changes.remove_members)


def members(found: Discovered, added: list[str], base: str) -> list[Doc]:
    """Members added to a group, as the app takes them (`$ref` where it requires one)."""
    plain = [{"value": m} for m in added]
    shaped = render(found, "Group", {"members": plain}, base, whole=False).get("members")
    return shaped if isinstance(shaped, list) and shaped else plain


def _fill(root: AppAttribute, kind: str, out: Doc, base: str) -> None:
    for (rtype, name, sub), (derive, _) in FILLS.items():
        attr = root.child(name)
        wanted = attr.child(sub) if attr is not None else None
        if rtype != kind or name not in out or wanted is None or not wanted.required:
            continue
        items = out[name] if isinstance(out[name], list) else [out[name]]
        for item in items:
            if isinstance(item, dict) and sub not in item:
                value = derive(item, base)
                if value is not None:
                    item[sub] = value


def report(found: Discovered) -> Doc:
    """What the hub learnt of the app, does not send and why, and fills (targets show)."""
    not_sent: list[Doc] = []
    create_only: list[Doc] = []
    filled: list[Doc] = []
    for kind, count in REPORTED.items():
        root = found.root(kind)
        if root.open and not root.sub:
            continue
        rtype = RESOURCE_TYPES[kind]
        schemas = [rtype.schema, *(s for s, _ in rtype.extensions)][:count]
        for schema in schemas:
            node, prefix = root, ""
            if schema is not rtype.schema:
                ext, prefix = root.child(schema.id), f"{schema.id}:"
                if ext is None:
                    not_sent.append(_why(kind, schema.id, root.sub.get(schema.id.lower())))
                    continue
                node = ext
            common = (Attribute("externalId"),) if node is root and \
                "externalid" in root.sub else ()
            for path, attr in _walk(node, common + schema.attributes, prefix):
                if attr is None or attr.mutability == "readOnly" or not attr.stored:
                    not_sent.append(_why(kind, path, attr))
                elif attr.mutability == "immutable":
                    create_only.append({"resource": kind, "attribute": path,
                                        "reason": "immutable in the app: set on create only"})
        for (rtype_name, name, sub), (_, source) in FILLS.items():
            attr = root.child(name)
            wanted = attr.child(sub) if attr is not None else None
            if rtype_name == kind and wanted is not None and wanted.required:
                filled.append({"resource": kind, "attribute": f"{name}.{sub}", "from": source,
                               "reason": "required by the app"})
    return {"discovered_at": datetime.fromtimestamp(found.at, UTC).isoformat()
            if found.at else None, "stale": found.stale, "schemas_served": found.schemas,
            "features": found.facts(), "not_sent": not_sent, "create_only": create_only,
            "filled": filled}


def _walk(node: AppAttribute, attrs: tuple[Attribute, ...], prefix: str
          ) -> Iterator[tuple[str, AppAttribute | None]]:
    """Each hub attribute the hub writes, with the app's definition (None: it has none);
    sub-attributes only below an attribute the app has."""
    for a in attrs:
        if a.mutability == "readOnly":
            continue
        theirs = node.child(a.name)
        listed = theirs if theirs is not None else node.sub.get(a.name.lower())
        yield prefix + a.name, listed
        if theirs is not None and theirs.mutability != "readOnly":
            for s in a.sub_attributes:
                if s.mutability != "readOnly":
                    sub = theirs.child(s.name)
                    yield f"{prefix}{a.name}.{s.name}", sub or theirs.sub.get(s.name.lower())


def _why(kind: str, path: str, attr: AppAttribute | None) -> Doc:
    if attr is None:
        reason = "the app's schema does not have it"
    elif not attr.stored:
        reason = "the profile says the app does not store it"
    else:
        reason = "read-only in the app" + (" (profile)" if attr.origin == "profile" else "")
    return {"resource": kind, "attribute": path, "reason": reason}
