"""Crash safety: `scimsync worker` processes SIGKILLed between a request and the write
of its link, again and again, leave every target exactly equal to the directory."""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from conftest import Scim
from downstream import PEER_TOKEN, Peer, converge
from scimsync.store.tables import dead_letters, directories, links, retries, targets
from scimsync.store.targets import Targets

T = targets.c


class Workers:
    """`scimsync worker` processes on the test database, killed and started at will."""

    def __init__(self, engine: Engine, logs: Path):
        url = engine.url.render_as_string(hide_password=False)
        self.env = {**os.environ, "SCIMSYNC_DATABASE_URL": url,
                    "SCIMSYNC_LEASE_SECONDS": "1", "SCIMSYNC_LANES": "4"}
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        with open(self.logs / f"worker-{self.started}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "scimsync.cli", "worker"],
                                    env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.procs.remove(proc)

    def kill_all(self) -> None:
        for proc in list(self.procs):
            self.kill(proc)


@pytest.fixture
def workers(engine: Engine, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(engine, tmp_path)
    yield w
    w.kill_all()


def wait_for(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def caught_up(engine: Engine, tids: list[str]) -> bool:
    """Every target has consumed its journal, finished its bulk work, waits for no retry."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(T.cursor, T.bulk, directories.c.journal_seq)
                            .join(directories, directories.c.id == T.directory_id)
                            .where(T.id.in_(tids))).all()
        waiting = conn.execute(sa.select(sa.func.count()).select_from(retries)
                               .where(retries.c.target_id.in_(tids))).scalar_one()
    return not waiting and all(r.cursor >= r.journal_seq and r.bulk is None for r in rows)


def add_target(engine: Engine, scim: Scim, peer: Peer, **profile: Any) -> str:
    t = Targets(engine).add(scim.directory_id, f"app-{secrets.token_hex(3)}", "scim", {
        "url": peer.base, "auth": {"type": "bearer", "token": PEER_TOKEN},
        "profile": profile})
    return str(t["id"])


def directory_state(scim: Scim) -> tuple[dict[str, Any], dict[str, set[str]]]:
    """The directory as it is: users by id, and each group's user members."""
    users = {u["id"]: u for u in scim.get("/Users?count=1000").json()["Resources"]}
    groups = {g["id"]: {m["value"] for m in g.get("members") or []}
              for g in scim.get("/Groups?count=1000").json()["Resources"]}
    return users, groups


def differences(peer: Peer, mode: str, users: dict[str, Any], groups: dict[str, set[str]],
                ever: set[str]) -> list[str]:
    """How the application differs from the desired state; empty when exact."""
    remote = peer.get("Users", count="1000")["Resources"]
    out = [f"duplicate account for {ext}" for ext, n in
           Counter(u.get("externalId") for u in remote).items() if n > 1]
    accounts = {u.get("externalId"): u for u in remote}
    for uid, u in users.items():
        a = accounts.get(uid)
        if a is None:
            out.append(f"missing account for {u['userName']}")
        elif (a.get("active"), a.get("title")) != (u.get("active", True), u.get("title")):
            out.append(f"stale account for {u['userName']}: {a.get('active')}, "
                       f"{a.get('title')!r} instead of {u.get('active')}, {u.get('title')!r}")
    for ext, a in accounts.items():
        if ext in users:
            continue
        if ext not in ever:
            out.append(f"an account that is no identity's: {a['userName']}")
        elif mode == "delete" or a.get("active") is not False:
            out.append(f"a deleted identity's account left {'active' if a.get('active') else 'in'}"
                       f" the app: {a['userName']}")
    remote_groups = {g.get("externalId"): g for g in peer.get("Groups", count="1000")["Resources"]}
    for gid, members in groups.items():
        g = remote_groups.get(gid)
        if g is None:
            out.append(f"missing group {gid}")
            continue
        want = {accounts[m]["id"] for m in members if m in accounts}
        have = {m["value"] for m in g.get("members") or []}
        if have != want:
            out.append(f"group {g['displayName']}: {len(have - want)} extra, "
                       f"{len(want - have)} missing members")
    return out


class Churn:
    """Joiners, movers and leavers through the SCIM API, at random."""

    def __init__(self, scim: Scim, rng: random.Random, users: list[str], groups: list[str]):
        self.scim, self.rng = scim, rng
        self.live = list(users)
        self.ever = set(users)
        self.groups = groups
        self.group_of = {u: groups[i % len(groups)] for i, u in enumerate(users)}
        self.made = 0

    def members(self, gid: str, op: str, uid: str) -> None:
        path = "members" if op == "add" else f'members[value eq "{uid}"]'
        ops = [{"op": op, "path": path, **({"value": [{"value": uid}]} if op == "add" else {})}]
        r = self.scim.patch(f"/Groups/{gid}", ops)
        assert r.status_code in (200, 204), r.text

    def step(self) -> None:
        rng, scim = self.rng, self.scim
        roll = rng.random()
        if roll < 0.12 or len(self.live) < 10:
            self.made += 1
            uid = scim.user(f"new{self.made:03d}-{secrets.token_hex(2)}@x.test",
                            title="joiner")["id"]
            self.live.append(uid)
            self.ever.add(uid)
            gid = rng.choice(self.groups)
            self.members(gid, "add", uid)
            self.group_of[uid] = gid
            return
        uid = rng.choice(self.live)
        if roll < 0.22:
            assert scim.delete(f"/Users/{uid}").status_code == 204
            self.live.remove(uid)
            self.group_of.pop(uid, None)
        elif roll < 0.45:
            self.replace(uid, "title", f"title {rng.randrange(1000)}")
        elif roll < 0.6:
            self.replace(uid, "active", False)
        elif roll < 0.75:
            self.replace(uid, "active", True)
        else:  # a mover: from one group to another
            old, new = self.group_of.get(uid), rng.choice(self.groups)
            if old is not None and old != new:
                self.members(old, "remove", uid)
            if old != new:
                self.members(new, "add", uid)
            self.group_of[uid] = new

    def replace(self, uid: str, path: str, value: Any) -> None:
        r = self.scim.patch(f"/Users/{uid}", [{"op": "replace", "path": path, "value": value}])
        assert r.status_code in (200, 204), r.text


def open_dead_letters(engine: Engine, tids: list[str]) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(dead_letters.c.resource_id, dead_letters.c.error)
                                 .where(dead_letters.c.target_id.in_(tids),
                                        dead_letters.c.status == "open")).all())


@pytest.mark.slow
def test_workers_killed_again_and_again_leave_every_target_exact(
        engine: Engine, scim: Scim, peer_root: str, backend: str, workers: Workers) -> None:
    """SIGKILL a worker every one to two and a half seconds (one worker on SQLite, three sharing
    PostgreSQL) while people join, change, are deactivated and reactivated, leave and
    move between groups; then let a worker finish. Both targets, one deactivating and
    one deleting leavers, four requests in flight, end exactly equal to the directory."""
    rng = random.Random(20)
    users = [scim.user(f"p{i:03d}@x.test", title="t0")["id"] for i in range(40)]
    groups = [scim.group(f"G{i}", users[i::4])["id"] for i in range(4)]
    peers = {mode: Peer(f"{peer_root}/t{secrets.token_hex(4)}")
             for mode in ("deactivate", "delete")}
    # Leavers pile up while the initial load is killed again and again: past the
    # deletion guard's share, which would (rightly) hold the target for a person.
    tids = {mode: add_target(engine, scim, p, deprovision=mode, concurrency=4,
                             max_deprovision_percent=100)
            for mode, p in peers.items()}
    churn = Churn(scim, rng, users, groups)
    for _ in range(1 if backend == "sqlite" else 3):
        workers.start()
    kills = 0
    next_kill = time.monotonic() + rng.uniform(1.0, 2.5)
    while kills < 14:
        churn.step()
        time.sleep(0.03)
        if time.monotonic() >= next_kill:
            workers.kill(rng.choice(workers.procs))
            workers.start()
            kills += 1
            next_kill = time.monotonic() + rng.uniform(1.0, 2.5)
    wait_for(lambda: caught_up(engine, list(tids.values())), 90, "workers did not catch up")
    workers.kill_all()
    assert open_dead_letters(engine, list(tids.values())) == []
    want_users, want_groups = directory_state(scim)
    for mode, peer in peers.items():
        assert differences(peer, mode, want_users, want_groups, churn.ever) == [], mode


def accounts_of(peer: Peer, ids: list[str]) -> dict[str, Any]:
    return {u["externalId"]: u for u in peer.get("Users", count="1000")["Resources"]
            if u.get("externalId") in ids}


def linked(engine: Engine, tid: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.resource_id: r for r in conn.execute(
            sa.select(links).where(links.c.target_id == tid)).all()}


def test_leavers_deleted_while_their_accounts_were_unlinked_are_deprovisioned(
        engine: Engine, scim: Scim, peer: Peer, workers: Workers) -> None:
    """The issue's reproduction: a rate-limited target, a worker killed once some of ten
    new accounts exist but before their links are written, the ten deleted meanwhile.
    No account is left active."""
    tid = add_target(engine, scim, peer, rate_limit=4, concurrency=2)
    converge(engine, tid)
    ids = [scim.user(f"brief{i}@x.test")["id"] for i in range(10)]
    proc = workers.start()
    wait_for(lambda: len(accounts_of(peer, ids)) >= 3, 30, "no account was created")
    workers.kill(proc)
    made = accounts_of(peer, ids)
    with_remote = {rid for rid, r in linked(engine, tid).items() if r.remote_id}
    assert set(made) - with_remote, "every account was linked: the kill came too late"
    for uid in ids:
        assert scim.delete(f"/Users/{uid}").status_code == 204
    workers.start()
    wait_for(lambda: caught_up(engine, [tid]), 60, "the worker did not catch up")
    workers.kill_all()
    after = accounts_of(peer, ids)
    assert set(after) == set(made)  # nothing created twice, nothing created late
    assert [u["userName"] for u in after.values() if u["active"] is not False] == []
    assert {r.intent for r in linked(engine, tid).values()} <= {None}


@pytest.mark.parametrize("undone", ["deactivations", "memberships"])
def test_changes_undone_after_a_kill_are_undone_in_the_app(
        engine: Engine, scim: Scim, peer: Peer, workers: Workers, undone: str) -> None:
    """Deactivations (or new memberships) applied just before a kill, then undone in the
    directory: the links still held the state before, so the undo looked applied. The
    app ends with everyone active and no extra member."""
    ids = [scim.user(f"undo{i}@x.test")["id"] for i in range(10)]
    keep = scim.user("keep@x.test")["id"]
    extra = scim.user("extra@x.test")["id"]
    groups = [scim.group(f"U{i}", [keep])["id"] for i in range(8)]
    tid = add_target(engine, scim, peer, rate_limit=4, concurrency=2)
    converge(engine, tid)
    remote_keep, remote_extra = peer.users()[keep]["id"], peer.users()[extra]["id"]

    def inactive() -> int:
        return sum(u["active"] is False for u in accounts_of(peer, ids).values())

    def with_extra() -> int:
        return sum(remote_extra in {m["value"] for m in g.get("members") or []}
                   for g in peer.groups().values())

    if undone == "deactivations":
        for uid in ids:
            scim.patch(f"/Users/{uid}", [{"op": "replace", "path": "active", "value": False}])
    else:
        for gid in groups:
            scim.patch(f"/Groups/{gid}", [{"op": "add", "path": "members",
                                          "value": [{"value": extra}]}])
    proc = workers.start()
    wait_for(lambda: (inactive() if undone == "deactivations" else with_extra()) >= 2, 30,
             "nothing was applied")
    workers.kill(proc)
    # The kill came between requests and the links that record them.
    assert {r.intent for r in linked(engine, tid).values()} - {None}
    if undone == "deactivations":
        for uid in ids:
            scim.patch(f"/Users/{uid}", [{"op": "replace", "path": "active", "value": True}])
    else:
        for gid in groups:
            scim.patch(f"/Groups/{gid}", [{"op": "remove",
                                          "path": f'members[value eq "{extra}"]'}])
    workers.start()
    wait_for(lambda: caught_up(engine, [tid]), 60, "the worker did not catch up")
    workers.kill_all()
    assert (inactive(), with_extra()) == (0, 0)
    for gid in groups:
        assert [m["value"] for m in peer.groups()[gid].get("members") or []] == [remote_keep]
    assert {r.intent for r in linked(engine, tid).values()} <= {None}
