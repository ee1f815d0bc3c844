"""Credential revocation requests: opened when a non-human identity is suspended or
deleted (scimsync.store.nhi), closed when someone records that the credential was
revoked. An open request is an open risk: the reports and the admin API show it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select, update

from scimsync.errors import NotFound, UsageError
from scimsync.protocol.timefmt import now
from scimsync.store.journal import Entry, append
from scimsync.store.resources import Store
from scimsync.store.tables import nhi_revocations

V = nhi_revocations.c
Doc = dict[str, Any]
STATUSES = ("open", "acknowledged")
COLUMNS = ["id", "identity", "resource_type", "resource_id", "credential", "credential_type",
           "system", "reason", "requested", "status", "acknowledged", "acknowledged_by",
           "note"]


def _doc(row: Any) -> Doc:
    out = {str(k): v for k, v in row._mapping.items()}
    out["status"] = "acknowledged" if out["acknowledged"] else "open"
    return out


def list_revocations(engine: Engine, directory_id: str | None = None,
                     status: str | None = None, resource_id: str | None = None,
                     limit: int = 1000) -> list[Doc]:
    """Revocation requests, oldest first, filtered."""
    if status is not None and status not in STATUSES:
        raise UsageError(f"status is one of {', '.join(STATUSES)}")
    stmt = select(nhi_revocations).order_by(V.requested, V.id).limit(limit)
    if directory_id:
        stmt = stmt.where(V.directory_id == directory_id)
    if status == "open":
        stmt = stmt.where(V.acknowledged.is_(None))
    elif status == "acknowledged":
        stmt = stmt.where(V.acknowledged.is_not(None))
    if resource_id:
        stmt = stmt.where(V.resource_id == resource_id)
    with engine.connect() as conn:
        return [_doc(r) for r in conn.execute(stmt)]


def acknowledge(engine: Engine, revocation_id: str, by: str, note: str | None = None) -> Doc:
    """Record that a credential was revoked, by whom; journaled as
    `nhi.credential_revoked` against the identity."""
    if not by or not by.strip():
        raise UsageError("by: who revoked the credential is required")
    store = Store(engine, group_commit=False)
    with store.write() as conn:
        row = conn.execute(select(nhi_revocations).where(V.id == revocation_id),
                           static=False).first()
        if row is None:
            raise NotFound(f"no revocation request {revocation_id}")
        found = {str(k): v for k, v in zip(nhi_revocations.c.keys(), row, strict=True)}
        if found["acknowledged"]:
            raise UsageError(f"revocation {revocation_id} was acknowledged at "
                             f"{found['acknowledged']} by {found['acknowledged_by']}")
        ts = now()
        conn.execute(update(nhi_revocations).where(V.id == revocation_id), {
            "acknowledged": ts, "acknowledged_by": by.strip(), "note": note}, static=False)
        append(conn, found["directory_id"], [Entry(
            found["resource_type"], found["resource_id"], "revoked", 0, [], None,
            {"revocation_id": revocation_id, "credential": found["credential"],
             "credential_type": found["credential_type"], "by": by.strip(),
             "note": note})], by.strip()[:64])
    return {**found, "acknowledged": ts, "acknowledged_by": by.strip(), "note": note,
            "status": "acknowledged"}
