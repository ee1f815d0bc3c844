"""The change journal: one ordered entry per changed resource, written in the same
transaction as the change (docs/architecture.md: Inbound; invariant "nothing commits unpublished").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from scimsync.protocol.timefmt import now
from scimsync.store import statements as sql
from scimsync.store.lean import LeanConnection
from scimsync.store.tables import journal

OPS = (
    "created", "updated", "deactivated", "reactivated", "deleted",
    "member_added", "member_removed",
)
LIFECYCLE = ("joiner", "mover", "leaver")

# Attributes whose change makes a user a "mover" (the access they need may change).
MOVER_PATHS = frozenset({
    "title",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:division",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:organization",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter",
})


@dataclass
class Entry:
    """A journal entry before it is given its sequence number."""

    resource_type: str
    resource_id: str
    op: str
    version: int
    changed: list[str] = field(default_factory=list)
    lifecycle: str | None = None
    detail: dict[str, Any] | None = None


def append(conn: LeanConnection, directory_id: str, entries: list[Entry], actor: str | None) -> int:
    """Append entries in order; returns the last sequence number (0 if nothing appended).

    Bumping `directories.journal_seq` row-locks the directory until commit, so within a
    directory sequence order is commit order and a reader never skips an entry.
    """
    if not entries:
        return 0
    last = conn.execute(sql.NEXT_SEQ, {"did": directory_id, "n": len(entries)}).scalar_one()
    first = last - len(entries) + 1
    at = now()
    rows = [
            {
                "directory_id": directory_id,
                "seq": first + i,
                "resource_type": e.resource_type,
                "resource_id": e.resource_id,
                "op": e.op,
                "version": e.version,
                "changed": e.changed,
                "lifecycle": e.lifecycle,
                "detail": e.detail,
                "actor": actor,
                "at": at,
            }
            for i, e in enumerate(entries)
    ]
    # One row (the usual case) through execute: executemany costs more for a single row.
    conn.execute(sql.INSERT_JOURNAL, rows[0] if len(rows) == 1 else rows)
    return int(last)


def read(
    conn: Connection, directory_id: str, after: int = 0, limit: int = 100,
    resource_id: str | None = None, since: str | None = None,
) -> list[dict[str, Any]]:
    """Entries with seq > after (and committed at or after `since`), oldest first."""
    stmt = (
        select(journal)
        .where(journal.c.directory_id == directory_id, journal.c.seq > after)
        .order_by(journal.c.seq)
        .limit(limit)
    )
    if resource_id is not None:
        stmt = stmt.where(journal.c.resource_id == resource_id)
    if since is not None:
        stmt = stmt.where(journal.c.at >= since)
    # Column keys are str subclasses (quoted_name), which JSON encoders reject.
    return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(stmt)]


def changed_paths(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Attribute paths that differ: sub-attributes of complex values, URNs for extensions."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key == "schemas":
            continue
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if ":" in key and isinstance(a or {}, dict) and isinstance(b or {}, dict):
            for sub in sorted(set(a or {}) | set(b or {})):
                if (a or {}).get(sub) != (b or {}).get(sub):
                    out.append(f"{key}:{sub}")
        elif isinstance(a, dict) and isinstance(b, dict):
            for sub in sorted(set(a) | set(b)):
                if a.get(sub) != b.get(sub):
                    out.append(f"{key}.{sub}")
        else:
            out.append(key)
    return out


def user_lifecycle(op: str, changed: list[str]) -> str | None:
    """The lifecycle meaning of a User change: joiner, mover, leaver or None."""
    if op in ("created", "reactivated"):
        return "joiner"
    if op in ("deactivated", "deleted"):
        return "leaver"
    if any(p in MOVER_PATHS for p in changed):
        return "mover"
    return None


def prune(conn: Connection, directory_id: str, older_than: str) -> int:
    """Delete entries committed before `older_than` that every target has consumed."""
    from sqlalchemy import delete, func

    from scimsync.store.tables import targets

    floor = conn.execute(select(func.min(targets.c.cursor)).where(
        targets.c.directory_id == directory_id)).scalar_one()
    stmt = delete(journal).where(journal.c.directory_id == directory_id,
                                 journal.c.at < older_than)
    if floor is not None:
        stmt = stmt.where(journal.c.seq <= max(floor, 0))
    return int(conn.execute(stmt).rowcount)
