"""References between the resources of a directory: an Agent's owners, parent and
applications, an application's agents, a non-human User's owners (protocol.agents).

Checked on every write, in the write's transaction: each must name a resource of the
same directory and of the type the attribute allows. An owner's `type` (User or
Group) is filled in from the directory when the client leaves it out, so readers
never have to look it up. A reference to another directory's resource is refused
like one to nothing: directories are separate tenants.
"""

from __future__ import annotations

from typing import Any

from scimsync.errors import invalid_value
from scimsync.protocol.agents import REFERENCES, map_references, reference_values
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
    wanted = sorted({v for a, item, _ in refs
                     if isinstance(v := item.get("value"), str) and (a, v) not in kept})
    found: dict[str, str] = {}
    if wanted:
        found = dict(conn.execute(sql.REFERENCED, {"d": directory_id, "ids": wanted}).all())
    fills: dict[int, str] = {}
    for attr, item, kind in refs:
        value = item.get("value")
        if not isinstance(value, str) or not value:
            raise invalid_value(f"{attr}: each reference needs a value (a resource id)")
        if (attr, value) in kept:
            continue
        allowed = (kind,) if kind else OWNER_TYPES
        have = found.get(value)
        if have is None or have not in allowed:
            raise invalid_value(f"{attr}: no {' or '.join(allowed)} {value!r} in this directory")
        if value == rid:
            raise invalid_value(f"{attr}: a resource cannot reference itself")
        given = item.get("type")
        if kind is None:
            if given is not None and given != have:
                raise invalid_value(f"{attr}: {value!r} is a {have}, not a {given}")
            if given is None:
                fills[id(item)] = have
    if not fills:
        return doc
    return map_references(rtype, doc, lambda item, kind: {**item, "type": fills[id(item)]}
                          if kind is None and id(item) in fills else item)
