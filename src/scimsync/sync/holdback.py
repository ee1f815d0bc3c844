"""Which deprovisionings of a run wait, and the batches they make (docs/provisioning.md:
Accidental-deletion guard, Configuration changes).

A guard hold holds deprovisionings only: the rest of the run (joiners, updates, groups
that stay) goes on. What waits is one row per user, group, agent or agentic application
that should leave the target but has not (scimsync.store.holds):

- while a resync runs (a configuration change, or by hand), every deprovisioning the
  pass finds is deferred; journal changes meanwhile defer those who leave the scope but
  not the directory. When the pass has seen everyone, the deferred ones are judged
  against the guard as one batch, each kind against those of its kind the target
  holds: under it they are approved; over it, for any kind, all of them are held;
- a run that would deprovision more of one kind than the guard allows holds those;
- held and kept (rejected) ones stay as they are, unless they leave the directory
  since (deleted, or a user deactivated: a leaver goes now) or come back into scope;
- approved ones are applied by the lane, a chunk at a time, if they should still go.

Groups leave a target when they are deleted in the directory or leave its scope;
agents and agentic applications only when they are deleted (a target that takes them
takes them all).

Under a lease, every hold a run writes is fenced by its token, as its links are
(scimsync.sync.lease): a worker that stalled past its lease holds, defers or releases
nothing over its successor's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scimsync.protocol.record import Record
from scimsync.protocol.resources import RESOURCE_TYPES
from scimsync.store import holds
from scimsync.store.holds import Hold
from scimsync.store.resources import Loads
from scimsync.sync.context import RunContext
from scimsync.sync.guard import guard_exceeded, held_message, provisioned
from scimsync.sync.lease import fenced
from scimsync.sync.mapping import group_in_scope
from scimsync.sync.work import Link, Work

if TYPE_CHECKING:
    from scimsync.sync.steps import Run


def _left(rec: Record | None) -> bool:
    """Whether the identity left the directory (deleted or deactivated), rather than
    only the target's scope."""
    return rec is None or rec.doc.get("active") is False


def _name(rec: Record | None, link: Link | None) -> str | None:
    """What people know it by: a user's userName, a group's displayName, an agent's
    name (from the directory, or as last applied once it is gone)."""
    for doc in (rec.doc if rec is not None else {},
                (link.applied or {}) if link is not None else {}):
        for attr in ("userName", "displayName", "name"):
            if isinstance(doc.get(attr), str):
                return str(doc[attr])
    return None


class Holdback(RunContext):
    """A run's part in the accidental-deletion guard."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Runs on resources a person named (sync --user, dead-letter retries, drift
        # fixes) apply what was asked: the engine turns holding off for them.
        self.holding = True
        self.judged: set[str] = set()  # approved: not counted against the guard again
        self._holds: dict[str, Hold | None] = {}
        self._deferred: list[Hold] = []
        self._held_back: set[str] = set()

    @property
    def deferring(self) -> bool:
        """Whether a resync pass is under way (its deprovisionings make one batch)."""
        return not self.dry_run and (self.row.bulk or {}).get("kind") == "resync"

    def prefetch_holds(self, ids: list[str]) -> None:
        """Read the holds of many users in one query (absent ones cached as None)."""
        wanted = [i for i in ids if i not in self._holds]
        if not self.holding or not wanted:
            return
        with self.r.engine.connect() as conn:
            found = holds.of(conn, self.row.id, wanted)
        for rid in wanted:
            self._holds[rid] = found.get(rid)

    def hold_of(self, rid: str) -> Hold | None:
        if rid not in self._holds:
            self.prefetch_holds([rid])
        return self._holds.get(rid)

    def held_back(self, work: Work, rec: Record | None) -> bool:
        """Whether this identity, which should leave the target, waits instead of leaving
        now."""
        if not self.holding:
            return False
        rid = work.resource_id
        hold = self.hold_of(rid)
        link = self.link(rid)
        if link is None or not link.remote_id or link.state != "provisioned":
            return False
        left = _left(rec)
        if hold is not None:
            if hold.state == "approved":
                self.judged.add(rid)
                return False
            if left and not hold.gone and self.incremental:
                return False  # it has left the directory since: a leaver goes now
            with self.lock:
                self._held_back.add(rid)
            return True
        if self.deferring and (not self.incremental or not left):
            with self.lock:
                self._deferred.append(Hold(work.resource_type, rid, _name(rec, link), left))
                self._held_back.add(rid)
            return True
        return False

    def unheld(self, works: list[Work]) -> list[Work]:
        """Those of `works` (groups, agents or agentic applications: one kind) whose step
        may run now: one that should leave the target waits if it is held back, or if
        too many of its kind would leave at once (the guard)."""
        if not works:
            return []
        kind = works[0].resource_type
        ids = [w.resource_id for w in works]
        self.prefetch_holds(ids)
        syncs = {"Group": self.config.profile.groups, "Agent": self.takes_agents,
                 "AgenticApplication": self.takes_applications}
        if not syncs.get(kind, False):
            return []  # not sent to this target: nothing of it to hold (holds forgotten)
        self.prefetch_links(ids)
        linked = [w for w in works if self.remote_id(w.resource_id) is not None]
        if not linked:
            return works
        found = self.r.store.get_many(self.row.directory_id, RESOURCE_TYPES[kind],
                                      [w.resource_id for w in linked],
                                      Loads(members=False, groups=False))
        leaving: list[tuple[Work, Record | None]] = []
        waiting: set[str] = set()
        for w in linked:
            rec = found.get(w.resource_id)
            if rec is not None and (kind != "Group" or group_in_scope(self.config, rec)):
                continue  # it stays
            if self.held_back(w, rec):
                waiting.add(w.resource_id)
            else:
                leaving.append((w, rec))
        going = {w.resource_id for w, _ in leaving}
        self.check_guard(leaving)
        waiting |= going - {w.resource_id for w, _ in leaving}
        return [w for w in works if w.resource_id not in waiting]

    def check_guard(self, leaving: list[tuple[Work, Record | None]]) -> None:
        """Hold a mass deprovisioning of one kind for a person unless one approved it:
        those are taken out of `leaving`, and the rest of the run goes on."""
        counted = [(w, rec) for w, rec in leaving if w.resource_id not in self.judged
                   and self.remote_id(w.resource_id) is not None]
        if not counted:
            return
        kind = counted[0][0].resource_type
        total = provisioned(self.r.engine, self.row.id, kind)
        if not guard_exceeded(self.config.profile, len(counted), total):
            return
        approved = int((self.row.config.get("approved") or {}).get("count", -1))
        if approved >= len(counted):
            return  # drift remediation, approved by a person (scimsync.drift.remediate)
        if self.dry_run:  # the plan shows the hold, and what approving it would do
            self.record(Work("Target", self.row.id), "hold",
                        detail=held_message(len(counted), total, kind), name=self.row.name)
            return
        self.hold(counted, total)
        held = {w.resource_id for w, _ in counted}
        leaving[:] = [(w, rec) for w, rec in leaving if w.resource_id not in held]

    def hold(self, leaving: list[tuple[Work, Record | None]], total: int) -> None:
        """Hold these deprovisionings (of one kind) for a person: the guard found them
        too many."""
        from scimsync.sync.engine import _alert

        batch = [Hold(w.resource_type, w.resource_id, _name(rec, self.link(w.resource_id)),
                      _left(rec)) for w, rec in leaving]
        with self.begin() as conn:
            holds.put(conn, self.row.id, batch, "held")
        _alert("target.held", self.row, self.r.engine, deprovisions=len(batch),
               provisioned=total, by_type={batch[0].resource_type: len(batch)})

    def settle_holds(self) -> None:
        """After a batch of steps: record what was deferred, and forget the holds of users
        who went now or came back into scope."""
        try:
            if not self.holding or self.dry_run:
                return
            done = [rid for rid, h in self._holds.items()
                    if h is not None and rid not in self._held_back]
            if not done and not self._deferred:
                return
            with self.begin() as conn:
                holds.drop(conn, self.row.id, done)
                holds.put(conn, self.row.id, self._deferred, "deferred")
        finally:
            self._holds, self._deferred, self._held_back = {}, [], set()


def finish_pass(ctx: Holdback) -> None:
    """A resync has seen everyone: judge what it deferred as one batch, each kind against
    those of its kind the target holds. Under the guard it is approved (and applied by
    the lane); over it, for any kind, all of it is held for a person."""
    engine, tid = ctx.r.engine, ctx.row.id
    with engine.connect() as conn:
        deferred = holds.counts(conn, tid, "deferred")
    if not deferred:
        return
    totals = {kind: provisioned(engine, tid, kind) for kind in deferred}
    if any(guard_exceeded(ctx.config.profile, n, totals[kind])
           for kind, n in deferred.items()):
        from scimsync.sync.engine import _alert

        with fenced(engine, ctx.lease) as conn:
            holds.promote(conn, tid, "deferred", "held")
        _alert("target.held", ctx.row, engine, deprovisions=sum(deferred.values()),
               provisioned=sum(totals.values()), by_type=deferred,
               reason=(ctx.row.bulk or {}).get("reason"))
        return
    with fenced(engine, ctx.lease) as conn:
        holds.promote(conn, tid, "deferred", "approved")


def apply_approved(ctx: Run, limit: int) -> bool:
    """Apply up to `limit` approved deprovisionings, each re-evaluated first (one that
    should stay after all stays); True when none are left."""
    with ctx.r.engine.connect() as conn:
        todo = holds.take(conn, ctx.row.id, "approved", limit)
    if not todo:
        return True
    # Timed from when the hub first held each back; a phase of its own (lifecycle
    # `approved`): how long a decision took is not how fast changes propagate.
    ctx.reconcile([Work(h.resource_type, h.resource_id, 0, h.since, "approved")
                   for h in todo])
    ctx.settle([])
    ctx.flush()
    return len(todo) < limit
