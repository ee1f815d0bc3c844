"""Outbound provisioning benchmark: initial load throughput and propagation lag.

Usage (from the repository root, after `make install`):

    .venv/bin/python bench/provision_bench.py --users 10000 --groups 100

The downstream application is a second scimsync instance (`serve --no-worker`, its
own SQLite file) on loopback. The script measures:

1. Initial provisioning: a new target's full pass (users, then groups with their
   members), in-process, against a plain HTTP client sending the same requests (a
   lookup per fifty users, a POST per user, a POST per group with its members) one
   at a time, the engine's concurrency, to a fresh directory of the same downstream.
2. Propagation lag, from the journal entry's commit to the change applied on the
   target, read from the deliveries the engine records: at idle (one change every
   100 ms) and while changes stream in at a fixed rate (`--rate`, default 200/s).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from _common import (  # puts src/ on sys.path
    CLI,
    PATCH,
    group_members,
    percentile,
    seed,
    serve,
    stop,
    user_body,
    write_json,
)

from scimsync.protocol.resources import GROUP
from scimsync.store.directories import Directories
from scimsync.store.engine import make_engine, upgrade
from scimsync.store.resources import Store
from scimsync.store.targets import Targets
from scimsync.sync.engine import Reconciler


def lags_since(engine: Any, target_id: str, after_id: int) -> list[int]:
    from sqlalchemy import select

    from scimsync.store.tables import deliveries

    with engine.connect() as conn:
        return list(conn.execute(select(deliveries.c.lag_ms).where(
            deliveries.c.target_id == target_id, deliveries.c.id > after_id,
            deliveries.c.outcome == "ok")).scalars())


def last_delivery(engine: Any, target_id: str) -> int:
    from sqlalchemy import func, select

    from scimsync.store.tables import deliveries

    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(deliveries.c.id), 0)).where(
            deliveries.c.target_id == target_id)).scalar_one())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--groups", type=int, default=100)
    p.add_argument("--members", type=int, default=100, help="members per group")
    p.add_argument("--rate", type=int, default=200, help="changes per second under load")
    p.add_argument("--seconds", type=int, default=10, help="duration of the load phase")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="provision-bench-"))
    os.environ["SCIMSYNC_SECRET_KEY_FILE"] = str(workdir / "key")
    results: dict[str, Any] = {"users": args.users, "groups": args.groups}
    down_db = f"sqlite:///{workdir / 'downstream.db'}"
    down_env = {**os.environ, "SCIMSYNC_DATABASE_URL": down_db}
    dirs = [json.loads(subprocess.run([*CLI, "directories", "create", n, "--json"],
                                      env=down_env, capture_output=True, text=True,
                                      check=True).stdout) for n in ("engine", "plain")]
    down, down_port = serve(down_db, workdir, "downstream", worker=False)
    up_db = f"sqlite:///{workdir / 'upstream.db'}"
    try:
        engine = make_engine(up_db)
        upgrade(engine)
        store = Store(engine, group_commit=False)
        did = Directories(engine).create("upstream")["id"]
        ids = seed(store, did, args.users, args.groups, args.members)
        # 1. Initial provisioning through the engine.
        base = f"http://127.0.0.1:{down_port}"
        t = Targets(engine).add(did, "downstream", "scim", {
            "url": f"{base}{dirs[0]['scim_path']}",
            "auth": {"type": "bearer", "token": dirs[0]["token"]},
            # One request at a time, like the plain client below it is compared with.
            "profile": {"match": ["externalId"], "concurrency": 1}})
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        rec = Reconciler(engine, keep_actions=False)
        while not rec.run(t["id"]).done:  # the initial load runs chunk by chunk
            pass
        elapsed = time.perf_counter() - start
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results["engine_users_per_s"] = round(args.users / elapsed, 1)
        results["engine_seconds"] = round(elapsed, 1)
        results["engine_peak_rss_mb"] = [round(rss_before, 1), round(rss_after, 1)]
        print(f"engine: {args.users} users + {args.groups} groups in {elapsed:.1f} s "
              f"({results['engine_users_per_s']} users/s), peak RSS {rss_before:.0f} -> "
              f"{rss_after:.0f} MB")
        # The same requests from a plain HTTP client, one at a time: per fifty users one
        # `or` filter lookup, then a POST per user; then a POST per group with its
        # members' remote ids. The engine must not be the bottleneck.
        headers = {"Authorization": f"Bearer {dirs[1]['token']}"}
        url = f"{base}{dirs[1]['scim_path']}"
        remote: dict[int, str] = {}
        with httpx.Client(headers=headers, timeout=30) as http:
            start = time.perf_counter()
            for first in range(0, args.users, 50):
                chunk = range(first, min(args.users, first + 50))
                flt = " or ".join(f'externalId eq "x{i}"' for i in chunk)
                http.get(f"{url}/Users", params={"filter": flt, "count": "50"})
                for i in chunk:
                    r = http.post(f"{url}/Users", json={**user_body(i), "externalId": f"x{i}"})
                    assert r.status_code == 201, r.text
                    remote[i] = r.json()["id"]
            for g in range(args.groups):
                members = sorted(remote[k] for k in group_members(g, args.members, args.users))
                r = http.post(f"{url}/Groups", json={
                    "schemas": [GROUP.schema.id], "displayName": f"group {g}",
                    "externalId": f"g{g}", "members": [{"value": m} for m in members]})
                assert r.status_code == 201, r.text
            plain_seconds = time.perf_counter() - start
        plain = args.users / plain_seconds
        results["plain_client_users_per_s"] = round(plain, 1)
        results["ratio_engine_to_plain"] = round(results["engine_users_per_s"] / plain, 2)
        print(f"plain client, same requests: {plain_seconds:.1f} s ({plain:.0f} users/s); "
              f"engine/plain = {results['ratio_engine_to_plain']}")
        # 2. Propagation lag through `scimsync serve` with its embedded worker.
        up_env = {**os.environ, "SCIMSYNC_DATABASE_URL": up_db}
        up_token = json.loads(subprocess.run(
            [*CLI, "tokens", "create", did, "--json"], env=up_env, capture_output=True,
            text=True, check=True).stdout)["token"]
        up, up_port = serve(up_db, workdir, "upstream", worker=True)
        try:
            ubase = f"http://127.0.0.1:{up_port}/scim/v2/{did}"
            hdr = {"Authorization": f"Bearer {up_token}"}

            def change(http: httpx.Client, i: int) -> None:
                r = http.patch(f"{ubase}/Users/{ids[i % len(ids)]}", json={
                    "schemas": [PATCH], "Operations": [
                        {"op": "replace", "path": "title", "value": f"t{i}-{time.time()}"}]})
                assert r.status_code == 200, r.text

            mark = last_delivery(engine, t["id"])
            with httpx.Client(headers=hdr, timeout=30) as http:
                for i in range(50):
                    change(http, i)
                    time.sleep(0.1)
            time.sleep(2)
            idle = lags_since(engine, t["id"], mark)
            results["idle"] = {"samples": len(idle), "p50_ms": percentile(idle, 0.5),
                               "p99_ms": percentile(idle, 0.99), "max_ms": max(idle)}
            print(f"idle lag: {results['idle']}")
            mark = last_delivery(engine, t["id"])
            total = args.rate * args.seconds
            sent = [0]

            def pump(k: int, stride: int) -> None:
                with httpx.Client(headers=hdr, timeout=30) as http:
                    t0 = time.perf_counter()
                    for i in range(k, total, stride):
                        due = t0 + i / args.rate
                        delay = due - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                        change(http, 1000 + i)
                        sent[0] += 1

            threads = [threading.Thread(target=pump, args=(k, 8)) for k in range(8)]
            t0 = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            achieved = sent[0] / (time.perf_counter() - t0)
            deadline = time.monotonic() + 60
            while len(lags_since(engine, t["id"], mark)) < total * 0.99 and \
                    time.monotonic() < deadline:
                time.sleep(0.5)
            loaded = lags_since(engine, t["id"], mark)
            results["load"] = {"target_rate": args.rate, "achieved_rate": round(achieved, 1),
                               "samples": len(loaded), "p50_ms": percentile(loaded, 0.5),
                               "p99_ms": percentile(loaded, 0.99), "max_ms": max(loaded)}
            print(f"lag while {achieved:.0f} changes/s stream in: {results['load']}")
        finally:
            stop(up)
    finally:
        stop(down)
        shutil.rmtree(workdir, ignore_errors=True)
    write_json(args.out, results)


if __name__ == "__main__":
    main()
