"""Database engines: SQLite (WAL, synchronous=FULL) or PostgreSQL, and schema upgrades."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, inspect, make_url
from sqlalchemy.engine import Connection, ExceptionContext

from scimsync.errors import Busy
from scimsync.store import timeouts
from scimsync.store.contention import is_contention, make_way

DEFAULT_URL = "sqlite:///./scimsync.db"

log = logging.getLogger("scimsync.store")
_MIGRATIONS = Path(__file__).with_name("migrations")
_upgrade_lock = threading.Lock()


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain `postgresql://` URLs."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://") :]
    return url


def make_engine(url: str = DEFAULT_URL, **kwargs: Any) -> Engine:
    """An engine configured for scimsync's durability and concurrency rules."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        _private_file(url)
        engine = create_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={"check_same_thread": False, "timeout": 30},
            # Enough connections for every thread that may run a query at once: an
            # overflow connection is opened and closed per request, which is slow.
            pool_size=kwargs.pop("pool_size", 48),
            max_overflow=kwargs.pop("max_overflow", 16),
            **kwargs,
        )
        _configure_sqlite(engine)
        engine.__class__ = _WritesFirst
        _map_contention(engine)
        timeouts.install(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    engine = create_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_pre_ping=True,
        **kwargs,
    )
    _map_contention(engine)
    timeouts.install(engine)
    return engine


class _WritesFirst(Engine):
    """SQLite: `engine.begin()` opens a write transaction, so it takes the write lock up
    front and waits for it. A deferred transaction that reads and then writes fails at
    once (SQLITE_BUSY_SNAPSHOT) if another writer committed in between: the admin API
    answered 500 that way while a worker recorded deliveries. Reads use `connect()`."""

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.connect() as conn:
            conn.execution_options(write=True)
            with conn.begin():
                yield conn


def _map_contention(engine: Engine) -> None:
    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        # A conflict that outlived the busy timeout, or a PostgreSQL deadlock victim:
        # a typed 503 the callers and the HTTP layer know, not a driver error.
        if is_contention(context.original_exception):
            raise Busy() from context.sqlalchemy_exception


def _private_file(url: str) -> None:
    """Create the SQLite file 0600 before SQLite would (0644 under the usual umask):
    it holds token hashes, sealed credentials and everyone's records. SQLite gives
    the -wal and -shm files the database file's mode."""
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            log.warning("the database file %s is readable by others (mode %o): "
                        "chmod 600 it and its -wal and -shm files", path, mode)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN is ours.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        # LIKE must respect caseExact attributes; case-insensitive ones are lower()ed.
        cur.execute("PRAGMA case_sensitive_like=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that later
        # upgrades to a writer can fail with SQLITE_BUSY instead of waiting.
        options = conn.get_execution_options()
        if options.get("write", False):
            make_way(conn.engine)
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif not options.get("autocommit", False):
            conn.exec_driver_sql("BEGIN")


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def upgrade(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration (idempotent)."""
    from alembic import command
    from alembic.config import Config

    with _upgrade_lock, engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.exec_driver_sql("SELECT version_num FROM alembic_version").first()
        return None if row is None else str(row[0])
