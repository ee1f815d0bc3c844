"""In-memory filter evaluation (RFC7644 §3.4.2.2): value filters in PATCH paths, and the
reference semantics that the SQL compiler in scimsync.store.filter_sql must agree with.
"""

from __future__ import annotations

from typing import Any

from scimsync.errors import invalid_filter
from scimsync.protocol.filter import (
    And,
    AttrPath,
    Compare,
    Filter,
    Not,
    Or,
    Present,
    ValuePath,
)
from scimsync.protocol.schema import CORE_USER, Attribute, ResolvedPath, ResourceType, resolve
from scimsync.protocol.timefmt import normalise_time
from scimsync.protocol.values import is_unassigned

ORDERING_OPS = frozenset({"gt", "ge", "lt", "le"})


def comparable(attr: Attribute, op: str, value: Any) -> Any:
    """Check that `op value` makes sense for `attr` and return the value to compare with."""
    t = attr.type
    if t == "complex":
        raise invalid_filter(f"{attr.name} is complex: filter on one of its sub-attributes")
    if op in ORDERING_OPS and t in ("boolean", "binary"):
        raise invalid_filter(f"{op} is not defined for {t} attribute {attr.name}")
    if op in ("co", "sw", "ew") and t in ("boolean", "integer", "decimal", "dateTime"):
        raise invalid_filter(f"{op} is not defined for {t} attribute {attr.name}")
    if value is None:
        if op not in ("eq", "ne"):
            raise invalid_filter(f"{op} null is not a valid comparison")
        return None
    if t == "dateTime":
        if not isinstance(value, str):
            raise invalid_filter(f"{attr.name} compares with a dateTime string")
        try:
            return normalise_time(value)
        except ValueError as exc:
            raise invalid_filter(f"{value!r} is not a valid dateTime") from exc
    if t in ("string", "reference", "binary") and isinstance(value, str) and not attr.case_exact:
        return value.lower()
    return value


def compare_values(attr: Attribute, op: str, actual: Any, expected: Any) -> bool:
    """One comparison of a stored scalar with a prepared filter value."""
    if op == "ne":
        return not compare_values(attr, "eq", actual, expected)
    if expected is None:
        return actual is None  # `eq null`
    if actual is None:
        return False
    if isinstance(actual, str) and isinstance(expected, str):
        if not attr.case_exact and attr.type in ("string", "reference", "binary"):
            actual = actual.lower()
    elif isinstance(actual, bool) or isinstance(expected, bool):
        if not (isinstance(actual, bool) and isinstance(expected, bool)):
            return False
    elif not (isinstance(actual, int | float) and isinstance(expected, int | float)):
        return False
    if op == "eq":
        return bool(actual == expected)
    if op == "co":
        return isinstance(actual, str) and expected in actual
    if op == "sw":
        return isinstance(actual, str) and actual.startswith(expected)
    if op == "ew":
        return isinstance(actual, str) and actual.endswith(expected)
    if op == "gt":
        return bool(actual > expected)
    if op == "ge":
        return bool(actual >= expected)
    if op == "lt":
        return bool(actual < expected)
    if op == "le":
        return bool(actual <= expected)
    raise invalid_filter(f"unknown operator {op}")


def resolve_filter_path(rtype: ResourceType, path: AttrPath) -> ResolvedPath:
    """Resolve a filter attribute path or fail with invalidFilter."""
    rp = resolve(rtype, path.full_attr, path.sub)
    if rp is None:
        raise invalid_filter(f"unknown attribute {path}")
    return rp


def _scalars(rp: ResolvedPath, doc: dict[str, Any]) -> list[Any]:
    """The scalar values a path designates in a document (several for multi-valued)."""
    container: Any = doc
    if rp.extension and rp.schema is not None:
        container = doc.get(rp.schema.id) or {}
    value = container.get(rp.attr.name)
    if is_unassigned(value):
        # A User without `active` is active (RFC7643 §4.1.1 leaves the default to us).
        if rp.attr.name == "active" and rp.schema is not None and rp.schema.id == CORE_USER:
            return [True]
        return []
    items = value if isinstance(value, list) else [value]
    multi_complex = rp.attr.type == "complex" and rp.attr.multi_valued
    sub_name = rp.sub.name if rp.sub else ("value" if multi_complex else None)
    if sub_name is None:
        return items
    out = []
    for item in items:
        if isinstance(item, dict) and not is_unassigned(item.get(sub_name)):
            v = item[sub_name]
            out.extend(v if isinstance(v, list) else [v])
    return out


def matches(rtype: ResourceType, flt: Filter, doc: dict[str, Any]) -> bool:
    """Whether a whole resource document (with id and meta) matches a filter."""
    if isinstance(flt, And):
        return matches(rtype, flt.left, doc) and matches(rtype, flt.right, doc)
    if isinstance(flt, Or):
        return matches(rtype, flt.left, doc) or matches(rtype, flt.right, doc)
    if isinstance(flt, Not):
        return not matches(rtype, flt.expr, doc)
    if isinstance(flt, Present):
        return bool(_scalars(resolve_filter_path(rtype, flt.path), doc))
    if isinstance(flt, Compare):
        rp = resolve_filter_path(rtype, flt.path)
        leaf = rp.leaf
        if rp.sub is None and rp.attr.type == "complex" and rp.attr.multi_valued:
            leaf = rp.attr.sub("value") or rp.attr
        expected = comparable(leaf, flt.op, flt.value)
        values = _scalars(rp, doc)
        if flt.op == "ne":
            return not any(compare_values(leaf, "eq", v, expected) for v in values)
        if expected is None:
            return not values
        return any(compare_values(leaf, flt.op, v, expected) for v in values)
    if isinstance(flt, ValuePath):
        rp = resolve_filter_path(rtype, flt.path)
        container: Any = doc
        if rp.extension and rp.schema is not None:
            container = doc.get(rp.schema.id) or {}
        items = container.get(rp.attr.name) or []
        if not isinstance(items, list):
            items = [items]
        return any(element_matches(rp.attr, flt.filter, e) for e in items)
    raise invalid_filter("unsupported filter")


def element_matches(parent: Attribute, flt: Filter, element: Any) -> bool:
    """Whether one value of a multi-valued attribute matches a value filter."""
    if isinstance(flt, And):
        return element_matches(parent, flt.left, element) and element_matches(
            parent, flt.right, element
        )
    if isinstance(flt, Or):
        return element_matches(parent, flt.left, element) or element_matches(
            parent, flt.right, element
        )
    if isinstance(flt, Not):
        return not element_matches(parent, flt.expr, element)
    if isinstance(flt, Present | Compare):
        path = flt.path
        if path.urn is not None or path.sub is not None:
            raise invalid_filter(f"{path} is not a sub-attribute of {parent.name}")
        sub = parent.sub(path.attr)
        if parent.type != "complex":
            if path.attr.lower() != "value":
                raise invalid_filter(f"{parent.name} has no sub-attribute {path.attr}")
            sub, actual = parent, element
        else:
            if sub is None:
                raise invalid_filter(f"{parent.name} has no sub-attribute {path.attr}")
            actual = element.get(sub.name) if isinstance(element, dict) else None
        if isinstance(flt, Present):
            return not is_unassigned(actual)
        expected = comparable(sub, flt.op, flt.value)
        return compare_values(sub, flt.op, actual, expected)
    raise invalid_filter("value filters cannot nest")


def check_element_filter(parent: Attribute, flt: Filter) -> None:
    """Validate every term of a value filter against `parent` (fails with invalidFilter)."""
    if isinstance(flt, And | Or):
        check_element_filter(parent, flt.left)
        check_element_filter(parent, flt.right)
    elif isinstance(flt, Not):
        check_element_filter(parent, flt.expr)
    else:
        element_matches(parent, flt, {})
