"""Statements on the links table (what the hub knows of each resource in a target)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete

from scimsync.store.tables import links

L = links.c
_UPSERTS: dict[tuple[str, tuple[str, ...]], Any] = {}


def upsert(dialect: str, columns: tuple[str, ...]) -> Any:
    """INSERT ... ON CONFLICT (target_id, resource_id) DO UPDATE of these columns,
    built once per dialect."""
    found = _UPSERTS.get((dialect, columns))
    if found is None:
        from sqlalchemy.dialects import postgresql, sqlite

        stmt: Any = (postgresql.insert(links) if dialect == "postgresql"
                     else sqlite.insert(links))
        found = _UPSERTS[(dialect, columns)] = stmt.on_conflict_do_update(
            index_elements=[L.target_id, L.resource_id],
            set_={c: stmt.excluded[c] for c in columns})
    return found


def forget_unknown(conn: Connection, target_id: str, resource_ids: list[str]) -> None:
    """Forget links of these resources that carry an intent and no remote id: what a
    stopped run may have created, which a person has looked for and not found
    (sync/intents.py). A link with a remote id is kept: it names the object."""
    c = links.c
    conn.execute(delete(links).where(c.target_id == target_id,
                                     c.resource_id.in_(resource_ids),
                                     c.remote_id.is_(None), c.intent.is_not(None)))
