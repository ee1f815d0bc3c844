"""What the latency proxy itself can carry: requests/s and its CPU per request.

Usage (from the repository root, after `make install`):

    .venv/bin/python bench/proxy_capacity.py --rtt-ms 50 --concurrency 16 --requests 4000

A trivial HTTP/1.1 upstream (a process of its own, answering 201 at once) behind
bench/latency_proxy.py (its own process), and an httpx.AsyncClient with
`--concurrency` requests in flight: once keeping its connections (the ceiling is
concurrency / RTT) and once closing each one as scim2-server does, with the
handshake charged (concurrency / 2 RTT). Prints requests/s against that ceiling and
the proxy process's CPU time per request (from /proc), which says how far it is
from being the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _common import free_port, start_proxy, write_json

ANSWER = (b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
          b"Content-Length: 11\r\n\r\n{\"id\":\"x\"}\n")


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n")
                           if h.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            writer.write(ANSWER)
            await writer.drain()
    except (asyncio.IncompleteReadError, OSError):
        pass
    finally:
        writer.close()


async def _upstream(port: int) -> None:
    server = await asyncio.start_server(_answer, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    await server.serve_forever()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(url: str, requests: int, concurrency: int, close: bool) -> None:
    todo = iter(range(requests))
    headers = {"Connection": "close"} if close else {}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits) as http:

        async def worker() -> None:
            for _ in todo:
                r = await http.post("/Users", json={"userName": "x" * 200}, headers=headers)
                r.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rtt-ms", type=float, default=50.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--requests", type=int, default=4000)
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the upstream process
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.serve:
        asyncio.run(_upstream(args.serve))
        return
    port = free_port()
    upstream = subprocess.Popen([sys.executable, __file__, "--serve", str(port)],
                                stdout=subprocess.PIPE, text=True)
    assert upstream.stdout is not None
    upstream.stdout.readline()
    results = []
    try:
        for close in (False, True):
            proxy = start_proxy(port, args.rtt_ms, handshake=close)
            before, start = cpu_seconds(proxy.proc.pid), time.perf_counter()
            asyncio.run(_load(f"http://127.0.0.1:{proxy.port}", args.requests,
                              args.concurrency, close))
            elapsed = time.perf_counter() - start
            used = cpu_seconds(proxy.proc.pid) - before
            proxy.stop()
            trips = 2 if close else 1
            row = {"connections": "one per request" if close else "kept",
                   "requests_per_s": round(args.requests / elapsed, 1),
                   "ceiling": round(args.concurrency / (trips * args.rtt_ms / 1000), 1),
                   "proxy_cpu_us_per_request": round(1e6 * used / args.requests),
                   "proxy_cpu_share": round(used / elapsed, 3)}
            print(row, flush=True)
            results.append(row)
    finally:
        upstream.terminate()
        upstream.wait(10)
    write_json(args.out, results)


if __name__ == "__main__":
    main()
