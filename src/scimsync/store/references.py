"""References between the resources of a directory: an Agent's owners, parent and
applications, an application's agents, a non-human User's owners (protocol.agents).

Checked on every write, in the write's transaction: each must name a resource of the
same directory and of the type the attribute allows. An owner's `type` (User or
Group) is filled in from the directory when the client leaves it out, so readers
never have to look it up. A reference to another directory's resource is refused
like one to nothing: directories are separate tenants. A `$ref` the client sends
must locate the same resource as the `value` (or gives it, when the value is left
out); it is not stored, since every read derives it from the value.
"""

from __future__ import annotations

from typing import Any

from scimsync.errors import invalid_value
from scimsync.protocol.agents import REFERENCES, map_references, reference_values
from scimsync.protocol.resources import RESOURCE_TYPES
from scimsync.store import statements as sql
from scimsync.store.lean import LeanConnection

Doc = dict[str, Any]
HOLDERS = frozenset(rt for rt, *_ in REFERENCES)
OWNER_TYPES = ("User", "Group")


def checked(conn: LeanConnection, directory_id: str, rtype: str, rid: str, doc: Doc,
            before: Doc | None = None) -> Doc:
    """The document with its references checked (400 invalidValue if one is wrong) and
    owner types filled in; `doc` itself is not changed. References the document held
    `before` this write are not checked again: an owner who has since been deleted
    must not block every other change to what they owned (that is for the ownership
    policy to resolve, scimsync.nhi)."""
    if rtype not in HOLDERS:
        return doc
    kept = {(a, i.get("value")) for a, i, _ in reference_values(rtype, before)} \
        if before else set()
    refs = reference_values(rtype, doc)
    if not refs:
        return doc
    given = {id(item): _value(attr, item) for attr, item, _ in refs}
    wanted = sorted({given[id(i)] for a, i, _ in refs if (a, given[id(i)]) not in kept})
    found: dict[str, str] = {}
    if wanted:
        found = dict(conn.execute(sql.REFERENCED, {"d": directory_id, "ids": wanted}).all())
    fixed: dict[int, Doc] = {}
    for attr, item, kind in refs:
        value = given[id(item)]
        if (attr, value) in kept:
            have = str(item.get("type") or "")
        else:
            allowed = (kind,) if kind else OWNER_TYPES
            have = found.get(value, "")
            if have not in allowed:
                raise invalid_value(
                    f"{attr}: no {' or '.join(allowed)} {value!r} in this directory")
            if value == rid:
                raise invalid_value(f"{attr}: a resource cannot reference itself")
            if kind is None and item.get("type") not in (None, have):
                raise invalid_value(f"{attr}: {value!r} is a {have}, not a {item['type']}")
        _check_ref(attr, item, value, kind or have)
        # `$ref` is derived from the value on every read (protocol.agents.with_refs).
        new = {k: v for k, v in item.items() if k != "$ref"}
        new["value"] = value
        if kind is None and have and "type" not in new:
            new["type"] = have
        if new != item:
            fixed[id(item)] = new
    if not fixed:
        return doc
    return map_references(rtype, doc, lambda item, _kind: fixed.get(id(item), item))


def _value(attr: str, item: Doc) -> str:
    """A reference's resource id: its `value`, else the last segment of its `$ref`."""
    value = item.get("value")
    ref = item.get("$ref")
    if value is None and isinstance(ref, str):
        value = ref.rstrip("/").rpartition("/")[2]
    if not isinstance(value, str) or not value:
        raise invalid_value(f"{attr}: each reference needs a value (a resource id)")
    return value


def _check_ref(attr: str, item: Doc, value: str, rtype: str) -> None:
    """A `$ref` a client sent must locate the resource `value` names (RFC 7643 §2.3.7)."""
    ref = item.get("$ref")
    if ref is None or not rtype:
        return  # no type known: a reference kept from before, left as it was
    endpoint = RESOURCE_TYPES[rtype].endpoint if rtype in RESOURCE_TYPES else None
    if not isinstance(ref, str) or endpoint is None or \
            not ref.rstrip("/").endswith(f"{endpoint}/{value}"):
        raise invalid_value(f"{attr}: $ref {ref!r} does not locate the {rtype} {value!r}")
