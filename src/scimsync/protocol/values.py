"""Validation and normalisation of resource bodies against their schema (RFC7643 §2, §7).

Everything an IdP sends passes through `coerce`: attribute names take their canonical
case, values their schema type, readOnly attributes are dropped, and unassigned values
(null, [], {}) disappear, so stored documents have one shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scimsync import limits
from scimsync.errors import invalid_syntax, invalid_value
from scimsync.limits import fits_int64, int64
from scimsync.protocol import quirks
from scimsync.protocol.schema import Attribute, ResourceType, Schema, resolve, split_urn
from scimsync.protocol.timefmt import normalise_time

Doc = dict[str, Any]


def is_unassigned(value: Any) -> bool:
    """RFC7643 §2.5: null, an empty array and an empty object are all 'no value'."""
    return value is None or value == [] or value == {}


def coerce(attr: Attribute, value: Any, where: str, *, drop_read_only: bool = True,
           most: int | None = None) -> Any:
    """Check `value` against `attr` and return it in canonical form (None if unassigned);
    a multi-valued attribute takes at most `most` values (default: the limit per
    attribute)."""
    if is_unassigned(value):
        return None
    if attr.multi_valued:
        items = value if isinstance(value, list) else [value]
        most = limits.current().attribute_values if most is None else most
        if len(items) > most:
            raise invalid_value(f"{where} has {len(items)} values; at most {most} are allowed")
        out = [coerce_single(attr, v, where, drop_read_only) for v in items]
        if attr.type == "complex":
            normalise_primary(out)
        # After `primary` is settled: a value that was only `{"primary": true}` and lost
        # it is no value at all.
        out = [v for v in out if not is_unassigned(v)]
        return out or None
    if isinstance(value, list):
        raise invalid_value(f"{where} is single-valued but an array was given")
    return coerce_single(attr, value, where, drop_read_only)


def coerce_single(attr: Attribute, value: Any, where: str, drop_read_only: bool = True) -> Any:
    """Check one value (not an array) against `attr`."""
    if is_unassigned(value):
        return None
    t = attr.type
    if t == "complex":
        if not isinstance(value, dict):
            raise invalid_value(f"{where} must be an object")
        out: Doc = {}
        for key, sub_value in value.items():
            sub = attr.sub(key)
            if sub is None:
                continue  # unknown sub-attributes are ignored (RFC7644 §3.3)
            if drop_read_only and sub.mutability == "readOnly":
                continue
            v = coerce(sub, sub_value, f"{where}.{sub.name}", drop_read_only=drop_read_only)
            if v is not None:
                out[sub.name] = v
        return out or None
    if t == "boolean":
        value = quirks.boolean(value)
        if not isinstance(value, bool):
            raise invalid_value(f"{where} must be a boolean")
        return value
    if t in ("string", "reference", "binary"):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise invalid_value(f"{where} must be a string")
        return value if isinstance(value, str) else str(value)
    if t == "integer":
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int64(value)
            if value is None:
                raise invalid_value(f"{where} is out of range")
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_value(f"{where} must be an integer")
        if not fits_int64(value):
            raise invalid_value(f"{where} is out of range")
        return value
    if t == "decimal":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid_value(f"{where} must be a number")
        return value
    if t == "dateTime":
        if not isinstance(value, str):
            raise invalid_value(f"{where} must be a dateTime string")
        try:
            return normalise_time(value)
        except ValueError as exc:
            raise invalid_value(f"{where} is not a valid dateTime: {value!r}") from exc
    raise invalid_value(f"{where} has unsupported type {t}")


def member_values(attr: Attribute, value: Any, where: str = "members") -> list[Doc]:
    """Group members (RFC7643 §4.2): each one an object naming its member by `value`.

    A member without a `value` names nothing; dropping it silently would tell the IdP
    that a membership it asked for exists.
    """
    if value is None:
        return []
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, dict):
            raise invalid_value(f"{where}: each member must be an object")
        named = [v for k, v in item.items() if k.lower() == "value"]
        if len(named) != 1 or not isinstance(named[0], str) or not named[0].strip():
            raise invalid_value(f"{where}: each member needs a non-empty string value")
    return coerce(attr, value, where, most=limits.current().members_per_request) or []


def normalise_primary(values: list[Any]) -> None:
    """At most one value may be primary (RFC7643 §2.4); the last one marked wins."""
    marked = [i for i, v in enumerate(values) if isinstance(v, dict) and v.get("primary") is True]
    for i in marked[:-1]:
        values[i] = {k: v for k, v in values[i].items() if k != "primary"}


@dataclass
class Incoming:
    """A validated resource body: its stored document and the parts kept elsewhere."""

    doc: Doc
    members: list[Doc] | None = None
    password_given: bool = False


def normalise_body(rtype: ResourceType, body: Any) -> Incoming:
    """Validate a POST/PUT body and split it into the stored document and members."""
    if not isinstance(body, dict):
        raise invalid_syntax("the request body must be a JSON object")
    body = quirks.resource_body(body, rtype.schema.id)
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or rtype.schema.id.lower() not in {
        s.lower() for s in schemas if isinstance(s, str)
    }:
        raise invalid_syntax(f"schemas must include {rtype.schema.id}")
    doc: Doc = {}
    result = Incoming(doc)
    for key, value in body.items():
        if key == "schemas":
            continue
        if ":" in key:
            _put_urn_key(rtype, doc, key, value, result)
            continue
        _put(rtype, rtype.schema, doc, key, value, result)
    finish(rtype, doc)
    return result


def _put_urn_key(rtype: ResourceType, doc: Doc, key: str, value: Any, result: Incoming) -> None:
    schema, rest = split_urn(key, rtype)
    if schema is None:
        return  # an extension this resource type does not have: ignored
    if rest == "":
        if not isinstance(value, dict):
            raise invalid_value(f"{key} must be an object")
        for k, v in value.items():
            _put(rtype, schema, doc, k, v, result)
        return
    _put(rtype, schema, doc, rest, value, result)


def _put(
    rtype: ResourceType, schema: Schema, doc: Doc, key: str, value: Any, result: Incoming
) -> None:
    rp = resolve(rtype, f"{schema.id}:{key}")
    if rp is None:
        return  # unknown attributes are ignored (RFC7644 §3.3)
    attr = rp.attr
    if attr.mutability == "readOnly":
        return
    if rtype.name == "Group" and attr.name == "members" and not rp.extension:
        result.members = member_values(attr, value)
        return
    if attr.name == "password" and not rp.extension:
        coerce(attr, value, "password")
        result.password_given = True
        return  # never stored: scimsync does not authenticate users
    if attr.name == "manager" and rp.extension:
        value = quirks.manager(value)
    container = doc.setdefault(rp.schema.id, {}) if rp.extension and rp.schema else doc
    if rp.sub is not None:
        parent = container.setdefault(attr.name, {})
        if not isinstance(parent, dict):
            raise invalid_value(f"{attr.name} must be an object")
        v = coerce(rp.sub, value, rp.dotted)
        if v is None:
            parent.pop(rp.sub.name, None)
        else:
            parent[rp.sub.name] = v
        return
    v = coerce(attr, value, rp.dotted)
    if v is None:
        container.pop(attr.name, None)
    else:
        container[attr.name] = v


def finish(rtype: ResourceType, doc: Doc, before: Doc | None = None) -> None:
    """Drop empty extensions, set `schemas`, enforce required attributes and the size
    limits (a PATCH passes the document `before` it)."""
    schemas = [rtype.schema.id]
    for ext, _ in rtype.extensions:
        part = doc.get(ext.id)
        if isinstance(part, dict):
            for k in [k for k, v in part.items() if is_unassigned(v)]:
                del part[k]
        if part:
            schemas.append(ext.id)
        else:
            doc.pop(ext.id, None)
    for k in [k for k, v in doc.items() if is_unassigned(v)]:
        del doc[k]
    doc["schemas"] = schemas
    check_size(rtype, doc, before)
    for attr in rtype.schema.attributes:
        if attr.required and _missing(doc.get(attr.name)):
            raise invalid_value(f"{attr.name} is required and must not be empty")
    for ext, required in rtype.extensions:
        part = doc.get(ext.id)
        if part is None:
            if required:
                raise invalid_value(f"extension {ext.id} is required")
            continue
        for attr in ext.attributes:  # an extension that is there is there whole
            if attr.required and _missing(part.get(attr.name)):
                raise invalid_value(f"{ext.id}:{attr.name} is required")


def _missing(value: Any) -> bool:
    """A required attribute without a usable value (RFC7643 §2.2): unassigned, or a
    string of nothing but spaces, which no IdP means as a name."""
    return is_unassigned(value) or (isinstance(value, str) and not value.strip())


def check_size(rtype: ResourceType, doc: Doc, before: Doc | None = None) -> None:
    """400 invalidValue if a stored document would hold more values than the limits allow:
    per multi-valued attribute, and in all (each scalar, object and array counts one).
    A change to a document stored before the limits were lowered may keep it as large
    as it was, so that such a resource can still be changed (deactivated, say)."""
    bounds = limits.current()
    for key, n, old in _list_sizes(rtype, doc, before):
        if n > bounds.attribute_values and n > old:
            raise invalid_value(f"{key} has {n} values; at most {bounds.attribute_values} "
                                "are allowed")
    if _count_values(doc, bounds.document_values) > bounds.document_values and (
            before is None or _count_values(doc) > _count_values(before)):
        raise invalid_value(f"the resource holds more than {bounds.document_values} values")


def _list_sizes(rtype: ResourceType, doc: Doc,
                before: Doc | None) -> list[tuple[str, int, int]]:
    """(attribute, values now, values before) of each multi-valued attribute present."""
    out = []
    for urn in [None, *(ext.id for ext, _ in rtype.extensions)]:
        part = doc if urn is None else doc.get(urn)
        old = before if urn is None else (before or {}).get(urn)
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if isinstance(value, list):
                prior = old.get(key) if isinstance(old, dict) else None
                out.append((key, len(value), len(prior) if isinstance(prior, list) else 0))
    return out


def _count_values(doc: Any, stop: int | None = None) -> int:
    """JSON values in a document, counting stops a little past `stop` if given."""
    count, stack = 0, [doc]
    while stack and (stop is None or count <= stop):
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count
