"""The reconciler: level-triggered, per target (docs/architecture.md: Lanes).

The journal says *which* resources to look at; their current state says *what* to
send. For each resource the desired body (scope + mapping) is compared with the link
(remote id + hash of the state last applied); the difference becomes operations,
applied through the target's connector. Applying the same desired state twice is a
no-op, so retries, crashes and re-reading the journal are harmless.

A run applies the target's pending journal changes and due retries first, then one
chunk of its bulk work (initial load, resync); the steps of each are in
scimsync.sync.steps, the run's state in scimsync.sync.context. Failures back the
target off, and quarantine it after repeats; a guard hold holds deprovisionings for a
person while the rest goes on (scimsync.sync.holdback).
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from scimsync.connectors import registry
from scimsync.connectors.contract import (
    Transient,
)
from scimsync.crypto import KeyMismatch
from scimsync.protocol.timefmt import format_time, now
from scimsync.store import journal, passes
from scimsync.store import retries as retry_store
from scimsync.store.resources import Store
from scimsync.store.tables import directories, links, resources, targets
from scimsync.store.targets import FULL_SYNC, Targets
from scimsync.sync import bulk, origins
from scimsync.sync.config import TargetConfig
from scimsync.sync.events import (
    announce,
)
from scimsync.sync.holdback import apply_approved
from scimsync.sync.lease import Lease, LeaseLost, fenced
from scimsync.sync.pacing import Window
from scimsync.sync.steps import Run
from scimsync.sync.work import RunResult, Work, coalesce, with_retries

log = logging.getLogger("scimsync.engine")
L = links.c
T = targets.c
BATCH = 500
# A group's cached link holds its applied members: a full pass syncs few groups
# between flushes so that memory does not grow with the directory's groups.
GROUP_BATCH = 20
# Users per chunk of bulk work. Journal changes wait at most one chunk: at 16 requests in
# flight to an application 50 ms away (about 100 ms a request) a chunk takes under a
# second, so a leaver of a target in the middle of its initial load waits that long.
BULK_USERS = 100
# A run goes on from chunk to chunk while nothing else waits (a journal change, a due
# retry, an approved deprovisioning is checked for between chunks), for at most this
# long: a run's setup (credentials, connector, queries) is paid once per slice rather
# than once per chunk, and the application is not left idle between chunks.
BULK_SLICE_SECONDS = 5.0
QUARANTINE_AFTER = 8  # consecutive failed runs
MAX_BACKOFF = 300.0
QUARANTINE_RETRY = 900.0
Doc = dict[str, Any]



def make_connector(kind: str, config: TargetConfig, secrets: dict[str, Any]) -> Any:
    """The connector (or event sink) for a target, from the registry of kinds."""
    return registry.open_connector(kind, config.settings, config.profile, secrets)


class Reconciler:
    """Brings one target to the desired state of its directory."""

    def __init__(self, engine: Engine, connector_factory: Any = make_connector,
                 keep_actions: bool = True):
        self.engine = engine
        self.keep_actions = keep_actions
        self.store = Store(engine, group_commit=False)
        self.targets = Targets(engine)
        self.connector_factory = connector_factory
        self._windows: dict[str, Window] = {}
        self._windows_lock = threading.Lock()

    def window(self, target_id: str, concurrency: int) -> Window:
        """The target's window of requests in flight, kept from run to run so that what
        the application said of its load (429, 503) outlives one batch."""
        with self._windows_lock:
            found = self._windows.get(target_id)
            if found is None or found.limit != max(1, concurrency):
                found = self._windows[target_id] = Window(concurrency)
            return found

    # --- one run --------------------------------------------------------------------

    def run(self, target_id: str, limit: int = BATCH, dry_run: bool = False,
            only: list[Work] | None = None,
            progress: Callable[[], None] | None = None,
            lease: Lease | None = None) -> RunResult:
        """Process the next journal entries (or a full pass, or `only` these resources).

        `progress` is called before and after each resource. Under a `lease` (a worker's
        lane) every write of the run is fenced by its token and a lost lease stops it
        (LeaseLost); direct calls (tests, `scimsync sync`) are not fenced.
        """
        if lease is not None and progress is None:
            progress = lease.check
        try:
            row, config, secrets = self.targets.runtime(target_id)
        except KeyMismatch as exc:
            # Not a bug but a broken target: count it and back off, never a hot loop.
            if dry_run:
                raise
            self._failed(self.targets.row(target_id), Transient(str(exc)), lease)
            return RunResult(error=str(exc), done=False)
        try:
            connector = self.connector_factory(row.kind, config, secrets)
        except Exception as exc:
            # A connector that cannot even be opened (a URL the policy refuses, settings
            # it rejects) is a failure of the target like any other: counted, backed off.
            if dry_run:
                raise
            self._failed(row, Transient(f"cannot open the connector: {exc}"), lease)
            return RunResult(error=str(exc), done=False)
        try:
            ctx = Run(self, row, config, connector, dry_run, progress, lease)
        except Transient as exc:  # the app's discovery failed (connectors/discovery.py)
            connector.close()
            if not dry_run:
                self._failed(row, exc, lease)
            return RunResult(error=str(exc), done=False)
        found = ctx.caps.discovered
        if not dry_run and found is not None and found != row.discovered:
            self._discovered(row.id, found, lease)
        ctx.holding = dry_run or only is None
        result = ctx.result
        try:
            if only is not None:
                ctx.reconcile(only)
                ctx.settle([])
                return result
            if ctx.sender is not None:
                self._events(ctx, limit)
            else:
                if row.cursor == FULL_SYNC and not dry_run:
                    row = self._begin_bulk(row, "initial", lease)
                entries = self._entries(row, limit) if row.cursor != FULL_SYNC else []
                due = [] if dry_run else self._due_retries(row.id, limit)
                if entries or due:
                    # Journal changes first: a leaver never waits behind bulk work.
                    work = with_retries(coalesce(entries), due)
                    ctx.reconcile(work)
                    ctx.settle([r.resource_id for r in due])
                    if not dry_run:
                        ctx.flush()
                        if entries:
                            self._advance(row.id, entries[-1]["seq"], lease)
                result.done = len(entries) < limit and len(due) < limit
                if not dry_run:  # deprovisionings a person (or the guard) approved
                    result.done = apply_approved(ctx, limit) and result.done
                if row.bulk and not dry_run:
                    # Then a chunk of bulk work, and more while nothing else waits; the
                    # next run looks at the journal again.
                    cursor = entries[-1]["seq"] if entries else row.cursor
                    result.done = bulk.work(self, ctx, row.bulk, cursor, bulk.Sizes(
                        BULK_USERS, GROUP_BATCH, BATCH, BULK_SLICE_SECONDS)) and result.done
        except Transient as exc:
            result.error = str(exc)
            result.done = False
            if not dry_run:
                self._failed(row, exc, lease)
            return result
        except LeaseLost:
            raise  # another worker has the target now: not a failure of the target
        except Exception as exc:
            # A bug or a surprise from the app must not turn into a hot loop that
            # restarts the run every few milliseconds: back off like any failure.
            if not dry_run:
                self._failed(row, Transient(f"internal error: {type(exc).__name__}: {exc}"),
                             lease)
            raise
        finally:
            ctx.steps.close()
            try:
                if not dry_run:
                    ctx.flush()  # what was applied is recorded, even when the run stopped
            finally:
                connector.close()  # also when that write is refused (a lost lease)
        if not dry_run and (row.failures or row.status == "quarantined"
                            or "approved" in row.config):
            self._healthy(row, lease)
        return result

    def _events(self, ctx: Run, limit: int) -> None:
        """Webhooks: one signed event per journal entry in scope, in journal order.

        A new webhook target starts at the end of the journal (events, not history).
        On a transient failure the cursor stays at the last event delivered.
        """
        row = ctx.row
        if row.cursor == FULL_SYNC:
            with self.engine.connect() as conn:
                start = conn.execute(select(directories.c.journal_seq).where(
                    directories.c.id == row.directory_id)).scalar_one()
            if not ctx.dry_run:
                self._advance(row.id, start, ctx.lease)
            return
        entries = self._entries(row, limit)
        delivered = row.cursor
        try:
            for entry in entries:
                ctx.deliver(entry)
                delivered = entry["seq"]
        finally:
            if not ctx.dry_run and delivered != row.cursor:
                ctx.flush()
                self._advance(row.id, delivered, ctx.lease)
        ctx.result.done = len(entries) < limit

    def _entries(self, row: Any, limit: int) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            return journal.read(conn, row.directory_id, row.cursor, limit)

    def _begin_bulk(self, row: Any, kind: str, lease: Lease | None = None) -> Any:
        """Start bulk work (an initial load or a resync): the journal is followed from
        now on, while the bulk pass walks every resource in chunks between changes.
        An initial load is timed from the target's creation: its identities entered
        the target's scope then, not when a lane first got to it."""
        with fenced(self.engine, lease) as conn:
            passes.begin(conn, row.id, row.directory_id, kind,
                         at=row.created if kind == "initial" else None)
        return self.targets.runtime(row.id)[0]

    def plan(self, target_id: str) -> RunResult:
        """What a full reconciliation would do now, changing nothing: every identity of
        the directory, and every linked one that is gone from it (docs/provisioning.md:
        Plan). The actions are the ones a run would apply, from the same planner."""
        row = self.targets.runtime(target_id)[0]
        order = {"User": 0, "Group": 1, "Agent": 2, "AgenticApplication": 3}
        with self.engine.connect() as conn:
            present = conn.execute(select(resources.c.type, resources.c.id).where(
                resources.c.directory_id == row.directory_id)).all()
            gone = conn.execute(
                select(L.resource_type, L.resource_id)
                .outerjoin(resources, resources.c.id == L.resource_id)
                .where(L.target_id == row.id, L.state == "provisioned",
                       resources.c.id.is_(None))).all()
        items = sorted([*present, *gone], key=lambda r: (order.get(r[0], 9), r[1]))
        return self.run(target_id, dry_run=True, only=[Work(t, i) for t, i in items])

    def resync(self, target_id: str) -> None:
        """Re-evaluate every identity of the target, as bulk work in its lane."""
        self.targets.resync(target_id)

    def _due_retries(self, target_id: str, limit: int) -> list[retry_store.Retry]:
        with self.engine.connect() as conn:
            return retry_store.due(conn, target_id, limit)

    def _advance(self, target_id: str, seq: int, lease: Lease | None = None) -> None:
        with fenced(self.engine, lease) as conn:
            conn.execute(update(targets).where(T.id == target_id).values(
                cursor=seq, updated=now()))

    def _discovered(self, target_id: str, discovered: dict[str, Any],
                    lease: Lease | None) -> None:
        """What the connector found out about the app, for `targets show`."""
        with fenced(self.engine, lease) as conn:
            conn.execute(update(targets).where(T.id == target_id).values(discovered=discovered))

    def _failed(self, row: Any, exc: Transient, lease: Lease | None = None) -> None:
        """Exponential backoff with jitter; Retry-After wins; quarantine after repeats."""
        failures = row.failures + 1
        delay = min(MAX_BACKOFF, 2.0 ** min(failures, 10)) * random.uniform(0.5, 1.0)  # noqa: S311
        if exc.retry_after is not None:
            delay = min(max(exc.retry_after, 0.0), 24 * 3600.0)
        status = row.status
        quarantine = failures >= QUARANTINE_AFTER and status == "active"
        if quarantine:
            status = "quarantined"
        if status == "quarantined" and exc.retry_after is None:
            delay = max(delay, QUARANTINE_RETRY)
        retry = format_time(datetime.now(UTC) + timedelta(seconds=delay))
        with fenced(self.engine, lease) as conn:
            conn.execute(update(targets).where(T.id == row.id).values(
                failures=failures, last_error=str(exc)[:2000], retry_at=retry,
                status=status, updated=now()))
        if quarantine:  # once written: a worker that lost its lease alerts nothing
            _alert("target.quarantined", row, self.engine, failures=failures,
                   error=str(exc)[:500])

    def _healthy(self, row: Any, lease: Lease | None = None) -> None:
        """A run went through: clear failures, release quarantine, use up an approval."""
        config = {k: v for k, v in row.config.items() if k != "approved"}
        with fenced(self.engine, lease) as conn:
            conn.execute(update(targets).where(T.id == row.id).values(
                failures=0, last_error=None, retry_at=None, config=config,
                status="active" if row.status == "quarantined" else row.status,
                updated=now()))
        if row.status == "quarantined":
            _alert("target.released", row, self.engine)


def _alert(event: str, row: Any, engine: Engine | None = None, **fields: Any) -> None:
    """An operational alert: a structured log line, the `scimsync_target_active`
    metric for alerting rules, and (with `engine`) an event in the directory's journal
    (`target.quarantined`, `target.released`, `target.held`) for webhooks and the
    events API."""
    log.warning(json.dumps({"event": event, "target": row.name, "target_id": row.id,
                            "directory_id": row.directory_id, **fields}))
    if engine is not None:
        announce(engine, row.directory_id, row.id, event.split(".", 1)[1],
                 {"target": row.name, **fields})


def retry_dead_letters(engine: Engine, target_id: str, ids: list[int] | None = None
                       ) -> dict[str, Any]:
    """Reconcile the resources of open dead letters now (all, or these ids)."""
    from scimsync.store.links import forget_unknown
    from scimsync.store.targets import mark_retried

    pairs = mark_retried(engine, target_id, ids)
    if not pairs:
        return {"retried": 0, "actions": []}
    # A person looked at what a stopped run may have created and, naming this dead
    # letter, says go on: what was unknown is forgotten, so the object is created
    # (sync/intents.py). Retrying every open dead letter never says so: it is what an
    # operator does after an outage, and would recreate every unknown account.
    unknown = [rid for action, _, rid in pairs if action == "verify"] \
        if ids is not None else []
    if unknown:
        with engine.begin() as conn:
            forget_unknown(conn, target_id, unknown)
    pairs = [(kind, rid) for _, kind, rid in pairs]
    result = Reconciler(engine).run(target_id, only=origins.retried(engine, target_id, pairs))
    return {"retried": len(pairs), "error": result.error, "dead": result.dead,
            "actions": result.actions}
