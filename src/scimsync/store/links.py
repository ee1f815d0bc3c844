"""Statements on the links table (what the hub knows of each resource in a target)."""

from __future__ import annotations

from typing import Any

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
