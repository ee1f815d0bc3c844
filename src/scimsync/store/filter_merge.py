"""OR'ed terms on one multi-valued attribute, merged into one value filter before the
filter is compiled to SQL.

`emails.value co "a" or emails.value co "b"` and `emails[value co "a" or value co "b"]`
select the same resources: some email matches one term or the other. Compiled as
written, the first reads the JSON array of every row once per term (one EXISTS over
`json_each` each: a filter of 250 such terms took 17 s on 10,000 users); merged, it
reads it once. Only terms that say "some value matches" merge: `ne` (no value is
equal) and bare `attr pr` stay as they are.

The rewrite depends only on the filter's shape, so a compiled filter and the values
bound into it later (scimsync.store.filter_sql) agree on the order of the leaves.
"""

from __future__ import annotations

from scimsync.protocol.filter import And, AttrPath, Compare, Filter, Not, Or, Present, ValuePath
from scimsync.protocol.schema import ResourceType, resolve

_Key = tuple[str | None, str]


def merge_or(rtype: ResourceType, flt: Filter) -> Filter:
    """The filter with OR'ed terms on each multi-valued complex attribute merged."""
    if isinstance(flt, And):
        return And(merge_or(rtype, flt.left), merge_or(rtype, flt.right))
    if isinstance(flt, Not):
        return Not(merge_or(rtype, flt.expr))
    if not isinstance(flt, Or):
        return flt
    placed: list[Filter | _Key] = []
    groups: dict[_Key, tuple[AttrPath, list[Filter]]] = {}
    originals: dict[_Key, Filter] = {}
    for term in _operands(flt):
        element = _as_element(rtype, term)
        if element is None:
            placed.append(merge_or(rtype, term))
            continue
        key, path, inner = element
        if key not in groups:
            groups[key] = (path, [])
            originals[key] = term
            placed.append(key)
        groups[key][1].append(inner)
    merged: list[Filter] = []
    for item in placed:
        if not isinstance(item, tuple):
            merged.append(item)
            continue
        path, alike = groups[item]
        merged.append(originals[item] if len(alike) == 1 else ValuePath(path, _any(alike)))
    return _any(merged)


def _operands(flt: Filter) -> list[Filter]:
    """The terms of a chain of ORs, left to right, through parentheses."""
    out: list[Filter] = []
    stack: list[Filter] = [flt]
    while stack:
        node = stack.pop()
        if isinstance(node, Or):
            stack.extend((node.right, node.left))
        else:
            out.append(node)
    return out


def _any(terms: list[Filter]) -> Filter:
    result = terms[0]
    for term in terms[1:]:
        result = Or(result, term)
    return result


def _as_element(rtype: ResourceType,
                term: Filter) -> tuple[_Key, AttrPath, Filter] | None:
    """(attribute, its path, a filter on one of its values) for a term that says "some
    value of a multi-valued complex attribute matches", else None."""
    if isinstance(term, ValuePath):
        path, inner = term.path, term.filter
        rp = resolve(rtype, path.full_attr, path.sub)
        if rp is None or rp.sub is not None:
            return None
    elif isinstance(term, Compare | Present):
        rp = resolve(rtype, term.path.full_attr, term.path.sub)
        if rp is None:
            return None
        sub = rp.sub.name if rp.sub is not None else "value" if isinstance(term, Compare) \
            else None
        if sub is None or rp.attr.sub(sub) is None:
            return None
        if isinstance(term, Compare):
            if term.op == "ne" or term.value is None:
                return None
            inner = Compare(AttrPath(None, sub), term.op, term.value)
        else:
            inner = Present(AttrPath(None, sub))
        path = AttrPath(term.path.urn, term.path.attr)
    else:
        return None
    if not (rp.attr.multi_valued and rp.attr.type == "complex"):
        return None
    key = (rp.schema.id.lower() if rp.schema is not None else None, rp.attr.name.lower())
    return key, path, inner
