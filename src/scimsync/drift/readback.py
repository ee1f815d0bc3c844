"""Read-back: a target as it really is, listed onto disk for one drift run.

Every account (and group, and agent, where the target takes them) is read through
the connector page by page and appended to a scratch SQLite file beside the run,
with the target's links. A listing that does not add up (scimsync.connectors.paging;
here: an id listed twice) raises IncompleteListing. Once the listing is whole the file
is indexed by remote id
and by each matching attribute, and the links are laid out joined with their remote
objects in resource-id order, the order the comparison walks the directory in
(scimsync.drift.comparison). Memory stays flat whatever the size of the target.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, select

from scimsync.connectors.contract import Connector, IncompleteListing, Remote
from scimsync.store.records import primary_email
from scimsync.store.tables import links

Doc = dict[str, Any]
L = links.c
PAGE = 1000  # listed objects written to the scratch file at a time
CHUNK = 500  # values per IN list in the scratch file
# Remote attributes kept in the scratch file: everything but what can be huge and is
# never compared (a user's groups are read from the groups themselves).
DROPPED = ("groups", "meta", "schemas")
TABLES = {"User": "users", "Group": "groups", "Agent": "agents"}

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



def list_into(scratch: Scratch, connector: Connector, kind: str,
              tick: Callable[[str, int], None], check: Callable[[], None]) -> int:
    """List every object of `kind` in the target into the scratch file; how many.

    `check` is called before each object is asked for, so before each page's request
    (a lost lease stops the listing there)."""
    table = TABLES[kind]
    page: list[Remote] = []
    count = 0
    check()
    for remote in connector.list(kind):
        page.append(remote)
        check()
        if len(page) >= PAGE:
            scratch.add(table, page)
            count += len(page)
            tick(f"listing {table}", count)
            page = []
    scratch.add(table, page)
    scratch.unique(kind)
    return count + len(page)


def copy_links(engine: Engine, target_id: str, scratch: Scratch) -> None:
    """The target's links, in resource-id order, into the scratch file."""
    after = ""
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(L.resource_id, L.resource_type, L.remote_id, L.state, L.applied)
                .where(L.target_id == target_id, L.resource_id > after)
                .order_by(L.resource_id).limit(5000)).all()
        if not rows:
            return
        scratch.add_links([(r[0], r[1], r[2], r[3], ",".join(r[4] or ())) for r in rows])
        after = rows[-1][0]
