"""Group membership, stored one row per member (docs/architecture.md: Storage and scale).

Every operation costs time proportional to the members it names, not to the group.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, select

from scimsync.errors import invalid_value
from scimsync.protocol.filter import Filter
from scimsync.protocol.record import Member
from scimsync.protocol.resources import GROUP
from scimsync.store import statements as sql
from scimsync.store.filter_sql import Compiler
from scimsync.store.lean import LeanConnection
from scimsync.store.tables import memberships, resources

CHUNK = 500
M = memberships.c
Conn = Connection | LeanConnection


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def resolve_members(
    conn: Conn, directory_id: str, group_id: str, values: Iterable[dict[str, Any]]
) -> dict[str, str]:
    """Check that each member exists in this directory; returns {member id: type}.

    A reference to an id of another directory is indistinguishable from a missing one.
    """
    wanted: dict[str, str | None] = {}
    for v in values:
        mid = v.get("value")
        if not isinstance(mid, str) or not mid:
            raise invalid_value("each member needs a string value")
        mtype = v.get("type")
        wanted[mid] = mtype if isinstance(mtype, str) else None
    if group_id in wanted:
        raise invalid_value("a group cannot be a member of itself")
    found: dict[str, str] = {}
    ids = list(wanted)
    for chunk in _chunks(ids):
        found.update((r[0], r[1]) for r in conn.execute(
            sql.RESOLVE_MEMBERS, {"d": directory_id, "ids": chunk}))
    missing = [i for i in ids if i not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise invalid_value(f"members do not exist in this directory: {shown}")
    for mid, mtype in wanted.items():
        if mtype is not None and mtype.lower() != found[mid].lower():
            raise invalid_value(f"member {mid} is a {found[mid]}, not a {mtype}")
    return found


def existing(conn: Conn, group_id: str, ids: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for chunk in _chunks(ids):
        out.update(conn.execute(sql.EXISTING_MEMBERS, {"g": group_id, "ids": chunk}).scalars())
    return out


def add(conn: Conn, directory_id: str, group_id: str, found: dict[str, str]) -> list[str]:
    """Add members not already present; returns the ids added."""
    ids = list(found)
    present = existing(conn, group_id, ids)
    new = [i for i in ids if i not in present]
    if new:
        conn.execute(sql.INSERT_MEMBERS, [
            {"group_id": group_id, "member_id": i, "directory_id": directory_id,
             "member_type": found[i]}
            for i in new
        ])
    return new


def remove(conn: Conn, group_id: str, ids: Sequence[str]) -> list[str]:
    """Remove these members where present; returns the ids removed."""
    present = existing(conn, group_id, ids)
    gone = [i for i in ids if i in present]
    for chunk in _chunks(gone):
        conn.execute(sql.DELETE_MEMBERS, {"g": group_id, "ids": chunk})
    return gone


def all_ids(conn: Conn, group_id: str) -> list[str]:
    return list(conn.execute(sql.ALL_MEMBER_IDS, {"g": group_id}).scalars())


def matching(conn: LeanConnection, group_id: str, flt: Filter) -> list[str]:
    """Member ids that a `members[...]` value filter selects."""
    compiler = Compiler(GROUP, conn.dialect.name)
    other = resources.alias("o")
    term = compiler.member_filter(flt, other)
    stmt = (
        select(M.member_id)
        .select_from(memberships.join(other, other.c.id == M.member_id))
        .where(M.group_id == group_id, term)
    )
    return list(conn.execute(stmt, static=False).scalars())


def load_members(conn: Conn, group_ids: Sequence[str]) -> dict[str, list[Member]]:
    """Members of these groups, in a stable order (one indexed scan per group)."""
    out: dict[str, list[Member]] = {g: [] for g in group_ids}
    for chunk in _chunks(list(group_ids)):
        for g, mid, mtype in conn.execute(sql.MEMBERS_OF_GROUPS, {"gids": chunk}):
            out[g].append(Member(mid, mtype))
    return out


def load_groups(conn: Conn, user_ids: Sequence[str]) -> dict[str, list[Member]]:
    """Groups each user belongs to: direct and, through nested groups, indirect."""
    out: dict[str, list[Member]] = {u: [] for u in user_ids}
    for chunk in _chunks(list(user_ids)):
        for uid, gid, depth, display in conn.execute(sql.GROUPS_OF_USERS, {"uids": chunk}):
            out[uid].append(Member(gid, "direct" if depth == 0 else "indirect", display))
    return out


def groups_of(conn: Conn, member_id: str) -> list[str]:
    return list(conn.execute(sql.GROUPS_OF_MEMBER, {"m": member_id}).scalars())
