"""Drift runs as rows: one per full reconciliation, with its status and statistics.

A run is recorded `running` when it starts and closed with its outcome: `complete`,
`incomplete` (the target could not be read whole), `not_reconcilable` (a target that
cannot be read back) or `failed`. Fixes follow only a complete run
(scimsync.drift.remediate).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, insert, select, update

from scimsync.connectors.contract import ConnectorError, IncompleteListing
from scimsync.protocol.timefmt import now
from scimsync.store.tables import drift_runs
from scimsync.sync.lease import Lease, fenced

log = logging.getLogger("scimsync.drift")
Doc = dict[str, Any]


@dataclass
class RunStats:
    """What one run read, compared and found, and how long it took."""

    listed_users: int = 0
    listed_groups: int = 0
    listed_agents: int = 0
    compared: int = 0
    listing_seconds: float = 0.0
    comparison_seconds: float = 0.0
    findings: dict[str, int] = field(default_factory=dict)
    new: int = 0
    resolved: int = 0
    inactive_unmatched: int = 0
    ignored: int = 0  # unclaimed objects the target's drift.ignore names as the app's own
    # Why the listing was not whole: {"reason", "detail"} (None: it was).
    incomplete: Doc | None = None

    def to_json(self) -> Doc:
        rate = self.compared / self.comparison_seconds if self.comparison_seconds else 0.0
        return {"listed_users": self.listed_users, "listed_groups": self.listed_groups,
                "listed_agents": self.listed_agents,
                "compared": self.compared, "listing_seconds": round(self.listing_seconds, 3),
                "comparison_seconds": round(self.comparison_seconds, 3),
                "compared_per_second": round(rate), "findings": self.findings,
                "new": self.new, "resolved": self.resolved,
                "inactive_unmatched": self.inactive_unmatched, "ignored": self.ignored,
                **({"incomplete": self.incomplete} if self.incomplete else {})}


def incompleteness(exc: ConnectorError) -> Doc:
    """Why a listing was not whole, for the run's stats: the check a listing failed
    (scimsync.connectors.contract.IncompleteListing), else `unreadable` (a request
    failed: a timeout, a 5xx after retries, a refusal)."""
    reason = exc.reason if isinstance(exc, IncompleteListing) else "unreadable"
    out: Doc = {"reason": reason, "detail": str(exc)}
    if exc.status is not None:
        out["status"] = exc.status
    return out


def start_run(engine: Engine, target_id: str, trigger: str, lease: Lease | None = None) -> str:
    """Record a run as running (fenced by `lease`); its id."""
    run_id = str(uuid.uuid4())
    with fenced(engine, lease) as conn:
        conn.execute(insert(drift_runs).values(id=run_id, target_id=target_id,
                                               status="running", trigger=trigger,
                                               started=now()))
    return run_id


def finish_run(engine: Engine, run_id: str, status: str, stats: RunStats,
               error: str | None, lease: Lease | None = None) -> Doc:
    """Close a run with its outcome (fenced by `lease`); the run as stored."""
    values = {"status": status, "finished": now(), "stats": stats.to_json(),
              "error": error}
    with fenced(engine, lease) as conn:
        conn.execute(update(drift_runs).where(drift_runs.c.id == run_id).values(**values))
        row = conn.execute(select(drift_runs).where(drift_runs.c.id == run_id)).one()
    if error:
        log.warning("drift run %s on target %s: %s", run_id, row.target_id, error)
    return {str(k): v for k, v in row._mapping.items()}


def list_runs(engine: Engine, target_id: str, limit: int = 50) -> list[Doc]:
    """The latest reconciliation runs of a target, newest first."""
    with engine.connect() as conn:
        return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(
            select(drift_runs).where(drift_runs.c.target_id == target_id)
            .order_by(drift_runs.c.started.desc()).limit(limit))]
