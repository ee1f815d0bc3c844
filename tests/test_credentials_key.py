"""The credentials key: one place per database, never a fresh key over stored credentials,
and a target whose credentials cannot be opened shows as failing everywhere."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine
from starlette.testclient import TestClient

from conftest import USER, Scim
from downstream import PEER_TOKEN, Peer
from scimsync import crypto
from scimsync.api.app import create_app
from scimsync.crypto import SETTING_FILE, SETTING_KEY, KeyMismatch, KeyNotConfigured, locate
from scimsync.store.directories import Directories
from scimsync.store.engine import is_postgres, make_engine
from scimsync.store.targets import Targets
from scimsync.sync.engine import Reconciler
from scimsync.sync.work import RunResult
from scimsync.sync.worker import Worker

CLI = [sys.executable, "-m", "scimsync.cli"]


def scimsync(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it: in `cwd`, with no key setting unless given."""
    clean = {k: v for k, v in os.environ.items()
             if k not in (SETTING_KEY, SETTING_FILE, "SCIMSYNC_DATABASE_URL")}
    return subprocess.run([*CLI, *args], cwd=cwd, env={**clean, **env}, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """A SQLite database in its own folder, a directory in it, and two other folders."""
    data = tmp_path / "data"
    for folder in ("data", "here", "there"):
        (tmp_path / folder).mkdir()
    url = f"sqlite:///{data / 'hub.db'}"
    made = scimsync(tmp_path / "here", "directories", "create", "acme", "--json",
                    "--database", url)
    assert made.returncode == 0, made.stderr
    yield tmp_path, url, json.loads(made.stdout)


def add_target(cwd: Path, url: str, directory: str, name: str, peer: Peer,
               **env: str) -> subprocess.CompletedProcess[str]:
    return scimsync(cwd, "targets", "add", directory, name, "--url", peer.base,
                    "--bearer-token-env", "TOKEN", "--json", "--database", url,
                    TOKEN=PEER_TOKEN, **env)


# --- where the key is ---------------------------------------------------------------


def test_the_key_of_a_sqlite_file_is_beside_it_whatever_the_working_directory() -> None:
    loc = locate("sqlite:///relative/hub.db", env={})
    assert loc is not None and loc.path == Path("relative/hub.db.key").resolve()
    assert loc.setting == crypto.BESIDE_DATABASE


def test_a_configured_key_wins_over_the_default_location(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    assert locate("sqlite:///hub.db", env={SETTING_KEY: key}) == \
        crypto.KeyLocation(SETTING_KEY, value=key)
    loc = locate("sqlite:///hub.db", env={SETTING_FILE: str(tmp_path / "k")})
    assert loc is not None and (loc.setting, loc.path) == (SETTING_FILE, tmp_path / "k")


@pytest.mark.parametrize("url", ["postgresql+psycopg://u@db/hub", "sqlite://",
                                 "sqlite:///:memory:"])
def test_a_database_without_a_file_has_no_default_key(url: str) -> None:
    assert locate(url, env={}) is None


def test_the_cli_in_another_working_directory_uses_the_same_key(
        hub: tuple[Path, str, dict[str, Any]], peer: Peer) -> None:
    root, url, d = hub
    added = add_target(root / "here", url, d["id"], "app", peer)
    assert added.returncode == 0, added.stderr
    key = root / "data" / "hub.db.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # A user arrives over SCIM; `sync`, run from elsewhere, must open the bearer token.
    db = make_engine(url)
    with TestClient(create_app(engine=db)) as http:
        r = http.post(f"{d['scim_path']}/Users", json={"schemas": [USER], "userName": "ann"},
                      headers={"Authorization": f"Bearer {d['token']}"})
        assert r.status_code == 201, r.text
    db.dispose()
    synced = scimsync(root / "there", "sync", "app", "--user", r.json()["id"], "--json",
                      "--database", url)
    assert synced.returncode == 0, synced.stderr
    assert r.json()["id"] in peer.users()
    assert sorted(p.name for p in (root / "data").iterdir() if p.suffix == ".key") == \
        ["hub.db.key"]
    assert not list((root / "here").iterdir()) and not list((root / "there").iterdir())


def test_a_missing_key_with_stored_credentials_is_refused_and_not_recreated(
        hub: tuple[Path, str, dict[str, Any]], peer: Peer) -> None:
    root, url, d = hub
    assert add_target(root / "here", url, d["id"], "app", peer).returncode == 0
    key = root / "data" / "hub.db.key"
    key.rename(root / "key-elsewhere")
    refused = add_target(root / "there", url, d["id"], "second", peer)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert str(key) in refused.stderr and SETTING_FILE in refused.stderr
    assert "none is created" in refused.stderr
    assert not key.exists()
    plan = scimsync(root / "there", "plan", "app", "--database", url)
    assert plan.returncode == 2 and str(key) in plan.stderr and "Traceback" not in plan.stderr
    assert not key.exists()
    listed = json.loads(scimsync(root, "targets", "list", "--json", "--database", url).stdout)
    assert [t["name"] for t in listed] == ["app"]  # nothing was added
    # Pointing the setting at the key where it now is repairs everything.
    moved = {SETTING_FILE: str(root / "key-elsewhere")}
    assert add_target(root / "there", url, d["id"], "second", peer, **moved).returncode == 0


def test_a_wrong_key_with_stored_credentials_is_refused(
        hub: tuple[Path, str, dict[str, Any]], peer: Peer) -> None:
    root, url, d = hub
    assert add_target(root / "here", url, d["id"], "app", peer).returncode == 0
    before = (root / "data" / "hub.db.key").read_bytes()
    wrong = {SETTING_KEY: Fernet.generate_key().decode()}
    refused = add_target(root / "here", url, d["id"], "second", peer, **wrong)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "not the key they were encrypted with" in refused.stderr
    assert SETTING_KEY in refused.stderr
    assert (root / "data" / "hub.db.key").read_bytes() == before


# --- on both backends ----------------------------------------------------------------


def test_storing_credentials_under_a_key_that_cannot_open_the_others_is_refused(
        engine: Engine, scim: Scim, peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    targets = Targets(engine)
    settings = {"url": peer.base, "auth": {"type": "bearer", "token": PEER_TOKEN}}
    targets.add(scim.directory_id, "first", "scim", settings)
    monkeypatch.setenv(SETTING_KEY, Fernet.generate_key().decode())
    with pytest.raises(KeyMismatch, match=SETTING_KEY):
        targets.add(scim.directory_id, "second", "scim", settings)
    assert [t["name"] for t in targets.list(scim.directory_id)] == ["first"]


def test_postgresql_stores_credentials_only_with_a_configured_key(
        engine: Engine, scim: Scim, peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    if not is_postgres(engine):
        pytest.skip("a SQLite file has a default key location")
    monkeypatch.delenv(SETTING_FILE, raising=False)
    monkeypatch.delenv(SETTING_KEY, raising=False)
    with pytest.raises(KeyNotConfigured, match=SETTING_FILE):
        Targets(engine).add(scim.directory_id, "app", "scim", {
            "url": peer.base, "auth": {"type": "bearer", "token": PEER_TOKEN}})
    assert Targets(engine).list(scim.directory_id) == []


@pytest.fixture
def locked(engine: Engine, scim: Scim, peer: Peer, monkeypatch: pytest.MonkeyPatch,
           tmp_path: Path) -> tuple[dict[str, Any], RunResult]:
    """A target run once by a worker that was started with another key."""
    t = Targets(engine).add(scim.directory_id, "locked", "scim", {
        "url": peer.base, "auth": {"type": "bearer", "token": PEER_TOKEN}})
    scim.user("locked@x.test")
    with monkeypatch.context() as m:
        other = tmp_path / "other.key"
        other.write_bytes(Fernet.generate_key())
        m.setenv(SETTING_FILE, str(other))
        return t, Reconciler(engine).run(t["id"])


def test_undecryptable_credentials_are_a_failure_of_the_target_with_backoff(
        engine: Engine, locked: tuple[dict[str, Any], RunResult], tmp_path: Path) -> None:
    t, result = locked
    assert result.error is not None and str(tmp_path / "other.key") in result.error
    row = Targets(engine).row(t["id"])
    assert row.failures == 1 and row.last_error == result.error and row.retry_at is not None
    assert t["id"] not in Worker(engine).due()  # backing off, not a hot loop


def test_a_target_whose_credentials_cannot_be_opened_shows_as_failing(
        engine: Engine, scim: Scim, locked: tuple[dict[str, Any], RunResult], client: Any,
        directories: Directories) -> None:
    t, result = locked
    url = engine.url.render_as_string(hide_password=False)
    listed = subprocess.run([*CLI, "targets", "list", "--json", "--directory",
                             scim.directory_id], capture_output=True, text=True, timeout=60,
                            check=True, env={**os.environ, "SCIMSYNC_DATABASE_URL": url})
    mine = next(x for x in json.loads(listed.stdout) if x["id"] == t["id"])
    assert (mine["status"], mine["failures"], mine["last_error"]) == \
        ("active", 1, result.error)
    assert mine["retry_at"] is not None

    admin = {"Authorization": f"Bearer {directories.create_token(None, 'ops')['token']}"}
    shown = client.get(f"/admin/targets/{t['id']}", headers=admin).json()
    assert {k: shown[k] for k in ("status", "failures", "last_error", "retry_at")} == \
        {k: mine[k] for k in ("status", "failures", "last_error", "retry_at")}
    assert shown["last_applied"] is None

    metrics = client.get("/metrics", headers=admin).text
    ids = f'directory_id="{scim.directory_id}",target_id="{t["id"]}"'
    assert f"scimsync_target_error{{{ids}}} 1.0" in metrics
    assert f"scimsync_target_retry_timestamp_seconds{{{ids}}}" in metrics
    assert f'scimsync_target_status{{directory_id="{scim.directory_id}",status="active",' \
           f'target_id="{t["id"]}"}} 1.0' in metrics
    assert f'scimsync_target_status{{directory_id="{scim.directory_id}",' \
           f'status="quarantined",target_id="{t["id"]}"}} 0.0' in metrics
    failures = [line for line in metrics.splitlines()
                if line.startswith("scimsync_target_consecutive_failures{") and t["id"] in line]
    assert len(failures) == 1 and failures[0].endswith(" 1.0")


def test_the_people_table_shows_the_failure_and_the_next_retry(
        engine: Engine, scim: Scim, locked: tuple[dict[str, Any], RunResult]) -> None:
    url = engine.url.render_as_string(hide_password=False)
    shown = subprocess.run([*CLI, "targets", "show", locked[0]["id"]], capture_output=True,
                           text=True, timeout=60, check=True,
                           env={**os.environ, "SCIMSYNC_DATABASE_URL": url,
                                "COLUMNS": "200"}).stdout
    fields = {line.split("│")[1].strip(): line.split("│")[2].strip()
              for line in shown.splitlines() if line.count("│") == 3}
    assert fields["failures"] == "1" and fields["retry_at"].endswith("Z")
    assert fields["last_error"].startswith("target credentials cannot be decrypted")


def test_a_target_that_applied_shows_when_in_metrics_and_show(
        engine: Engine, scim: Scim, peer: Peer, client: Any, directories: Directories) -> None:
    t = Targets(engine).add(scim.directory_id, "fine", "scim", {
        "url": peer.base, "auth": {"type": "bearer", "token": PEER_TOKEN}})
    scim.user("fine@x.test")
    assert Reconciler(engine).run(t["id"]).error is None
    shown = Targets(engine).show(t["id"])
    assert shown["failures"] == 0 and shown["last_applied"] is not None
    admin = {"Authorization": f"Bearer {directories.create_token(None, 'ops')['token']}"}
    metrics = client.get("/metrics", headers=admin).text
    ids = f'directory_id="{scim.directory_id}",target_id="{t["id"]}"'
    assert f"scimsync_target_last_applied_timestamp_seconds{{{ids}}}" in metrics
    assert f"scimsync_target_error{{{ids}}} 0.0" in metrics
