"""Drift detection benchmark: full reconciliation of a large SCIM target.

Usage (from the repository root, after `make install`):

    .venv/bin/python bench/drift_bench.py --accounts 20000 100000 250000 --repeat 5

For each size: the target is a second scimsync instance (`serve --no-worker`, its own
SQLite file) on loopback holding that many users, converged with a hub directory of
the same users (links written as provisioning would have left them), plus some drift
made by hand: `--drift` of each of orphaned accounts, names changed in the app, users
deactivated in the hub only, and users never provisioned. The reconciliation runs as
its own process, `scimsync drift app --json`, exactly as an operator runs it; the
script samples that process's memory from /proc every 0.1 s and reports the end-to-end
time (listing included), the comparison step's rate, what it found, and the peak RSS
(VmHWM). Memory is flat when the peak does not grow with the target. This machine's
speed varies from run to run (a pure-Python loop varies by a factor of 1.5), so
`--repeat N` runs N reconciliations per size and reports the median and the range.

`--workdir DIR` keeps the seeded databases in DIR and reuses them on the next run
(seeding 250,000 accounts takes a minute or two); by default they go to a temporary
directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import CLI, serve, status_mb, stop, user_body  # puts src/ on sys.path
from sqlalchemy import insert

from scimsync.protocol.resources import USER
from scimsync.protocol.timefmt import now
from scimsync.protocol.values import normalise_body
from scimsync.store.directories import Directories
from scimsync.store.engine import make_engine, upgrade
from scimsync.store.resources import Loads, Store
from scimsync.store.tables import links
from scimsync.store.targets import Targets
from scimsync.sync.mapping import desired_user, digest

PROFILE = {"groups": False, "page_size": 1000}


def seed(workdir: Path, n: int, k: int) -> dict[str, Any]:
    """The hub and the app, converged, with k accounts of each kind of drift."""
    up = make_engine(f"sqlite:///{workdir / 'upstream.db'}")
    upgrade(up)
    hub = Store(up, group_commit=False)
    did = Directories(up).create("upstream")["id"]
    down = make_engine(f"sqlite:///{workdir / 'downstream.db'}")
    upgrade(down)
    app = Store(down, group_commit=False)
    app_dir = Directories(down).create("app")
    print(f"seeding {n} users in the hub and, converged, in the app", flush=True)
    target = Targets(up).add(did, "app", "scim", {
        "url": "http://127.0.0.1:1/placeholder",
        "auth": {"type": "bearer", "token": app_dir["token"]}, "profile": PROFILE})
    config = Targets(up).runtime(target["id"])[1]
    batch = 5000
    for first in range(0, n, batch):
        rows = []
        with hub.write() as hconn, app.write() as aconn:
            for i in range(first, min(n, first + batch)):
                # Drift, k accounts of each: [0, k) a name changed by hand in the
                # app; [k, 2k) deactivated in the hub only (lingering access);
                # [2k, 3k) never provisioned (missing accounts).
                rec = hub.create(did, USER, normalise_body(USER, {
                    **user_body(i), "active": not k <= i < 2 * k}), None, hconn,
                    Loads(False, False))
                if 2 * k <= i < 3 * k:
                    continue
                body = desired_user(config, rec, lambda _: None)
                assert body is not None
                body["active"] = True  # as last applied
                in_app = {**body, "name": {"givenName": "Bench", "familyName": "Changed"}
                          } if i < k else body
                remote = app.create(app_dir["id"], USER, normalise_body(USER, in_app),
                                    None, aconn, Loads(False, False))
                rows.append({"target_id": target["id"], "resource_id": rec.id,
                             "resource_type": "User", "remote_id": remote.id,
                             "applied_hash": digest(body), "applied": body,
                             "state": "provisioned", "updated": now()})
            hconn.execute(insert(links), rows)
        if (first // batch) % 10 == 9:
            print(f"  {min(n, first + batch)}/{n}", flush=True)
    with app.write() as aconn:
        for i in range(k):  # created by hand in the app: orphaned accounts
            app.create(app_dir["id"], USER, normalise_body(USER, {
                "schemas": [USER.schema.id], "userName": f"stranger{i}@bench.test"}),
                None, aconn, Loads(False, False))
    for engine in (up, down):  # fold the WAL in: the runs read a settled file
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
    return {"target_id": target["id"], "app": app_dir}


def reconcile(workdir: Path, up_db: str) -> dict[str, Any]:
    """One `scimsync drift` process: its run's figures and its memory."""
    out = (workdir / "drift.json").open("w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([*CLI, "drift", "app", "--directory", "upstream", "--json",
                             "--database", up_db], stdout=out,
                            stderr=(workdir / "drift.log").open("w"))
    samples: list[float] = []
    mem = status_mb(proc.pid)
    while proc.poll() is None:
        try:
            now_mb = status_mb(proc.pid)
        except (FileNotFoundError, ProcessLookupError):
            break
        if "VmRSS" not in now_mb:  # exiting: the memory is already gone
            break
        mem = now_mb
        samples.append(mem["VmRSS"])
        time.sleep(0.1)
    proc.wait()
    elapsed = time.perf_counter() - t0
    out.close()
    if proc.returncode != 0:
        raise RuntimeError(f"scimsync drift failed: see {workdir / 'drift.log'}")
    stats = json.loads((workdir / "drift.json").read_text())["run"]["stats"]
    return {"process_seconds": round(elapsed, 1), "listing_seconds": stats["listing_seconds"],
            "comparison_seconds": stats["comparison_seconds"],
            "compared_per_second": stats["compared_per_second"],
            "findings": stats["findings"],
            # VmHWM as read in the last sample before the process exited.
            "peak_rss_mb": round(mem["VmHWM"], 1),
            "rss_by_tenth_mb": [round(samples[len(samples) * i // 10], 1)
                                for i in range(10)] if samples else []}


def one_size(n: int, k: int, workdir: Path, repeat: int) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["SCIMSYNC_SECRET_KEY_FILE"] = str(workdir / "key")
    marker = workdir / "seeded.json"
    t0 = time.perf_counter()
    if marker.exists() and json.loads(marker.read_text())["accounts"] == [n, k]:
        seeded = json.loads(marker.read_text())
        seed_seconds = None
    else:
        for name in ("upstream.db", "downstream.db"):
            (workdir / name).unlink(missing_ok=True)
        seeded = {"accounts": [n, k], **seed(workdir, n, k)}
        marker.write_text(json.dumps(seeded))
        seed_seconds = round(time.perf_counter() - t0, 1)
    up_db = f"sqlite:///{workdir / 'upstream.db'}"
    down, port = serve(f"sqlite:///{workdir / 'downstream.db'}", workdir, "downstream",
                       worker=False)
    try:
        up = make_engine(up_db)
        app = seeded["app"]
        Targets(up).update(seeded["target_id"], {
            "url": f"http://127.0.0.1:{port}{app['scim_path']}",
            "auth": {"type": "bearer", "token": app["token"]}, "profile": PROFILE})
        up.dispose()
        runs = [reconcile(workdir, up_db) for _ in range(repeat)]
    finally:
        stop(down)
    rates = sorted(r["compared_per_second"] for r in runs)
    return {"accounts": n, "drift_per_class": k, "seed_seconds": seed_seconds,
            "runs": runs, "compared_per_second_median": statistics.median(rates),
            "compared_per_second_range": [rates[0], rates[-1]],
            "process_seconds_max": max(r["process_seconds"] for r in runs),
            "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--accounts", type=int, nargs="+", default=[250_000])
    p.add_argument("--drift", type=int, default=100, help="accounts drifted per class")
    p.add_argument("--repeat", type=int, default=1,
                   help="reconciliations per size (this machine's speed varies run to run)")
    p.add_argument("--workdir", default=None, help="keep (and reuse) the seeded databases")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    results = []
    for n in args.accounts:
        if args.workdir:
            r = one_size(n, args.drift, Path(args.workdir) / str(n), args.repeat)
        else:
            tmp = Path(tempfile.mkdtemp(prefix="drift-bench-"))
            try:
                r = one_size(n, args.drift, tmp, args.repeat)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        print(json.dumps({k: v for k, v in r.items() if k != "runs"}), flush=True)
        results.append(r)
    print(f"{'accounts':>9} {'runs':>4} {'process s':>9} {'compared/s median':>17} "
          f"{'range':>15} {'peak MB':>8}")
    for r in results:
        low, high = r["compared_per_second_range"]
        print(f"{r['accounts']:>9} {len(r['runs']):>4} {r['process_seconds_max']:>9} "
              f"{r['compared_per_second_median']:>17} {f'{low}-{high}':>15} "
              f"{r['peak_rss_mb_max']:>8}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
