"""SCIM workload benchmark: scimsync against python-scim's scim2-server, driven by wrk.

Usage (from the repository root, after `make install`):

    .venv/bin/python bench/scim_bench.py --users 2000 100000

For each directory size it starts a fresh server on loopback, seeds the directory
through /Bulk, runs each phase with wrk (16 connections, 2 threads, fixed duration),
then measures single-client latencies at that size and the server's memory. The peer
(scim2-server from PyPI) runs the same phases in the same run. Everything stays on
127.0.0.1 and every server is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from _common import free_port, start_app, wait_http

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "wrk"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PHASES = ["create", "get", "filter", "patch", "members", "deactivate", "list"]


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of a process and its children."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                total += int(line.split()[1])
    return total / 1024


@dataclass
class Server:
    name: str
    base: str  # full SCIM base URL
    token: str
    proc: subprocess.Popen[bytes]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return "/" + self.base.split("/", 3)[3] if self.base.count("/") > 2 else ""

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_scimsync(workdir: Path, workers: int, database: str | None) -> Server:
    db = database or f"sqlite:///{workdir / 'scimsync.db'}"
    env = {**os.environ, "SCIMSYNC_DATABASE_URL": db}
    cli = [sys.executable, "-m", "scimsync.cli"]
    created = subprocess.run([*cli, "directories", "create", "bench", "--json"], env=env,
                             check=True, capture_output=True, text=True)
    d = json.loads(created.stdout)
    port = free_port()
    log = (workdir / "scimsync.log").open("w")
    proc = subprocess.Popen([*cli, "serve", "--port", str(port), "--workers", str(workers),
                             "--log-level", "warning"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    wait_http(f"{root}/healthz")
    return Server("scimsync", f"{root}{d['scim_path']}", d["token"], proc,
                  {"database": db.split("://")[0], "workers": workers})


def start_peer(workdir: Path) -> Server:
    app = start_app(workdir, "peer")
    return Server("scim2-server", app.root, app.token, app.proc)


def seed(server: Server, users: int, groups: int, big_group: bool) -> dict[str, list[str]]:
    """Create users (bulk, 1000 per request), groups, and optionally one group of all."""
    headers = {"Authorization": f"Bearer {server.token}",
               "Content-Type": "application/scim+json"}
    ids: list[str] = []
    names: list[str] = []
    with httpx2.Client(headers=headers, timeout=600) as http:
        for start in range(0, users, 1000):
            ops = []
            for i in range(start, min(users, start + 1000)):
                name = f"user{i:06d}@bench.test"
                names.append(name)
                ops.append({"method": "POST", "path": "/Users", "bulkId": str(i), "data": {
                    "schemas": [USER], "userName": name, "externalId": f"ext-{i}",
                    "name": {"givenName": "Bench", "familyName": f"User {i}"},
                    "emails": [{"value": name, "type": "work", "primary": True}],
                    "active": True}})
            r = http.post(f"{server.base}/Bulk", json={"schemas": [BULK], "Operations": ops})
            r.raise_for_status()
            for op in r.json()["Operations"]:
                assert op["status"] == "201", op
                ids.append(op["location"].rsplit("/", 1)[1])
            print(f"  seeded {len(ids)}/{users} users", end="\r", flush=True)
        print()
        gids = []
        for g in range(groups):
            r = http.post(f"{server.base}/Groups", json={"schemas": [GROUP],
                                                          "displayName": f"group {g}"})
            r.raise_for_status()
            gids.append(r.json()["id"])
        big = None
        if big_group:
            r = http.post(f"{server.base}/Groups", json={"schemas": [GROUP],
                                                          "displayName": "everyone"})
            big = r.json()["id"]
            for start in range(0, len(ids), 1000):
                chunk = ids[start:start + 1000]
                r = http.patch(f"{server.base}/Groups/{big}?excludedAttributes=members",
                               json={"schemas": [PATCH], "Operations": [
                                   {"op": "add", "path": "members",
                                    "value": [{"value": v} for v in chunk]}]})
                r.raise_for_status()
    return {"ids": ids, "names": names, "groups": gids, "big": [big] if big else []}


def run_wrk(server: Server, phase: str, fixtures: Path, seconds: int, connections: int,
            users: int, run_tag: str) -> dict[str, Any]:
    env = {**os.environ, "BENCH_PHASE": phase, "BENCH_TOKEN": server.token,
           "BENCH_BASE_PATH": server.path, "BENCH_FIXTURES": str(fixtures),
           "BENCH_LUA_DIR": str(LUA), "BENCH_PAGES": str(max(1, users // 100)),
           "BENCH_RUN": run_tag}
    root = server.base.split("/scim/")[0] if "/scim/" in server.base else server.base
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency",
           "-s", str(LUA / "phase.lua"), root]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    vals = dict(kv.split("=") for kv in line.split()[1:])
    reqs, dur = int(vals["requests"]), int(vals["duration_us"]) / 1e6
    errors = int(vals["errors_status"]) + int(vals["errors_io"])
    if errors:
        print(f"    {phase}: {errors} errors: {out.stderr.strip()[:300]}")
    return {"rps": reqs / dur, "requests": reqs, "errors": errors,
            "p50_ms": int(vals["p50_us"]) / 1000, "p99_ms": int(vals["p99_us"]) / 1000}


def latencies(server: Server, fx: dict[str, list[str]], samples: int) -> dict[str, float]:
    """Single-client p50 latencies (ms) of the operations the issue names at scale."""
    headers = {"Authorization": f"Bearer {server.token}",
               "Content-Type": "application/scim+json"}
    out: dict[str, float] = {}
    n = len(fx["ids"])
    with httpx2.Client(headers=headers, timeout=60) as http:
        def timed(method: str, url: str, **kw: Any) -> float:
            t = time.perf_counter()
            r = http.request(method, url, **kw)
            ms = (time.perf_counter() - t) * 1000
            assert r.status_code < 300, (url, r.status_code, r.text[:200])
            return ms

        def p50(fn: Any) -> float:
            fn()  # warm
            return float(statistics.median(fn() for _ in range(samples)))

        out["get_by_id"] = p50(lambda: timed("GET", f"{server.base}/Users/"
                                             f"{random.choice(fx['ids'])}"))
        out["filter_userName"] = p50(lambda: timed(
            "GET", f"{server.base}/Users",
            params={"filter": f'userName eq "{random.choice(fx["names"])}"'}))
        out["filter_externalId"] = p50(lambda: timed(
            "GET", f"{server.base}/Users",
            params={"filter": f'externalId eq "ext-{random.randrange(n)}"'}))
        out["first_page_100"] = p50(lambda: timed("GET", f"{server.base}/Users",
                                                  params={"count": "100"}))
        if fx["big"]:
            big = fx["big"][0]
            extra: list[str] = []
            for i in range(samples + 1):
                r = http.post(f"{server.base}/Bulk", json={"schemas": [BULK], "Operations": [
                    {"method": "POST", "path": "/Users", "bulkId": str(j), "data": {
                        "schemas": [USER], "userName": f"extra{i}-{j}@bench.test"}}
                    for j in range(50)]})
                extra.append(",".join(op["location"].rsplit("/", 1)[1]
                                      for op in r.json()["Operations"]))
            times = []
            for batch in extra:
                values = [{"value": v} for v in batch.split(",")]
                times.append(timed(
                    "PATCH", f"{server.base}/Groups/{big}?excludedAttributes=members",
                    json={"schemas": [PATCH], "Operations": [
                        {"op": "add", "path": "members", "value": values}]}))
            out["add_50_members_to_big_group"] = statistics.median(times[1:])
            out["big_group_size"] = n + 50 * len(extra)
    return out


def bench_one(kind: str, users: int, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
    server = start_scimsync(workdir, args.workers, args.database) if kind == "scimsync" \
        else start_peer(workdir)
    try:
        print(f"{server.name} with {users} users: seeding")
        t = time.perf_counter()
        fx = seed(server, users, 16, big_group=kind == "scimsync" and users >= 10_000)
        seed_s = time.perf_counter() - t
        fixtures = workdir / "fixtures"
        fixtures.mkdir()
        for key in ("ids", "names", "groups"):
            (fixtures / f"{key}.txt").write_text("\n".join(fx[key]) + "\n")
        result: dict[str, Any] = {"server": server.name, "users": users,
                                  "seed_seconds": round(seed_s, 1), **server.extra,
                                  "phases": {}}
        for phase in PHASES:
            r = run_wrk(server, phase, fixtures, args.seconds, args.connections, users,
                        f"{kind}{users}")
            result["phases"][phase] = r
            print(f"  {phase:<11} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:7.2f} ms  "
                  f"p99 {r['p99_ms']:8.2f} ms")
        result["latency_ms"] = latencies(server, fx, args.samples)
        result["rss_mb"] = round(rss_mb(server.proc.pid, "VmRSS"), 1)
        result["peak_rss_mb"] = round(rss_mb(server.proc.pid), 1)
        print(f"  latencies: {result['latency_ms']}  rss {result['rss_mb']} MB "
              f"(peak {result['peak_rss_mb']} MB)")
        return result
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, nargs="+", default=[2000, 100_000])
    p.add_argument("--seconds", type=int, default=5, help="wrk duration per phase")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--workers", type=int, default=1, help="scimsync HTTP processes")
    p.add_argument("--database", default=None, help="scimsync database URL (default SQLite)")
    p.add_argument("--peer-max-users", type=int, default=2000,
                   help="run the peer only up to this size (its stores are in memory and "
                        "its uniqueness checks scan every user)")
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--out", default=None, help="write results as JSON here")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    results = []
    for users in args.users:
        results.append(bench_one("scimsync", users, args))
        if users <= args.peer_max_users:
            results.append(bench_one("peer", users, args))
    print("\nrequests/s per phase (wrk, "
          f"{args.connections} connections, {args.seconds}s each)")
    header = f"{'phase':<11}" + "".join(f"{r['server'][:9] + '@' + str(r['users']):>18}"
                                          for r in results)
    print(header)
    for phase in PHASES:
        print(f"{phase:<11}" + "".join(f"{r['phases'][phase]['rps']:>18.0f}" for r in results))
    by = {(r["server"], r["users"]): r for r in results}
    for users in args.users:
        ours, peer = by.get(("scimsync", users)), by.get(("scim2-server", users))
        if ours and peer:
            ratios = {ph: ours["phases"][ph]["rps"] / max(peer["phases"][ph]["rps"], 1e-9)
                      for ph in PHASES}
            print(f"ratio scimsync/scim2-server at {users}: " +
                  ", ".join(f"{ph} {x:.1f}x" for ph, x in ratios.items()))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
