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

    .venv/bin/python bench/worker_memory.py --users 10000 --targets 10

The other goal: one directory of 10,000 users, one running worker, and ten targets
(ten directories of the downstream) added one after the other, each once the one
before is loaded; the worker's RSS after each. Flat when it does not grow with the
number of targets.
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

from _common import CLI, seed, serve, status_mb, stop, write_json  # puts src/ on sys.path
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


def downstream(workdir: Path, count: int) -> tuple[subprocess.Popen[bytes], int,
                                                  list[dict[str, Any]]]:
    """A downstream scimsync (`serve --no-worker`) with `count` directories (apps)."""
    down_db = f"sqlite:///{workdir / 'downstream.db'}"
    down_env = {**os.environ, "SCIMSYNC_DATABASE_URL": down_db}
    dirs = [json.loads(subprocess.run([*CLI, "directories", "create", f"app{k}", "--json"],
                                      env=down_env, capture_output=True, text=True,
                                      check=True).stdout) for k in range(count)]
    proc, port = serve(down_db, workdir, "downstream", worker=False)
    return proc, port, dirs


def upstream(workdir: Path, users: int, groups: int) -> tuple[Any, str, str]:
    """A seeded upstream directory: (engine, directory id, database URL)."""
    up_db = f"sqlite:///{workdir / 'upstream.db'}"
    engine = make_engine(up_db)
    upgrade(engine)
    did = Directories(engine).create("upstream")["id"]
    seed(Store(engine, group_commit=False), did, users, groups, 100)
    return engine, did, up_db


def add_app(engine: Any, did: str, port: int, d: dict[str, Any]) -> str:
    return str(Targets(engine).add(did, d["name"], "scim", {
        "url": f"http://127.0.0.1:{port}{d['scim_path']}",
        "auth": {"type": "bearer", "token": d["token"]},
        "profile": {"match": ["externalId"]}})["id"])


def start_worker(up_db: str, workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*CLI, "worker", "--database", up_db],
                            stdout=(workdir / "worker.log").open("w"),
                            stderr=subprocess.STDOUT)


def one_size(users: int, workdir: Path) -> dict[str, Any]:
    groups = max(1, users // 100)
    down, port, dirs = downstream(workdir, 1)
    try:
        engine, did, up_db = upstream(workdir, users, groups)
        tid = add_app(engine, did, port, dirs[0])
        worker = start_worker(up_db, workdir)
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
                done = linked(engine, tid)
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


def many_targets(users: int, count: int, workdir: Path) -> list[dict[str, Any]]:
    """One directory and one running worker; `count` targets added one after the
    other, each once the previous one is loaded; the worker's RSS after each."""
    groups = max(1, users // 100)
    down, port, dirs = downstream(workdir, count)
    rows: list[dict[str, Any]] = []
    try:
        engine, did, up_db = upstream(workdir, users, groups)
        worker = start_worker(up_db, workdir)
        try:
            for k, d in enumerate(dirs, 1):
                tid = add_app(engine, did, port, d)
                start = time.perf_counter()
                while linked(engine, tid) < users + groups:
                    if worker.poll() is not None:
                        raise RuntimeError(f"worker exited: see {workdir / 'worker.log'}")
                    time.sleep(0.2)
                mem = status_mb(worker.pid)
                rows.append({"targets": k, "seconds": round(time.perf_counter() - start, 1),
                             "rss_mb": round(mem["VmRSS"], 1),
                             "peak_rss_mb": round(mem["VmHWM"], 1)})
                print(f"  {rows[-1]}", flush=True)
        finally:
            stop(worker)
        engine.dispose()
    finally:
        stop(down)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    p.add_argument("--targets", type=int, default=0,
                   help="instead: add this many targets of --users users one by one")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.targets:
        workdir = Path(tempfile.mkdtemp(prefix="worker-memory-"))
        os.environ["SCIMSYNC_SECRET_KEY_FILE"] = str(workdir / "key")
        try:
            rows = many_targets(args.users[0], args.targets, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print(f"{'targets':>8} {'load s':>8} {'RSS':>8} {'peak':>8}")
        for r in rows:
            print(f"{r['targets']:>8} {r['seconds']:>8} {r['rss_mb']:>8} {r['peak_rss_mb']:>8}")
        write_json(args.out, {"users_per_target": args.users[0], "rows": rows})
        return
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
    write_json(args.out, results)


if __name__ == "__main__":
    main()
