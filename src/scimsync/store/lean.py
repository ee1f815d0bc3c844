"""The lean path: statements compiled once, run on a bare DBAPI cursor.

SQLAlchemy's execution machinery (events, result proxies, parameter processing)
costs about 60 us per statement here, against 4 us for the DBAPI call itself. That
was most of the cost of a request, so the hot paths run through `Lean`: each
statement is compiled once per dialect (and per set of inserted columns and IN-list
lengths) by SQLAlchemy, then executed directly. `LeanConnection` offers the small part
of SQLAlchemy's Connection API the store uses, inside one transaction.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from scimsync.store.contention import make_way

Params = dict[str, Any]
_POSTCOMPILE = "__[POSTCOMPILE_{}]"
# One persistent SQLite read connection per (engine, thread), shared by every Lean on
# that engine: Lean objects come and go (one per reconciler run), connections must not.
_READERS: weakref.WeakKeyDictionary[Engine, threading.local] = weakref.WeakKeyDictionary()
_READERS_LOCK = threading.Lock()


class Prepared:
    """One statement compiled for one dialect (and one set of inserted columns)."""

    # The compiled statement is read here and not kept: a cache of hundreds of filter
    # statements would otherwise hold some 100,000 objects for every full collection
    # of the garbage collector to walk, a pause for every thread.
    __slots__ = ("defaults", "expanding", "named", "names", "processors", "sql")

    def __init__(self, stmt: ClauseElement, engine: Engine,
                 column_keys: Sequence[str] | None = None):
        compiled = stmt.compile(dialect=engine.dialect,
                                column_keys=list(column_keys) if column_keys else None)
        assert isinstance(compiled, SQLCompiler)
        self.sql = compiled.string
        self.names = compiled.positiontup  # None for named paramstyles (psycopg)
        self.named = self.names is None
        self.expanding = {compiled.bind_names[b] for b in compiled.binds.values() if b.expanding}
        # Value converters SQLAlchemy would apply (JSON documents and paths, say).
        self.processors: dict[str, Callable[[Any], Any]] = {
            k: v for k, v in compiled._bind_processors.items() if callable(v)}
        # Values the statement carries itself (literals, JSON paths), resolved once.
        self.defaults: Params = dict(compiled.construct_params({}, _check=False))

    def render(self, values: Params) -> tuple[str, Any]:
        """The SQL text and DBAPI parameters for these values."""
        params: Params = {**self.defaults, **values}
        for name, process in self.processors.items():
            value = params.get(name)
            if value is not None:
                params[name] = process(value)
        sql = self.sql
        for name in self.expanding:
            items = list(params.pop(name) or ())
            if not items:
                raise ValueError(f"empty IN list for {name}")
            if self.named:
                keys = [f"{name}_{i}" for i in range(len(items))]
                params.update(zip(keys, items, strict=True))
                marks = ", ".join(f"%({k})s" for k in keys)
            else:
                params[name] = items
                marks = ", ".join("?" * len(items))
            sql = sql.replace(_POSTCOMPILE.format(name), marks)
        if self.named:
            return sql, params
        args: list[Any] = []
        for n in self.names or ():
            if n in self.expanding:
                args.extend(params[n])
            else:
                args.append(params[n])
        return sql, args


class Lean:
    """Prepared statements for one engine; one persistent read connection per thread
    on SQLite."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self.dialect = engine.dialect
        self._prepared: dict[tuple[Any, ...], Prepared] = {}
        self._keep: dict[int, ClauseElement] = {}
        with _READERS_LOCK:
            self._local = _READERS.setdefault(engine, threading.local())

    def prepared(self, stmt: ClauseElement, params: Params | None = None,
                 static: bool = True) -> Prepared:
        """The compiled form of `stmt`; `static` ones (module constants, kept for the
        life of the process) are cached. Statements made per request are not: their
        number is up to clients."""
        keys = None
        if getattr(stmt, "is_dml", False) and not getattr(stmt, "is_delete", False) and params:
            keys = tuple(sorted(params))
        if not static:
            return Prepared(stmt, self.engine, keys)
        key = (id(stmt), keys)
        found = self._prepared.get(key)
        if found is None:
            self._keep[id(stmt)] = stmt  # the id stays valid while the entry lives
            found = self._prepared[key] = Prepared(stmt, self.engine, keys)
        return found

    @contextmanager
    def cursor(self) -> Iterator[Any]:
        """A DBAPI cursor in autocommit mode: each statement reads committed data."""
        if self.sqlite:
            conn = getattr(self._local, "conn", None)
            if conn is None:
                # Checked out for good: the pool is sized for one connection per thread.
                conn = self._local.conn = self.engine.raw_connection()
            cur = conn.cursor()
            try:
                yield cur
            finally:
                cur.close()
            return
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            try:
                yield cur
            finally:
                cur.close()
        finally:
            raw.rollback()
            raw.close()

    def all(self, cur: Any, stmt: ClauseElement | Prepared, values: Params) -> list[Any]:
        p = stmt if isinstance(stmt, Prepared) else self.prepared(stmt)
        sql, args = p.render(values)
        cur.execute(sql, args)
        return list(cur.fetchall())

    def one(self, cur: Any, stmt: ClauseElement | Prepared, values: Params) -> Any:
        p = stmt if isinstance(stmt, Prepared) else self.prepared(stmt)
        sql, args = p.render(values)
        cur.execute(sql, args)
        return cur.fetchone()

    @contextmanager
    def transaction(self, raw: Any = None) -> Iterator[LeanConnection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite) on `raw` or a pooled connection."""
        owned = raw is None
        if raw is None:
            raw = self.engine.raw_connection()
        conn = LeanConnection(self, raw)
        try:
            if self.sqlite:
                make_way(self.engine)
                raw.cursor().execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                raw.rollback()
                raise
            raw.commit()
        finally:
            conn.close()
            if owned:
                raw.close()


class LeanResult:
    """The rows of one statement, with the accessors the store uses."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[Any], rowcount: int):
        self.rows = rows
        self.rowcount = rowcount

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def scalar_one(self) -> Any:
        if len(self.rows) != 1:
            raise LookupError(f"expected one row, got {len(self.rows)}")
        return self.rows[0][0]

    def scalars(self) -> Iterator[Any]:
        return (r[0] for r in self.rows)

    def all(self) -> list[Any]:
        return self.rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)


class LeanConnection:
    """The slice of SQLAlchemy's Connection the store uses, on a DBAPI connection."""

    _savepoints = itertools.count(1)

    def __init__(self, lean: Lean, raw: Any):
        self.lean = lean
        self.raw = raw
        self.dialect = lean.dialect
        self.cur = raw.cursor()

    def execute(self, stmt: ClauseElement, params: Params | list[Params] | None = None,
                *, static: bool = True) -> LeanResult:
        cur = self.cur
        if isinstance(params, list):
            if not params:
                return LeanResult([], 0)
            prepared = self.lean.prepared(stmt, params[0], static)
            rendered = [prepared.render(p) for p in params]
            cur.executemany(rendered[0][0], [args for _, args in rendered])
            return LeanResult([], cur.rowcount)
        prepared = self.lean.prepared(stmt, params, static)
        sql, args = prepared.render(params or {})
        cur.execute(sql, args)
        rows = list(cur.fetchall()) if cur.description else []
        return LeanResult(rows, cur.rowcount)

    @contextmanager
    def begin_nested(self) -> Iterator[None]:
        """A savepoint: what fails inside is undone alone."""
        name = f"sp{next(self._savepoints)}"
        self.cur.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException as exc:
            try:
                self.cur.execute(f"ROLLBACK TO SAVEPOINT {name}")
                self.cur.execute(f"RELEASE SAVEPOINT {name}")
            except Exception:
                # The transaction is gone with its savepoints (SQLite rolls it back when
                # it interrupts a write): the error that caused it is the one to report.
                raise exc from None
            raise
        self.cur.execute(f"RELEASE SAVEPOINT {name}")

    def close(self) -> None:
        self.cur.close()


def json_value(value: Any) -> Any:
    """A JSON column as the DBAPI returns it: text on SQLite, decoded on PostgreSQL."""
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return value
