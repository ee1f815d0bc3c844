"""Real SCIM applications downstream: initial load and lag of everyday changes.

Usage (from the repository root, after `make install`):

    .venv/bin/python bench/apps_bench.py --apps canaille,django-scim2,better-auth \
        --users 1000 --groups 10 --rate 5 --seconds 30

For each application of docs/apps.md (Canaille 0.3.6, django-scim2 0.23.0, Better
Auth 1.7.5's SCIM plugin), started on loopback as the tests start it
(tests/apps/launchers.py), the script seeds a fresh SQLite directory with `--users`
users and `--groups` groups (`--members` members each; every user has a given and a
family name and a unique address on example.com), runs `scimsync serve` with its
embedded worker, adds a SCIM target for the app with the profile scimsync ships for
it (`profile: {app: NAME}`), and measures:

1. The initial load: from the target's creation until the app's own API lists every
   user (and every group), counted with spaced polls (bench/_common.py: a count
   costs the app at most a fifth of its time), with the CPU seconds the hub and the
   app used meanwhile: an app near one core's worth is bound by its own CPU.
2. Lag of incremental changes: once loaded, `--rate` lifecycle events a second for
   `--seconds` through the directory's SCIM API, in turn a joiner (a new user), a
   mover (new family name, and from one group to another: three requests) and a
   leaver (`active` false). When the target's backlog is empty, lag per phase as
   scimsync records it (`scimsync lag --json`), and the deliveries per phase and
   outcome (`ok`, `dead`, `unverified`, ...) from the deliveries table. At the end,
   the users the app holds, and how many of its userNames it holds twice or more.

A table is printed and the results written to `--out` (default
bench/apps-<date>-<users>.json).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from _common import (  # puts src/ on sys.path
    CLI,
    CORE,
    PATCH,
    ROOT,
    Background,
    Hub,
    group_members,
    status_mb,
    wait_loaded,
    write_json,
)

sys.path.insert(0, str(ROOT / "tests"))
from apps.launchers import NEEDS, STARTERS
from apps.launchers import App as RealApp

# Each app is served by the profile scimsync ships for it (src/scimsync/profiles):
# Canaille's `count: omit`, `match: [userName]` and members named by userName,
# django-scim2's members by PATCH removed by value list, Better Auth's lookups one
# value at a time. What a profile cannot say is met by the users seeded here: a name,
# and a unique address on a domain Canaille accepts.
PROFILES: dict[str, dict[str, Any]] = {name: {"app": name} for name in STARTERS}


def user_body(i: int) -> dict[str, Any]:
    """The i-th user: given and family names, a unique address on a real domain
    (Canaille refuses special-use ones such as .test)."""
    address = f"user{i:06d}@example.com"
    return {"schemas": [CORE], "userName": address,
            "name": {"givenName": "Bench", "familyName": f"User {i}"},
            "emails": [{"value": address, "type": "work", "primary": True}],
            "active": True}


class Watched:
    """One real app, counted through its own API (`count=0`, but none for Canaille,
    which fails on any `count`)."""

    def __init__(self, app: RealApp, token: str):
        self.app = app
        self.token = token

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.app.url, timeout=timeout,
                            headers={"Authorization": f"Bearer {self.token}"})

    def count(self, http: httpx.Client, endpoint: str = "Users") -> int:
        params = {} if self.app.name == "canaille" else {"count": "0"}
        r = http.get(f"/{endpoint}", params=params)
        r.raise_for_status()
        return int(r.json()["totalResults"])

    def user_names(self, http: httpx.Client) -> list[str]:
        """Every user's userName, page by page (Canaille: in one answer)."""
        if self.app.name == "canaille":
            r = http.get("/Users")
            r.raise_for_status()
            return [u["userName"] for u in r.json()["Resources"]]
        names: list[str] = []
        while True:
            r = http.get("/Users", params={"startIndex": str(len(names) + 1),
                                           "count": "100"})
            r.raise_for_status()
            page = r.json()
            names += [u["userName"] for u in page.get("Resources") or []]
            if not page.get("Resources") or len(names) >= int(page["totalResults"]):
                return names


def listener(port: int) -> int:
    """The id of the process listening on a loopback port (the app launched there)."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], check=True,
                         capture_output=True, text=True).stdout
    found = re.search(r"pid=(\d+)", out)
    if found is None:
        raise RuntimeError(f"no process listens on {port}: {out!r}")
    return int(found.group(1))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used (/proc/PID/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def target_auth(app: RealApp) -> dict[str, Any]:
    """How the target authenticates: Canaille's OAuth client (tokens renewed as they
    expire), else the app's bearer token."""
    if "token_url" in app.extra:
        return {"type": "oauth2", "token_url": app.extra["token_url"],
                "client_id": app.extra["client_id"],
                "client_secret": app.extra["client_secret"]}
    return dict(app.auth)


def lag_row(hub: Hub, name: str) -> dict[str, Any]:
    """This target's row of `scimsync lag --json`."""
    out = subprocess.run([*CLI, "lag", "--json"], check=True, capture_output=True, text=True,
                         env={**os.environ, "SCIMSYNC_DATABASE_URL": hub.db}).stdout
    return next(r for r in json.loads(out) if r["name"] == name)


def outcomes(hub: Hub, target_id: str) -> dict[str, dict[str, int]]:
    """Deliveries per phase and outcome."""
    from sqlalchemy import func, select

    from scimsync.store.tables import deliveries as d

    with hub.engine.connect() as conn:
        rows = conn.execute(select(d.c.phase, d.c.outcome, func.count())
                            .where(d.c.target_id == target_id)
                            .group_by(d.c.phase, d.c.outcome)).all()
    out: dict[str, dict[str, int]] = {}
    for phase, outcome, n in rows:
        out.setdefault(str(phase), {})[str(outcome)] = int(n)
    return out


def dead_letters(hub: Hub, target_id: str) -> list[dict[str, Any]]:
    """The target's dead letters, grouped by what was refused and why."""
    from sqlalchemy import func, select

    from scimsync.store.tables import dead_letters as dl

    with hub.engine.connect() as conn:
        rows = conn.execute(select(dl.c.resource_type, dl.c.action,
                                   func.substr(dl.c.error, 1, 240), func.count())
                            .where(dl.c.target_id == target_id)
                            .group_by(dl.c.resource_type, dl.c.action,
                                      func.substr(dl.c.error, 1, 240))).all()
    return [{"resource_type": t, "action": a, "error": e, "count": int(n)}
            for t, a, e, n in rows]


class Retries(Background):
    """Watches the target's retries table (operations that failed alone and wait to be
    sent again) on a thread: which failed, and why; a retry row is gone once applied."""

    JOIN = 30.0

    def __init__(self, hub: Hub, target_id: str):
        super().__init__()
        self.hub, self.target_id = hub, target_id
        self.seen: dict[tuple[str, int], str] = {}

    def _run(self) -> None:
        from sqlalchemy import select

        from scimsync.store.tables import retries as r

        while not self._stop.wait(0.2):
            with self.hub.engine.connect() as conn:
                for rid, attempts, error in conn.execute(
                        select(r.c.resource_id, r.c.attempts, r.c.last_error)
                        .where(r.c.target_id == self.target_id)):
                    self.seen[(rid, attempts)] = (error or "")[:200]

    def summary(self) -> dict[str, Any]:
        """Operations retried, attempts seen, and the errors by count."""
        return {"operations": len({rid for rid, _ in self.seen}),
                "attempts": len(self.seen),
                "errors": dict(Counter(self.seen.values()).most_common(5))}


def settle(hub: Hub, name: str, seconds: float) -> dict[str, Any]:
    """Wait until the target's backlog is empty (or `seconds` pass); its lag row."""
    deadline = time.monotonic() + seconds
    row = lag_row(hub, name)
    while row["backlog"] and time.monotonic() < deadline:
        time.sleep(1)
        row = lag_row(hub, name)
    return row


class Stream:
    """Joiners, movers and leavers through the directory's SCIM API, in turn."""

    def __init__(self, hub: Hub, http: httpx.Client, users: int, groups: int,
                 members: int):
        self.hub, self.http, self.users = hub, http, users
        r = http.get(f"{hub.scim_base}/Groups",
                     params={"excludedAttributes": "members", "count": "1000"})
        r.raise_for_status()
        by_name = {g["displayName"]: g["id"] for g in r.json()["Resources"]}
        self.groups = [by_name[f"group {g}"] for g in range(groups)]
        # Each user's group (the first that holds it), for movers.
        self.group_of: dict[int, int] = {}
        for g in range(groups):
            for k in group_members(g, members, users):
                self.group_of.setdefault(k, g)
        # Movers from the first users up, leavers from the last down.
        self.movers = iter(sorted(self.group_of))
        self.leavers = iter(range(users - 1, -1, -1))
        self.joined = 0
        self.sent: Counter[str] = Counter()

    def _ok(self, r: httpx.Response) -> None:
        if r.status_code >= 300:
            raise RuntimeError(f"{r.request.method} {r.request.url}: {r.status_code} "
                               f"{r.text[:300]}")

    def joiner(self) -> None:
        self.joined += 1
        self._ok(self.http.post(f"{self.hub.scim_base}/Users",
                                json=user_body(self.users + self.joined)))

    def mover(self) -> None:
        k = next(self.movers)
        uid = self.hub.ids[k]
        self._ok(self.http.patch(f"{self.hub.scim_base}/Users/{uid}", json={
            "schemas": [PATCH], "Operations": [
                {"op": "replace", "path": "name.familyName", "value": f"Moved {k}"}]}))
        old = self.group_of[k]
        new = (old + 1) % len(self.groups)
        self._ok(self.http.patch(f"{self.hub.scim_base}/Groups/{self.groups[old]}", json={
            "schemas": [PATCH], "Operations": [
                {"op": "remove", "path": f'members[value eq "{uid}"]'}]}))
        self._ok(self.http.patch(f"{self.hub.scim_base}/Groups/{self.groups[new]}", json={
            "schemas": [PATCH], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": uid}]}]}))

    def leaver(self) -> None:
        k = next(self.leavers)
        self._ok(self.http.patch(f"{self.hub.scim_base}/Users/{self.hub.ids[k]}", json={
            "schemas": [PATCH], "Operations": [
                {"op": "replace", "path": "active", "value": False}]}))

    def run(self, rate: float, seconds: float) -> dict[str, Any]:
        """`rate` events a second for `seconds`; what was sent and the rate achieved."""
        kinds = (("joiner", self.joiner), ("mover", self.mover), ("leaver", self.leaver))
        total = int(rate * seconds)
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            kind, send = kinds[i % 3]
            send()
            self.sent[kind] += 1
        took = time.perf_counter() - start
        return {"events": dict(self.sent), "achieved_rate": round(total / took, 2)}


def bench_app(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Load one app from a fresh hub, then stream changes to it."""
    need = NEEDS[name]
    if need is not None and not need.exists():
        raise SystemExit(f"{need} is missing: run `make install`")
    hub = Hub(workdir, args.users, args.groups, args.members, body=user_body)
    profile = dict(PROFILES[name])
    if args.concurrency:
        profile["concurrency"] = args.concurrency
    out: dict[str, Any] = {"profile": profile}
    try:
        hub.start()
        assert hub.proc is not None
        hub_pid = hub.proc.pid
        with STARTERS[name]() as app:
            counter = Watched(app, app.auth["token"])
            port = int(app.url.split(":")[2].split("/")[0])
            app_pid = listener(port)
            with counter.client() as http:
                users0, groups0 = counter.count(http), counter.count(http, "Groups")
            out["app_own_users"] = users0
            cpu0 = (cpu_seconds(hub_pid), cpu_seconds(app_pid))
            start = time.monotonic()
            t, notes = hub.add_target(name, app.url, "", profile, target_auth(app))
            out["notes"] = notes
            print(f"{name}: target added, loading {args.users} users and {args.groups} "
                  "groups", flush=True)
            with Retries(hub, t["id"]) as retried:
                done = wait_loaded(counter, users0 + args.users,
                                   groups0 + args.groups if args.groups else 0,
                                   args.max_seconds, name)
                wall = time.monotonic() - start
                cpu1 = (cpu_seconds(hub_pid), cpu_seconds(app_pid))
                row = settle(hub, name, args.max_seconds)
            load: dict[str, Any] = {**done}
            if done["users_seconds"]:
                load["users_per_s"] = round(args.users / done["users_seconds"], 1)
            load["hub_cpu_s"] = round(cpu1[0] - cpu0[0], 1)
            load["app_cpu_s"] = round(cpu1[1] - cpu0[1], 1)
            load["wall_s"] = round(wall, 1)
            load["hub_rss_mb"] = round(status_mb(hub.proc.pid)["VmRSS"], 1)
            load["app_rss_mb"] = round(status_mb(app_pid)["VmRSS"], 1)
            load["lag_initial"] = row["phases"]["initial"]
            load["retried"] = retried.summary()
            out["load"] = load
            print(f"  load: {load}", flush=True)
            # 2. Everyday changes.
            with httpx.Client(timeout=30, headers={
                    "Authorization": f"Bearer {hub.token()}"}) as http, \
                    Retries(hub, t["id"]) as retried:
                stream = Stream(hub, http, args.users, args.groups, args.members)
                cpu0 = (cpu_seconds(hub_pid), cpu_seconds(app_pid))
                sent = stream.run(args.rate, args.seconds)
                settle(hub, name, 120)
                time.sleep(2)  # the last deliveries' rows
            row = lag_row(hub, name)
            cpu1 = (cpu_seconds(hub_pid), cpu_seconds(app_pid))
            out["incremental"] = {
                **sent, "rate": args.rate, "seconds": args.seconds,
                "lag": row["phases"]["incremental"], "backlog_after": row["backlog"],
                "hub_cpu_s": round(cpu1[0] - cpu0[0], 1),
                "app_cpu_s": round(cpu1[1] - cpu0[1], 1), "retried": retried.summary()}
            out["lag_all"] = {k: row[k] for k in ("samples", "p50_ms", "p95_ms", "p99_ms",
                                                   "max_ms")}
            out["deliveries"] = outcomes(hub, t["id"])
            out["dead_letters_open"] = row["dead_letters"]
            out["dead_letters"] = dead_letters(hub, t["id"])
            out["target_failures"] = row["failures"]
            out["target_status"] = row["status"]
            with counter.client() as http:
                names = counter.user_names(http)
            # Users the app holds more than once (Canaille does not refuse a second
            # userName): each is a create the hub sent twice.
            out["app_users_at_end"] = len(names)
            out["app_duplicate_user_names"] = len(names) - len(set(names))
            print(f"  incremental: {out['incremental']}", flush=True)
            print(f"  deliveries: {out['deliveries']}", flush=True)
            for d in out["dead_letters"]:
                print(f"  dead: {d}", flush=True)
    finally:
        hub.stop()
    return out


def table(results: dict[str, Any]) -> None:
    """The figures, one line per app."""
    print(f"\n{'app':14} {'users':>6} {'users s':>8} {'users/s':>8} {'whole s':>8} "
          f"{'cpu hub/app s':>14} {'incremental p50/p95/p99 ms':>27}  not ok")
    for name, r in results["apps"].items():
        if "error" in r:
            print(f"{name:14} error: {r['error']}")
            continue
        ld, inc = r["load"], r["incremental"]["lag"]
        bad = {f"{p}:{o}": n for p, per in r["deliveries"].items() for o, n in per.items()
               if o != "ok"}
        cpu = f"{ld['hub_cpu_s']}/{ld['app_cpu_s']}"
        lag = f"{inc['p50_ms']}/{inc['p95_ms']}/{inc['p99_ms']}"
        print(f"{name:14} {results['users']:>6} {ld['users_seconds'] or '-':>8} "
              f"{ld.get('users_per_s', '-'):>8} {ld['seconds'] or '-':>8} {cpu:>14} "
              f"{lag:>27}  {bad or 'none'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--apps", default=",".join(STARTERS))
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--groups", type=int, default=10)
    p.add_argument("--members", type=int, default=100, help="members per group")
    p.add_argument("--rate", type=float, default=5.0, help="lifecycle events per second")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--concurrency", type=int, default=0,
                   help="requests in flight per target (default: the profile's)")
    p.add_argument("--max-seconds", type=float, default=900,
                   help="give up on a load after this long")
    p.add_argument("--out", default=None)
    p.add_argument("--keep", action="store_true",
                   help="keep each hub's database and logs (their folder is printed)")
    args = p.parse_args()
    names = args.apps.split(",")
    for name in names:
        if name not in STARTERS:
            raise SystemExit(f"unknown app {name!r} (known: {', '.join(STARTERS)})")
    results: dict[str, Any] = {
        "date": datetime.date.today().isoformat(), "users": args.users,
        "groups": args.groups, "members": args.members, "rate": args.rate,
        "seconds": args.seconds, "concurrency": args.concurrency or None,
        "loadavg_start": os.getloadavg(), "apps": {}}
    for name in names:
        workdir = Path(tempfile.mkdtemp(prefix=f"apps-bench-{name}-"))
        try:
            results["apps"][name] = bench_app(name, args, workdir)
        except Exception as exc:  # one app's failure does not lose the others' figures
            results["apps"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"{name} failed: {exc}; logs in {workdir}", flush=True)
            continue
        if args.keep:
            print(f"{name}: hub database and logs kept in {workdir}", flush=True)
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(workdir)
    results["loadavg_end"] = os.getloadavg()
    table(results)
    write_json(args.out or str(ROOT / "bench" / f"apps-{results['date']}-{args.users}.json"),
               results)


if __name__ == "__main__":
    main()
