"""Worker memory as the directory grows: a `scimsync worker` process's resident memory
during a new target's initial provisioning, at several directory sizes.

Usage (from the repository root, after `make install`):

    .venv/bin/python bench/worker_memory.py --users 10000 50000 100000

For each size: a fresh upstream SQLite directory with that many users (and one group
of 100 members per 100 users), a downstream scimsync (`serve --no-worker`) on
loopback, one SCIM target, and a `scimsync worker` process that provisions it. The
script samples the worker's RSS from /proc every 0.2 s until every user and group is
linked, and prints the RSS once the first 1,000 resources are linked, the peak
(VmHWM) and the RSS at the end. Memory is flat when the peak does not grow with the
directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import CLI, seed, serve, status_mb, stop  # puts src/ on sys.path
from sqlalchemy import func, select

from scimsync.store.directories import Directories
from scimsync.store.engine import make_engine, upgrade
from scimsync.store.resources import Store
from scimsync.store.tables import links
from scimsync.store.targets import Targets


def linked(engine: Any, target_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(links).where(
            links.c.target_id == target_id, links.c.remote_id.is_not(None))).scalar_one())


def one_size(users: int, workdir: Path) -> dict[str, Any]:
    groups = max(1, users // 100)
    down_db = f"sqlite:///{workdir / 'downstream.db'}"
    down_env = {**os.environ, "SCIMSYNC_DATABASE_URL": down_db}
    d = json.loads(subprocess.run([*CLI, "directories", "create", "app", "--json"],
                                  env=down_env, capture_output=True, text=True,
                                  check=True).stdout)
    down, port = serve(down_db, workdir, "downstream", worker=False)
    up_db = f"sqlite:///{workdir / 'upstream.db'}"
    try:
        engine = make_engine(up_db)
        upgrade(engine)
        did = Directories(engine).create("upstream")["id"]
        seed(Store(engine, group_commit=False), did, users, groups, 100)
        t = Targets(engine).add(did, "app", "scim", {
            "url": f"http://127.0.0.1:{port}{d['scim_path']}",
            "auth": {"type": "bearer", "token": d["token"]},
            "profile": {"match": ["externalId"]}})
        worker = subprocess.Popen([*CLI, "worker", "--database", up_db],
                                  stdout=(workdir / "worker.log").open("w"),
                                  stderr=subprocess.STDOUT)
        try:
            start = time.perf_counter()
            early = None
            samples: list[tuple[float, int, float]] = []
            total = users + groups
            done = 0
            while done < total:
                time.sleep(0.2)
                if worker.poll() is not None:
                    raise RuntimeError(f"worker exited: see {workdir / 'worker.log'}")
                done = linked(engine, t["id"])
                mem = status_mb(worker.pid)
                samples.append((time.perf_counter() - start, done, mem["VmRSS"]))
                if early is None and done >= 1000:
                    early = mem["VmRSS"]
                if len(samples) % 150 == 0:
                    print(f"  {done}/{total} linked, RSS {mem['VmRSS']:.1f} MB", flush=True)
            elapsed = time.perf_counter() - start
            mem = status_mb(worker.pid)
        finally:
            stop(worker)
        engine.dispose()
    finally:
        stop(down)
    # RSS at each tenth of the run, to show the shape and not only the ends.
    shape = [round(next(s[2] for s in samples if s[1] >= total * k / 10), 1)
             for k in range(1, 11)]
    return {"users": users, "groups": groups, "seconds": round(elapsed, 1),
            "users_per_s": round(users / elapsed, 1),
            "rss_after_1000_mb": round(early or 0.0, 1), "rss_end_mb": round(mem["VmRSS"], 1),
            "peak_rss_mb": round(mem["VmHWM"], 1), "rss_by_tenth_mb": shape}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    p.add_argument("--out", default=None)
    args = p.parse_args()
    results = []
    for n in args.users:
        workdir = Path(tempfile.mkdtemp(prefix="worker-memory-"))
        os.environ["SCIMSYNC_SECRET_KEY_FILE"] = str(workdir / "key")
        try:
            r = one_size(n, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print(f"{n} users: {r}", flush=True)
        results.append(r)
    print(f"{'users':>8} {'seconds':>8} {'users/s':>8} {'RSS@1k':>8} {'peak':>8} {'end':>8}")
    for r in results:
        print(f"{r['users']:>8} {r['seconds']:>8} {r['users_per_s']:>8} "
              f"{r['rss_after_1000_mb']:>8} {r['peak_rss_mb']:>8} {r['rss_end_mb']:>8}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
