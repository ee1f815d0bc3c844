"""Drift detection: read a target back and classify every difference (docs/architecture.md: Drift).

A full reconciliation is the provisioning planner with "actual" read from the target
instead of taken from the links. It runs in three steps, none of which holds the
target or the directory in memory:

1. *Listing.* Every account (and group, where the target takes groups) is read
   through the connector, page by page, into a scratch SQLite file beside the run,
   indexed by remote id and by each matching attribute. A listing that fails, or
   does not add up (scimsync.connectors.paging; here: an id listed twice), makes the
   run *incomplete*, with the reason in its stats: it changes no finding and fixes
   nothing.
2. *Comparison.* The directory is walked in id order, a thousand identities at a
   time; each one's desired body (scope and mapping, as provisioning computes it) is
   compared with its remote account, found by its link or by the target's matching
   attributes. Links whose identity is gone, and remote objects nothing claimed,
   are swept up afterwards from the scratch file.
3. *Findings* are written as they are found (scimsync.drift.findings).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, bindparam, insert, select, update

from scimsync.connectors import registry
from scimsync.connectors.contract import (
    Connector,
    ConnectorError,
    IncompleteListing,
    Remote,
)
from scimsync.drift.compare import (
    ENTITLEMENT_ATTRIBUTES,
    differences,
    user_differences,
    value_set,
)
from scimsync.drift.findings import Finding, FindingsWriter
from scimsync.protocol.record import Record
from scimsync.protocol.schema import ENTERPRISE_USER
from scimsync.protocol.timefmt import now
from scimsync.store import members as store_members
from scimsync.store.lean import Lean, json_value
from scimsync.store.records import primary_email
from scimsync.store.tables import drift_runs, links, resources
from scimsync.store.targets import Targets
from scimsync.sync import mapping
from scimsync.sync.config import DRIFT_CLASSES, TargetConfig
from scimsync.sync.engine import make_connector
from scimsync.sync.events import announce
from scimsync.sync.matching import folded, match_value

log = logging.getLogger("scimsync.drift")
Doc = dict[str, Any]
R = resources.c
L = links.c
BATCH = 1000  # directory identities compared at a time
CHUNK = 500  # values per IN list in the scratch file
# Remote attributes kept in the scratch file: everything but what can be huge and is
# never compared (a user's groups are read from the groups themselves).
DROPPED = ("groups", "meta", "schemas")


TABLES = {"User": "users", "Group": "groups", "Agent": "agents"}
# A batch of directory identities in id order, read on the lean path: SQLAlchemy's
# row processing (its JSON decoder above all) cost a third of the comparison.
IDENTITIES = (select(R.id, R.type, R.doc, R.created, R.last_modified, R.version)
              .where(R.directory_id == bindparam("d"), R.type == bindparam("t"),
                     R.id > bindparam("after"))
              .order_by(R.id).limit(BATCH))


@dataclass(slots=True)
class Linked:
    """A link of the target joined with the remote object it points at, if listed."""

    rid: str
    remote_id: str | None
    state: str
    keys: frozenset[str]
    active: int | None  # None: the remote object was not listed (it is gone)
    doc: Doc | None


class Scratch:
    """The listed target and the target's links, on disk for the length of one run.

    Links and directory identities are both walked in resource-id order, so one range
    query per batch returns a batch's links with their remote objects, and the links
    in between whose identity has left the directory. Remote objects that no link
    points at and no identity matched are what is left at the end.
    """

    def __init__(self, directory: str | None = None):
        fd, self.path = tempfile.mkstemp(prefix="scimsync-drift-", suffix=".db", dir=directory)
        os.close(fd)
        self._keysets: dict[str, frozenset[str]] = {}
        self.db = sqlite3.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-8000",
                       "temp_store=FILE"):
            self.db.execute(f"PRAGMA {pragma}")
        # Listed objects are appended in the order they arrive; their indexes are built
        # once the listing is whole (a sort is far cheaper than random inserts).
        self.db.executescript("""
            CREATE TABLE users (id TEXT, ext TEXT, uname TEXT, email TEXT, active INTEGER,
                                doc BLOB);
            CREATE TABLE groups (id TEXT, ext TEXT, uname TEXT, email TEXT, active INTEGER,
                                 doc BLOB);
            CREATE TABLE agents (id TEXT, ext TEXT, uname TEXT, email TEXT, active INTEGER,
                                 doc BLOB);
            CREATE TABLE links (rid TEXT, type TEXT, remote TEXT, state TEXT, keys TEXT,
                                PRIMARY KEY (type, rid));
            CREATE TABLE claimed (type TEXT, id TEXT, PRIMARY KEY (type, id));
        """)

    def close(self) -> None:
        self.db.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def _many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """One transaction per batch: in autocommit, each row would be one."""
        self.db.execute("BEGIN")
        try:
            self.db.executemany(sql, rows)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def add(self, table: str, remotes: list[Remote]) -> None:
        rows = []
        for r in remotes:
            doc = {k: v for k, v in r.doc.items() if k not in DROPPED}
            uname = doc.get({"users": "userName", "groups": "displayName",
                             "agents": "name"}[table])
            active = doc.get("active", True)
            rows.append((r.id, doc.get("externalId"),
                         uname.lower() if isinstance(uname, str) else None,
                         primary_email(doc), 0 if active is False else 1, orjson.dumps(doc)))
        self._many(f"INSERT INTO {table} (id, ext, uname, email, active, doc) "  # noqa: S608
                   "VALUES (?, ?, ?, ?, ?, ?)", rows)

    def add_links(self, rows: list[tuple[str, str, str | None, str, str]]) -> None:
        self._many("INSERT INTO links (rid, type, remote, state, keys) VALUES (?, ?, ?, ?, ?)",
                   rows)

    def unique(self, kind: str) -> None:
        """Index a listed kind by remote id, or raise IncompleteListing if an id was
        listed twice. A listing by index repeats one when the app ignores the position
        or changes under it, and may then have skipped another: the listing is not
        whole. The unique index is the check, at no cost beyond the index itself."""
        table = TABLES[kind]
        try:
            self.db.execute(f"CREATE UNIQUE INDEX {table}_id ON {table} (id)")
        except sqlite3.IntegrityError:
            (rid,) = self.db.execute(
                f"SELECT id FROM {table} GROUP BY id HAVING count(*) > 1 "  # noqa: S608
                "LIMIT 1").fetchone()
            raise IncompleteListing(f"listing {kind}s: id {rid!r} was listed twice",
                                    reason="repeated_id") from None

    def index(self) -> None:
        """Once the listing (each kind unique by id) and the links are in: index, and
        lay the links out joined with their remote objects in resource-id order, the
        order the comparison walks the directory in, so each batch reads one range."""
        self.db.executescript("""
            CREATE UNIQUE INDEX IF NOT EXISTS users_id ON users (id);
            CREATE UNIQUE INDEX IF NOT EXISTS groups_id ON groups (id);
            CREATE UNIQUE INDEX IF NOT EXISTS agents_id ON agents (id);
            CREATE INDEX users_ext ON users (ext);
            CREATE INDEX users_uname ON users (uname); CREATE INDEX users_email ON users (email);
            CREATE INDEX groups_ext ON groups (ext);
            CREATE INDEX groups_uname ON groups (uname);
            CREATE INDEX agents_ext ON agents (ext);
            CREATE INDEX agents_uname ON agents (uname);
            CREATE INDEX links_remote ON links (type, remote);
            CREATE TABLE linked (type TEXT, rid TEXT, remote TEXT, state TEXT, keys TEXT,
                                 active INTEGER, doc BLOB, PRIMARY KEY (type, rid))
                WITHOUT ROWID;
            BEGIN;
            INSERT INTO linked SELECT l.type, l.rid, l.remote, l.state, l.keys, u.active, u.doc
                FROM links l LEFT JOIN users u ON u.id = l.remote WHERE l.type = 'User'
                ORDER BY l.rid;
            INSERT INTO linked SELECT l.type, l.rid, l.remote, l.state, l.keys, g.active, g.doc
                FROM links l LEFT JOIN groups g ON g.id = l.remote WHERE l.type = 'Group'
                ORDER BY l.rid;
            INSERT INTO linked SELECT l.type, l.rid, l.remote, l.state, l.keys, a.active, a.doc
                FROM links l LEFT JOIN agents a ON a.id = l.remote WHERE l.type = 'Agent'
                ORDER BY l.rid;
            COMMIT;
        """)

    def _in(self, sql: str, values: list[str], *args: Any) -> Iterator[tuple[Any, ...]]:
        for i in range(0, len(values), CHUNK):
            chunk = values[i:i + CHUNK]
            marks = ",".join("?" * len(chunk))
            yield from self.db.execute(sql.replace("(?)", f"({marks})"), (*args, *chunk))

    def linked_range(self, rtype: str, after: str, last: str | None) -> dict[str, Linked]:
        """Links of `rtype` with after < resource id <= last (no bound if None)."""
        sql = ("SELECT rid, remote, state, keys, active, doc FROM linked "
               "WHERE type = ? AND rid > ?")
        params: tuple[str, ...] = (rtype, after)
        if last is not None:
            sql += " AND rid <= ?"
            params = (rtype, after, last)
        out: dict[str, Linked] = {}
        keysets = self._keysets
        for rid, remote, state, keys, active, doc in self.db.execute(sql, params):
            # Links mostly share one set of applied attribute names: parse each once.
            keyset = keysets.get(keys)
            if keyset is None:
                keyset = keysets[keys] = frozenset(keys.split(",")) if keys else frozenset()
            out[rid] = Linked(rid, remote, state, keyset, active,
                              orjson.loads(doc) if doc else None)
        return out

    def remote_ids(self, ids: list[str], types: tuple[str, ...] = ("User",)) -> dict[str, str]:
        """Provisioned links only (of users, unless `types` says): resource id -> remote
        id."""
        kinds = ",".join(f"'{t}'" for t in types if t in TABLES)
        return {rid: remote for rid, remote in self._in(
            f"SELECT rid, remote FROM links WHERE type IN ({kinds}) "  # noqa: S608
            "AND state = 'provisioned' AND remote IS NOT NULL AND rid IN (?)", ids)}

    # Takes the resource type twice as parameters.
    UNCLAIMED = ("id NOT IN (SELECT remote FROM links WHERE type = ? AND remote IS NOT NULL) "
                 "AND id NOT IN (SELECT id FROM claimed WHERE type = ?)")

    def unclaimed_by(self, rtype: str, column: str, values: list[str]
                     ) -> dict[str, tuple[str, int, Doc]]:
        """Remote objects no link points at and no identity matched yet, by a column."""
        out: dict[str, tuple[str, int, Doc]] = {}
        for key, rid, active, doc in self._in(
                f"SELECT {column}, id, active, doc FROM {TABLES[rtype]} "  # noqa: S608
                f"WHERE {self.UNCLAIMED} AND {column} IN (?)", values, rtype, rtype):
            out.setdefault(key, (rid, active, orjson.loads(doc)))
        return out

    def claim(self, rtype: str, ids: Iterable[str]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO claimed (type, id) VALUES (?, ?)",
                            [(rtype, i) for i in ids])

    def unclaimed(self, rtype: str) -> Iterator[tuple[str, int, Doc]]:
        for rid, active, doc in self.db.execute(
                f"SELECT id, active, doc FROM {TABLES[rtype]} "  # noqa: S608
                f"WHERE {self.UNCLAIMED} ORDER BY id", (rtype, rtype)):
            yield rid, active, orjson.loads(doc)


@dataclass
class RunStats:
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
                "inactive_unmatched": self.inactive_unmatched,
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


class _Collector:
    """A larger young generation for the garbage collector while comparisons run.

    The comparison makes and drops millions of small dicts and lists (decoded
    documents, desired bodies) with no reference cycles among them: reference counting
    frees them. At the default threshold (a collection every 700 allocations) the
    collector spent a quarter of the comparison walking them (docs/benchmarks.md).
    The setting is process-wide, so overlapping runs share it: the first one in saves
    the thresholds, the last one out restores them. At most 50,000 young objects wait.
    """

    YOUNG = 50_000

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.saved = gc.get_threshold()

    @contextlib.contextmanager
    def relaxed(self) -> Iterator[None]:
        with self.lock:
            if self.users == 0:
                self.saved = gc.get_threshold()
                gc.set_threshold(max(self.saved[0], self.YOUNG), *self.saved[1:])
            self.users += 1
        try:
            yield
        finally:
            with self.lock:
                self.users -= 1
                if self.users == 0:
                    gc.set_threshold(*self.saved)


fewer_collections = _Collector().relaxed


def _match_key(attr: str) -> str:
    return {"externalId": "ext", "userName": "uname", "email": "email"}[attr]


def _match_values(rec: Record, attr: str) -> str | None:
    """A directory identity's value for a matching attribute, folded by the same case
    rules as provisioning (sync/matching.py), as the scratch file indexes it (the hub
    id travels as externalId)."""
    if attr == "externalId":
        return rec.id
    value = match_value(rec.doc, "User", attr)
    return folded(attr, value) if value is not None else None


class Detector:
    """Runs full reconciliations of targets and records what they find."""

    def __init__(self, engine: Engine, connector_factory: Any = make_connector,
                 scratch_dir: str | None = None):
        self.engine = engine
        self.targets = Targets(engine)
        self.connector_factory = connector_factory
        self.scratch_dir = scratch_dir or os.environ.get("SCIMSYNC_SCRATCH_DIR")

    def run(self, target_id: str, trigger: str = "manual",
            progress: Callable[[str, int], None] | None = None) -> Doc:
        """One full reconciliation; returns the run as stored (id, status, stats)."""
        row, config, secrets = self.targets.runtime(target_id)
        run_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(insert(drift_runs).values(id=run_id, target_id=row.id,
                                                   status="running", trigger=trigger,
                                                   started=now()))
        stats = RunStats()
        if not registry.get(row.kind).readable:
            return self._finish(run_id, "not_reconcilable", stats,
                                f"a {row.kind} target cannot be read back")
        tick = progress or (lambda phase, n: None)
        connector = self.connector_factory(row.kind, config, secrets)
        scratch = Scratch(self.scratch_dir)
        writer = FindingsWriter(self.engine, row, run_id)
        try:
            start = time.perf_counter()
            try:
                stats.listed_users = self._list(connector, scratch, "User", tick)
                if config.profile.groups:
                    stats.listed_groups = self._list(connector, scratch, "Group", tick)
                # Agents are read back from applications that take them (agentExtension).
                takes_agents = "Agent" in connector.capabilities().kinds
                if takes_agents:
                    stats.listed_agents = self._list(connector, scratch, "Agent", tick)
            except ConnectorError as exc:
                stats.listing_seconds = time.perf_counter() - start
                stats.incomplete = incompleteness(exc)
                return self._finish(run_id, "incomplete", stats,
                                    f"the target could not be read whole: {exc}")
            self._copy_links(row.id, scratch)
            scratch.index()
            stats.listing_seconds = time.perf_counter() - start
            start = time.perf_counter()
            comparison = _Comparison(self.engine, row, config, scratch, writer, stats, tick)
            with fewer_collections():
                comparison.users()
                if config.profile.groups:
                    comparison.groups()
                if takes_agents:
                    comparison.agents()
                comparison.leftovers(takes_agents)
            writer.flush()
            stats.comparison_seconds = time.perf_counter() - start
            stats.findings = writer.counts
            stats.new = writer.new
            stats.resolved = writer.resolve_unseen()
            done = self._finish(run_id, "complete", stats, None)
            if writer.new:
                self._announce(row, done)
        except Exception as exc:
            self._finish(run_id, "failed", stats, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            scratch.close()
            connector.close()
        auto = [c for c in DRIFT_CLASSES if config.drift.mode(c) == "auto" and
                writer.counts.get(c)]
        if auto:
            from scimsync.drift.remediate import fix

            done["remediation"] = fix(self.engine, row.id, auto, automatic=True,
                                      connector_factory=self.connector_factory)
        return done

    def _list(self, connector: Connector, scratch: Scratch, kind: str,
              tick: Callable[[str, int], None]) -> int:
        table = TABLES[kind]
        page: list[Remote] = []
        count = 0
        for remote in connector.list(kind):
            page.append(remote)
            if len(page) >= BATCH:
                scratch.add(table, page)
                count += len(page)
                tick(f"listing {table}", count)
                page = []
        scratch.add(table, page)
        scratch.unique(kind)
        return count + len(page)

    def _copy_links(self, target_id: str, scratch: Scratch) -> None:
        after = ""
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(L.resource_id, L.resource_type, L.remote_id, L.state, L.applied)
                    .where(L.target_id == target_id, L.resource_id > after)
                    .order_by(L.resource_id).limit(5000)).all()
            if not rows:
                return
            scratch.add_links([(r[0], r[1], r[2], r[3], ",".join(r[4] or ())) for r in rows])
            after = rows[-1][0]

    def _announce(self, row: Any, run: Doc) -> None:
        """`drift.detected` in the directory's journal: to webhooks and the events API."""
        stats = run["stats"]
        announce(self.engine, row.directory_id, row.id, "drift_detected", {
            "target": row.name, "run_id": run["id"], "new_findings": stats["new"],
            "findings": stats["findings"]})

    def _finish(self, run_id: str, status: str, stats: RunStats, error: str | None) -> Doc:
        values = {"status": status, "finished": now(), "stats": stats.to_json(),
                  "error": error}
        with self.engine.begin() as conn:
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


class _Comparison:
    """The comparison step of one run."""

    def __init__(self, engine: Engine, row: Any, config: TargetConfig, scratch: Scratch,
                 writer: FindingsWriter, stats: RunStats,
                 tick: Callable[[str, int], None]):
        self.engine = engine
        self.row = row
        self.config = config
        self.scratch = scratch
        self.writer = writer
        self.stats = stats
        self.tick = tick
        scope = config.scope
        self.need_groups = bool(scope.groups or config.roles or
                                (scope.filter and "groups" in scope.filter))
        self.managed_roles = {r.get("attribute", "roles") for r in config.roles}
        self._claimed: set[str] = set()

    def _walk(self, rtype: str) -> Iterator[tuple[list[Record], dict[str, Linked]]]:
        """The directory's identities of `rtype` in batches, each with its links; links
        whose identity has left the directory are passed to `_gone` on the way."""
        after = ""
        for records in self._batches(rtype):
            last = records[-1].id
            linked = self.scratch.linked_range(rtype, after, last)
            yield records, linked
            ids = {r.id for r in records}
            self._gone(rtype, [lk for rid, lk in linked.items() if rid not in ids])
            after = last
        self._gone(rtype, list(self.scratch.linked_range(rtype, after, None).values()))

    def _batches(self, rtype: str) -> Iterator[list[Record]]:
        lean = Lean(self.engine)
        prepared = lean.prepared(IDENTITIES)
        params = {"d": self.row.directory_id, "t": rtype, "after": ""}
        # Text on SQLite, already decoded by the driver on PostgreSQL.
        decode = orjson.loads if lean.sqlite else json_value
        raw = self.engine.raw_connection()  # this thread's own, returned at the end
        try:
            cur = raw.cursor()
            while True:
                cur.execute(*prepared.render(params))
                rows = cur.fetchall()
                if not rows:
                    return
                records = [Record(rid, rt, decode(doc), created, modified, version)
                           for rid, rt, doc, created, modified, version in rows]
                self._attach(rtype, records)
                yield records
                params["after"] = records[-1].id
        finally:
            raw.rollback()
            raw.close()

    def _attach(self, rtype: str, records: list[Record]) -> None:
        """Groups of users (where scope or roles need them), members of groups."""
        ids = [r.id for r in records]
        if rtype == "User" and self.need_groups:
            with self.engine.connect() as conn:
                groups = store_members.load_groups(conn, ids)
            for rec in records:
                rec.groups = groups[rec.id]
        elif rtype == "Group":
            with self.engine.connect() as conn:
                members = store_members.load_members(conn, ids)
            for rec in records:
                rec.members = members[rec.id]

    # --- users --------------------------------------------------------------------

    def users(self) -> None:
        for records, linked in self._walk("User"):
            self._user_batch(records, linked)
            self.stats.compared += len(records)
            self.tick("comparing users", self.stats.compared)

    def _user_batch(self, records: list[Record], linked: dict[str, Linked]) -> None:
        managers = [m for r in records if (m := _manager(r)) is not None]
        remote_of = self.scratch.remote_ids(managers) if managers else {}
        # Unlinked identities (or links whose remote is gone): match as provisioning would.
        unlinked = [r for r in records
                    if r.id not in linked or linked[r.id].doc is None]
        matched: dict[str, tuple[str, int, Doc]] = {}
        for attr in self.config.profile.match:
            wanted = {v: r.id for r in unlinked
                      if r.id not in matched and (v := _match_values(r, attr)) is not None}
            if not wanted:
                continue
            for value, found in self.scratch.unclaimed_by("User", _match_key(attr),
                                                          list(wanted)).items():
                if found[0] not in self._claimed:
                    matched[wanted[value]] = found
                    self._claimed.add(found[0])
        if matched:
            self.scratch.claim("User", [m[0] for m in matched.values()])
            self._claimed.clear()
        for rec in records:
            desired = mapping.desired_user(self.config, rec, remote_of.get)
            link = linked.get(rec.id)
            if link is not None and link.doc is not None:
                assert link.remote_id is not None and link.active is not None
                self._classify_user(rec, desired, (link.remote_id, link.active, link.doc),
                                    True, link)
            else:
                self._classify_user(rec, desired, matched.get(rec.id), False, link)

    def _classify_user(self, rec: Record, desired: Doc | None,
                       remote: tuple[str, int, Doc] | None, via_link: bool,
                       link: Linked | None) -> None:
        wants_access = desired is not None and desired.get("active", True) is not False
        if remote is None:
            if wants_access:
                evidence: Doc = {**_ident(rec),
                                 "reason": "in scope and active, no account in the target"}
                if link is not None and link.remote_id:
                    evidence["linked_remote_id"] = link.remote_id
                    evidence["reason"] = "the linked account no longer exists in the target"
                self._add("missing_account", "medium", "User", rec.id, None, evidence, None)
            return
        remote_id, active, doc = remote
        if not wants_access:
            if active:
                why = ("deactivated in the directory" if desired is not None
                       else "out of the target's scope")
                self._add("lingering_access", "critical", "User", rec.id, remote_id,
                          {**_ident(rec), "reason": f"{why}, active in the target",
                           "linked": via_link}, doc)
            return
        assert desired is not None
        if not via_link:
            self._add("unmanaged_matchable", "low", "User", rec.id, remote_id,
                      {**_ident(rec), "reason": "an account in the target matches this identity "
                       "but is not linked: it can be adopted",
                       "differences": user_differences(desired, doc, set())}, doc)
            return
        differences = user_differences(desired, doc, link.keys if link else frozenset())
        entitlements = [d for d in differences if d["attribute"] in ENTITLEMENT_ATTRIBUTES
                        and d["attribute"] in self.managed_roles]
        attributes = [d for d in differences if d not in entitlements]
        if entitlements:
            proof: Doc = {**_ident(rec), "entitlements": []}
            extra_any = False
            for d in entitlements:
                extra = sorted(value_set(d["actual"]) - value_set(d["desired"]))
                missing = sorted(value_set(d["desired"]) - value_set(d["actual"]))
                extra_any = extra_any or bool(extra)
                proof["entitlements"].append({"attribute": d["attribute"], "extra": extra,
                                              "missing": missing})
            self._add("membership_drift", "high" if extra_any else "medium", "User", rec.id,
                      remote_id, proof, doc)
        if attributes:
            severity = "medium" if any(d["attribute"] == "active" for d in attributes) \
                else "low"
            self._add("attribute_drift", severity, "User", rec.id, remote_id,
                      {**_ident(rec), "differences": attributes}, doc)

    # --- groups -------------------------------------------------------------------

    def groups(self) -> None:
        for records, linked in self._walk("Group"):
            for rec in records:
                member_ids = self._flatten(rec)
                remote_of = self.scratch.remote_ids(member_ids)
                desired = mapping.desired_group(self.config, rec, member_ids, remote_of.get)
                link = linked.get(rec.id)
                if link is not None and link.doc is not None:
                    assert link.remote_id is not None and link.active is not None
                    self._classify_group(rec, desired, (link.remote_id, link.active, link.doc),
                                         True)
                    continue
                remote = self._match_one("Group", rec.id, rec.doc.get("displayName"))
                self._classify_group(rec, desired, remote, False)

    def _match_one(self, rtype: str, rid: str, name: Any) -> tuple[str, int, Doc] | None:
        """An unclaimed remote object for one unlinked identity, by externalId (the hub
        id), then by name; claimed if found."""
        for column, value in (("ext", rid), ("uname", str(name or "").lower())):
            found = self.scratch.unclaimed_by(rtype, column, [value])
            if value in found:
                self.scratch.claim(rtype, [found[value][0]])
                return found[value]
        return None

    def _flatten(self, rec: Record) -> list[str]:
        """User members, nested groups flattened (as provisioning sends them)."""
        def load(gid: str) -> Record:
            with self.engine.connect() as conn:
                found = store_members.load_members(conn, [gid])
            return Record(gid, "Group", {}, "", "", 0, members=found[gid])

        return mapping.member_users(rec, load)

    def _classify_group(self, rec: Record, desired: Doc | None,
                        remote: tuple[str, int, Doc] | None, via_link: bool) -> None:
        ident = {"displayName": rec.doc.get("displayName")}
        if desired is None:
            if remote is not None and via_link:
                # A group the target should not have (out of scope, no longer pushed).
                self._add("lingering_access", "high", "Group", rec.id, remote[0],
                          {**ident, "reason": "out of the target's scope, still in the target",
                           "members": len(remote[2].get("members") or [])},
                          _summary(remote[2]))
            return
        if remote is None:
            self._add("missing_account", "medium", "Group", rec.id, None,
                      {**ident, "reason": "in scope, no such group in the target"}, None)
            return
        remote_id, _, doc = remote
        if not via_link:
            self._add("unmanaged_matchable", "low", "Group", rec.id, remote_id,
                      {**ident, "reason": "a group in the target matches this group but is "
                       "not linked: it can be adopted"}, _summary(doc))
            return
        want, have = value_set(desired["members"]), value_set(doc.get("members"))
        if want != have:
            extra, missing = sorted(have - want), sorted(want - have)
            self._add("membership_drift", "high" if extra else "medium", "Group", rec.id,
                      remote_id, {**ident, "extra_members": extra[:100],
                                  "missing_members": missing[:100], "extra": len(extra),
                                  "missing": len(missing)}, _summary(doc))
        if str(doc.get("displayName", "")) != str(desired["displayName"]):
            self._add("attribute_drift", "low", "Group", rec.id, remote_id,
                      {**ident, "differences": [{"attribute": "displayName",
                                                 "desired": desired["displayName"],
                                                 "actual": doc.get("displayName")}]},
                      _summary(doc))

    # --- agents -------------------------------------------------------------------

    def agents(self) -> None:
        """Agents, in applications that take them: the same classes as accounts, the
        desired body being what provisioning sends (mapping.desired_nhi)."""
        for records, linked in self._walk("Agent"):
            refs = sorted({o["value"] for r in records
                           for o in [*(r.doc.get("owners") or []), r.doc.get("parent")]
                           if isinstance(o, dict) and isinstance(o.get("value"), str)})
            remote_of = self.scratch.remote_ids(refs, ("User", "Group", "Agent")) \
                if refs else {}
            for rec in records:
                desired = mapping.desired_nhi(rec, remote_of.get)
                link = linked.get(rec.id)
                if link is not None and link.doc is not None:
                    assert link.remote_id is not None and link.active is not None
                    self._classify_agent(rec, desired, (link.remote_id, link.active,
                                                        link.doc), link)
                    continue
                remote = self._match_one("Agent", rec.id, rec.doc.get("name"))
                self._classify_agent(rec, desired, remote, None)
            self.stats.compared += len(records)

    def _classify_agent(self, rec: Record, desired: Doc, remote: tuple[str, int, Doc] | None,
                        link: Linked | None) -> None:
        ident = {"name": rec.doc.get("name"), "active": rec.doc.get("active", True)}
        wants_access = desired.get("active", True) is not False
        if remote is None:
            if wants_access:
                self._add("missing_account", "medium", "Agent", rec.id, None,
                          {**ident, "reason": "active, no such agent in the target"}, None)
            return
        remote_id, active, doc = remote
        if not wants_access:
            if active:
                self._add("lingering_access", "critical", "Agent", rec.id, remote_id,
                          {**ident, "reason": "suspended in the directory, active in the "
                           "target", "linked": link is not None}, doc)
            return
        if link is None:
            self._add("unmanaged_matchable", "low", "Agent", rec.id, remote_id,
                      {**ident, "reason": "an agent in the target matches this one but is "
                       "not linked: it can be adopted",
                       "differences": differences("Agent", desired, doc, set())}, doc)
            return
        found = differences("Agent", desired, doc, link.keys)
        if found:
            severity = "medium" if any(d["attribute"] in ("active", "owners", "roles",
                                                          "entitlements") for d in found) \
                else "low"
            self._add("attribute_drift", severity, "Agent", rec.id, remote_id,
                      {**ident, "differences": found}, doc)

    # --- what nothing claimed -----------------------------------------------------

    def leftovers(self, agents: bool = False) -> None:
        """Remote objects that no link points at and no identity matched."""
        for rtype, name in (("User", "userName"), ("Agent", "name")):
            if rtype == "Agent" and not agents:
                continue
            for remote_id, active, doc in self.scratch.unclaimed(rtype):
                if not active:
                    # Deactivated, it grants nothing (it is what deprovisioning by
                    # deactivation leaves behind): counted, not a finding.
                    self.stats.inactive_unmatched += 1
                    continue
                self._add("orphaned_account", "high", rtype, None, remote_id,
                          {name: doc.get(name), "active": True,
                           "reason": "matches no directory identity"}, doc)
        if not self.config.profile.groups:
            return
        for remote_id, _, doc in self.scratch.unclaimed("Group"):
            self._add("orphaned_account", "medium", "Group", None, remote_id,
                      {"displayName": doc.get("displayName"),
                       "reason": "matches no directory group"}, _summary(doc))

    def _gone(self, rtype: str, gone: list[Linked]) -> None:
        """Links whose identity left the directory: the object must not grant access."""
        for lk in gone:
            if lk.doc is None:
                continue  # gone from the target as well
            if rtype == "Agent" and lk.active:
                self._add("lingering_access", "critical", "Agent", lk.rid, lk.remote_id,
                          {"name": lk.doc.get("name"), "linked": True,
                           "reason": "deleted from the directory, active in the target"},
                          lk.doc)
            elif rtype == "User" and lk.active:
                self._add("lingering_access", "critical", "User", lk.rid, lk.remote_id,
                          {"userName": lk.doc.get("userName"), "linked": True,
                           "reason": "deleted from the directory, active in the target"},
                          lk.doc)
            elif rtype == "Group":
                self._add("lingering_access", "high", "Group", lk.rid, lk.remote_id,
                          {"displayName": lk.doc.get("displayName"),
                           "reason": "deleted from the directory, still in the target",
                           "members": len(lk.doc.get("members") or [])}, _summary(lk.doc))

    def _add(self, cls: str, severity: str, rtype: str, rid: str | None,
             remote_id: str | None, evidence: Doc, remote: Doc | None) -> None:
        self.writer.add(Finding(cls, rid if rid is not None else f"remote:{remote_id}",
                                severity, rtype, rid, remote_id, evidence, remote))


def _ident(rec: Record) -> Doc:
    """Who a user finding is about, in words (made only when there is a finding)."""
    return {"userName": rec.doc.get("userName"), "active": rec.doc.get("active", True)}


def _manager(rec: Record) -> str | None:
    ext = rec.doc.get(ENTERPRISE_USER)
    manager = ext.get("manager") if isinstance(ext, dict) else None
    value = manager.get("value") if isinstance(manager, dict) else None
    return value if isinstance(value, str) else None


def _summary(doc: Doc) -> Doc:
    """A remote group without its member list (findings stay small)."""
    out = {k: v for k, v in doc.items() if k != "members"}
    out["members"] = len(doc.get("members") or [])
    return out
