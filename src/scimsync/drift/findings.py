"""Findings: what drift detection found, kept across runs.

One row per (target, class, subject), the subject being the directory identity's
id or, for an object that matches none, `remote:<remote id>`. A run that sees a
finding again updates it (last seen, evidence) instead of adding one; a finding that
was resolved or remediated and comes back is reopened; a finding accepted as a risk
stays accepted until its acceptance expires, then reopens. A complete run resolves
the open findings it no longer sees; an incomplete run resolves nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, or_, select, update

from scimsync.errors import NotFound, UsageError
from scimsync.protocol.timefmt import format_time, now, parse_time
from scimsync.store.tables import findings, targets
from scimsync.sync.config import DRIFT_CLASSES
from scimsync.sync.lease import Lease, fenced

F = findings.c
Doc = dict[str, Any]
FLUSH_EVERY = 500
STATUSES = ("open", "remediated", "accepted", "resolved")
STILL_THERE = ("open", "accepted", "remediated")


# The columns of a finding as one line (tables and CSV); JSON keeps everything.
LINE_COLUMNS = ["class", "severity", "status", "resource_type", "identity", "remote_id",
                "summary", "first_seen", "last_seen", "target", "id"]


def as_line(f: Doc) -> Doc:
    """A finding as one line for people: who it is about and what differs, in words."""
    ev = f["evidence"]
    identity = ev.get("userName") or ev.get("displayName") or f["resource_id"]
    if ev.get("differences"):
        # A drift run's differences (desired, actual), or verification's (sent, held).
        summary = ", ".join(f"{d['attribute']}: {d.get('actual', d.get('held'))!r} "
                            f"(want {d.get('desired', d.get('sent'))!r})"
                            for d in ev["differences"])
    elif "entitlements" in ev:
        summary = "; ".join(f"{e['attribute']} extra {e['extra']} missing {e['missing']}"
                            for e in ev["entitlements"])
    elif "extra" in ev:
        summary = f"{ev['extra']} extra, {ev['missing']} missing members"
    else:
        summary = ev.get("reason", "")
    return {**f, "identity": identity, "summary": summary[:120]}


@dataclass
class Finding:
    cls: str
    subject: str
    severity: str
    resource_type: str
    resource_id: str | None
    remote_id: str | None
    evidence: Doc
    remote: Doc | None


class FindingsWriter:
    """Upserts one run's findings in batches (fenced by the run's lease, if any)."""

    def __init__(self, engine: Engine, target: Any, run_id: str, lease: Lease | None = None):
        self.engine = engine
        self.lease = lease
        self.target = target
        self.run_id = run_id
        self.pending: list[Finding] = []
        self.counts: dict[str, int] = {}
        self.new = 0  # inserted, or reopened
        self.ts = now()

    def add(self, finding: Finding) -> None:
        self.counts[finding.cls] = self.counts.get(finding.cls, 0) + 1
        self.pending.append(finding)
        if len(self.pending) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        ts = self.ts
        with fenced(self.engine, self.lease) as conn:
            existing = {(r.cls, r.subject): r for r in conn.execute(
                select(F.id, F["class"].label("cls"), F.subject, F.status, F.accepted_until)
                .where(F.target_id == self.target.id,
                       F.subject.in_(sorted({f.subject for f in batch}))))}
            inserts, updates = [], []
            for f in batch:
                values = {"severity": f.severity, "resource_type": f.resource_type,
                          "resource_id": f.resource_id, "remote_id": f.remote_id,
                          "evidence": f.evidence, "remote": f.remote, "last_seen": ts,
                          "last_run": self.run_id}
                old = existing.get((f.cls, f.subject))
                if old is None:
                    self.new += 1
                    inserts.append({**values, "id": str(uuid.uuid4()),
                                    "target_id": self.target.id,
                                    "directory_id": self.target.directory_id, "class": f.cls,
                                    "subject": f.subject, "status": "open", "first_seen": ts,
                                    "closed": None, "accepted": None, "accepted_until": None})
                    continue
                status = old.status
                if status in ("resolved", "remediated") or (
                        status == "accepted" and _expired(old.accepted_until, ts)):
                    status = "open"
                    self.new += 1
                updates.append((old.id, {**values, "status": status, "closed": None}))
            if inserts:
                conn.execute(insert(findings), inserts)
            for fid, values in updates:
                conn.execute(update(findings).where(F.id == fid).values(**values))

    def resolve_unseen(self) -> int:
        """After a complete run: what it did not see again is resolved."""
        with fenced(self.engine, self.lease) as conn:
            return int(conn.execute(update(findings).where(
                F.target_id == self.target.id, F.status.in_(STILL_THERE),
                F.last_run != self.run_id).values(status="resolved", closed=now())).rowcount)


def _expired(until: str | None, ts: str) -> bool:
    return until is not None and until <= ts


def reopen_expired(engine: Engine) -> int:
    """Acceptances whose time is up: the finding is open again."""
    with engine.begin() as conn:
        return int(conn.execute(update(findings).where(
            F.status == "accepted", F.accepted_until.is_not(None),
            F.accepted_until <= now()).values(status="open")).rowcount)


def list_findings(engine: Engine, directory_id: str | None = None,
                  target_id: str | None = None, cls: str | None = None,
                  status: str | None = None, identity: str | None = None,
                  limit: int = 1000, after: str = "") -> list[Doc]:
    """Findings, most severe first within each target, filtered."""
    reopen_expired(engine)
    stmt = select(findings, targets.c.name.label("target")).join(
        targets, targets.c.id == F.target_id)
    if directory_id:
        stmt = stmt.where(F.directory_id == directory_id)
    if target_id:
        stmt = stmt.where(F.target_id == target_id)
    if cls:
        if cls not in DRIFT_CLASSES:
            raise UsageError(f"unknown class {cls!r}; known: {', '.join(DRIFT_CLASSES)}")
        stmt = stmt.where(F["class"] == cls)
    if status:
        if status not in STATUSES:
            raise UsageError(f"unknown status {status!r}; known: {', '.join(STATUSES)}")
        stmt = stmt.where(F.status == status)
    if identity:
        # A directory id, a remote id, or a userName/displayName in the evidence.
        stmt = stmt.where(or_(F.resource_id == identity, F.remote_id == identity,
                              F.subject == identity))
    stmt = stmt.where(F.id > after).order_by(F.id).limit(limit)
    with engine.connect() as conn:
        rows = [view(r) for r in conn.execute(stmt)]
    order = {c: i for i, c in enumerate(DRIFT_CLASSES)}
    return sorted(rows, key=lambda r: (order[r["class"]], r["target"], r["subject"]))


def view(row: Any) -> Doc:
    return {str(k): v for k, v in row._mapping.items()}


def get_finding(engine: Engine, finding_id: str) -> Doc:
    with engine.connect() as conn:
        row = conn.execute(select(findings, targets.c.name.label("target")).join(
            targets, targets.c.id == F.target_id).where(F.id == finding_id)).first()
    if row is None:
        raise NotFound(f"no finding {finding_id}")
    return view(row)


def accept(engine: Engine, finding_id: str, reason: str, approver: str,
           until: str) -> Doc:
    """Accept a finding as a risk, with a reason, an approver and an expiry."""
    if not reason.strip() or not approver.strip():
        raise UsageError("accepting a risk needs a reason and an approver")
    try:
        expiry = parse_time(until)
    except ValueError as exc:
        raise UsageError(f"--until {until!r} is not a date-time (e.g. 2027-03-31T00:00:00Z)"
                         ) from exc
    if expiry <= datetime.now(UTC):
        raise UsageError("an acceptance must expire in the future")
    found = get_finding(engine, finding_id)
    if found["status"] == "resolved":
        raise UsageError("this finding is resolved: there is no risk left to accept")
    with engine.begin() as conn:
        conn.execute(update(findings).where(F.id == finding_id).values(
            status="accepted", accepted={"reason": reason, "approver": approver, "at": now()},
            accepted_until=format_time(expiry)))
    return get_finding(engine, finding_id)


def summary(engine: Engine, target_id: str) -> dict[str, dict[str, int]]:
    """Counts per class and status for one target."""
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for cls, status, n in conn.execute(
                select(F["class"], F.status, func.count()).where(F.target_id == target_id)
                .group_by(F["class"], F.status)):
            out.setdefault(cls, {})[status] = int(n)
    return out


def open_of(engine: Engine, target_id: str, classes: list[str]) -> list[Doc]:
    with engine.connect() as conn:
        return [view(r) for r in conn.execute(select(findings, targets.c.name.label(
            "target")).join(targets, targets.c.id == F.target_id).where(
            F.target_id == target_id, F["class"].in_(classes),
            F.status == "open").order_by(F.id))]


def mark(engine: Engine, ids: list[str], status: str, lease: Lease | None = None) -> None:
    """Set the status of these findings (in a transaction fenced by `lease`, if any)."""
    with fenced(engine, lease) as conn:
        for i in range(0, len(ids), FLUSH_EVERY):
            conn.execute(update(findings).where(F.id.in_(ids[i:i + FLUSH_EVERY])).values(
                status=status, closed=now()))
