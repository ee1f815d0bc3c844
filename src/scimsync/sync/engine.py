"""The reconciler: level-triggered, per target (docs/architecture.md: Reconcile).

The journal says *which* resources to look at; their current state says *what* to
send. For each resource the desired body (scope + mapping) is compared with the link
(remote id + hash of the state last applied); the difference becomes operations,
applied through the target's connector. Applying the same desired state twice is a
no-op, so retries, crashes and re-reading the journal are harmless.

Order within a run: users that should exist (so groups can refer to them), then
groups (with the groups of users whose link changed), then users that should go
(after the memberships that referred to them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, insert, null, select, update

from scimsync.connectors import registry
from scimsync.connectors.contract import (
    Capabilities,
    ChangeSet,
    Connector,
    ConnectorError,
    EventSink,
    Rejected,
    Remote,
    RemoteConflict,
    RemoteNotFound,
    Transient,
)
from scimsync.crypto import KeyMismatch
from scimsync.errors import NotFound
from scimsync.protocol.filter import parse_filter
from scimsync.protocol.record import Record
from scimsync.protocol.resources import RESOURCE_TYPES, USER
from scimsync.protocol.schema import ENTERPRISE_USER
from scimsync.protocol.timefmt import format_time, now, parse_time
from scimsync.store import journal
from scimsync.store import retries as retry_store
from scimsync.store.resources import Loads, Store
from scimsync.store.tables import dead_letters, deliveries, directories, links, resources, targets
from scimsync.store.targets import FULL_SYNC, Targets
from scimsync.sync import mapping
from scimsync.sync.config import TargetConfig
from scimsync.sync.events import (
    HUB_RESOURCE,
    NHI_EVENTS,
    announce,
    build_event,
    resource_doc,
)
from scimsync.sync.lease import LeaseLost
from scimsync.sync.pacing import Steps, Window

log = logging.getLogger("scimsync.engine")
L = links.c
T = targets.c
BATCH = 500
FLUSH_EVERY = 200
MATCH_BATCH = 50
# A group's cached link holds its applied members: a full pass syncs few groups
# between flushes so that memory does not grow with the directory's groups.
GROUP_BATCH = 20
MEMBER_CHUNK = 500  # member ids per IN list when resolving remote ids
QUARANTINE_AFTER = 8  # consecutive failed runs
MAX_BACKOFF = 300.0
QUARANTINE_RETRY = 900.0
# Statuses that say the whole application is overloaded or down for a while (the
# target backs off, Retry-After honoured), as opposed to one operation failing.
APP_DOWN = (408, 425, 429, 503)
Doc = dict[str, Any]


def make_connector(kind: str, config: TargetConfig, secrets: dict[str, Any]) -> Any:
    """The connector (or event sink) for a target, from the registry of kinds."""
    return registry.open_connector(kind, config.settings, config.profile, secrets)


@dataclass
class Link:
    resource_id: str
    resource_type: str
    remote_id: str | None
    applied_hash: str | None
    applied: Doc | None
    state: str


@dataclass
class Work:
    """One resource to reconcile, with when and why it last changed."""

    resource_type: str
    resource_id: str
    seq: int = 0
    changed_at: str | None = None
    lifecycle: str | None = None


class GuardHeld(Exception):
    """The run would deprovision more than the target's guard allows."""

    def __init__(self, count: int, provisioned: int):
        super().__init__(f"would deprovision {count} of {provisioned} provisioned accounts: "
                         "waiting for approval (scimsync targets approve)")
        self.count = count


@dataclass
class RunResult:
    processed: int = 0
    applied: int = 0
    dead: int = 0
    error: str | None = None
    done: bool = True
    actions: list[dict[str, Any]] = field(default_factory=list)


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
            progress: Callable[[], None] | None = None) -> RunResult:
        """Process the next journal entries (or a full pass, or `only` these resources).

        `progress` is called after each resource (the worker renews its lease there).
        """
        try:
            row, config, secrets = self.targets.runtime(target_id)
        except KeyMismatch as exc:
            # Not a bug but a broken target: count it and back off, never a hot loop.
            if dry_run:
                raise
            self._failed(self.targets.row(target_id), Transient(str(exc)))
            return RunResult(error=str(exc), done=False)
        connector = self.connector_factory(row.kind, config, secrets)
        ctx = _Context(self, row, config, connector, dry_run, progress)
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
                    row = self._begin_bulk(row, "initial")
                entries = self._entries(row, limit) if row.cursor != FULL_SYNC else []
                due = [] if dry_run else self._due_retries(row.id, limit)
                if entries or due:
                    # Journal changes first: a leaver never waits behind bulk work.
                    work = _with_retries(_coalesce(entries), due)
                    ctx.reconcile(work)
                    ctx.settle([r.resource_id for r in due])
                    if not dry_run:
                        ctx.flush()
                        if entries:
                            self._advance(row.id, entries[-1]["seq"])
                result.done = len(entries) < limit and len(due) < limit
                if row.bulk and not dry_run:
                    # Then one chunk of bulk work; the next run looks at the journal again.
                    result.done = self._bulk_chunk(ctx, row.bulk) and result.done
        except Transient as exc:
            result.error = str(exc)
            result.done = False
            if not dry_run:
                self._failed(row, exc)
            return result
        except GuardHeld as exc:
            result.error = str(exc)
            result.done = False
            if not dry_run:
                self._hold(row, exc)
            return result
        except LeaseLost:
            raise  # another worker has the target now: not a failure of the target
        except Exception as exc:
            # A bug or a surprise from the app must not turn into a hot loop that
            # restarts the run every few milliseconds: back off like any failure.
            if not dry_run:
                self._failed(row, Transient(f"internal error: {type(exc).__name__}: {exc}"))
            raise
        finally:
            if not dry_run:
                ctx.flush()  # what was applied is recorded, even when the run stopped
            connector.close()
        if not dry_run and (row.failures or row.status == "quarantined"
                            or "approved" in row.config):
            self._healthy(row)
        return result

    def _events(self, ctx: _Context, limit: int) -> None:
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
                self._advance(row.id, start)
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
                self._advance(row.id, delivered)
        ctx.result.done = len(entries) < limit

    def _entries(self, row: Any, limit: int) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            return journal.read(conn, row.directory_id, row.cursor, limit)

    def _begin_bulk(self, row: Any, kind: str) -> Any:
        """Start bulk work (an initial load or a resync): the journal is followed from
        now on, while the bulk pass walks every resource in chunks between changes."""
        with self.engine.begin() as conn:
            seq = conn.execute(select(directories.c.journal_seq).where(
                directories.c.id == row.directory_id)).scalar_one()
            bulk = {"kind": kind, "type": "User", "after": "", "seq": seq, "at": now()}
            cursor = row.cursor if row.cursor != FULL_SYNC else seq
            conn.execute(update(targets).where(T.id == row.id).values(
                bulk=bulk, cursor=cursor, updated=now()))
        return self.targets.runtime(row.id)[0]

    def _bulk_chunk(self, ctx: _Context, bulk: dict[str, Any]) -> bool:
        """One chunk of bulk work; True when the bulk pass is complete."""
        did = ctx.row.directory_id
        order = ["User"] + [k for k in ("Group", "Agent", "AgenticApplication")
                            if k in ctx.caps.kinds and (k != "Group" or ctx.config.profile.groups)]
        i = order.index(bulk["type"]) if bulk["type"] in order else len(order)
        while i < len(order):
            rtype = order[i]
            with self.engine.connect() as conn:
                ids = list(conn.execute(
                    select(resources.c.id).where(
                        resources.c.directory_id == did, resources.c.type == rtype,
                        resources.c.id > bulk["after"])
                    .order_by(resources.c.id)
                    .limit(BATCH if rtype == "User" else GROUP_BATCH)).scalars())
            if ids:
                ctx.reconcile([Work(rtype, i, bulk["seq"], bulk["at"], bulk["kind"])
                               for i in ids])
                ctx.settle([])
                ctx.flush()
                self._save_bulk(ctx.row.id, {**bulk, "type": rtype, "after": ids[-1]})
                return False
            i += 1
            bulk = {**bulk, "type": order[i] if i < len(order) else "", "after": ""}
        # Linked resources that no longer exist in the directory must go too.
        with self.engine.connect() as conn:
            gone = conn.execute(
                select(L.resource_type, L.resource_id)
                .outerjoin(resources, resources.c.id == L.resource_id)
                .where(L.target_id == ctx.row.id, L.state == "provisioned",
                       resources.c.id.is_(None))).all()
        if gone:
            ctx.reconcile([Work(t, r, bulk["seq"], bulk["at"], bulk["kind"]) for t, r in gone])
            ctx.settle([])
        ctx.flush()
        self._save_bulk(ctx.row.id, None)
        return True

    def _save_bulk(self, target_id: str, bulk: dict[str, Any] | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(targets).where(T.id == target_id).values(
                bulk=null() if bulk is None else bulk, updated=now()))

    def resync(self, target_id: str) -> None:
        """Re-evaluate every identity of the target, as bulk work in its lane."""
        row = self.targets.runtime(target_id)[0]
        self._begin_bulk(row, "resync")

    def _due_retries(self, target_id: str, limit: int) -> list[retry_store.Retry]:
        with self.engine.connect() as conn:
            return retry_store.due(conn, target_id, limit)

    def _advance(self, target_id: str, seq: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(targets).where(T.id == target_id).values(
                cursor=seq, updated=now()))

    def _failed(self, row: Any, exc: Transient) -> None:
        """Exponential backoff with jitter; Retry-After wins; quarantine after repeats."""
        failures = row.failures + 1
        delay = min(MAX_BACKOFF, 2.0 ** min(failures, 10)) * random.uniform(0.5, 1.0)  # noqa: S311
        if exc.retry_after is not None:
            delay = min(max(exc.retry_after, 0.0), 24 * 3600.0)
        status = row.status
        if failures >= QUARANTINE_AFTER and status == "active":
            status = "quarantined"
            _alert("target.quarantined", row, self.engine, failures=failures,
                   error=str(exc)[:500])
        if status == "quarantined" and exc.retry_after is None:
            delay = max(delay, QUARANTINE_RETRY)
        retry = format_time(datetime.now(UTC) + timedelta(seconds=delay))
        with self.engine.begin() as conn:
            conn.execute(update(targets).where(T.id == row.id).values(
                failures=failures, last_error=str(exc)[:2000], retry_at=retry,
                status=status, updated=now()))

    def _hold(self, row: Any, exc: GuardHeld) -> None:
        _alert("target.held", row, self.engine, deprovisions=exc.count)
        config = {**row.config, "hold": {"count": exc.count, "at": now()}}
        config.pop("approved", None)
        with self.engine.begin() as conn:
            conn.execute(update(targets).where(T.id == row.id).values(
                status="held", config=config, last_error=str(exc), updated=now()))

    def _healthy(self, row: Any) -> None:
        """A run went through: clear failures, release quarantine, use up an approval."""
        if row.status == "quarantined":
            _alert("target.released", row, self.engine)
        config = {k: v for k, v in row.config.items() if k != "approved"}
        with self.engine.begin() as conn:
            conn.execute(update(targets).where(T.id == row.id).values(
                failures=0, last_error=None, retry_at=None, config=config,
                status="active" if row.status == "quarantined" else row.status,
                updated=now()))


def provisioned_users(engine: Engine, target_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(links).where(
            L.target_id == target_id, L.state == "provisioned",
            L.resource_type == "User")).scalar_one())


def guard_exceeded(profile: Any, count: int, provisioned: int) -> bool:
    """The accidental-deletion guard: more than N accounts, or more than X% of those
    provisioned once over ten, needs a person's approval."""
    share = 100.0 * count / max(provisioned, 1)
    return count > profile.max_deprovisions or (
        count > 10 and share > profile.max_deprovision_percent)


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


_UPSERTS: dict[str, Any] = {}


def link_upsert(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (target_id, resource_id) DO UPDATE, built once per dialect."""
    found = _UPSERTS.get(dialect)
    if found is None:
        from sqlalchemy.dialects import postgresql, sqlite

        stmt: Any = (postgresql.insert(links) if dialect == "postgresql"
                     else sqlite.insert(links))
        found = _UPSERTS[dialect] = stmt.on_conflict_do_update(
            index_elements=[L.target_id, L.resource_id],
            set_={c: stmt.excluded[c] for c in ("remote_id", "applied_hash", "applied",
                                                "state", "updated")})
    return found


# What stands for userName when matching other kinds.
NAMED_BY = {"Group": "displayName", "Agent": "name", "AgenticApplication": "name"}


def _match_value(body: Doc, kind: str, attr: str) -> str | None:
    """The value of a match attribute in a body (a group matches on displayName)."""
    value: Any
    if attr == "email":
        emails = body.get("emails") or []
        value = next((e.get("value") for e in emails if e.get("primary")), None) or (
            emails[0].get("value") if emails else None)
    elif attr == "userName" and kind in NAMED_BY:
        value = body.get(NAMED_BY[kind])
    else:
        value = body.get(attr)
    return value if isinstance(value, str) and value else None


def _folded(attr: str, value: str) -> str:
    # externalId is case-exact (RFC 7643 §3.1); userName and email values are not.
    return value if attr == "externalId" else value.lower()


def by_value(found: list[Remote], kind: str, attr: str) -> dict[str, list[Remote]]:
    """Remote objects grouped by their (case-folded) value of a match attribute."""
    out: dict[str, list[Remote]] = {}
    for remote in found:
        if attr == "email":
            values = [e.get("value") for e in remote.doc.get("emails") or []
                      if isinstance(e, dict)]
        else:
            values = [remote.doc.get(NAMED_BY.get(kind, attr) if attr == "userName" else attr)]
        for v in {_folded(attr, v) for v in values if isinstance(v, str)}:
            out.setdefault(v, []).append(remote)
    return out


def change_set(body: Doc, applied: Doc) -> ChangeSet:
    """What differs between the state last applied and the desired body."""
    changes = ChangeSet(body)
    for key in sorted(set(body) | set(applied)):
        if key in ("schemas", "members") or body.get(key) == applied.get(key):
            continue
        if key in body:
            changes.set[key] = body[key]
        else:
            changes.clear.append(key)
    if "members" in body or "members" in applied:
        want = {m["value"] for m in body.get("members", [])}
        have = {m["value"] for m in applied.get("members", [])}
        changes.remove_members = sorted(have - want)
        changes.add_members = sorted(want - have)
    return changes


def _with_retries(work: list[Work], due: list[retry_store.Retry]) -> list[Work]:
    """Journal work plus the resources due for a retry (timed from their first change)."""
    by_id = {w.resource_id: w for w in work}
    for r in due:
        w = by_id.get(r.resource_id)
        if w is None:
            work.append(Work(r.resource_type, r.resource_id, r.seq, r.changed_at, r.lifecycle))
        elif r.changed_at and (w.changed_at is None or r.changed_at < w.changed_at):
            w.changed_at = r.changed_at
    return work


def _coalesce(entries: list[dict[str, Any]]) -> list[Work]:
    """Many changes to one resource between runs become one piece of work."""
    work: dict[str, Work] = {}
    for e in entries:
        if e["op"] in NHI_EVENTS:
            continue  # a notice for webhooks and the events API: nothing to apply
        w = work.pop(e["resource_id"], None) or Work(e["resource_type"], e["resource_id"])
        # Lag counts from the oldest change not yet applied, not from the newest.
        w.seq, w.changed_at = e["seq"], w.changed_at or e["at"]
        w.lifecycle = e["lifecycle"] if e["lifecycle"] == "leaver" else (
            w.lifecycle or e["lifecycle"])
        work[e["resource_id"]] = w
        if e["op"] in ("member_added", "member_removed") and e.get("detail"):
            # Memberships change what the group's members look like in the target
            # (group scoping): the users are work too.
            for uid in (e["detail"].get("added") or []) + (e["detail"].get("removed") or []):
                if uid not in work:
                    work[uid] = Work("User", uid, e["seq"], e["at"], "mover")
    return list(work.values())


class _Context:
    """The state of one run on one target."""

    def __init__(self, rec: Reconciler, row: Any, config: TargetConfig,
                 connector: Any, dry_run: bool,
                 progress: Callable[[], None] | None = None):
        self.r = rec
        self.row = row
        self.config = config
        self.connector: Connector = connector
        self.sender: EventSink | None = None
        self.caps = Capabilities()
        if isinstance(connector, Connector):
            try:
                self.caps = connector.capabilities()
            except ConnectorError:
                self.caps = Capabilities(kinds=frozenset({"User", "Group"}))
        else:
            self.sender = connector
        self.can_patch = self.caps.update
        self.can_filter = self.caps.find
        # Agents and agentic applications go only to systems that hold them.
        self.takes_agents = "Agent" in self.caps.kinds
        self.takes_applications = "AgenticApplication" in self.caps.kinds
        self.dry_run = dry_run
        self.result = RunResult()
        self.progress = progress or (lambda: None)
        # Up to profile.concurrency requests in flight; one resource is never applied
        # by two of them at once (a run holds each resource once).
        self.lock = threading.RLock()
        self.window = rec.window(row.id, config.profile.concurrency)
        self.steps = Steps(self.window)
        self.ok = 0  # operations the application answered
        self.failed: dict[str, tuple[Work, Transient]] = {}
        self.down: Transient | None = None  # the application as a whole failed
        self._links: dict[str, Link | None] = {}
        self._loaded: dict[tuple[str, str], Record | None] = {}
        self._waiting: dict[str, list[Work]] = {}
        # Incremental runs look up reports of a newly linked manager in the directory;
        # a full pass sees every user, so references resolve within the pass.
        self.incremental = row.cursor != FULL_SYNC
        # plan, sync and tests read the actions; a worker's full pass must not hold
        # one entry per identity in memory.
        self.keep_actions = dry_run or rec.keep_actions
        self._matches: dict[tuple[str, str, str], Remote | None] = {}
        # Link changes and deliveries are written in batches (one transaction, one
        # fsync, per FLUSH_EVERY resources) and always before the cursor moves.
        self._pending: list[tuple[str, Any]] = []
        self._deliveries: list[dict[str, Any]] = []

    # --- links ------------------------------------------------------------------------

    def link(self, rid: str) -> Link | None:
        if rid not in self._links:
            with self.r.engine.connect() as conn:
                row = conn.execute(select(links).where(
                    L.target_id == self.row.id, L.resource_id == rid)).first()
            self._links[rid] = None if row is None else Link(
                row.resource_id, row.resource_type, row.remote_id, row.applied_hash,
                row.applied, row.state)
        return self._links[rid]

    def forget(self) -> None:
        """Drop what this run cached about resources (links, loads, lookups)."""
        self._links.clear()
        self._loaded.clear()
        self._matches.clear()

    def prefetch_links(self, ids: list[str]) -> None:
        """Read the links of many resources in one query (absent ones cached as None)."""
        wanted = [i for i in ids if i not in self._links]
        if not wanted:
            return
        with self.r.engine.connect() as conn:
            rows = conn.execute(select(links).where(L.target_id == self.row.id,
                                                    L.resource_id.in_(wanted))).all()
        found = {r.resource_id: r for r in rows}
        for rid in wanted:
            row = found.get(rid)
            self._links[rid] = None if row is None else Link(
                row.resource_id, row.resource_type, row.remote_id, row.applied_hash,
                row.applied, row.state)

    def remote_id(self, rid: str) -> str | None:
        link = self.link(rid)
        return link.remote_id if link is not None and link.state == "provisioned" else None

    def save_link(self, link: Link) -> None:
        with self.lock:
            self._links[link.resource_id] = link
            if not self.dry_run:
                self._pending.append(("save", link))
                self.maybe_flush()

    def drop_link(self, rid: str) -> None:
        with self.lock:
            self._links[rid] = None
            if not self.dry_run:
                self._pending.append(("drop", rid))
                self.maybe_flush()

    def maybe_flush(self) -> None:
        if len(self._pending) + len(self._deliveries) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Write pending link changes and deliveries in one transaction, in order."""
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        if not self._pending and not self._deliveries:
            return
        ts = now()
        upsert = link_upsert(self.r.engine.dialect.name)
        with self.r.engine.begin() as conn:
            batch: dict[str, dict[str, Any]] = {}
            for kind, item in self._pending:
                if kind == "drop":
                    if batch:  # keep the order of saves and drops
                        conn.execute(upsert, list(batch.values()))
                        batch = {}
                    conn.execute(delete(links).where(L.target_id == self.row.id,
                                                     L.resource_id == item))
                    continue
                batch[item.resource_id] = {
                    "target_id": self.row.id, "resource_id": item.resource_id,
                    "resource_type": item.resource_type, "remote_id": item.remote_id,
                    "applied_hash": item.applied_hash, "applied": item.applied,
                    "state": item.state, "updated": ts}
            if batch:
                conn.execute(upsert, list(batch.values()))
            if self._deliveries:
                conn.execute(insert(deliveries), self._deliveries)
        self._pending, self._deliveries = [], []

    # --- evidence ---------------------------------------------------------------------

    def record(self, work: Work, action: str, outcome: str = "ok",
               detail: str | None = None) -> None:
        if self.keep_actions:
            with self.lock:
                self.result.actions.append({
                    "resource_type": work.resource_type, "resource_id": work.resource_id,
                    "action": action, "outcome": outcome, "detail": detail})
        if self.dry_run:
            return
        applied = now()
        changed = work.changed_at or applied
        lag = int((parse_time(applied) - parse_time(changed)).total_seconds() * 1000)
        with self.lock:
            self._deliveries.append({
                "target_id": self.row.id, "resource_type": work.resource_type,
                "resource_id": work.resource_id, "action": action, "outcome": outcome,
                "seq": work.seq, "lifecycle": work.lifecycle, "changed_at": changed,
                "applied_at": applied, "lag_ms": max(lag, 0), "detail": detail})
            self.maybe_flush()

    def dead_letter(self, work: Work, action: str, exc: ConnectorError) -> None:
        self.count(dead=1)
        self.record(work, action, "dead", str(exc))
        if self.dry_run:
            return
        with self.r.engine.begin() as conn:
            conn.execute(insert(dead_letters).values(
                target_id=self.row.id, resource_type=work.resource_type,
                resource_id=work.resource_id, action=action, request=exc.request,
                response=exc.response if isinstance(exc.response, dict | list) else
                {"body": str(exc.response)[:2000]}, error=str(exc)[:2000], status="open",
                created=now()))

    # --- the run ----------------------------------------------------------------------

    def load(self, work: Work) -> Record | None:
        key = (work.resource_type, work.resource_id)
        if key in self._loaded:
            return self._loaded.pop(key)  # prefetched once, used once
        rtype = RESOURCE_TYPES[work.resource_type]
        try:
            return self.r.store.get(self.row.directory_id, rtype, work.resource_id,
                                    Loads(members=True, groups=True))
        except NotFound:
            return None

    def prefetch_matches(self, users: list[Work]) -> None:
        """Look up existing remote accounts for unlinked users, fifty per request."""
        if not self.can_filter:
            return
        for i in range(0, len(users), MATCH_BATCH):
            chunk = users[i:i + MATCH_BATCH]
            self.prefetch_links([w.resource_id for w in chunk])
            bodies: list[Doc] = []
            for w in chunk:
                rec = self.load(w)
                self._loaded[("User", w.resource_id)] = rec
                if rec is None or self.link(w.resource_id) is not None:
                    continue
                body = mapping.desired_user(self.config, rec, self.remote_id)
                if body is not None:
                    bodies.append(body)
            for attr in self.config.profile.match:
                values = [v for b in bodies if (v := _match_value(b, "User", attr)) is not None
                          and ("User", attr, v) not in self._matches]
                if not values:
                    continue
                found = by_value(self.connector.find("User", attr, values), "User", attr)
                for v in values:
                    hits = found.get(_folded(attr, v), [])
                    # Two accounts for one value: matched one at a time, which refuses.
                    if len(hits) < 2:
                        self._matches[("User", attr, v)] = hits[0] if hits else None

    def reconcile(self, items: list[Work]) -> None:
        """Bring these resources to their desired state, in an order that keeps the
        invariants: with deactivation, leavers go first (nothing refers to an inactive
        account); users that should exist before the groups that list them; with
        deletion, a leaver's memberships are removed before the user is deleted.
        Within each step up to profile.concurrency requests are in flight."""
        users = [w for w in items if w.resource_type == "User"]
        groups = {w.resource_id: w for w in items if w.resource_type == "Group"}
        leaving: list[tuple[Work, Record | None]] = []
        if len(users) > 1 and not self.dry_run:
            self.prefetch_matches(users)
        first_wave = True
        queue = list(users)
        while queue:
            wave, queue = queue, []
            upserts: list[tuple[Work, Record, Doc, bool]] = []
            for w in wave:
                self.desire(w, queue, upserts, leaving)
            if first_wave:
                first_wave = False
                for w, rec in leaving:
                    if self.remote_id(w.resource_id) is not None and rec is not None:
                        self.add_groups_of(rec, groups, w)
                self.check_guard([w for w, _ in leaving])
                if self.config.profile.deprovision == "deactivate":
                    self.each([w for w, _ in leaving], self.deprovision)
                    leaving = []
            bodies = {w.resource_id: d for w, _, d, _ in upserts}
            self.each([w for w, _, _, _ in upserts],
                      lambda w, b=bodies: self.put_user(w, b[w.resource_id]))
            for w, rec, _, linked_before in upserts:
                if linked_before or self.remote_id(w.resource_id) is None:
                    continue
                if self.incremental:
                    # Its groups can now list it (a full pass syncs every group after
                    # all users: doing it here too would rewrite each group per batch).
                    self.add_groups_of(rec, groups, w)
                # Users who referred to it (their manager) can now resolve the reference;
                # a user is newly linked at most once per run, so this terminates.
                queue += self._waiting.pop(w.resource_id, [])
                if self.incremental:
                    queue += [Work("User", rid, w.seq, w.changed_at, "mover")
                              for rid in self.reports_of(w.resource_id)]
        for w, rec in leaving:
            if self.remote_id(w.resource_id) is not None and rec is not None:
                self.add_groups_of(rec, groups, w)
        self.check_guard([w for w, _ in leaving])
        if self.config.profile.groups:
            self.each(list(groups.values()), self.sync_group)
        self.each([w for w, _ in leaving], self.deprovision)
        # After people and groups (their owners are linked by now); agents before the
        # applications that list them.
        nhis = 0
        for kind, takes in (("Agent", self.takes_agents),
                            ("AgenticApplication", self.takes_applications)):
            if takes:
                batch = [w for w in items if w.resource_type == kind]
                self.each(batch, self.sync_nhi)
                nhis += len(batch)
        self.count(processed=len(users) + len(groups) + nhis)

    def desire(self, w: Work, queue: list[Work], upserts: list[tuple[Work, Record, Doc, bool]],
               leaving: list[tuple[Work, Record | None]]) -> None:
        """Sort one user into those to create or update and those that should go."""
        rec = self.load(w)
        if rec is None and w.lifecycle == "mover":
            # A nested group joined or left a group: its users are the work.
            nested = self.load(Work("Group", w.resource_id))
            if nested is not None:
                queue += [Work("User", u, w.seq, w.changed_at, "mover")
                          for u in self.member_users(nested)]
                return
        unresolved: list[str] = []

        def remote(hub_id: str) -> str | None:
            found = self.remote_id(hub_id)
            if found is None:
                unresolved.append(hub_id)
            return found

        desired = None if rec is None else mapping.desired_user(self.config, rec, remote)
        if desired is None or rec is None:
            leaving.append((w, rec))
            return
        for hub_id in unresolved:  # e.g. a manager not provisioned yet
            self._waiting.setdefault(hub_id, []).append(w)
        upserts.append((w, rec, desired, self.remote_id(w.resource_id) is not None))

    def sync_nhi(self, work: Work) -> None:
        """Create or update an Agent or an AgenticApplication (a suspended one is sent
        `active: false`); delete it when it is gone from the directory."""
        rec = self.load(work)
        if rec is not None:
            self.put(work, work.resource_type, mapping.desired_nhi(rec, self.remote_id))
            return
        link = self.link(work.resource_id)
        if link is None or not link.remote_id:
            return
        if not self.dry_run:
            with contextlib.suppress(RemoteNotFound):  # gone already: as wanted
                self.connector.delete(work.resource_type, link.remote_id)
            self.drop_link(work.resource_id)
        self.count(applied=1)
        self.record(work, "delete")

    def deliver(self, entry: dict[str, Any]) -> None:
        """Send one journal entry's event if its resource is in scope (webhooks)."""
        work = Work(entry["resource_type"], entry["resource_id"], entry["seq"], entry["at"],
                    entry["lifecycle"])
        if work.resource_type == HUB_RESOURCE:
            self.result.processed += 1
            self.send(work, build_event(self.r.store, entry, self.row.id))
            return
        rec = self.load(work)
        if rec is None:
            # Gone since: in scope if delivered before, or if the target takes everything.
            scope = self.config.scope
            everything = not scope.groups and not scope.filter and (
                work.resource_type == "User" or self.config.profile.groups)
            in_scope = everything or self.link(work.resource_id) is not None
        elif rec.type == "User":
            in_scope = mapping.user_in_scope(self.config, rec)
        elif rec.type == "Group":
            in_scope = mapping.group_in_scope(self.config, rec)
        else:
            in_scope = True  # agents and agentic applications: every webhook hears of them
        self.result.processed += 1
        if not in_scope:
            return
        # The record is already loaded: build_event must not read it again.
        event = build_event(self.r.store, entry, self.row.id,
                            resource_doc(rec, self.row.directory_id, work.resource_id))
        if not self.send(work, event):
            return
        if rec is None:
            self.drop_link(work.resource_id)
        elif self.link(work.resource_id) is None:
            self.save_link(Link(work.resource_id, work.resource_type, None, None, None,
                                "provisioned"))
        self.count(applied=1)
        self.record(work, event["type"])
        self.progress()

    def send(self, work: Work, event: Doc) -> bool:
        """Sign and send one event; False if it was not sent (dry run, refused)."""
        if self.dry_run:
            self.record(work, event["type"])
            return False
        assert self.sender is not None
        try:
            self.sender.send(event)
        except Rejected as exc:
            self.dead_letter(work, event["type"], exc)
            return False
        if work.resource_type == HUB_RESOURCE:
            self.count(applied=1)
            self.record(work, event["type"])
        return True

    def check_guard(self, leaving: list[Work]) -> None:
        """Stop before a mass deprovisioning unless a person approved it."""
        count = sum(1 for w in leaving if self.remote_id(w.resource_id) is not None)
        if not count or self.dry_run:
            return
        provisioned = provisioned_users(self.r.engine, self.row.id)
        if not guard_exceeded(self.config.profile, count, provisioned):
            return
        approved = int((self.row.config.get("approved") or {}).get("count", -1))
        if approved >= count:
            return
        raise GuardHeld(count, int(provisioned))

    def reports_of(self, user_id: str) -> list[str]:
        """Users whose enterprise manager is this user."""
        flt = parse_filter(f"{ENTERPRISE_USER}:manager.value eq {json.dumps(user_id)}")
        _, found = self.r.store.search(self.row.directory_id, USER, flt, None, False, 0,
                                       1000, Loads(members=False, groups=False))
        return [r.id for r in found]

    def add_groups_of(self, rec: Record, groups: dict[str, Work], w: Work) -> None:
        for g in rec.groups or []:
            groups.setdefault(g.value, Work("Group", g.value, w.seq, w.changed_at, "mover"))

    def count(self, applied: int = 0, dead: int = 0, processed: int = 0) -> None:
        with self.lock:
            self.result.applied += applied
            self.result.dead += dead
            self.result.processed += processed

    def guarded(self, work: Work, step: Any) -> None:
        """Run one resource's step. A refusal is a dead letter; a failure of this one
        operation is kept for `settle`; a failure of the application stops the run."""
        if self.down is not None:
            return
        self.progress()  # a worker that lost its lease stops before its next request
        self.window.acquire()
        ok = overloaded = False
        try:
            step()
            ok = True
        except (Rejected, RemoteConflict, RemoteNotFound) as exc:
            ok = True  # the application answered; this operation is what failed
            self.dead_letter(work, "apply", exc)
        except Transient as exc:
            if exc.status is None or exc.status in APP_DOWN:
                overloaded = exc.status in (429, 503)
                with self.lock:
                    self.down = self.down or exc
            else:
                with self.lock:
                    self.failed[work.resource_id] = (work, exc)
        finally:
            self.window.release(ok, overloaded)
            if ok:
                with self.lock:
                    self.ok += 1
        self.progress()

    def each(self, works: list[Work], step: Any) -> None:
        """`step(work)` for every work, up to the window's size at once."""
        def one(w: Work) -> Callable[[], None]:
            return lambda: self.guarded(w, lambda: step(w))

        self.steps.run([one(w) for w in works])
        if self.down is not None:
            raise self.down

    def settle(self, retried: list[str]) -> None:
        """After a batch: operations that failed alone are retried later, and dead letters
        once they have failed too often; if nothing succeeded while several failed, the
        application is down and the run fails as a whole (nothing moves on)."""
        self.steps.close()
        if self.dry_run:
            return
        if self.failed and self.ok == 0 and len(self.failed) > 1:
            first = next(iter(self.failed.values()))[1]
            raise Transient(f"every operation failed: {first}", status=first.status,
                            retry_after=first.retry_after)
        done = [rid for rid in retried if rid not in self.failed]
        with self.r.engine.begin() as conn:
            if done:
                retry_store.clear(conn, self.row.id, done)
            known = retry_store.attempts(conn, self.row.id, list(self.failed))
            for rid, (work, exc) in self.failed.items():
                attempt = (known[rid].attempts if rid in known else 0) + 1
                if attempt >= retry_store.POISON_AFTER:
                    retry_store.clear(conn, self.row.id, [rid])
                    continue
                retry_store.schedule(conn, self.row.id, work.resource_type, rid, attempt,
                                     work.seq, work.changed_at, work.lifecycle, str(exc))
        for rid, (work, exc) in self.failed.items():
            if rid in known and known[rid].attempts + 1 >= retry_store.POISON_AFTER:
                self.dead_letter(work, "apply", exc)  # a poison operation: set aside
        self.failed, self.ok = {}, 0

    def match(self, kind: str, body: Doc) -> Remote | None:
        """An existing remote object for this body, by the profile's match attributes.

        A system that cannot be searched is not: creation is tried, and a conflict (the
        account exists) is reported as a dead letter for a person to link.
        """
        if not self.can_filter:
            return None
        for attr in self.config.profile.match:
            value = _match_value(body, kind, attr)
            if value is None:
                continue
            if (kind, attr, value) in self._matches:
                found = self._matches.pop((kind, attr, value))
            else:
                name = NAMED_BY.get(kind, attr) if attr == "userName" else attr
                hits = self.connector.find(kind, name, [value])
                if len(hits) > 1:
                    raise Rejected(f"{len(hits)} remote {kind}s have {attr} {value!r}: "
                                   "cannot choose one to adopt", status=409)
                found = hits[0] if hits else None
            if found is not None:
                return found
        return None

    def put_user(self, work: Work, body: Doc) -> None:
        self.put(work, "User", body)

    def put(self, work: Work, kind: str, body: Doc) -> Remote | None:
        """Create, adopt or update so that the remote object equals `body`."""
        h = mapping.digest(body)
        link = self.link(work.resource_id)
        if link is not None and link.remote_id and link.state == "provisioned" and \
                link.applied_hash == h:
            return None
        if self.dry_run:
            self.record(work, "create" if link is None or not link.remote_id else "update")
            return None
        remote: Remote | None = None
        action = "update"
        if link is None or not link.remote_id:
            remote = self.match(kind, body)
            if remote is None:
                action = "create"
                try:
                    remote = self.connector.create(kind, body)
                except RemoteConflict:
                    remote = self.match(kind, body)
                    if remote is None:
                        raise
                    action = "adopt"
                    remote = self.update(kind, remote.id, body, None)
            else:
                action = "adopt"
                remote = self.update(kind, remote.id, body, None)
        else:
            try:
                remote = self.update(kind, link.remote_id, body, link.applied)
            except RemoteNotFound:
                action = "recreate"
                remote = self.connector.create(kind, body)
        self.save_link(Link(work.resource_id, kind, remote.id, h, body, "provisioned"))
        self.count(applied=1)
        self.record(work, action)
        return remote

    def update(self, kind: str, remote_id: str, body: Doc, applied: Doc | None) -> Remote:
        """Send what differs from the state last applied (the whole body when unknown)."""
        if applied is None:
            return self.connector.replace(kind, remote_id, body)
        changes = change_set(body, applied)
        if changes:
            self.connector.update(kind, remote_id, changes)
        return Remote(remote_id, body)

    def sync_group(self, work: Work) -> None:
        rec = self.load(work)
        body = None
        if rec is not None:
            remote = self.member_remote_ids(self.member_users(rec))
            body = mapping.desired_group(self.config, rec, list(remote), remote.get)
        if body is None:
            link = self.link(work.resource_id)
            if link is not None and link.remote_id:
                if not self.dry_run:
                    self.connector.delete("Group", link.remote_id)
                    self.drop_link(work.resource_id)
                self.record(work, "delete")
            return
        self.put(work, "Group", body)

    def member_remote_ids(self, members: list[str]) -> dict[str, str]:
        """The remote ids of the provisioned ones among `members`.

        Read as bare (resource, remote id) pairs and not cached as links: a group's
        members are many, and caching their whole links made a run's memory grow
        with the directory.
        """
        out: dict[str, str] = {}
        missing: list[str] = []
        for m in members:
            if m in self._links:  # seen in this run, perhaps not written yet
                link = self._links[m]
                if link is not None and link.remote_id and link.state == "provisioned":
                    out[m] = link.remote_id
            else:
                missing.append(m)
        with self.r.engine.connect() as conn:
            for i in range(0, len(missing), MEMBER_CHUNK):
                for rid, remote_id in conn.execute(select(L.resource_id, L.remote_id).where(
                        L.target_id == self.row.id, L.state == "provisioned",
                        L.remote_id.is_not(None),
                        L.resource_id.in_(missing[i:i + MEMBER_CHUNK]))):
                    out[rid] = remote_id
        return out

    def member_users(self, rec: Record) -> list[str]:
        """User members, with nested groups flattened (targets need not nest)."""
        return mapping.member_users(rec, lambda gid: self.load(Work("Group", gid)))

    def deprovision(self, work: Work) -> None:
        """Take a user that should not be in the target out, as the profile says."""
        link = self.link(work.resource_id)
        if link is None or not link.remote_id or link.state != "provisioned":
            return
        if self.config.profile.deprovision == "delete":
            if not self.dry_run:
                self.connector.delete("User", link.remote_id)
                self.drop_link(work.resource_id)
            self.record(work, "delete")
            return
        if not self.dry_run:
            body = dict(link.applied or {})
            body["active"] = False
            try:
                self.connector.update("User", link.remote_id,
                                      ChangeSet(body, set={"active": False}))
            except RemoteNotFound:
                self.drop_link(work.resource_id)
                self.record(work, "deactivate", detail="already gone")
                return
            self.save_link(Link(work.resource_id, "User", link.remote_id,
                                mapping.digest(body), body, "deprovisioned"))
        self.count(applied=1)
        self.record(work, "deactivate")


def retry_dead_letters(engine: Engine, target_id: str, ids: list[int] | None = None
                       ) -> dict[str, Any]:
    """Reconcile the resources of open dead letters now (all, or these ids)."""
    from scimsync.store.targets import mark_retried

    pairs = mark_retried(engine, target_id, ids)
    if not pairs:
        return {"retried": 0, "actions": []}
    result = Reconciler(engine).run(target_id, only=[Work(t, r) for t, r in pairs])
    return {"retried": len(pairs), "error": result.error, "dead": result.dead,
            "actions": result.actions}
