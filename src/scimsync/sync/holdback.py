"""Which deprovisionings of a run wait, and the batches they make (docs/provisioning.md:
Accidental-deletion guard, Configuration changes).

A guard hold holds deprovisionings only: the rest of the run (joiners, updates, groups)
goes on. What waits is one row per user (scimsync.store.holds):

- while a resync runs (a configuration change, or by hand), every deprovisioning the
  pass finds is deferred; journal changes meanwhile defer users who leave the scope but
  not the directory. When the pass has seen everyone, the deferred ones are judged
  against the guard as one batch: under it they are approved, over it held;
- a run that would deprovision more than the guard allows holds those users;
- held and kept (rejected) users stay as they are, unless they leave the directory
  since (deleted or deactivated: a leaver goes now) or come back into scope;
- approved users are applied by the lane, a chunk at a time, if they should still go.

Under a lease, every hold a run writes is fenced by its token, as its links are
(scimsync.sync.lease): a worker that stalled past its lease holds, defers or releases
nothing over its successor's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scimsync.protocol.record import Record
from scimsync.store import holds
from scimsync.store.holds import Hold
from scimsync.sync.context import RunContext
from scimsync.sync.guard import guard_exceeded, provisioned_users
from scimsync.sync.lease import fenced
from scimsync.sync.work import Link, Work

if TYPE_CHECKING:
    from scimsync.sync.steps import Run


def _left(rec: Record | None) -> bool:
    """Whether the identity left the directory (deleted or deactivated), rather than
    only the target's scope."""
    return rec is None or rec.doc.get("active") is False


def _user_name(rec: Record | None, link: Link | None) -> str | None:
    if rec is not None and isinstance(rec.doc.get("userName"), str):
        return str(rec.doc["userName"])
    applied = (link.applied or {}) if link is not None else {}
    name = applied.get("userName")
    return name if isinstance(name, str) else None


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
        """Whether this user, who should leave the target, waits instead of leaving now."""
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
                self._deferred.append(Hold("User", rid, _user_name(rec, link), left))
                self._held_back.add(rid)
            return True
        return False

    def hold(self, leaving: list[tuple[Work, Record | None]], provisioned: int) -> None:
        """Hold these deprovisionings for a person (the guard found them too many)."""
        from scimsync.sync.engine import _alert

        batch = [Hold("User", w.resource_id, _user_name(rec, self.link(w.resource_id)),
                      _left(rec)) for w, rec in leaving]
        with self.begin() as conn:
            holds.put(conn, self.row.id, batch, "held")
        _alert("target.held", self.row, self.r.engine, deprovisions=len(batch),
               provisioned=provisioned)

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
    """A resync has seen everyone: judge what it deferred as one batch. Under the guard
    it is approved (and applied by the lane), over it held for a person."""
    engine, tid = ctx.r.engine, ctx.row.id
    with engine.connect() as conn:
        deferred = holds.count(conn, tid, "deferred")
    if not deferred:
        return
    provisioned = provisioned_users(engine, tid)
    if guard_exceeded(ctx.config.profile, deferred, provisioned):
        from scimsync.sync.engine import _alert

        with fenced(engine, ctx.lease) as conn:
            holds.promote(conn, tid, "deferred", "held")
        _alert("target.held", ctx.row, engine, deprovisions=deferred, provisioned=provisioned,
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
    ctx.reconcile([Work(h.resource_type, h.resource_id) for h in todo])
    ctx.settle([])
    ctx.flush()
    return len(todo) < limit
