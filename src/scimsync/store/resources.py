"""Resource storage: create, read, replace, patch, delete and search, each in one
transaction together with its journal entries (DESIGN.md: Inbound, Invariants).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from scimsync.errors import Conflict, NotFound, PreconditionFailed, ScimError, invalid_value
from scimsync.protocol.filter import Filter
from scimsync.protocol.patch import MemberChange, apply_patch
from scimsync.protocol.schema import ResourceType
from scimsync.protocol.timefmt import now
from scimsync.protocol.values import Doc, Incoming
from scimsync.store import journal, members
from scimsync.store.filter_sql import Compiler
from scimsync.store.journal import Entry
from scimsync.store.records import Record, indexed_columns
from scimsync.store.tables import memberships, resources

R = resources.c
ROW_COLUMNS = (R.id, R.type, R.doc, R.created, R.last_modified, R.version)


@dataclass
class Loads:
    """Which derived parts a response needs (so large groups are not read needlessly)."""

    members: bool = True
    groups: bool = True


class Store:
    """Transactional access to one database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.pg = engine.dialect.name == "postgresql"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite)."""
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # --- reads --------------------------------------------------------------

    def _row(self, conn: Connection, directory_id: str, rtype: ResourceType, rid: str,
             lock: bool = False) -> Row[*tuple[Any, ...]]:
        stmt = select(*ROW_COLUMNS).where(
            R.directory_id == directory_id, R.type == rtype.name, R.id == rid
        )
        if lock and self.pg:
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        if row is None:
            raise NotFound(f"{rtype.name} {rid} not found")
        return row

    @staticmethod
    def _record(row: Row[*tuple[Any, ...]]) -> Record:
        return Record(row.id, row.type, row.doc, row.created, row.last_modified, row.version)

    def _attach(self, conn: Connection, records: list[Record], loads: Loads) -> None:
        groups = [r.id for r in records if r.type == "Group"]
        users = [r.id for r in records if r.type == "User"]
        if loads.members and groups:
            found = members.load_members(conn, groups)
            for r in records:
                if r.type == "Group":
                    r.members = found[r.id]
        if loads.groups and users:
            found = members.load_groups(conn, users)
            for r in records:
                if r.type == "User":
                    r.groups = found[r.id]

    def get(self, directory_id: str, rtype: ResourceType, rid: str,
            loads: Loads | None = None) -> Record:
        with self.read() as conn:
            return self._get(conn, directory_id, rtype, rid, loads or Loads())

    def _get(self, conn: Connection, directory_id: str, rtype: ResourceType, rid: str,
             loads: Loads) -> Record:
        rec = self._record(self._row(conn, directory_id, rtype, rid))
        self._attach(conn, [rec], loads)
        return rec

    # --- writes -------------------------------------------------------------

    def create(self, directory_id: str, rtype: ResourceType, incoming: Incoming,
               actor: str | None, conn: Connection | None = None) -> Record:
        """Create a resource (RFC7644 §3.3); members are checked to exist first."""
        if conn is None:
            with self.write() as c:
                return self.create(directory_id, rtype, incoming, actor, c)
        doc = _defaults(rtype, incoming.doc)
        rid = str(uuid.uuid4())
        ts = now()
        values = {
            "id": rid, "directory_id": directory_id, "type": rtype.name, "created": ts,
            "last_modified": ts, "version": 1, "doc": doc, **indexed_columns(rtype.name, doc),
        }
        with _uniqueness(conn, directory_id, rtype, doc):
            conn.execute(insert(resources).values(**values))
        entries = [_entry(rtype, rid, "created", 1, sorted(k for k in doc if k != "schemas"),
                          doc)]
        if incoming.members:
            found = members.resolve_members(conn, directory_id, rid, incoming.members)
            added = members.add(conn, directory_id, rid, found)
            if added:
                entries.append(Entry(rtype.name, rid, "member_added", 1, ["members"], "mover",
                                     {"added": added}))
        journal.append(conn, directory_id, entries, actor)
        return self._get(conn, directory_id, rtype, rid, Loads())

    def replace(self, directory_id: str, rtype: ResourceType, rid: str, incoming: Incoming,
                if_match: str | None, actor: str | None,
                conn: Connection | None = None) -> Record:
        """Replace a resource (RFC7644 §3.5.1); immutable attributes must not change."""
        if conn is None:
            with self.write() as c:
                return self.replace(directory_id, rtype, rid, incoming, if_match, actor, c)
        row = self._row(conn, directory_id, rtype, rid, lock=True)
        _check_etag(row, if_match)
        new_doc = _defaults(rtype, incoming.doc)
        changes: list[MemberChange] = []
        if rtype.name == "Group":
            changes.append(MemberChange("replace", tuple(incoming.members or ())))
        return self._commit_change(conn, directory_id, rtype, row, new_doc, changes, actor)

    def patch(self, directory_id: str, rtype: ResourceType, rid: str,
              operations: list[dict[str, Any]], if_match: str | None, actor: str | None,
              conn: Connection | None = None) -> Record:
        """Apply a PATCH atomically (RFC7644 §3.5.2)."""
        if conn is None:
            with self.write() as c:
                return self.patch(directory_id, rtype, rid, operations, if_match, actor, c)
        row = self._row(conn, directory_id, rtype, rid, lock=True)
        _check_etag(row, if_match)
        result = apply_patch(rtype, row.doc, operations)
        new_doc = result.doc
        return self._commit_change(conn, directory_id, rtype, row, new_doc, result.members,
                                   actor)

    def _commit_change(self, conn: Connection, directory_id: str, rtype: ResourceType,
                       row: Row[*tuple[Any, ...]], new_doc: Doc, changes: list[MemberChange],
                       actor: str | None) -> Record:
        rid = row.id
        added, removed = self._apply_members(conn, directory_id, rid, changes)
        changed = journal.changed_paths(row.doc, new_doc)
        if not changed and not added and not removed:
            return self._get(conn, directory_id, rtype, rid, Loads())
        version = row.version + 1
        values: dict[str, Any] = {"version": version, "last_modified": now()}
        if changed:
            values.update(doc=new_doc, **indexed_columns(rtype.name, new_doc))
        with _uniqueness(conn, directory_id, rtype, new_doc):
            conn.execute(update(resources).where(R.id == rid).values(**values))
        entries: list[Entry] = []
        if changed:
            op = "updated"
            if rtype.name == "User":
                was, now_active = row.doc.get("active", True), new_doc.get("active", True)
                if was and not now_active:
                    op = "deactivated"
                elif now_active and not was:
                    op = "reactivated"
            entries.append(_entry(rtype, rid, op, version, changed, new_doc))
        if removed:
            entries.append(Entry(rtype.name, rid, "member_removed", version, ["members"],
                                 "mover", {"removed": removed}))
        if added:
            entries.append(Entry(rtype.name, rid, "member_added", version, ["members"],
                                 "mover", {"added": added}))
        journal.append(conn, directory_id, entries, actor)
        return self._get(conn, directory_id, rtype, rid, Loads())

    def _apply_members(self, conn: Connection, directory_id: str, group_id: str,
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
               actor: str | None, conn: Connection | None = None) -> None:
        """Delete a resource and its memberships (RFC7644 §3.6)."""
        if conn is None:
            with self.write() as c:
                self.delete(directory_id, rtype, rid, if_match, actor, c)
                return
        row = self._row(conn, directory_id, rtype, rid, lock=True)
        _check_etag(row, if_match)
        entries = [Entry(rtype.name, rid, "deleted", row.version + 1, [],
                         "leaver" if rtype.name == "User" else None)]
        # The groups this resource belonged to change too: journal them.
        affected = members.groups_of(conn, rid)
        if affected:
            ts = now()
            for gid in affected:
                version = conn.execute(
                    update(resources).where(R.id == gid)
                    .values(version=R.version + 1, last_modified=ts)
                    .returning(R.version)
                ).scalar_one()
                entries.append(Entry("Group", gid, "member_removed", version, ["members"],
                                     "mover", {"removed": [rid]}))
        conn.execute(delete(memberships).where(
            (memberships.c.member_id == rid) | (memberships.c.group_id == rid)))
        conn.execute(delete(resources).where(R.id == rid))
        journal.append(conn, directory_id, entries, actor)

    # --- search -------------------------------------------------------------

    def search(self, directory_id: str, rtype: ResourceType, flt: Filter | None,
               sort_by: str | None, descending: bool, offset: int, count: int,
               loads: Loads, after_id: str | None = None,
               lenient: bool = False) -> tuple[int, list[Record]]:
        """Filtered, sorted page of resources and the total number that match."""
        compiler = Compiler(rtype, self.engine.dialect.name, lenient)
        where = [R.directory_id == directory_id, R.type == rtype.name]
        if flt is not None:
            where.append(compiler.compile(flt))
        with self.read() as conn:
            total = conn.execute(select(func.count()).select_from(resources).where(*where)
                                 ).scalar_one()
            if count <= 0:
                return int(total), []
            stmt = select(*ROW_COLUMNS).where(*where)
            if sort_by:
                key = compiler.sort_key(sort_by)
                stmt = stmt.order_by(key.desc() if descending else key.asc(), R.id)
            else:
                if after_id is not None:
                    stmt = stmt.where(R.id > after_id)
                stmt = stmt.order_by(R.id)
            stmt = stmt.offset(offset).limit(count) if offset else stmt.limit(count)
            records = [self._record(r) for r in conn.execute(stmt)]
            self._attach(conn, records, loads)
            return int(total), records


def _defaults(rtype: ResourceType, doc: Doc) -> Doc:
    """A new or replaced User is active unless it says otherwise."""
    if rtype.name == "User" and "active" not in doc:
        return {**doc, "active": True}
    return doc


def _entry(rtype: ResourceType, rid: str, op: str, version: int, changed: list[str],
           doc: Doc) -> Entry:
    lifecycle: str | None = None
    if rtype.name == "User":
        lifecycle = journal.user_lifecycle(op, changed)
        if op == "created" and doc.get("active") is False:
            lifecycle = None
    return Entry(rtype.name, rid, op, version, changed, lifecycle)


def _check_etag(row: Row[*tuple[Any, ...]], if_match: str | None) -> None:
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
def _uniqueness(conn: Connection, directory_id: str, rtype: ResourceType,
                doc: Doc) -> Iterator[None]:
    """Turn a unique-index violation into 409 uniqueness (RFC7644 §3.3)."""
    try:
        with conn.begin_nested():
            yield
    except IntegrityError as exc:
        if rtype.name == "User" and isinstance(doc.get("userName"), str):
            taken = conn.execute(select(R.id).where(
                R.directory_id == directory_id, R.type == rtype.name,
                R.user_name_ci == doc["userName"].lower())).first()
            if taken is not None:
                raise Conflict(f"userName {doc['userName']!r} is already taken") from exc
        if isinstance(doc.get("externalId"), str):
            raise Conflict(f"externalId {doc['externalId']!r} is already taken") from exc
        raise ScimError("the change conflicts with stored data", status=409) from exc


__all__ = ["Loads", "Store", "invalid_value"]
