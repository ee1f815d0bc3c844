"""Slow header senders against `scimsync serve`: how many stay connected, and whether
ordinary requests are still answered meanwhile.

Usage (from the repository root, after `make install`):

    .venv/bin/python bench/slow_clients.py                      # scimsync serve
    .venv/bin/python bench/slow_clients.py --baseline           # plain uvicorn defaults

N connections (default 300) each start a request and then send one header line every
`--gap` seconds (default 5), never finishing the headers. Every `--sample` seconds
the script prints how many of them the server still holds open and how long a
GET /healthz on a fresh connection took. `--baseline` runs uvicorn with its defaults
on the same application, which is how `serve` ran before the header deadline.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(port: int, baseline: bool, db: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SCIMSYNC_DATABASE_URL": f"sqlite:///{db}",
           "SCIMSYNC_EMBEDDED_WORKER": "0"}
    if baseline:
        cmd = [sys.executable, "-m", "uvicorn", "scimsync.api.asgi:app", "--port", str(port),
               "--log-level", "warning"]
    else:
        cmd = [sys.executable, "-m", "scimsync.cli", "serve", "--port", str(port),
               "--no-worker", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1024) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=300)
    p.add_argument("--gap", type=float, default=5.0)
    p.add_argument("--sample", type=float, default=5.0)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--baseline", action="store_true")
    args = p.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start(port, args.baseline, Path(tmp) / "bench.db")
        try:
            socks = []
            for _ in range(args.connections):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")
                socks.append(s)
            print(f"{'baseline uvicorn' if args.baseline else 'scimsync serve'}: "
                  f"{args.connections} connections, a header line every {args.gap:g} s")
            print("seconds  open  healthz_ms")
            start_at = last_line = time.monotonic()
            open_socks = list(socks)
            next_sample = start_at
            while time.monotonic() - start_at <= args.duration:
                now = time.monotonic()
                if now - last_line >= args.gap:
                    for i, s in enumerate(open_socks):
                        with contextlib.suppress(OSError):
                            s.sendall(f"X-Slow-{i}: 1\r\n".encode())
                    last_line = now
                if now >= next_sample:
                    open_socks = [s for s in open_socks if still_open(s)]
                    t0 = time.perf_counter()
                    status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
                    ms = (time.perf_counter() - t0) * 1000
                    print(f"{now - start_at:7.1f}  {len(open_socks):4d}  {ms:8.1f}"
                          f"  ({status.status_code})")
                    next_sample += args.sample
                time.sleep(0.05)
            for s in socks:
                s.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
