"""Hostile requests against a real `scimsync serve`: does any one of them stall the rest?

Usage (from the repository root, after `make install`):

    .venv/bin/python bench/hostile_bench.py --users 10000

It starts `scimsync serve` on a fresh SQLite database (or `--database URL`), makes two
directories, seeds the hostile one with `--users` users (two emails each) and the
other with 100, then sends each hostile request of issue 11 in turn while one client
polls /healthz and another reads the other directory's users, each sequentially.
For every request it prints the status, scimType and time, and the worst latency
each poller saw while that request ran; then the worst stall overall (goal: under
100 ms) and whether every hostile request was served or refused (no 5xx, no
timeout). Everything stays on 127.0.0.1 and the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from _common import stop

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
GOAL_MS = 100.0
CLIENT_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Case:
    """One hostile request, its body built before the pollers start."""

    name: str
    method: str
    path: str  # under the hostile directory's SCIM base, or absolute from the root
    body: bytes | None = None
    admin: bool = False


@dataclass
class Outcome:
    name: str
    status: str
    scim_type: str
    ms: float
    health_ms: float
    tenant_ms: float


@dataclass
class Poller:
    """Sends one request after another and remembers when each started and ended."""

    name: str
    send: Callable[[], int]
    spans: list[tuple[float, float, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                status = self.send()
            except httpx2.TransportError:
                status = 0
            self.spans.append((start, time.perf_counter(), status))
            time.sleep(0.005)

    def worst(self, since: float, until: float) -> float:
        """The longest request (ms) that overlapped [since, until]."""
        return max(((e - s) * 1000 for s, e, _ in self.spans if e >= since and s <= until),
                   default=0.0)


def cli(env: dict[str, str], *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "scimsync.cli", *args], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)


def seed(http: httpx2.Client, base: str, users: int, prefix: str) -> list[str]:
    """Users with two emails each, 1,000 per /Bulk request."""
    ids: list[str] = []
    for start in range(0, users, 1000):
        ops = [{"method": "POST", "path": "/Users", "bulkId": str(i), "data": {
            "schemas": [USER], "userName": f"{prefix}{i:06d}@bench.test",
            "emails": [{"value": f"{prefix}{i:06d}@bench.test", "type": "work"},
                       {"value": f"{prefix}{i:06d}@home.test", "type": "home"}]}}
            for i in range(start, min(users, start + 1000))]
        r = http.post(f"{base}/Bulk", json={"schemas": [BULK], "Operations": ops})
        r.raise_for_status()
        ids += [o["location"].rsplit("/", 1)[1] for o in r.json()["Operations"]]
        print(f"  seeded {len(ids)}/{users} users", end="\r", flush=True)
    print()
    return ids


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def cases(targets: list[str], did: str, token_id: str) -> list[Case]:
    """The hostile requests of issue 11, in the order they are sent."""
    out: list[Case] = []
    for n, uid in zip((5_000, 10_000, 20_000), targets, strict=False):
        out.append(Case(f"PATCH add {n:,} emails", "PATCH", f"/Users/{uid}", dumps({
            "schemas": [PATCH], "Operations": [{"op": "add", "path": "emails", "value": [
                {"value": f"{i}@x.io"} for i in range(n)]}]})))
    out.append(Case("PATCH remove 20,000 emails by value", "PATCH", f"/Users/{targets[-1]}",
                    dumps({"schemas": [PATCH], "Operations": [
                        {"op": "remove", "path": "emails", "value": [
                            {"value": f"{i}@x.io"} for i in range(20_000)]}]})))
    pad = ["pp"] * 138  # many small values (each one is scanned for bulkIds); 993 KB in all
    chain = [{"method": "POST", "path": "/Users", "bulkId": f"c{i}", "data": {
        "schemas": [USER, ENTERPRISE], "userName": f"chain{i}", "padding": pad,
        **({ENTERPRISE: {"manager": {"value": f"bulkId:c{i + 1}"}}} if i < 999 else {})}}
        for i in range(1000)]
    out.append(Case("Bulk of 1,000 POSTs chained in reverse", "POST", "/Bulk",
                    dumps({"schemas": [BULK], "Operations": chain})))
    terms = " or ".join(['emails.value co "zz"'] * 250)
    out.append(Case("filter of 250 OR'ed emails.value co", "GET",
                    "/Users?count=10&filter=" + urllib.parse.quote(terms)))
    out.append(Case("startIndex=99999999999999999999", "GET",
                    "/Users?startIndex=99999999999999999999"))
    digits = "9" * 5000
    out.append(Case("startIndex of 5,000 digits", "GET", f"/Users?startIndex={digits}"))
    out.append(Case("count of 5,000 digits", "GET", f"/Users?count={digits}"))
    out.append(Case("filter number of 5,000 digits", "POST", "/Users/.search", dumps({
        "schemas": [SEARCH], "filter": f"title eq {digits}"})))
    out.append(Case("rotate token, overlap_seconds=10**12", "POST",
                    f"/admin/directories/{did}/tokens/{token_id}/rotate",
                    dumps({"overlap_seconds": 10**12}), admin=True))
    deep: Any = "bottom"
    for _ in range(900):
        deep = {"a": deep}
    out.append(Case("Bulk with data nested 900 deep", "POST", "/Bulk", dumps({
        "schemas": [BULK], "Operations": [{"method": "POST", "path": "/Users", "bulkId": "d",
                                           "data": {"schemas": [USER], "userName": "deep",
                                                    "x": deep}}]})))
    for name, value in (("true", True), ("{}", {})):
        out.append(Case(f'.search with "attributes": {name}', "POST", "/Users/.search",
                        dumps({"schemas": [SEARCH], "attributes": value})))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=10_000, help="users in the hostile directory")
    p.add_argument("--database", default=None, help="database URL (default: fresh SQLite)")
    p.add_argument("--only", default=None, help="run only cases whose name contains this")
    p.add_argument("--skip", default=None, help="skip cases whose name contains this")
    p.add_argument("--out", default=None, help="write the results as JSON to this file")
    args = p.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="scimsync-hostile-"))
    db = args.database or f"sqlite:///{workdir / 'scimsync.db'}"
    env = {**os.environ, "SCIMSYNC_DATABASE_URL": db,
           "SCIMSYNC_SECRET_KEY_FILE": str(workdir / "scimsync.key")}
    hostile = cli(env, "directories", "create", "hostile", "--json")
    other = cli(env, "directories", "create", "other", "--json")
    admin = cli(env, "admin-tokens", "create", "--json")
    port = free_port()
    log = (workdir / "scimsync.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "scimsync.cli", "serve", "--port", str(port),
                             "--log-level", "warning"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    try:
        results = run(root, hostile, other, admin["token"], args)
    finally:
        stop(proc)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


def run(root: str, hostile: dict[str, Any], other: dict[str, Any], admin_token: str,
        args: argparse.Namespace) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx2.get(f"{root}/healthz", timeout=1)
            break
        except httpx2.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    h_base, o_base = root + hostile["scim_path"], root + other["scim_path"]
    auth = {"Content-Type": "application/scim+json"}
    h_http = httpx2.Client(headers={**auth, "Authorization": f"Bearer {hostile['token']}"},
                           timeout=CLIENT_TIMEOUT)
    a_http = httpx2.Client(headers={**auth, "Authorization": f"Bearer {admin_token}"},
                           timeout=CLIENT_TIMEOUT)
    o_http = httpx2.Client(headers={**auth, "Authorization": f"Bearer {other['token']}"},
                           timeout=CLIENT_TIMEOUT)
    seed(h_http, h_base, args.users, "h")
    seed(o_http, o_base, 100, "o")
    targets = []
    for i in range(3):
        r = h_http.post(f"{h_base}/Users", json={"schemas": [USER], "userName": f"target{i}"})
        r.raise_for_status()
        targets.append(r.json()["id"])
    spare = a_http.post(f"{root}/admin/directories/{hostile['id']}/tokens",
                        json={"name": "spare"})
    spare.raise_for_status()
    todo = [c for c in cases(targets, hostile["id"], spare.json()["id"])
            if (args.only is None or args.only.lower() in c.name.lower())
            and (args.skip is None or args.skip.lower() not in c.name.lower())]

    health_http = httpx2.Client(timeout=CLIENT_TIMEOUT)
    pollers = [Poller("healthz", lambda: health_http.get(f"{root}/healthz").status_code),
               Poller("other tenant", lambda: o_http.get(f"{o_base}/Users?count=10")
                      .status_code)]
    threads = [threading.Thread(target=pl.run, daemon=True) for pl in pollers]
    for t in threads:
        t.start()
    # The machine's own noise: the worst poll while nothing hostile is sent.
    quiet_start = time.perf_counter()
    time.sleep(3.0)
    quiet = max(pl.worst(quiet_start, time.perf_counter()) for pl in pollers)
    print(f"  worst poll with no hostile request (3 s): {quiet:.1f} ms")
    outcomes: list[Outcome] = []
    try:
        for case in todo:
            http = a_http if case.admin else h_http
            url = root + case.path if case.path.startswith("/admin") else h_base + case.path
            start = time.perf_counter()
            try:
                r = http.request(case.method, url, content=case.body)
                status = str(r.status_code)
                try:
                    scim_type = str(r.json().get("scimType", "")) if r.content else ""
                except ValueError:
                    scim_type = ""
            except httpx2.TimeoutException:
                status, scim_type = "timeout", ""
            end = time.perf_counter()
            time.sleep(0.05)  # let a poll that was held by this request come back
            outcomes.append(Outcome(case.name, status, scim_type, (end - start) * 1000,
                                    pollers[0].worst(start, end), pollers[1].worst(start, end)))
            o = outcomes[-1]
            print(f"  {o.name:<42} {o.status:>7} {o.scim_type:<14} {o.ms:>9.1f} ms   "
                  f"healthz {o.health_ms:>8.1f} ms   other tenant {o.tenant_ms:>8.1f} ms",
                  flush=True)
    finally:
        for pl in pollers:
            pl.stop.set()
        for t in threads:
            t.join(timeout=CLIENT_TIMEOUT)
    worst = max((max(o.health_ms, o.tenant_ms) for o in outcomes), default=0.0)
    ok = all(o.status.isdigit() and int(o.status) < 500 for o in outcomes)
    polled = sum(len(pl.spans) for pl in pollers)
    failed = sum(1 for pl in pollers for *_, s in pl.spans if s != 200)
    print(f"worst stall: {worst:.1f} ms (goal < {GOAL_MS:.0f} ms); "
          f"every hostile request served or refused: {'yes' if ok else 'no'}; "
          f"{polled} polls, {failed} not 200")
    return {"users": args.users, "worst_stall_ms": round(worst, 1), "all_bounded": ok,
            "quiet_worst_ms": round(quiet, 1),
            "polls": polled, "polls_failed": failed,
            "cases": [o.__dict__ | {"ms": round(o.ms, 1), "health_ms": round(o.health_ms, 1),
                                    "tenant_ms": round(o.tenant_ms, 1)} for o in outcomes]}


if __name__ == "__main__":
    main()
