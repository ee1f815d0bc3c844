"""The lean read path: statements compiled once, run on a bare DBAPI cursor.

SQLAlchemy's execution machinery (events, result proxies, parameter processing)
costs about 60 us per statement here, against 4 us for the DBAPI call itself, which
made it most of the cost of a GET. Reads on the hot paths (a resource by id, its
groups, search count and page) therefore run through `Lean`: each statement is
compiled once per dialect by SQLAlchemy, then executed directly. Writes keep the full
Connection API: they are dominated by the commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


class Prepared:
    """One statement compiled for one dialect."""

    __slots__ = ("compiled", "names", "processors", "sql")

    def __init__(self, stmt: ClauseElement, engine: Engine):
        compiled = stmt.compile(dialect=engine.dialect)
        assert isinstance(compiled, SQLCompiler)
        self.compiled = compiled
        self.sql = compiled.string
        self.names = self.compiled.positiontup  # None for named paramstyles (psycopg)
        # Value converters SQLAlchemy would apply (JSON paths on SQLite, for instance).
        self.processors: dict[str, Callable[[Any], Any]] = {
            k: v for k, v in compiled._bind_processors.items() if callable(v)}

    def args(self, values: dict[str, Any]) -> Any:
        params: dict[str, Any] = dict(self.compiled.construct_params(values))
        for name, process in self.processors.items():
            if name in params and params[name] is not None:
                params[name] = process(params[name])
        if self.names is not None:
            return [params[n] for n in self.names]
        return params


class Lean:
    """Runs prepared statements; one persistent read connection per thread on SQLite."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self._prepared: dict[int, Prepared] = {}
        self._local = threading.local()

    def prepared(self, stmt: ClauseElement) -> Prepared:
        found = self._prepared.get(id(stmt))
        if found is None:
            found = self._prepared[id(stmt)] = Prepared(stmt, self.engine)
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

    def all(self, cur: Any, stmt: ClauseElement, values: dict[str, Any]) -> list[Any]:
        p = self.prepared(stmt)
        cur.execute(p.sql, p.args(values))
        return list(cur.fetchall())

    def one(self, cur: Any, stmt: ClauseElement, values: dict[str, Any]) -> Any:
        p = self.prepared(stmt)
        cur.execute(p.sql, p.args(values))
        return cur.fetchone()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def json_value(value: Any) -> Any:
    """A JSON column as the DBAPI returns it: text on SQLite, decoded on PostgreSQL."""
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return value
