"""Which names or ids name a group of a directory (what scope and role rules refer to)."""

from __future__ import annotations

from sqlalchemy import Connection, func, or_, select

from scimsync.store.tables import resources

R = resources.c


def existing(conn: Connection, directory_id: str, names: list[str]) -> set[str]:
    """Those of `names` (lower-cased) that are a group's displayName or id in the
    directory, without regard to case, as scoping compares them."""
    wanted = sorted({n.lower() for n in names})
    if not wanted:
        return set()
    rows = conn.execute(select(R.id, R.display_name_ci).where(
        R.directory_id == directory_id, R.type == "Group",
        or_(func.lower(R.id).in_(wanted), R.display_name_ci.in_(wanted)))).all()
    found = {str(r.id).lower() for r in rows} | {r.display_name_ci for r in rows
                                                  if r.display_name_ci}
    return found & set(wanted)
