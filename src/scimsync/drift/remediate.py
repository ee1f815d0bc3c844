"""Remediation: putting drift right through the provisioning engine.

A fix does not talk to the application itself (orphaned accounts aside, which have no
directory identity for the engine to reconcile): it tells the engine what the target
really holds, by rewriting the link with the observed state, and lets the engine plan
and apply the difference, with its ordering, retries, dead letters and deliveries.

- missing account: the link (if any) is marked unknown, so the engine looks for the
  account in the app, finds it gone, and creates it again (and links it);
- attribute and membership drift, lingering access: the link records the values the
  app holds, so the engine patches them back (or deprovisions, per the profile);
- unmanaged but matchable: the account is linked (adopted) and brought to the
  desired state;
- orphaned account: deactivated or deleted, per the target's deprovisioning mode.

Destructive fixes (lingering access, orphaned accounts) count against the target's
accidental-deletion guard, and are refused when the last reconciliation was not
complete. A fix holds the target's lease, as a worker's lane does (sync/lease.py).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, insert, select, update

from scimsync.connectors.contract import ChangeSet, ConnectorError
from scimsync.drift.findings import mark, open_of
from scimsync.errors import UsageError
from scimsync.protocol.timefmt import now, parse_time
from scimsync.store.tables import deliveries, drift_runs, links, targets
from scimsync.store.targets import Targets
from scimsync.sync.config import DRIFT_CLASSES
from scimsync.sync.context import link_upsert
from scimsync.sync.engine import Reconciler, make_connector
from scimsync.sync.guard import guard_exceeded, provisioned
from scimsync.sync.lease import Lease, fenced, held
from scimsync.sync.work import Work, phase_of

log = logging.getLogger("scimsync.remediate")
L = links.c
Doc = dict[str, Any]
DESTRUCTIVE = ("lingering_access", "orphaned_account")
UNWANTED_KEYS = ("id", "meta", "schemas", "groups")


def last_run(engine: Engine, target_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(drift_runs).where(drift_runs.c.target_id == target_id)
                            .order_by(drift_runs.c.started.desc()).limit(1)).first()


def fix(engine: Engine, target_id: str, classes: list[str], approved: bool = False,
        automatic: bool = False, connector_factory: Any = make_connector,
        lease: Lease | None = None) -> Doc:
    """Fix the open findings of these classes on one target; returns what was done.

    `approved`: a person has approved going past the deletion guard. `automatic`: the
    fix follows a run for classes in `auto` mode (a guard overrun is then reported,
    not raised). It runs under the target's lease, the run's (`lease`) or its own
    (sync.lease.held): every write is fenced by it and a lost lease stops the fix
    before its next request, so no fix ever works on a resource at once with the
    target's lane.
    """
    unknown = [c for c in classes if c not in DRIFT_CLASSES]
    if unknown:
        raise UsageError(f"unknown class {unknown[0]!r}; known: {', '.join(DRIFT_CLASSES)}")
    row, config, secrets = Targets(engine).runtime(target_id)
    report_only = [c for c in classes if config.drift.mode(c) == "report"]
    if report_only:
        raise UsageError(f"{', '.join(report_only)} is report-only on target {row.name} "
                         "(drift.remediate)")
    with held(engine, row.id, lease) as lease:
        return _fix(engine, row, config, secrets, classes, approved, automatic,
                    connector_factory, lease)


def _fix(engine: Engine, row: Any, config: Any, secrets: dict[str, Any], classes: list[str],
         approved: bool, automatic: bool, connector_factory: Any, lease: Lease) -> Doc:
    run = last_run(engine, row.id)
    if run is None or run.status != "complete":
        raise UsageError(f"the last reconciliation of {row.name} is "
                         f"{'missing' if run is None else run.status}: run `scimsync drift "
                         f"{row.name}` to completion before fixing")
    todo = open_of(engine, row.id, classes)
    out: Doc = {"target": row.name, "classes": classes, "fixed": 0, "failed": 0,
                "findings": len(todo), "error": None}
    if not todo:
        return out
    destructive = sum(1 for f in todo if f["class"] in DESTRUCTIVE)
    if destructive and guard_exceeded(config.profile, destructive,
                                      provisioned(engine, row.id)):
        if not approved:
            message = (f"fixing would deprovision {destructive} accounts, past the "
                       f"accidental-deletion guard: approve it (--approve) to go ahead")
            if automatic:
                out["error"] = message
                return out
            raise UsageError(message)
        with fenced(engine, lease) as conn:  # the engine's own guard reads the same approval
            conn.execute(update(targets).where(targets.c.id == row.id).values(config={
                **row.config, "approved": {"count": destructive, "at": now(),
                                           "by": "drift remediation"}}))
    works: dict[str, Work] = {}
    by_resource: dict[str, list[str]] = {}
    orphans = [f for f in todo if f["class"] == "orphaned_account"]
    with fenced(engine, lease) as conn:
        upsert = link_upsert(engine.dialect.name)
        for f in todo:
            if f["class"] == "orphaned_account":
                continue
            link = _observed_link(f)
            if link is not None:
                conn.execute(upsert, [{"target_id": row.id, "resource_id": f["resource_id"],
                                       "resource_type": f["resource_type"], "updated": now(),
                                       **link}])
            elif f["class"] == "missing_account":
                # Not the applied state (a diff against it is empty, and sends nothing):
                # the link is unknown, so the engine looks for the account, finds it
                # gone, and creates it again (sync/intents.py).
                conn.execute(update(links).where(
                    L.target_id == row.id, L.resource_id == f["resource_id"]).values(
                    intent="verify"))
            # A fix counts from when drift first saw what it fixes.
            works[f["resource_id"]] = Work(f["resource_type"], f["resource_id"], 0,
                                           f["first_seen"], "remediation")
            by_resource.setdefault(f["resource_id"], []).append(f["id"])
    fixed: list[str] = []
    if works:
        result = Reconciler(engine, connector_factory).run(row.id, only=list(works.values()),
                                                           lease=lease)
        ok = {a["resource_id"] for a in result.actions if a["outcome"] == "ok"}
        done = {w for w in works if w in ok}
        # A resource the engine found already right needs no action: fixed as well.
        if result.error is None:
            done |= {w for w in works if w not in {a["resource_id"] for a in result.actions}}
        for rid in done:
            fixed += by_resource[rid]
        out["error"] = result.error
    if orphans:
        fixed += _take_out(engine, row, config, secrets, orphans, connector_factory, out,
                           lease)
    mark(engine, fixed, "remediated", lease)
    out["fixed"] = len(fixed)
    out["failed"] = len(todo) - len(fixed)
    log.info("drift remediation on %s: %s", row.name, {k: out[k] for k in ("fixed", "failed")})
    return out


def _observed_link(f: Doc) -> Doc | None:
    """The link that tells the engine what the target holds for this finding."""
    remote: Doc = f["remote"] or {}
    cls = f["class"]
    if f["remote_id"] is None or cls == "missing_account":
        return None
    if cls == "unmanaged_matchable":
        # Adopted by the engine's planner under its rules (sync/plan.py: only an account
        # carrying this identity's id, or any where the profile says adopt: match),
        # never by writing a link here.
        return None
    base = {"remote_id": f["remote_id"], "applied_hash": None, "state": "provisioned"}
    if f["resource_type"] == "Group":
        return {**base, "applied": None}  # the engine replaces it whole (PUT)
    if cls == "lingering_access":
        if str(f["evidence"].get("reason", "")).startswith("deactivated"):
            # Still wanted, inactive: the engine patches `active` back to false.
            return {**base, "applied": {"active": True}}
        # Out of scope or deleted: deprovisioned per the profile (a PUT-only app gets
        # the account as it is, with active false).
        return {**base, "applied": {k: v for k, v in remote.items()
                                    if k not in UNWANTED_KEYS}}
    keys = [d["attribute"] for d in f["evidence"].get("differences", [])] + [
        e["attribute"] for e in f["evidence"].get("entitlements", [])]
    return {**base, "applied": {k: remote[k] for k in keys if k in remote}}


def _take_out(engine: Engine, row: Any, config: Any, secrets: dict[str, Any],
              orphans: list[Doc], connector_factory: Any, out: Doc,
              lease: Lease) -> list[str]:
    """Deactivate (or delete, per the profile) objects that match no identity. Each
    attempt is a delivery (lifecycle `remediation`, lag counted from when the finding
    was first seen), as the engine records its own; they are written fenced, so a
    holder that lost the lease records nothing, and it sends no further request."""
    connector = connector_factory(row.kind, config, secrets)
    fixed, evidence = [], []
    try:
        for f in orphans:
            kind, remote_id = f["resource_type"], f["remote_id"]
            outcome, detail = "ok", f"orphaned account {remote_id} (finding {f['id']})"
            action = "delete" if config.profile.deprovision == "delete" or kind == "Group" \
                else "deactivate"
            lease.check()
            try:
                if action == "delete":
                    connector.delete(kind, remote_id)
                else:
                    body = {k: v for k, v in (f["remote"] or {}).items()
                            if k not in ("id", "meta", "groups")}
                    connector.update(kind, remote_id, ChangeSet({**body, "active": False},
                                                                set={"active": False}))
                fixed.append(f["id"])
            except ConnectorError as exc:
                out["error"] = f"{kind} {remote_id}: {exc}"
                outcome, detail = "failed", f"{detail}: {exc}"
            applied = now()
            lag = (parse_time(applied) - parse_time(f["first_seen"])).total_seconds()
            evidence.append({"target_id": row.id, "resource_type": kind,
                             "resource_id": f["id"], "action": action, "outcome": outcome,
                             "seq": 0, "lifecycle": "remediation",
                             "changed_at": f["first_seen"], "applied_at": applied,
                             "lag_ms": max(int(lag * 1000), 0), "detail": detail,
                             "phase": phase_of("remediation")})
    finally:
        connector.close()
        if evidence:
            with fenced(engine, lease) as conn:
                conn.execute(insert(deliveries), evidence)
    return fixed
