"""Isolation between targets: leaver lag to a near app and to a far one while the far
one loads, with a third app that never answers.

Usage (from the repository root, after `make install`):

    .venv/bin/python bench/isolation_bench.py --users 10000 --rate 2 --seconds 60

One directory of `--users` users (and users / 100 groups of 100) is served by
`scimsync serve` with its embedded worker. Three targets, each a real process:

- A, python-scim's scim2-server on loopback, loaded in full before anything is
  measured;
- B, another scim2-server `--rtt-ms` away (bench/latency_proxy.py), added once A is
  loaded, so that its initial load of every user runs during the measurement
  (`profile.concurrency` from `--concurrency`, dropped with a note if the engine does
  not accept it);
- C, a black hole: the proxy accepts its connections and never answers.

Once B holds its first users, the script deactivates `--rate` users a second for
`--seconds` through the directory's SCIM API (PATCH `active` false), each one a user
B already holds, and polls each app's own API (A and B, directly, not through the
proxy) until the user shows `active: false`. A leaver's lag runs from the hub's 200
to the first poll that sees it. After the last leaver the script waits up to
`--settle` seconds; a leaver not seen by then counts as lagging at least until then
(its percentile is printed with `>`). It prints the lag percentiles per app, B's
load progress, and how many connections C received, then stops everything.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import (
    PATCH,
    App,
    Hub,
    percentile,
    start_app,
    start_proxy,
    summary,
    wait_loaded,
    write_json,
)
from plain_client import load_arguments, shape_of


@dataclass
class Leaver:
    """One deactivated user: its remote ids per app, when the hub took the change,
    and when each app was first seen to show it."""

    hub_id: str
    remote: dict[str, str]
    acked: float = 0.0
    seen: dict[str, float] = field(default_factory=dict)


class Poller(threading.Thread):
    """Polls one app's own API for the leavers it has not yet seen deactivated."""

    def __init__(self, name: str, app: App, leavers: list[Leaver], lock: threading.Lock):
        super().__init__(name=f"poll-{name}", daemon=True)
        self.app_name = name
        self.app = app
        self.leavers = leavers
        self.lock = lock
        self.done = threading.Event()
        self.cycles: list[float] = []

    def run(self) -> None:
        with self.app.client(timeout=10) as http:
            while not self.done.is_set():
                start = time.monotonic()
                with self.lock:
                    pending = [x for x in self.leavers
                               if x.acked and self.app_name not in x.seen]
                for x in pending:
                    r = http.get(f"/Users/{x.remote[self.app_name]}")
                    if r.status_code == 200 and r.json().get("active") is False:
                        x.seen[self.app_name] = time.monotonic()
                self.cycles.append(time.monotonic() - start)
                self.done.wait(0.02)


def candidate(b: App, http_b: httpx.Client, http_a: httpx.Client, taken: set[str]
              ) -> Leaver | None:
    """A random active user that B already holds, with its ids in A and B."""
    total = b.count(http_b)
    for _ in range(20):
        page = http_b.get("/Users", params={"startIndex": str(random.randint(1, total)),
                                            "count": "1"}).json()
        users = page.get("Resources") or []
        if not users or users[0].get("active") is False or users[0]["externalId"] in taken:
            continue
        hub_id = users[0]["externalId"]
        found = http_a.get("/Users", params={"filter": f'externalId eq "{hub_id}"'}).json()
        if found.get("Resources"):
            return Leaver(hub_id, {"A": found["Resources"][0]["id"], "B": users[0]["id"]})
    return None


def lag_figures(leavers: list[Leaver], app: str, censor_at: float) -> dict[str, Any]:
    """Percentiles of one app's leaver lag, in seconds; leavers not seen count as
    lagging until `censor_at`, and a percentile among them is marked as a floor."""
    lags = [(x.seen[app] - x.acked, True) if app in x.seen else (censor_at - x.acked, False)
            for x in leavers if x.acked]
    out: dict[str, Any] = summary([lag for lag, _ in lags])
    out["not_seen"] = sum(1 for _, seen in lags if not seen)
    if out["not_seen"]:
        seen_floor = sorted(lag for lag, _ in lags)
        unseen_min = min(lag for lag, seen in lags if not seen)
        for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            if percentile(seen_floor, q) >= unseen_min:
                out[key] = f">{out[key]}"
        out["max"] = f">{out['max']}"
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    load_arguments(p, users=100_000)
    p.add_argument("--rate", type=float, default=2.0, help="leavers per second")
    p.add_argument("--seconds", type=float, default=60.0, help="how long leavers come")
    p.add_argument("--settle", type=float, default=60.0,
                   help="how long to wait for the last leavers")
    p.add_argument("--load-a-seconds", type=float, default=900.0,
                   help="give up if A is not loaded within this")
    args = p.parse_args()
    shape = shape_of(args)
    workdir = Path(tempfile.mkdtemp(prefix="isolation-bench-"))
    results: dict[str, Any] = {"users": shape.users, "groups": shape.groups,
                               "rtt_ms": args.rtt_ms, "concurrency": args.concurrency,
                               "rate": args.rate, "seconds": args.seconds,
                               "match": list(shape.match)}
    hub = Hub(workdir, shape.users, shape.groups, shape.members)
    a, b = start_app(workdir, "app-a"), start_app(workdir, "app-b")
    far = start_proxy(b.port, args.rtt_ms, not args.no_handshake)
    hole = start_proxy(None)
    leavers: list[Leaver] = []
    lock = threading.Lock()
    pollers = {name: Poller(name, app, leavers, lock) for name, app in (("A", a), ("B", b))}
    try:
        hub.start()
        profile = {"match": list(shape.match)}
        hub.add_target("a", a.root, a.token, profile)
        print(f"A (loopback): initial load of {shape.users} users", flush=True)
        results["a_initial_load"] = wait_loaded(a, shape.users, shape.groups,
                                                args.load_a_seconds, "A")
        print(f"  {results['a_initial_load']}", flush=True)
        far_profile = {**profile, "concurrency": args.concurrency}
        _, notes = hub.add_target("b", f"http://127.0.0.1:{far.port}", b.token, far_profile)
        hub.add_target("c", f"http://127.0.0.1:{hole.port}", "none", profile)
        b_added = time.monotonic()
        for note in notes:
            print(f"note: {note}", flush=True)
        results["notes"] = notes
        progress: list[tuple[float, int]] = []
        with b.client() as http_b, a.client() as http_a, \
                httpx.Client(base_url=hub.scim_base, timeout=30, headers={
                    "Authorization": f"Bearer {hub.token()}"}) as http_hub:
            while b.count(http_b) == 0:
                if time.monotonic() - b_added > 600:
                    raise RuntimeError("B received no user within 10 minutes")
                time.sleep(0.2)
            started = time.monotonic() - b_added
            print(f"B ({args.rtt_ms:g} ms away): first users after {started:.1f} s; "
                  f"leavers at {args.rate:g}/s for {args.seconds:g} s", flush=True)
            for poller in pollers.values():
                poller.start()
            taken: set[str] = set()
            t0 = time.monotonic()
            due = t0
            last_print = t0
            while time.monotonic() - t0 < args.seconds:
                due += 1 / args.rate
                time.sleep(max(0.0, due - time.monotonic()))
                leaver = candidate(b, http_b, http_a, taken)
                if leaver is None:
                    continue
                taken.add(leaver.hub_id)
                r = http_hub.patch(f"/Users/{leaver.hub_id}", json={
                    "schemas": [PATCH],
                    "Operations": [{"op": "replace", "path": "active", "value": False}]})
                r.raise_for_status()
                leaver.acked = time.monotonic()
                with lock:
                    leavers.append(leaver)
                if time.monotonic() - last_print >= 10:
                    last_print = time.monotonic()
                    loaded = b.count(http_b)
                    progress.append((last_print - b_added, loaded))
                    with lock:
                        seen = {n: sum(1 for x in leavers if n in x.seen) for n in pollers}
                    print(f"  {len(leavers)} leavers, seen in A {seen['A']}, in B "
                          f"{seen['B']}; B holds {loaded}/{shape.users} users", flush=True)
            stop_at = time.monotonic() + args.settle
            while time.monotonic() < stop_at:
                with lock:
                    if all(len(x.seen) == len(pollers) for x in leavers):
                        break
                time.sleep(0.2)
            end = time.monotonic()
            for poller in pollers.values():
                poller.done.set()
                poller.join(15)
            progress.append((end - b_added, b.count(http_b)))
    finally:
        hub.stop()
        for app in (a, b):
            app.stop()
        far.stop()
        results["c_black_hole"] = hole.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    results["b_first_users_after_s"] = round(started, 2)
    results["b_load_progress"] = [(round(t, 1), n) for t, n in progress]
    # B's pace while the leavers came (the last sample, after the wait, may be long
    # after B finished).
    during = progress[-2] if len(progress) > 1 else progress[-1]
    span = during[0] - started
    results["b_users_per_s_during"] = round(during[1] / span, 1) if span > 0 else None
    results["poll_cycle_s"] = {n: summary(p.cycles) for n, p in pollers.items()}
    results["lag_s"] = {n: lag_figures(leavers, n, end) for n in pollers}
    goals = {"A": 1.0, "B": 2.0}
    print(f"\n{len(leavers)} leavers; lag in seconds, from the hub's 200 to the app's API")
    print(f"{'app':4} {'seen':>6} {'p50':>9} {'p95':>9} {'p99':>9} {'max':>9} {'goal p99':>9}")
    for n, lag in results["lag_s"].items():
        print(f"{n:4} {lag['samples'] - lag['not_seen']:>6} {lag.get('p50', '-')!s:>9} "
              f"{lag.get('p95', '-')!s:>9} {lag.get('p99', '-')!s:>9} "
              f"{lag.get('max', '-')!s:>9} {'< ' + str(goals[n]):>9}")
    print(f"B: {progress[-1][1]}/{shape.users} users at the end, {progress[-1][0]:.0f} s "
          f"after it was added; {results['b_users_per_s_during']} users/s while the "
          "leavers came")
    print(f"C (black hole): {results['c_black_hole']}")
    print(f"poll cycle (s): {results['poll_cycle_s']}")
    write_json(args.out, results)


if __name__ == "__main__":
    main()
