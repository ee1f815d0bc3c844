"""Drift detection benchmark: full reconciliation of a large SCIM target.

Usage (from the repository root, after `make install`):

    .venv/bin/python bench/drift_bench.py --accounts 250000

The target is a second scimsync instance (`serve --no-worker`, its own SQLite file)
on loopback holding `--accounts` users, converged with a hub directory of the same
users (links written as provisioning would have left them), plus some drift made by
hand: `--drift` of each of orphaned accounts, names changed in the app, users
deactivated in the hub only, and users never provisioned. The script runs one full
reconciliation in-process and reports the end-to-end time (listing included), the
comparison step's rate, what it found, and the peak RSS of the process during the run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from provision_bench import serve, stop, user_body  # puts src/ on sys.path
from sqlalchemy import insert

from scimsync.protocol.resources import USER
from scimsync.protocol.timefmt import now
from scimsync.protocol.values import normalise_body
from scimsync.store.directories import Directories
from scimsync.store.engine import make_engine, upgrade
from scimsync.store.resources import Loads, Store
from scimsync.store.tables import links
from scimsync.targets.drift import Detector
from scimsync.targets.mapping import desired_user, digest
from scimsync.targets.store import Targets


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--accounts", type=int, default=250_000)
    p.add_argument("--drift", type=int, default=100, help="accounts drifted per class")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    n, k = args.accounts, args.drift
    workdir = Path(tempfile.mkdtemp(prefix="drift-bench-"))
    os.environ["SCIMSYNC_SECRET_KEY_FILE"] = str(workdir / "key")
    down_db = f"sqlite:///{workdir / 'downstream.db'}"
    up_db = f"sqlite:///{workdir / 'upstream.db'}"
    results: dict[str, Any] = {"accounts": n, "drift_per_class": k}
    try:
        up = make_engine(up_db)
        upgrade(up)
        hub = Store(up, group_commit=False)
        did = Directories(up).create("upstream")["id"]
        down = make_engine(down_db)
        upgrade(down)
        app = Store(down, group_commit=False)
        app_dir = Directories(down).create("app")
        print(f"seeding {n} users in the hub and, converged, in the app", flush=True)
        t0 = time.perf_counter()
        target = Targets(up).add(did, "app", "scim", {
            "url": "http://127.0.0.1:1/placeholder", "auth": {"type": "bearer",
                                                              "token": app_dir["token"]},
            "profile": {"groups": False, "page_size": 1000}})
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
            print(f"  {min(n, first + batch)}/{n}", flush=True)
        with app.write() as aconn:
            for i in range(k):  # created by hand in the app: orphaned accounts
                app.create(app_dir["id"], USER, normalise_body(USER, {
                    "schemas": [USER.schema.id], "userName": f"stranger{i}@bench.test"}),
                    None, aconn, Loads(False, False))
        results["seed_seconds"] = round(time.perf_counter() - t0, 1)
        up.dispose()
        down.dispose()
        proc, port = serve(down_db, workdir, "downstream", worker=False)
        try:
            Targets(up).update(target["id"], {
                "url": f"http://127.0.0.1:{port}{app_dir['scim_path']}",
                "auth": {"type": "bearer", "token": app_dir["token"]},
                "profile": {"groups": False, "page_size": 1000}})
            peak = [rss_mb()]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.2):
                    peak[0] = max(peak[0], rss_mb())

            sampler = threading.Thread(target=sample, daemon=True)
            rss_before = rss_mb()
            sampler.start()
            t0 = time.perf_counter()
            run = Detector(up).run(target["id"])
            elapsed = time.perf_counter() - t0
            done.set()
            sampler.join()
        finally:
            stop(proc)
        stats = run["stats"]
        results.update({
            "status": run["status"], "end_to_end_seconds": round(elapsed, 1),
            "listing_seconds": stats["listing_seconds"],
            "comparison_seconds": stats["comparison_seconds"],
            "compared_per_second": stats["compared_per_second"],
            "findings": stats["findings"], "rss_before_mb": round(rss_before, 1),
            "rss_peak_mb": round(peak[0], 1),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
