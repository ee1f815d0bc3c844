"""Group membership, stored one row per member (DESIGN.md: Storage and scale).

Every operation costs time proportional to the members it names, not to the group.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select

from scimsync.errors import invalid_value
from scimsync.protocol.filter import Filter
from scimsync.protocol.resources import GROUP
from scimsync.store.filter_sql import Compiler
from scimsync.store.records import Member
from scimsync.store.tables import memberships, resources

CHUNK = 500
M = memberships.c
R = resources.c


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def resolve_members(
    conn: Connection, directory_id: str, group_id: str, values: Iterable[dict[str, Any]]
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
        rows = conn.execute(
            select(R.id, R.type).where(
                R.directory_id == directory_id, R.id.in_(chunk), R.type.in_(("User", "Group"))
            )
        )
        found.update({r.id: r.type for r in rows})
    missing = [i for i in ids if i not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise invalid_value(f"members do not exist in this directory: {shown}")
    for mid, mtype in wanted.items():
        if mtype is not None and mtype.lower() != found[mid].lower():
            raise invalid_value(f"member {mid} is a {found[mid]}, not a {mtype}")
    return found


def existing(conn: Connection, group_id: str, ids: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for chunk in _chunks(ids):
        out.update(
            conn.execute(
                select(M.member_id).where(M.group_id == group_id, M.member_id.in_(chunk))
            ).scalars()
        )
    return out


def add(conn: Connection, directory_id: str, group_id: str, found: dict[str, str]) -> list[str]:
    """Add members not already present; returns the ids added."""
    ids = list(found)
    present = existing(conn, group_id, ids)
    new = [i for i in ids if i not in present]
    if new:
        conn.execute(
            insert(memberships),
            [
                {"group_id": group_id, "member_id": i, "directory_id": directory_id,
                 "member_type": found[i]}
                for i in new
            ],
        )
    return new


def remove(conn: Connection, group_id: str, ids: Sequence[str]) -> list[str]:
    """Remove these members where present; returns the ids removed."""
    present = existing(conn, group_id, ids)
    gone = [i for i in ids if i in present]
    for chunk in _chunks(gone):
        conn.execute(delete(memberships).where(M.group_id == group_id, M.member_id.in_(chunk)))
    return gone


def all_ids(conn: Connection, group_id: str) -> list[str]:
    return list(conn.execute(select(M.member_id).where(M.group_id == group_id)).scalars())


def matching(conn: Connection, group_id: str, flt: Filter) -> list[str]:
    """Member ids that a `members[...]` value filter selects."""
    compiler = Compiler(GROUP, conn.dialect.name)
    other = resources.alias("o")
    term = compiler._member_tree(flt, other)
    stmt = (
        select(M.member_id)
        .select_from(memberships.join(other, other.c.id == M.member_id))
        .where(M.group_id == group_id, term)
    )
    return list(conn.execute(stmt).scalars())


def load_members(conn: Connection, group_ids: Sequence[str]) -> dict[str, list[Member]]:
    """Members of these groups, in a stable order (one indexed scan per group)."""
    out: dict[str, list[Member]] = {g: [] for g in group_ids}
    for chunk in _chunks(list(group_ids)):
        stmt = (
            select(M.group_id, M.member_id, M.member_type)
            .where(M.group_id.in_(chunk))
            .order_by(M.group_id, M.member_id)
        )
        for g, mid, mtype in conn.execute(stmt):
            out[g].append(Member(mid, mtype))
    return out


def load_groups(conn: Connection, user_ids: Sequence[str]) -> dict[str, list[Member]]:
    """Groups each user belongs to: direct and, through nested groups, indirect."""
    out: dict[str, list[Member]] = {u: [] for u in user_ids}
    if not user_ids:
        return out
    for chunk in _chunks(list(user_ids)):
        direct = conn.execute(
            select(M.member_id, M.group_id, R.doc["displayName"].as_string())
            .select_from(memberships.join(resources, R.id == M.group_id))
            .where(M.member_id.in_(chunk))
            .order_by(M.member_id, M.group_id)
        ).all()
        for uid, gid, disp in direct:
            out[uid].append(Member(gid, "direct", disp))
    _add_indirect(conn, out)
    return out


def _add_indirect(conn: Connection, out: dict[str, list[Member]]) -> None:
    """Follow groups that are members of groups, breadth first, each group once."""
    for uid, groups in out.items():
        seen = {g.value for g in groups}
        frontier = list(seen)
        depth = 0
        while frontier and depth < 16:
            depth += 1
            rows = conn.execute(
                select(M.group_id, R.doc["displayName"].as_string())
                .select_from(memberships.join(resources, R.id == M.group_id))
                .where(and_(M.member_id.in_(frontier[:CHUNK])))
            ).all()
            frontier = []
            for gid, disp in rows:
                if gid not in seen:
                    seen.add(gid)
                    frontier.append(gid)
                    groups.append(Member(gid, "indirect", disp))
        out[uid] = groups


def groups_of(conn: Connection, member_id: str) -> list[str]:
    return list(conn.execute(select(M.group_id).where(M.member_id == member_id)).scalars())
