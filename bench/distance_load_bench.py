"""Initial load at a distance: the engine against a plain client, same requests.

A new target's full load through `scimsync serve`, to an application `--rtt-ms` away,
against a plain HTTP client sending the same requests with as many in flight.

Usage (from the repository root, after `make install`):

    .venv/bin/python bench/distance_load_bench.py --users 10000 --groups 100 \
        --concurrency 16 --rtt-ms 50
    .venv/bin/python bench/distance_load_bench.py --users 10000 --groups 100 --rtt-ms 0

The application is python-scim's scim2-server (in memory), fresh for each run,
behind bench/latency_proxy.py (no proxy at `--rtt-ms 0`: the loopback goal). The hub
is a seeded SQLite directory served by `scimsync serve` with its embedded worker; the
target is added with `profile.concurrency` (dropped, and said so, if the engine does
not accept it) and `profile.match` from `--match`. The load is timed from the moment
the target is added until the application's own API lists every user and every
group. The plain client (bench/plain_client.py) then loads a fresh application the
same distance away, with threads and with asyncio; the faster is the baseline.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from _common import Hub, reach, start_app, status_mb, wait_loaded, write_json
from plain_client import Shape, baseline, load_arguments, shape_of


def engine_load(hub: Hub, shape: Shape, concurrency: int, rtt_ms: float, handshake: bool,
                max_seconds: float) -> dict[str, Any]:
    """Add a target to a fresh app and time its initial load, as the app sees it."""
    app = start_app(hub.workdir, "engine-app")
    try:
        with reach(app, rtt_ms, handshake) as url:
            _, notes = hub.add_target("far", url, app.token, {
                "match": list(shape.match), "concurrency": concurrency})
            for note in notes:
                print(f"note: {note}", flush=True)
            print(f"engine ({concurrency} in flight asked, RTT {rtt_ms:g} ms): "
                  f"{shape.users} users, {shape.groups} groups", flush=True)
            done = wait_loaded(app, shape.users, shape.groups, max_seconds, "engine")
    finally:
        app.stop()
    assert hub.proc is not None
    mem = status_mb(hub.proc.pid)
    seconds = done["seconds"]
    out: dict[str, Any] = {**done, "notes": notes, "hub_rss_mb": round(mem["VmRSS"], 1),
                           "hub_peak_rss_mb": round(mem["VmHWM"], 1)}
    if seconds:
        out["users_per_s"] = round(shape.users / seconds, 1)
    else:
        out["users_per_s_partial"] = round((done["users_seen"] or 0) / max_seconds, 1)
    print(f"  {out}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    load_arguments(p)
    p.add_argument("--max-seconds", type=float, default=900,
                   help="give up on the engine's load after this long")
    p.add_argument("--plain-modes", default="threads,asyncio")
    args = p.parse_args()
    shape = shape_of(args)
    handshake = not args.no_handshake
    workdir = Path(tempfile.mkdtemp(prefix="distance-bench-"))
    results: dict[str, Any] = {"users": args.users, "groups": args.groups,
                               "members": args.members, "concurrency": args.concurrency,
                               "rtt_ms": args.rtt_ms, "match": list(shape.match),
                               "handshake": handshake}
    hub = Hub(workdir, args.users, args.groups, args.members)
    try:
        hub.start()
        results["engine"] = engine_load(hub, shape, args.concurrency, args.rtt_ms,
                                        handshake, args.max_seconds)
        hub.stop()  # the plain client runs alone, as the engine did
        results["plain"] = baseline(workdir, shape, args.concurrency, args.rtt_ms,
                                    handshake, tuple(args.plain_modes.split(",")))
    finally:
        hub.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    engine, plain = results["engine"], results["plain"]["best"]
    rate = engine.get("users_per_s")
    results["ratio_engine_to_plain"] = None if rate is None else \
        round(rate / plain["users_per_s"], 3)
    # scim2-server closes its connection after every answer: with the handshake
    # charged, each request costs two round trips.
    trips = 2 if handshake and args.rtt_ms > 0 else 1
    ceiling = None if args.rtt_ms <= 0 else \
        round(args.concurrency / (trips * args.rtt_ms / 1000), 1)
    results["ceiling_requests_per_s"] = ceiling
    print(f"\n{'':24} {'users/s':>9} {'whole load s':>13} {'users phase s':>14}")
    print(f"{'engine':24} {rate or engine.get('users_per_s_partial', 0):>9} "
          f"{engine['seconds'] or '>' + str(args.max_seconds):>13} "
          f"{engine['users_seconds'] or '-':>14}")
    print(f"{'plain client (' + plain['mode'] + ')':24} {plain['users_per_s']:>9} "
          f"{plain['seconds']:>13} {plain['users_seconds']:>14}")
    print(f"engine / plain = {results['ratio_engine_to_plain']} (goal >= 0.8); "
          f"plain client {plain['requests_per_s']} requests/s"
          + (f", ceiling about {ceiling} requests/s" if ceiling else ""))
    write_json(args.out, results)


if __name__ == "__main__":
    main()
