"""Resource storage: create, read, replace, patch, delete and search, each in one
transaction together with its journal entries (docs/architecture.md: Inbound, Invariants).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from scimsync import limits
from scimsync.errors import BadRequest, Conflict, NotFound, PreconditionFailed
from scimsync.protocol.filter import Filter
from scimsync.protocol.patch import MemberChange, apply_patch
from scimsync.protocol.record import Member, Record
from scimsync.protocol.resources import ACTIVE_TYPES, GROUPED_TYPES, NAME_ATTRIBUTE
from scimsync.protocol.schema import ResourceType
from scimsync.protocol.timefmt import now
from scimsync.protocol.values import Doc, Incoming
from scimsync.store import journal, members, nhi, references, timeouts
from scimsync.store import statements as sql
from scimsync.store.contention import retrying
from scimsync.store.filter_sql import Compiler, shape
from scimsync.store.journal import Entry
from scimsync.store.lean import Lean, LeanConnection, Prepared, json_value
from scimsync.store.records import indexed_columns
from scimsync.store.tables import resources
from scimsync.store.writer import GroupCommit

R = resources.c
T = TypeVar("T")
SEARCH_CACHE_SIZE = 512
# Sorting by an attribute without an index means sorting every match in the database:
# past this many matches the request is refused with tooMany (RFC7644 §3.12).
UNINDEXED_SORT_LIMIT = 50_000
LEAN_ATTACH_MAX = 8  # up to this many results, derived parts load one by one


@dataclass
class Loads:
    """Which derived parts a response needs (so large groups are not read needlessly)."""

    members: bool = True
    groups: bool = True


@dataclass
class _Search:
    """The count and page statements for one filter shape, and how to bind them."""

    count: Prepared
    page: Prepared
    compiler: Compiler | None
    indexed_sort: bool = True


class Store:
    """Transactional access to one database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, group_commit: bool | None = None):
        self.engine = engine
        self.pg = engine.dialect.name == "postgresql"
        self.lean = Lean(engine)
        if group_commit is None:
            group_commit = engine.dialect.name == "sqlite"
        # SQLite: writes commit in groups on the event loop (see writer.py).
        self.writer = GroupCommit(self.lean, limits.current().statement_timeout) \
            if group_commit else None
        # Called after a write commits (the embedded worker wakes up).
        self.after_write: list[Callable[[], None]] = []
        self._searches: OrderedDict[tuple[Any, ...], _Search] = OrderedDict()
        self._searches_lock = threading.Lock()

    @contextmanager
    def write(self) -> Iterator[LeanConnection]:
        """A write transaction of its own (BEGIN IMMEDIATE on SQLite)."""
        with self.lean.transaction() as conn:
            yield conn

    def transact(self, fn: Callable[[LeanConnection], T]) -> T:
        """Run `fn` in a write transaction of its own and commit; run it again from the
        start if it lost a lock or serialisation conflict (store.contention)."""

        def once() -> T:
            with self.write() as conn:
                return fn(conn)

        return retrying(once)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads; each statement sees a committed snapshot."""
        with self.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT", autocommit=True) as conn:
            yield conn

    # --- reads --------------------------------------------------------------

    def _row(self, conn: LeanConnection, directory_id: str, rtype: ResourceType, rid: str,
             lock: bool = False) -> Record:
        """A resource as stored, read inside a write transaction (locked on PostgreSQL
        when `lock`)."""
        stmt = sql.ROW_LOCKED if lock and self.pg else sql.ROW
        row = conn.execute(stmt, {"d": directory_id, "t": rtype.name, "rid": rid}).first()
        if row is None:
            raise NotFound(f"{rtype.name} {rid} not found")
        return _lean_record(row)

    def _attach(self, conn: members.Conn, records: list[Record], loads: Loads) -> None:
        if len(records) == 1 and isinstance(conn, LeanConnection):
            self._attach_one(conn, records[0], loads)
            return
        groups = [r.id for r in records if r.type == "Group"]
        users = [r.id for r in records if r.type in GROUPED_TYPES]
        if loads.members and groups:
            found = members.load_members(conn, groups)
            for r in records:
                if r.type == "Group":
                    r.members = found[r.id]
        if loads.groups and users:
            found = members.load_groups(conn, users)
            for r in records:
                if r.type in GROUPED_TYPES:
                    r.groups = found[r.id]

    def get(self, directory_id: str, rtype: ResourceType, rid: str,
            loads: Loads | None = None) -> Record:
        """One resource by id, with its members or groups if `loads` asks (lean path)."""
        loads = loads or Loads()
        lean = self.lean
        with lean.cursor() as cur:
            row = lean.one(cur, sql.ROW, {"d": directory_id, "t": rtype.name, "rid": rid})
            if row is None:
                raise NotFound(f"{rtype.name} {rid} not found")
            rec = _lean_record(row)
            self._attach_lean(cur, rec, loads)
            return rec

    def get_many(self, directory_id: str, rtype: ResourceType, ids: list[str],
                 loads: Loads | None = None) -> dict[str, Record]:
        """Many resources by id in one read (absent ones left out), with their members
        or groups if `loads` asks: what a bulk chunk of the engine needs at once."""
        loads = loads or Loads()
        out: dict[str, Record] = {}
        with self.read() as conn:
            for i in range(0, len(ids), 500):
                rows = conn.execute(select(*sql.ROW_COLUMNS).where(
                    R.directory_id == directory_id, R.type == rtype.name,
                    R.id.in_(ids[i:i + 500]))).all()
                records = [_lean_record(r) for r in rows]
                if records:
                    self._attach(conn, records, loads)
                out.update((r.id, r) for r in records)
        return out

    def _attach_one(self, conn: LeanConnection, rec: Record, loads: Loads) -> None:
        """Members or groups of one record inside a write transaction."""
        _derive(rec, loads, lambda stmt, params: conn.execute(stmt, params).all())

    def _attach_lean(self, cur: Any, rec: Record, loads: Loads) -> None:
        """Members or groups of one record through the lean read path."""
        _derive(rec, loads, lambda stmt, params: self.lean.all(cur, stmt, params))

    # --- writes -------------------------------------------------------------

    def create(self, directory_id: str, rtype: ResourceType, incoming: Incoming,
               actor: str | None, conn: LeanConnection | None = None,
               loads: Loads | None = None) -> Record:
        """Create a resource (RFC7644 §3.3); members are checked to exist first."""
        if conn is None:
            with self.write() as c:
                return self.create(directory_id, rtype, incoming, actor, c, loads)
        rid = str(uuid.uuid4())
        doc = references.checked(conn, directory_id, rtype.name, rid,
                                 _defaults(rtype, incoming.doc))
        nhi.check_owned(conn, directory_id, rtype.name, doc)
        ts = now()
        cols = indexed_columns(rtype.name, doc)
        self._check_unique(conn, directory_id, rtype, rid, doc, cols)
        with _uniqueness():
            conn.execute(sql.INSERT_RESOURCE, {
                "id": rid, "directory_id": directory_id, "type": rtype.name, "created": ts,
                "last_modified": ts, "version": 1, "doc": doc, **cols})
        entries = [_entry(rtype, rid, "created", 1, sorted(k for k in doc if k != "schemas"),
                          doc)]
        if incoming.members:
            found = members.resolve_members(conn, directory_id, rid, incoming.members)
            added = members.add(conn, directory_id, rid, found)
            if added:
                entries.append(Entry(rtype.name, rid, "member_added", 1, ["members"], "mover",
                                     {"added": added}))
        journal.append(conn, directory_id, entries, actor)
        rec = Record(rid, rtype.name, doc, ts, ts, 1)
        loads = loads or Loads()
        if rtype.name in GROUPED_TYPES:
            rec.groups = [] if loads.groups else None  # nothing can contain it yet
        else:
            self._attach(conn, [rec], loads)
        return rec

    def replace(self, directory_id: str, rtype: ResourceType, rid: str, incoming: Incoming,
                if_match: str | None, actor: str | None,
                conn: LeanConnection | None = None, loads: Loads | None = None) -> Record:
        """Replace a resource (RFC7644 §3.5.1); immutable attributes must not change."""
        if conn is None:
            with self.write() as c:
                return self.replace(directory_id, rtype, rid, incoming, if_match, actor, c,
                                    loads)
        row = self._row(conn, directory_id, rtype, rid, lock=True)
        _check_etag(row, if_match)
        new_doc = _defaults(rtype, incoming.doc)
        changes: list[MemberChange] = []
        if rtype.name == "Group":
            changes.append(MemberChange("replace", tuple(incoming.members or ())))
        return self._commit_change(conn, directory_id, rtype, row, new_doc, changes, actor,
                                   loads or Loads())

    def patch(self, directory_id: str, rtype: ResourceType, rid: str,
              operations: list[dict[str, Any]], if_match: str | None, actor: str | None,
              conn: LeanConnection | None = None, loads: Loads | None = None) -> Record:
        """Apply a PATCH atomically (RFC7644 §3.5.2)."""
        if conn is None:
            with self.write() as c:
                return self.patch(directory_id, rtype, rid, operations, if_match, actor, c,
                                  loads)
        row = self._row(conn, directory_id, rtype, rid, lock=True)
        _check_etag(row, if_match)
        result = apply_patch(rtype, row.doc, operations)
        return self._commit_change(conn, directory_id, rtype, row, result.doc, result.members,
                                   actor, loads or Loads())

    def _commit_change(self, conn: LeanConnection, directory_id: str, rtype: ResourceType,
                       row: Record, new_doc: Doc, changes: list[MemberChange],
                       actor: str | None, loads: Loads) -> Record:
        rid = row.id
        new_doc = references.checked(conn, directory_id, rtype.name, rid, new_doc, row.doc)
        if new_doc != row.doc:
            nhi.check_owned(conn, directory_id, rtype.name, new_doc)
        added, removed = self._apply_members(conn, directory_id, rid, changes)
        changed = journal.changed_paths(row.doc, new_doc)
        if not changed and not added and not removed:
            self._attach(conn, [row], loads)
            return row
        version = row.version + 1
        ts = now()
        values: dict[str, Any] = {"rid": rid, "version": version, "last_modified": ts}
        doc = row.doc
        if changed:
            cols = indexed_columns(rtype.name, new_doc)
            old = indexed_columns(rtype.name, row.doc)
            if (cols["user_name_ci"], cols["external_id"]) != (old["user_name_ci"],
                                                               old["external_id"]):
                self._check_unique(conn, directory_id, rtype, rid, new_doc, cols)
            values.update(doc=new_doc, **cols)
            doc = new_doc
        with _uniqueness():
            conn.execute(sql.UPDATE_RESOURCE, values)
        entries: list[Entry] = []
        if changed:
            op = "updated"
            if rtype.name in ACTIVE_TYPES:
                was, is_now = row.doc.get("active", True), new_doc.get("active", True)
                if was and not is_now:
                    op = "deactivated"
                elif is_now and not was:
                    op = "reactivated"
            entries.append(_entry(rtype, rid, op, version, changed, new_doc))
        if removed:
            entries.append(Entry(rtype.name, rid, "member_removed", version, ["members"],
                                 "mover", {"removed": removed}))
        if added:
            entries.append(Entry(rtype.name, rid, "member_added", version, ["members"],
                                 "mover", {"added": added}))
        if changed:
            entries += nhi.leaving(conn, directory_id, rtype.name, rid, row.doc, new_doc,
                                   version, actor)
        journal.append(conn, directory_id, entries, actor)
        rec = Record(rid, rtype.name, doc, row.created, ts, version)
        self._attach(conn, [rec], loads)
        return rec

    def _check_unique(self, conn: LeanConnection, directory_id: str, rtype: ResourceType,
                      rid: str, doc: Doc, cols: dict[str, Any]) -> None:
        """409 uniqueness if another resource holds this userName or externalId."""
        if cols["user_name_ci"] is None and cols["external_id"] is None:
            return
        taken = conn.execute(sql.TAKEN, {"d": directory_id, "t": rtype.name, "rid": rid,
                                         "un": cols["user_name_ci"],
                                         "ext": cols["external_id"]}).first()
        if taken is None:
            return
        if cols["user_name_ci"] is not None and taken[0] == cols["user_name_ci"]:
            name = NAME_ATTRIBUTE[rtype.name]
            raise Conflict(f"{name} {doc.get(name)!r} is already taken")
        raise Conflict(f"externalId {doc.get('externalId')!r} is already taken")

    def _apply_members(self, conn: LeanConnection, directory_id: str, group_id: str,
                       changes: list[MemberChange]) -> tuple[list[str], list[str]]:
        """Apply membership changes in request order; returns the net (added, removed)."""
        added: dict[str, None] = {}
        removed: dict[str, None] = {}

        def note_added(ids: list[str]) -> None:
            for i in ids:
                if i in removed:
                    del removed[i]
                else:
                    added[i] = None

        def note_removed(ids: list[str]) -> None:
            for i in ids:
                if i in added:
                    del added[i]
                else:
                    removed[i] = None

        for ch in changes:
            if ch.kind == "add":
                found = members.resolve_members(conn, directory_id, group_id, ch.values)
                note_added(members.add(conn, directory_id, group_id, found))
            elif ch.kind == "remove":
                ids = [v["value"] for v in ch.values if isinstance(v.get("value"), str)]
                note_removed(members.remove(conn, group_id, ids))
            elif ch.kind == "clear":
                note_removed(members.remove(conn, group_id, members.all_ids(conn, group_id)))
            elif ch.kind == "remove_where":
                assert ch.filter is not None
                note_removed(members.remove(conn, group_id,
                                            members.matching(conn, group_id, ch.filter)))
            elif ch.kind == "replace":
                found = members.resolve_members(conn, directory_id, group_id, ch.values)
                current = set(members.all_ids(conn, group_id))
                note_removed(members.remove(conn, group_id, [i for i in current
                                                             if i not in found]))
                note_added(members.add(conn, directory_id, group_id, found))
        return list(added), list(removed)

    def delete(self, directory_id: str, rtype: ResourceType, rid: str, if_match: str | None,
               actor: str | None, conn: LeanConnection | None = None) -> None:
        """Delete a resource and its memberships (RFC7644 §3.6)."""
        if conn is None:
            with self.write() as c:
                self.delete(directory_id, rtype, rid, if_match, actor, c)
                return
        row = self._row(conn, directory_id, rtype, rid, lock=True)
        _check_etag(row, if_match)
        entries = [Entry(rtype.name, rid, "deleted", row.version + 1, [],
                         "leaver" if rtype.name in ACTIVE_TYPES else None)]
        # The groups this resource belonged to change too: journal them.
        ts = now()
        for gid in members.groups_of(conn, rid):
            version = conn.execute(sql.BUMP_VERSION, {"rid": gid, "ts": ts}).scalar_one()
            entries.append(Entry("Group", gid, "member_removed", version, ["members"],
                                 "mover", {"removed": [rid]}))
        conn.execute(sql.DELETE_MEMBERSHIPS_OF, {"rid": rid})
        conn.execute(sql.DELETE_RESOURCE, {"rid": rid})
        entries += nhi.leaving(conn, directory_id, rtype.name, rid, row.doc, None,
                               row.version + 1, actor)
        journal.append(conn, directory_id, entries, actor)

    # --- search -------------------------------------------------------------

    def _search_statements(self, rtype: ResourceType, flt: Filter | None, sort_by: str | None,
                           descending: bool, keyset: bool, lenient: bool) -> _Search:
        key = (rtype.name, shape(flt) if flt is not None else None,
               sort_by.lower() if sort_by else None, descending, keyset, lenient)
        with self._searches_lock:
            found = self._searches.get(key)
            if found is not None:
                self._searches.move_to_end(key)
                return found
        compiler = Compiler(rtype, self.engine.dialect.name, lenient)
        where = [R.directory_id == bindparam("d"), R.type == rtype.name]
        if flt is not None:
            where.append(compiler.compile(flt))
        count = select(func.count()).select_from(resources).where(*where)
        page = select(*sql.ROW_COLUMNS).where(*where)
        indexed = True
        if sort_by:
            skey = compiler.sort_key(sort_by)
            indexed = any(skey is c for c in (R.id, R.external_id, R.user_name_ci,
                                              R.display_name_ci, R.email_ci, R.active,
                                              R.created, R.last_modified))
            page = page.order_by(skey.desc() if descending else skey.asc(), R.id)
        else:
            if keyset:
                page = page.where(R.id > bindparam("after"))
            page = page.order_by(R.id)
        page = page.offset(bindparam("offset")).limit(bindparam("limit"))
        # Compiled here and owned by the bounded cache, not by Lean's cache of constants.
        built = _Search(Prepared(count, self.engine), Prepared(page, self.engine),
                        compiler if flt is not None else None, indexed)
        with self._searches_lock:
            self._searches[key] = built
            while len(self._searches) > SEARCH_CACHE_SIZE:
                self._searches.popitem(last=False)
        return built

    def search(self, directory_id: str, rtype: ResourceType, flt: Filter | None,
               sort_by: str | None, descending: bool, offset: int, count: int,
               loads: Loads, after_id: str | None = None,
               lenient: bool = False) -> tuple[int, list[Record]]:
        """Filtered, sorted page of resources and the total number that match."""
        keyset = after_id is not None and not sort_by
        stmts = self._search_statements(rtype, flt, sort_by, descending, keyset, lenient)
        params: dict[str, Any] = {"d": directory_id}
        if stmts.compiler is not None and flt is not None:
            params.update(stmts.compiler.bind(flt))
        lean = self.lean
        with timeouts.as_too_many(), lean.cursor() as cur:
            total = lean.one(cur, stmts.count, params)[0]
            if count <= 0 or total == 0:
                return int(total), []
            if not stmts.indexed_sort and total > UNINDEXED_SORT_LIMIT:
                raise BadRequest(f"sorting {total} results by {sort_by} is too costly: "
                                 "narrow the filter or sort by an indexed attribute",
                                 scim_type="tooMany")
            params.update(offset=offset, limit=count)
            if keyset:
                params["after"] = after_id
            records = [_lean_record(r) for r in lean.all(cur, stmts.page, params)]
            if len(records) <= LEAN_ATTACH_MAX:
                for rec in records:
                    self._attach_lean(cur, rec, loads)
                return int(total), records
        if loads.members or loads.groups:
            with timeouts.as_too_many(), self.read() as conn:
                self._attach(conn, records, loads)
        return int(total), records


def _derive(rec: Record, loads: Loads, rows: Callable[[Any, dict[str, Any]], list[Any]]) -> None:
    """Fill a record's groups (User) or members (Group) if the response needs them."""
    if rec.type in GROUPED_TYPES and loads.groups:
        rec.groups = [Member(gid, "direct" if depth == 0 else "indirect", display)
                      for gid, depth, display in rows(sql.GROUPS_OF_USER, {"uid": rec.id})]
    elif rec.type == "Group" and loads.members:
        rec.members = [Member(mid, mtype)
                       for mid, mtype in rows(sql.MEMBERS_OF_GROUP, {"g": rec.id})]


def _lean_record(row: Any) -> Record:
    rid, rtype, doc, created, modified, version = row
    return Record(rid, rtype, json_value(doc), created, modified, version)


def _defaults(rtype: ResourceType, doc: Doc) -> Doc:
    """A new or replaced User (or Agent, or application) is active unless it says
    otherwise."""
    if rtype.name in ACTIVE_TYPES and "active" not in doc:
        return {**doc, "active": True}
    return doc


def _entry(rtype: ResourceType, rid: str, op: str, version: int, changed: list[str],
           doc: Doc) -> Entry:
    lifecycle: str | None = None
    if rtype.name in ACTIVE_TYPES:  # joiners, movers and leavers, human or not
        lifecycle = journal.user_lifecycle(op, changed)
        if op == "created" and doc.get("active") is False:
            lifecycle = None
    return Entry(rtype.name, rid, op, version, changed, lifecycle)


def _check_etag(row: Record, if_match: str | None) -> None:
    """If-Match against meta.version (RFC7644 §3.14): 412 when it does not match."""
    if if_match is None:
        return
    tags = {t.strip() for t in if_match.split(",")}
    if "*" in tags:
        return
    current = f'W/"{row.version}"'
    if current not in tags and f'"{row.version}"' not in tags:
        raise PreconditionFailed(f"version {current} does not match If-Match {if_match}")


@contextmanager
def _uniqueness() -> Iterator[None]:
    """A unique-index violation that slipped past the pre-check (a concurrent writer)."""
    try:
        yield
    except IntegrityError as exc:
        raise Conflict("userName or externalId is already taken") from exc
