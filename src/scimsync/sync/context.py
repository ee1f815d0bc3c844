"""One run on one target: the links it reads and writes, the intents and evidence it
records, and the records it reads (how its steps run and fail: scimsync.sync.stepping).

Link changes and deliveries are written in batches, one transaction per FLUSH_EVERY
resources, and always before the journal cursor moves; before each wave of requests,
the intents of the wave are written with them (scimsync.sync.intents). Under a lease,
every transaction of the run is fenced by its token (scimsync.sync.lease).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, insert, select

from scimsync.connectors.contract import (
    Capabilities,
    Connector,
    ConnectorError,
    EventSink,
    Remote,
    Transient,
)
from scimsync.errors import NotFound
from scimsync.protocol.record import Record
from scimsync.protocol.resources import RESOURCE_TYPES
from scimsync.protocol.timefmt import now, parse_time
from scimsync.store.links import upsert
from scimsync.store.resources import Loads
from scimsync.store.tables import dead_letters, deliveries, links
from scimsync.store.targets import FULL_SYNC
from scimsync.sync.config import TargetConfig
from scimsync.sync.intents import PENDING, intent_upsert
from scimsync.sync.lease import Lease, fenced
from scimsync.sync.pacing import Steps
from scimsync.sync.plan import Rules
from scimsync.sync.work import Link, RunResult, Work, phase_of

if TYPE_CHECKING:
    from scimsync.sync.engine import Reconciler

L = links.c
FLUSH_EVERY = 200
MATCH_BATCH = 50
MEMBER_CHUNK = 500  # member ids per IN list when resolving remote ids
# Statuses that say the whole application is overloaded or down for a while (the
# target backs off, Retry-After honoured), as opposed to one operation failing.
APP_DOWN = (408, 425, 429, 503)
Doc = dict[str, Any]


def link_upsert(dialect: str) -> Any:
    """Write whole links (an outcome: the intent is cleared)."""
    return upsert(dialect, ("remote_id", "applied_hash", "applied", "state", "intent",
                            "updated"))


class RunContext:
    """The state of one run on one target: links, evidence, and how steps run."""

    def __init__(self, rec: Reconciler, row: Any, config: TargetConfig,
                 connector: Any, dry_run: bool,
                 progress: Callable[[], None] | None = None, lease: Lease | None = None):
        self.r = rec
        self.lease = lease
        self.row = row
        self.config = config
        self.connector: Connector = connector
        self.sender: EventSink | None = None
        self.caps = Capabilities()
        if isinstance(connector, Connector):
            try:
                self.caps = connector.capabilities()
            except Transient:
                raise  # a failed discovery fails the run: never defaults in its place
            except ConnectorError:
                self.caps = Capabilities(kinds=frozenset({"User", "Group"}))
        else:
            self.sender = connector
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
        # Remote objects that could be unlinked identities', looked up ahead in batches.
        self._candidates: dict[str, list[Remote]] = {}
        self._sharing: list[str] | None = None  # targets writing to the same system
        profile = config.profile
        self.rules = Rules(match=tuple(profile.match), adopt=profile.adopt,
                           deprovision=profile.deprovision)
        # Link changes and deliveries are written in batches (one transaction, one
        # fsync, per FLUSH_EVERY resources) and always before the cursor moves.
        self._pending: list[tuple[str, Any]] = []
        self._deliveries: list[dict[str, Any]] = []
        # Resources whose link row carries an intent (or was read back from the app) that
        # their step has not settled yet; what the app holds of users read back.
        self._unsettled: set[str] = set()
        # Resources whose last write's outcome nobody can know (sync/intents.py): no
        # step sends anything for them until a person has looked.
        self.stuck: set[str] = set()
        self._observed: dict[str, Doc] = {}

    # --- links ------------------------------------------------------------------------

    def link(self, rid: str) -> Link | None:
        if rid not in self._links:
            with self.r.engine.connect() as conn:
                row = conn.execute(select(links).where(
                    L.target_id == self.row.id, L.resource_id == rid)).first()
            self._links[rid] = None if row is None else _link(row)
        return self._links[rid]

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
            self._links[rid] = None if row is None else _link(row)

    def forget_links(self) -> None:
        """Drop the cached links that are written (between chunks of bulk work: a
        group's link holds its members, and a run may go through many chunks)."""
        with self.lock:
            self._links = {k: v for k, v in self._links.items() if k in self._unsettled}

    def remote_id(self, rid: str) -> str | None:
        link = self.link(rid)
        return link.remote_id if link is not None and link.state == "provisioned" else None

    def save_link(self, link: Link) -> None:
        with self.lock:
            self._links[link.resource_id] = link
            self._unsettled.discard(link.resource_id)
            self._observed.pop(link.resource_id, None)
            if not self.dry_run:
                self._pending.append(("save", link))
                self.maybe_flush()

    def drop_link(self, rid: str) -> None:
        with self.lock:
            self._links[rid] = None
            self._unsettled.discard(rid)
            self._observed.pop(rid, None)
            if not self.dry_run:
                self._pending.append(("drop", rid))
                self.maybe_flush()

    def maybe_flush(self) -> None:
        if len(self._pending) + len(self._deliveries) >= FLUSH_EVERY:
            self.flush()

    def flush(self, also: Callable[[Connection], None] | None = None) -> None:
        """Write pending link changes and deliveries in one transaction, in order, with
        `also` (one more write that must not come before them) in the same one."""
        with self.lock:
            if also is None:
                self._flush()
                return
            with self.begin() as conn:
                self._write(conn)
                also(conn)
            self._pending, self._deliveries = [], []

    def _flush(self) -> None:
        if not self._pending and not self._deliveries:
            return
        with self.begin() as conn:
            self._write(conn)
        self._pending, self._deliveries = [], []

    def begin(self) -> Any:
        """A write transaction of this run, fenced by its lease if it has one."""
        return fenced(self.r.engine, self.lease)

    def _write(self, conn: Connection) -> None:
        ts = now()
        save = link_upsert(self.r.engine.dialect.name)
        batch: dict[str, dict[str, Any]] = {}
        for kind, item in self._pending:
            if kind == "drop":
                if batch:  # keep the order of saves and drops
                    conn.execute(save, list(batch.values()))
                    batch = {}
                conn.execute(delete(links).where(L.target_id == self.row.id,
                                                 L.resource_id == item))
                continue
            batch[item.resource_id] = {
                "target_id": self.row.id, "resource_id": item.resource_id,
                "resource_type": item.resource_type, "remote_id": item.remote_id,
                "applied_hash": item.applied_hash, "applied": item.applied,
                "state": item.state, "intent": None, "updated": ts}
        if batch:
            conn.execute(save, list(batch.values()))
        if self._deliveries:
            conn.execute(insert(deliveries), self._deliveries)

    # --- intents (scimsync.sync.intents) --------------------------------------------

    def intend(self, marks: list[tuple[Work, str]]) -> None:
        """Record what this wave is about to send, with what is not written yet, in one
        transaction, before any of its requests."""
        if not marks or self.dry_run:
            return
        ts = now()
        with self.lock:
            rows = []
            for w, action in marks:
                rows.append({"target_id": self.row.id, "resource_id": w.resource_id,
                             "resource_type": w.resource_type, "remote_id": None,
                             "applied_hash": None, "applied": None, "state": PENDING,
                             "intent": action, "updated": ts})
            with self.begin() as conn:
                self._write(conn)
                conn.execute(intent_upsert(self.r.engine.dialect.name), rows)
            self._pending, self._deliveries = [], []
            for w, action in marks:
                link = self.link(w.resource_id)
                if link is not None:
                    self._links[w.resource_id] = Link(
                        link.resource_id, link.resource_type, link.remote_id,
                        link.applied_hash, link.applied, link.state, action)
                self._unsettled.add(w.resource_id)

    def observed(self, link: Link, doc: Doc | None) -> None:
        """What the application was found to hold for a link that had an intent."""
        with self.lock:
            self._links[link.resource_id] = link
            if doc is not None:
                self._observed[link.resource_id] = doc
            self._unsettled.add(link.resource_id)

    def observed_doc(self, rid: str) -> Doc | None:
        """A user as the application held it, when its link had to be read back."""
        return self._observed.get(rid)

    def settled(self, work: Work) -> None:
        """A step that went through without writing the link: what the link says is
        true again (the intent is cleared, an observed state is kept)."""
        with self.lock:
            rid = work.resource_id
            if rid not in self._unsettled or rid not in self._links:
                return  # (not cached: the intent stays, and the next run verifies)
            link = self._links[rid]
            if link is None or not link.remote_id:
                self.drop_link(rid)
                return
            applied = link.applied if link.applied is not None else self._observed.get(rid)
            self.save_link(Link(rid, link.resource_type, link.remote_id, link.applied_hash,
                                applied, link.state))

    # --- evidence ---------------------------------------------------------------------

    def record(self, work: Work, action: str, outcome: str = "ok",
               detail: str | None = None, **shown: Any) -> None:
        """Evidence of one action: a delivery row (lag included), and for plans, sync
        and tests an entry in the run's actions (`shown`: name, remote id, changes)."""
        if self.keep_actions:
            with self.lock:
                self.result.actions.append({
                    "resource_type": work.resource_type, "resource_id": work.resource_id,
                    "action": action, "outcome": outcome, "detail": detail, **shown})
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
                "applied_at": applied, "lag_ms": max(lag, 0), "detail": detail,
                "phase": phase_of(work.lifecycle)})
            self.maybe_flush()

    def awaiting_person(self, work: Work) -> bool:
        """Whether an open dead letter asks a person to check this resource."""
        c = dead_letters.c
        with self.r.engine.connect() as conn:
            return conn.execute(select(c.id).where(
                c.target_id == self.row.id, c.resource_type == work.resource_type,
                c.resource_id == work.resource_id, c.action == "verify",
                c.status == "open").limit(1)).first() is not None

    def waiting(self, work: Work) -> None:
        """A resource left for a person (an open dead letter asks them to check it):
        in the run's actions as not done, with no delivery (it was not attempted)."""
        if self.keep_actions:
            with self.lock:
                self.result.actions.append({
                    "resource_type": work.resource_type, "resource_id": work.resource_id,
                    "action": "verify", "outcome": "waiting",
                    "detail": "an open dead letter asks a person to check it"})

    def dead_letter(self, work: Work, action: str, exc: ConnectorError) -> None:
        self.count(dead=1)
        self.record(work, action, "dead", str(exc))
        if self.dry_run:
            return
        with self.begin() as conn:
            conn.execute(insert(dead_letters).values(
                target_id=self.row.id, resource_type=work.resource_type,
                resource_id=work.resource_id, action=action, request=exc.request,
                response=exc.response if isinstance(exc.response, dict | list) else
                {"body": str(exc.response)[:2000]}, error=str(exc)[:2000], status="open",
                created=now()))

    # --- the run ----------------------------------------------------------------------

    def prefetch_records(self, works: list[Work]) -> None:
        """Read the users among `works` in one query, for the steps that follow (one
        read per user made a chunk of bulk work wait on the database between requests)."""
        ids = [w.resource_id for w in works
               if w.resource_type == "User" and ("User", w.resource_id) not in self._loaded]
        if len(ids) < 2:
            return
        self.preload("User", ids, self.r.store.get_many(
            self.row.directory_id, RESOURCE_TYPES["User"], ids, Loads(members=True, groups=True)))

    def preload(self, kind: str, ids: list[str], found: dict[str, Record]) -> None:
        """Records read ahead for the steps that follow (absent ones: gone)."""
        with self.lock:
            for rid in ids:
                self._loaded[(kind, rid)] = found.get(rid)

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

    def count(self, applied: int = 0, dead: int = 0, processed: int = 0) -> None:
        with self.lock:
            self.result.applied += applied
            self.result.dead += dead
            self.result.processed += processed


def _link(row: Any) -> Link:
    return Link(row.resource_id, row.resource_type, row.remote_id, row.applied_hash,
                row.applied, row.state, row.intent)
