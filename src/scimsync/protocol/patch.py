"""PATCH semantics over a resource document (RFC7644 §3.5.2).

`apply_patch` is pure: it returns the new document and, for Groups, the ordered list of
membership changes, which the store applies relationally so that a change to a large
group costs time proportional to the change, not to the group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from scimsync import limits
from scimsync.errors import (
    invalid_path,
    invalid_syntax,
    invalid_value,
    mutability,
    no_target,
)
from scimsync.protocol import quirks
from scimsync.protocol.evaluate import check_element_filter, element_matches
from scimsync.protocol.filter import And, Compare, Filter, PatchPath, parse_patch_path
from scimsync.protocol.multivalued import merge, unprimary, without
from scimsync.protocol.schema import PATCH_OP, ResolvedPath, ResourceType, resolve
from scimsync.protocol.values import (
    Doc,
    coerce,
    coerce_single,
    finish,
    is_unassigned,
    member_values,
)

MAX_OPERATIONS = 1000


@dataclass(frozen=True)
class MemberChange:
    """One membership change, in request order: add, remove, replace, clear or remove_where."""

    kind: str
    values: tuple[Doc, ...] = ()
    filter: Filter | None = None


@dataclass
class PatchResult:
    doc: Doc
    members: list[MemberChange] = field(default_factory=list)
    password_given: bool = False


def parse_request(body: Any) -> list[dict[str, Any]]:
    """Check the PatchOp envelope and return its operations (RFC7644 §3.5.2)."""
    if not isinstance(body, dict):
        raise invalid_syntax("the request body must be a JSON object")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or PATCH_OP not in schemas:
        raise invalid_syntax(f"schemas must be [{PATCH_OP!r}]")
    ops = body.get("Operations", body.get("operations"))
    if not isinstance(ops, list) or not ops:
        raise invalid_syntax("Operations must be a non-empty array")
    if len(ops) > MAX_OPERATIONS:
        raise invalid_syntax(f"at most {MAX_OPERATIONS} operations per PATCH")
    for op in ops:
        if not isinstance(op, dict):
            raise invalid_syntax("each operation must be an object")
    return ops


def apply_patch(rtype: ResourceType, doc: Doc, operations: list[dict[str, Any]]) -> PatchResult:
    """Apply PATCH operations to a copy of `doc`, all or nothing (RFC7644 §3.5.2)."""
    # A JSON round trip copies a JSON document several times faster than deepcopy.
    result = PatchResult(orjson.loads(orjson.dumps(doc)))
    for raw in operations:
        op = quirks.patch_op(raw.get("op"))
        if op not in ("add", "remove", "replace"):
            raise invalid_syntax(f"unknown PATCH op {raw.get('op')!r}")
        path = raw.get("path")
        has_value = "value" in raw
        value = raw.get("value")
        if path is None or path == "":
            if op == "remove":
                raise no_target("remove needs a path")
            if not isinstance(value, dict):
                raise invalid_syntax(f"{op} without a path needs an object value")
            _pathless(rtype, result, op, value)
            continue
        if not isinstance(path, str):
            raise invalid_path("path must be a string")
        if op != "remove" and not has_value:
            raise invalid_syntax(f"{op} needs a value")
        if ext := rtype.extension(path.strip()):
            _extension(rtype, result, op, ext.id, value)
            continue
        _apply(rtype, result, op, parse_patch_path(path), value, has_value, explicit=True)
    named = sum(len(ch.values) for ch in result.members)
    if named > limits.current().members_per_request:
        raise invalid_value(f"the request names {named} members; at most "
                            f"{limits.current().members_per_request} are allowed")
    finish(rtype, result.doc, doc)
    return result


def _pathless(rtype: ResourceType, result: PatchResult, op: str, value: Doc) -> None:
    """Path-less add/replace: each key is an attribute path (RFC7644 §3.5.2.1, §3.5.2.3).

    Entra ID sends dotted keys (`name.givenName`) and URN-prefixed keys here.
    """
    for key, v in value.items():
        if key == "schemas":
            continue
        if ext := rtype.extension(key):
            if not isinstance(v, dict):
                raise invalid_value(f"{key} must be an object")
            for sub_key, sub_v in v.items():
                if sub_key == "schemas":
                    continue
                pp = parse_patch_path(f"{ext.id}:{sub_key}")
                _apply(rtype, result, op, pp, sub_v, True, explicit=False)
            continue
        _apply(rtype, result, op, parse_patch_path(key), v, True, explicit=False)


def _extension(rtype: ResourceType, result: PatchResult, op: str, urn: str, value: Any) -> None:
    """A path that is a whole extension schema URN (RFC7644 §3.10)."""
    if op == "remove":
        result.doc.pop(urn, None)
        return
    if not isinstance(value, dict):
        raise invalid_value(f"{urn} must be an object")
    if op == "replace":
        result.doc.pop(urn, None)
    for key, sub_v in value.items():
        if key == "schemas":
            continue
        _apply(rtype, result, "add" if op == "replace" else op,
               parse_patch_path(f"{urn}:{key}"), sub_v, True, explicit=False)


def _resolve(rtype: ResourceType, pp: PatchPath) -> ResolvedPath:
    rp = resolve(rtype, pp.path.full_attr, pp.path.sub)
    if rp is None:
        raise invalid_path(f"unknown attribute {pp.path}")
    if pp.sub is not None:
        if rp.sub is not None or rp.attr.sub(pp.sub) is None:
            raise invalid_path(f"unknown sub-attribute {pp.sub} of {pp.path}")
        rp = ResolvedPath(rp.schema, rp.attr, rp.attr.sub(pp.sub), rp.extension)
    return rp


def _apply(
    rtype: ResourceType,
    result: PatchResult,
    op: str,
    pp: PatchPath,
    value: Any,
    has_value: bool,
    *,
    explicit: bool,
) -> None:
    rp = _resolve(rtype, pp)
    attr = rp.attr
    if attr.mutability == "readOnly" or (rp.sub and rp.sub.mutability == "readOnly"):
        if explicit:
            raise mutability(f"{rp.dotted} is read-only")
        return  # path-less bodies may echo read-only attributes (id, meta): ignored
    if pp.filter is not None:
        if not attr.multi_valued:
            raise invalid_path(f"{attr.name} is not multi-valued: it cannot take a filter")
        check_element_filter(attr, pp.filter)
    if rtype.name == "Group" and attr.name == "members" and not rp.extension:
        _members(result, op, pp, rp, value, has_value)
        return
    if attr.name == "password" and not rp.extension:
        if op != "remove":
            coerce(attr, value, "password")
            result.password_given = True
        return
    if attr.name == "manager" and rp.extension and rp.sub is None:
        value = quirks.manager(value)
    doc = result.doc
    container: Doc = doc
    if rp.extension and rp.schema is not None:
        container = doc.setdefault(rp.schema.id, {})
    if pp.filter is not None:
        _filtered(container, op, pp, rp, value)
    elif rp.sub is not None and not attr.multi_valued:
        _sub(container, op, rp, value)
    elif rp.sub is not None:
        # `emails.type` without a filter designates that sub-attribute of every value.
        if op != "remove":
            raise invalid_path(f"{rp.dotted}: use a value filter to select which values")
        for item in container.get(attr.name) or []:
            if isinstance(item, dict):
                item.pop(rp.sub.name, None)
    else:
        _whole(container, op, rp, value, has_value)


def _check_immutable(rp: ResolvedPath, old: Any, new: Any) -> None:
    leaf = rp.leaf
    if leaf.mutability == "immutable" and not is_unassigned(old) and old != new:
        raise mutability(f"{rp.dotted} is immutable")


def _whole(container: Doc, op: str, rp: ResolvedPath, value: Any, has_value: bool) -> None:
    attr = rp.attr
    old = container.get(attr.name)
    if op == "remove":
        if attr.required and not rp.extension:
            raise mutability(f"{attr.name} is required and cannot be removed")
        if has_value and attr.multi_valued and not is_unassigned(value):
            # Entra ID: remove given values of a multi-valued attribute without a filter.
            _store(container, attr.name, without(old or [], coerce(attr, value, rp.dotted) or []))
            return
        _check_immutable(rp, old, None)
        container.pop(attr.name, None)
        return
    new = coerce(attr, value, rp.dotted)
    if attr.multi_valued:
        if op == "add":
            merged = merge(old or [], new or [])
            new = [m for m in merged if not is_unassigned(m)]  # an emptied `primary`
        _check_growth(rp, old, new)
        _store(container, attr.name, new)
        return
    if attr.type == "complex" and isinstance(old, dict) and isinstance(new, dict):
        # add and replace of a complex attribute merge sub-attributes (RFC7644 §3.5.2.3).
        new = {**old, **new}
    _check_immutable(rp, old, new)
    _store(container, attr.name, new)


def _sub(container: Doc, op: str, rp: ResolvedPath, value: Any) -> None:
    assert rp.sub is not None
    parent = container.get(rp.attr.name)
    if not isinstance(parent, dict):
        parent = {}
    old = parent.get(rp.sub.name)
    new = None if op == "remove" else coerce(rp.sub, value, rp.dotted)
    _check_immutable(rp, old, new)
    if new is None:
        parent.pop(rp.sub.name, None)
    else:
        parent[rp.sub.name] = new
    _store(container, rp.attr.name, parent)


def _filtered(container: Doc, op: str, pp: PatchPath, rp: ResolvedPath, value: Any) -> None:
    attr = rp.attr
    assert pp.filter is not None
    items: list[Any] = list(container.get(attr.name) or [])
    hits = [i for i, item in enumerate(items) if element_matches(attr, pp.filter, item)]
    if op == "remove":
        if rp.sub is None:
            gone = set(hits)
            items = [item for i, item in enumerate(items) if i not in gone]
        else:
            for i in hits:
                items[i] = {k: v for k, v in items[i].items() if k != rp.sub.name}
        _store(container, attr.name, items)
        return
    if not hits:
        seed = _equality_seed(pp.filter)
        if seed is None:
            raise no_target(f"no value of {attr.name} matches the filter")
        # Entra ID adds `emails[type eq "work"].value` when no work email exists yet.
        items.append(coerce_single(attr, seed, rp.dotted) or {})
        hits = [len(items) - 1]
    primary = None  # the last value made primary keeps it; the others lose it at the end
    for i in hits:
        item = items[i] if isinstance(items[i], dict) else {}
        if rp.sub is not None:
            new_sub = coerce(rp.sub, value, rp.dotted)
            item = dict(item)
            if new_sub is None:
                item.pop(rp.sub.name, None)
            else:
                item[rp.sub.name] = new_sub
            if rp.sub.name == "primary" and new_sub is True:
                primary = i
        else:
            new = coerce_single(attr, value, rp.dotted) or {}
            item = {**item, **new} if op == "add" else new
            if item.get("primary") is True:
                primary = i
        items[i] = item
    if primary is not None:
        items = [x if i == primary else unprimary(x) for i, x in enumerate(items)]
    _check_growth(rp, container.get(attr.name), items)
    _store(container, attr.name, [x for x in items if not is_unassigned(x)])


def _equality_seed(flt: Filter) -> dict[str, Any] | None:
    """The element a filter of `eq` terms joined by `and` describes, or None."""
    if isinstance(flt, Compare) and flt.op == "eq" and flt.path.sub is None:
        return {flt.path.attr: flt.value}
    if isinstance(flt, And):
        left, right = _equality_seed(flt.left), _equality_seed(flt.right)
        if left is not None and right is not None:
            return {**left, **right}
    return None


def _members(
    result: PatchResult, op: str, pp: PatchPath, rp: ResolvedPath, value: Any, has_value: bool
) -> None:
    if rp.sub is not None:
        raise mutability("member sub-attributes are immutable")
    if op == "remove":
        if pp.filter is not None:
            result.members.append(MemberChange("remove_where", filter=pp.filter))
        elif has_value and not is_unassigned(value):
            values = member_values(rp.attr, value)
            result.members.append(MemberChange("remove", tuple(values)))
        else:
            result.members.append(MemberChange("clear"))
        return
    if pp.filter is not None:
        raise mutability("members cannot be replaced through a filter: remove and add")
    values = member_values(rp.attr, value)
    result.members.append(MemberChange("replace" if op == "replace" else "add", tuple(values)))


def _check_growth(rp: ResolvedPath, old: Any, new: Any) -> None:
    """Each operation keeps a multi-valued attribute within the limit (or no larger than
    it was), so that many operations cannot each rebuild an ever larger list."""
    most = limits.current().attribute_values
    size = len(new) if isinstance(new, list) else 0
    if size > most and size > (len(old) if isinstance(old, list) else 0):
        raise invalid_value(f"{rp.dotted} would have {size} values; at most {most} are "
                            "allowed")


def _store(container: Doc, name: str, value: Any) -> None:
    if is_unassigned(value):
        container.pop(name, None)
    else:
        container[name] = value
