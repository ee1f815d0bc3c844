"""Comparing what a target holds with what the directory wants it to hold.

An application echoes what it was sent in its own way: it adds sub-attributes
(`display`, `$ref`, `primary: false`), generated values (`name.formatted`), changes
the case of case-insensitive strings, reorders multi-valued lists. None of that is
drift. The comparison is the schema's: sub-attributes that were not sent are not
compared, multi-valued attributes compare as multisets, and strings that RFC 7643
defines as `caseExact: false` compare without case.
"""

from __future__ import annotations

from typing import Any

from scimsync.protocol.resources import RESOURCE_TYPES, USER
from scimsync.protocol.schema import Attribute, ResourceType, resolve

Doc = dict[str, Any]
ENTITLEMENT_ATTRIBUTES = ("roles", "entitlements")
NOT_COMPARED = frozenset({"schemas", "id", "meta", "members", "groups"})


def _definition(key: str, rtype: ResourceType = USER) -> Attribute | None:
    found = _DEFINITIONS.get((rtype.name, key), False)
    if found is False:
        rp = resolve(rtype, key) if not key.startswith("urn:") else None
        found = _DEFINITIONS[(rtype.name, key)] = rp.attr if rp is not None else None
    return found  # type: ignore[return-value]


_DEFINITIONS: dict[tuple[str, str], Attribute | bool | None] = {}


def _sub(attr: Attribute | None, name: str) -> Attribute | None:
    return attr.sub(name) if attr is not None else None


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {} or value == ""


def same(attr: Attribute | None, want: Any, have: Any) -> bool:
    """Whether `have` (as the app holds it) satisfies `want` (as the hub sends it)."""
    if want == have:
        return True
    if _empty(want) or _empty(have):
        return _empty(want) and _empty(have)
    if isinstance(want, str) and isinstance(have, str):
        case_exact = attr.case_exact if attr is not None else True
        return not case_exact and want.lower() == have.lower()
    if isinstance(want, dict) and isinstance(have, dict):
        # What was sent must be there; what the app adds is its own.
        return all(same(_sub(attr, k), v, have.get(k)) for k, v in want.items())
    if isinstance(want, list) and isinstance(have, list):
        if len(want) != len(have):
            return False
        remaining = list(have)
        for item in want:
            for i, candidate in enumerate(remaining):
                if same(attr, item, candidate):
                    del remaining[i]
                    break
            else:
                return False
        return True
    return False


def user_differences(desired: Doc, actual: Doc, applied_keys: frozenset[str] | set[str]
                     ) -> list[Doc]:
    """Managed attributes of a user that differ: those the hub sends now and those it
    sent before (a value the hub removed must be gone from the app too)."""
    return differences("User", desired, actual, applied_keys)


def differences(kind: str, desired: Doc, actual: Doc,
                applied_keys: frozenset[str] | set[str]) -> list[Doc]:
    """The same for any resource type the hub sends (User, Agent)."""
    rtype = RESOURCE_TYPES[kind]
    out = []
    # Most accounts have no difference: compare first, sort only what differs.
    keys = desired.keys() | applied_keys if applied_keys - desired.keys() else desired.keys()
    for key in keys:
        if key in NOT_COMPARED:
            continue
        want, have = desired.get(key), actual.get(key)
        if key == "active" and have is None:
            have = True  # an app that does not say otherwise grants access
        if want == have:
            continue
        if key.startswith("urn:"):
            if isinstance(want, dict) and isinstance(have, dict) and all(
                    same(_ext_attr(rtype, key, k), v, have.get(k)) for k, v in want.items()):
                continue
        elif same(_definition(key, rtype), want, have):
            continue
        out.append({"attribute": key, "desired": want, "actual": have})
    if len(out) > 1:
        out.sort(key=lambda d: str(d["attribute"]))
    return out


def _ext_attr(rtype: ResourceType, urn: str, name: str) -> Attribute | None:
    rp = resolve(rtype, f"{urn}:{name}")
    return rp.attr if rp is not None else None


def value_set(items: Any) -> set[str]:
    """The `value`s of a multi-valued attribute (roles, entitlements, members)."""
    if not isinstance(items, list):
        return set()
    return {str(i.get("value")) for i in items if isinstance(i, dict) and "value" in i}
