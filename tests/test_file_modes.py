"""The SQLite database and its WAL and shared-memory files are private to their owner."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from scimsync.store.directories import Directories
from scimsync.store.engine import make_engine, upgrade


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_and_its_wal_and_shm_files_are_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, which would give 0644
    try:
        db = tmp_path / "fresh.db"
        engine = make_engine(f"sqlite:///{db}")
        upgrade(engine)
        Directories(engine).create("private")
        with engine.connect() as conn:  # the WAL and shared memory exist while open
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
            assert all(f.exists() for f in files)
            assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        engine.dispose()
    finally:
        os.umask(old)


def test_an_existing_readable_database_is_kept_but_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "loose.db"
    db.touch(mode=0o644)
    os.chmod(db, 0o644)
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    engine.dispose()
    assert _mode(db) == 0o644  # the operator's file: not changed behind their back
    assert any("readable by others" in r.getMessage() for r in caplog.records)
