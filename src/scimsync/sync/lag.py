"""Propagation lag: time from a change to its application on a target.

Every applied change records `changed_at` and `applied_at`. `changed_at` is when the
identity entered the target's scope or changed: the journal entry's commit time, the
start of the pass (initial load, resync) that brought it in, or when drift first saw
what a fix repairs. Percentiles are computed over the most recent deliveries, of all
phases together and of each phase (`initial`, `incremental`, `remediation`:
scimsync.sync.work.phase_of), so a large initial load neither hides nor swamps how
fast everyday changes go through. The worst recent leaver is the slowest
deprovisioning: time-to-deprovision, the figure an auditor asks for.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, func, select

from scimsync.store.tables import dead_letters, deliveries, directories, targets
from scimsync.sync.work import PHASES

DL = deliveries.c
WINDOW = 10_000  # most recent deliveries per target


def _percentile(values: list[int], q: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def figures(lags: list[int]) -> dict[str, Any]:
    """Samples, p50/p95/p99 and max (ms) of these lags."""
    return {"samples": len(lags), "p50_ms": _percentile(lags, 0.50),
            "p95_ms": _percentile(lags, 0.95), "p99_ms": _percentile(lags, 0.99),
            "max_ms": max(lags) if lags else None}


def _recent(conn: Connection, target_id: str, window: int, phase: str | None = None
            ) -> list[int]:
    where = [DL.target_id == target_id, DL.outcome == "ok"]
    if phase is not None:
        where.append(DL.phase == phase)
    return list(conn.execute(select(DL.lag_ms).where(*where)
                             .order_by(DL.id.desc()).limit(window)).scalars())


def target_lag(engine: Engine, target_id: str, window: int = WINDOW) -> dict[str, Any]:
    """Lag (ms) of recent applied changes, all together and per phase, and the worst
    recent leaver."""
    with engine.connect() as conn:
        lags = _recent(conn, target_id, window)
        phases = {p: figures(_recent(conn, target_id, window, p)) for p in PHASES}
        leaver = conn.execute(
            select(DL.resource_id, DL.lag_ms, DL.applied_at, DL.action)
            .where(DL.target_id == target_id, DL.outcome == "ok", DL.lifecycle == "leaver")
            .order_by(DL.lag_ms.desc(), DL.id.desc()).limit(1)).first()
        outcomes: dict[str, int] = dict(conn.execute(
            select(DL.outcome, func.count()).where(DL.target_id == target_id)
            .group_by(DL.outcome)).all())
    return {
        "target_id": target_id,
        **figures(lags),
        "phases": phases,
        "worst_leaver": None if leaver is None else {
            "resource_id": leaver.resource_id, "lag_ms": leaver.lag_ms,
            "applied_at": leaver.applied_at, "action": leaver.action},
        "deliveries": {str(k): int(v) for k, v in outcomes.items()},
    }


def all_targets(engine: Engine) -> list[dict[str, Any]]:
    """Every target with its backlog, failures, open dead letters and lag."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(targets.c.id, targets.c.name, targets.c.directory_id, targets.c.status,
                   targets.c.failures, targets.c.cursor, directories.c.journal_seq)
            .join(directories, directories.c.id == targets.c.directory_id)).all()
        dead: dict[str, int] = dict(conn.execute(
            select(dead_letters.c.target_id, func.count())
            .where(dead_letters.c.status == "open")
            .group_by(dead_letters.c.target_id)).all())
    out = []
    for r in rows:
        backlog = r.journal_seq if r.cursor < 0 else max(0, r.journal_seq - r.cursor)
        out.append({"id": r.id, "name": r.name, "directory_id": r.directory_id,
                    "status": r.status, "failures": r.failures, "backlog": backlog,
                    "dead_letters": int(dead.get(r.id, 0)), **target_lag(engine, r.id)})
    return out
