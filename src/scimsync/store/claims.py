"""Which remote objects the hub links already, across the targets that share a system.

A remote object linked for one identity, or by another target writing to the same
downstream system (two tenants' targets on one application), is never adopted for
another identity (docs/provisioning.md: Adoption).
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from scimsync.connectors import registry
from scimsync.store.tables import links, targets

L = links.c
T = targets.c


def sharing_targets(conn: Connection, kind: str, settings: dict[str, object]) -> list[str]:
    """Ids of every target (this one included) that writes to the same system."""
    mine = registry.system_of(kind, dict(settings))
    rows = conn.execute(select(T.id, T.kind, T.config)).all()
    out = []
    for row in rows:
        try:
            if registry.system_of(row.kind, dict(row.config or {})) == mine:
                out.append(str(row.id))
        except Exception:  # noqa: S112  (a target of a kind no longer known shares nothing)
            continue
    return out


def claimed(conn: Connection, target_ids: list[str], remote_ids: list[str]
            ) -> dict[tuple[str, str], str]:
    """(target id, remote id) -> the resource id linked to it, for these remote ids."""
    if not remote_ids or not target_ids:
        return {}
    out: dict[tuple[str, str], str] = {}
    for i in range(0, len(remote_ids), 500):
        for tid, remote_id, rid in conn.execute(
                select(L.target_id, L.remote_id, L.resource_id).where(
                    L.target_id.in_(target_ids), L.remote_id.in_(remote_ids[i:i + 500]))):
            out[(str(tid), str(remote_id))] = str(rid)
    return out
