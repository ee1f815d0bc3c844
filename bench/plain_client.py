"""The initial-load baseline: a plain HTTP client, N requests in flight.

It sends the requests an initial load sends, N at a time, to a real SCIM application.

Usage (from the repository root, after `make install`):

    .venv/bin/python bench/plain_client.py --users 10000 --groups 100 --concurrency 16 \
        --rtt-ms 50

It starts python-scim's scim2-server (in memory) behind bench/latency_proxy.py
(`--rtt-ms` split evenly between the two directions; 0 means no proxy), and sends
what the engine sends for a new target: per fifty users one `or` filter lookup per
match attribute (`--match`, as the target's `profile.match`; none by default, see
docs/benchmarks.md), then a POST /Users per user with the body the engine builds;
once every user exists, a POST /Groups per group with its members' remote ids. A
user's POST waits for the lookup of its fifty; otherwise `--concurrency` requests are
in flight at all times. It runs once with threads (one httpx.Client each) and once
with asyncio (one httpx.AsyncClient), each against a fresh application, and keeps
the faster: the baseline is the best a plain client does.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _common import (
    CORE_GROUP,
    Watcher,
    group_members,
    reach,
    start_app,
    user_body,
    write_json,
)

MATCH_BATCH = 50  # users per lookup, as the engine's full pass
Doc = dict[str, Any]


@dataclass(frozen=True)
class Shape:
    """What an initial load holds and how existing accounts are looked up."""

    users: int
    groups: int = 0
    members: int = 100
    match: tuple[str, ...] = ()


@dataclass(frozen=True)
class Request:
    """One HTTP request of the load; a create waits for the lookups of its chunk."""

    method: str
    path: str
    chunk: int
    index: int = -1  # the user or group it creates
    params: dict[str, str] | None = None
    body: Doc | None = None


def external_id(kind: str, i: int) -> str:
    """A stand-in for the hub's id (a UUID, as long as the real one)."""
    return str(uuid.UUID(int=(kind == "Group") << 64 | i))


def user_request(i: int) -> Doc:
    """The body the engine POSTs for the i-th benchmark user (scimsync.sync.mapping)."""
    body = user_body(i)
    return {"schemas": body.pop("schemas"), "externalId": external_id("User", i), **body}


def group_request(g: int, member_ids: list[str]) -> Doc:
    """The body the engine POSTs for group g, members as the app's own ids."""
    return {"schemas": [CORE_GROUP], "externalId": external_id("Group", g),
            "displayName": f"group {g}",
            "members": [{"value": m} for m in sorted(member_ids)]}


def _lookup(attr: str, chunk: range) -> dict[str, str]:
    def value(i: int) -> str:
        return external_id("User", i) if attr == "externalId" else user_body(i)["userName"]

    path = "emails.value" if attr == "email" else attr
    return {"filter": " or ".join(f'{path} eq "{value(i)}"' for i in chunk),
            "count": str(len(chunk))}


def user_requests(shape: Shape) -> Iterator[Request]:
    """The users phase in the engine's order: per fifty, the lookups, then the creates."""
    for c, first in enumerate(range(0, shape.users, MATCH_BATCH)):
        chunk = range(first, min(shape.users, first + MATCH_BATCH))
        for attr in shape.match:
            yield Request("GET", "/Users", c, params=_lookup(attr, chunk))
        for i in chunk:
            yield Request("POST", "/Users", c, i, body=user_request(i))


def group_requests(shape: Shape, remote: dict[int, str]) -> Iterator[Request]:
    """The groups phase: a POST per group with its members' remote ids."""
    for g in range(shape.groups):
        members = [remote[k] for k in group_members(g, shape.members, shape.users)]
        yield Request("POST", "/Groups", 0, g, body=group_request(g, members))


class _Tally:
    """What the workers share: the next request, lookups left per chunk, remote ids."""

    def __init__(self, shape: Shape, requests: Iterator[Request]):
        self.requests = requests
        self.left = {c: len(shape.match)
                     for c in range((shape.users + MATCH_BATCH - 1) // MATCH_BATCH)}
        self.remote: dict[int, str] = {}
        self.sent = 0

    def answered(self, req: Request, r: httpx.Response) -> bool:
        """Record an answer; True when it completes its chunk's lookups."""
        expected = 200 if req.method == "GET" else 201
        if r.status_code != expected:
            raise RuntimeError(f"{req.method} {req.path} answered {r.status_code}: "
                               f"{r.text[:300]}")
        self.sent += 1
        if req.method == "GET":
            self.left[req.chunk] -= 1
            return self.left[req.chunk] == 0
        if req.path == "/Users":
            self.remote[req.index] = str(r.json()["id"])
        return False


def run_threads(base: str, token: str, shape: Shape, concurrency: int) -> dict[str, Any]:
    """The load from `concurrency` threads, each with its own httpx.Client."""
    headers = {"Authorization": f"Bearer {token}"}

    def phase(tally: _Tally) -> None:
        lock = threading.Lock()
        ready = {c: threading.Event() for c in tally.left}
        for c, n in tally.left.items():
            if n == 0:
                ready[c].set()
        failed: list[BaseException] = []

        def worker() -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                while not failed:
                    with lock:
                        req = next(tally.requests, None)
                    if req is None:
                        return
                    if req.path == "/Users" and req.method == "POST":
                        ready[req.chunk].wait()
                    try:
                        r = http.request(req.method, req.path, params=req.params,
                                         json=req.body)
                        with lock:
                            if tally.answered(req, r):
                                ready[req.chunk].set()
                    except BaseException as exc:
                        failed.append(exc)
                        for e in ready.values():
                            e.set()
                        return

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failed:
            raise failed[0]

    return _timed(shape, phase)


def run_asyncio(base: str, token: str, shape: Shape, concurrency: int) -> dict[str, Any]:
    """The load from `concurrency` tasks sharing one httpx.AsyncClient."""
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def phase_async(tally: _Tally) -> None:
        ready = {c: asyncio.Event() for c in tally.left}
        for c, n in tally.left.items():
            if n == 0:
                ready[c].set()
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60,
                                     limits=limits) as http:

            async def worker() -> None:
                while (req := next(tally.requests, None)) is not None:
                    if req.path == "/Users" and req.method == "POST":
                        await ready[req.chunk].wait()
                    r = await http.request(req.method, req.path, params=req.params,
                                           json=req.body)
                    if tally.answered(req, r):
                        ready[req.chunk].set()

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    return _timed(shape, lambda tally: asyncio.run(phase_async(tally)))


def _timed(shape: Shape, phase: Callable[[_Tally], None]) -> dict[str, Any]:
    start = time.perf_counter()
    users = _Tally(shape, user_requests(shape))
    phase(users)
    users_done = time.perf_counter()
    groups = _Tally(Shape(0), group_requests(shape, users.remote))
    phase(groups)
    total = time.perf_counter() - start
    requests = users.sent + groups.sent
    return {"seconds": round(total, 2), "users_seconds": round(users_done - start, 2),
            "users_per_s": round(shape.users / total, 1), "requests": requests,
            "requests_per_s": round(requests / total, 1)}


RUNNERS = {"threads": run_threads, "asyncio": run_asyncio}


def baseline(workdir: Path, shape: Shape, concurrency: int, rtt_ms: float,
             handshake: bool = True, modes: tuple[str, ...] = ("threads", "asyncio"),
             ) -> dict[str, Any]:
    """Run the plain client in each mode against a fresh app; the faster is `best`."""
    out: dict[str, Any] = {}
    for mode in modes:
        app = start_app(workdir, f"plain-{mode}")
        try:
            with reach(app, rtt_ms, handshake) as base:
                print(f"plain client ({mode}, {concurrency} in flight, RTT {rtt_ms:g} ms): "
                      f"{shape.users} users, {shape.groups} groups", flush=True)
                with Watcher(app) as watcher:  # watched as the engine's load is
                    out[mode] = RUNNERS[mode](base, app.token, shape, concurrency)
                out[mode]["watch_polls"] = watcher.polls
                print(f"  {out[mode]}", flush=True)
        finally:
            app.stop()
    best = max(modes, key=lambda m: out[m]["users_per_s"])
    out["best"] = {"mode": best, **out[best]}
    return out


def parse_match(text: str) -> tuple[str, ...]:
    """`none` or a comma-separated list of externalId, userName, email."""
    return () if text in ("", "none") else tuple(x.strip() for x in text.split(","))


def load_arguments(p: argparse.ArgumentParser, users: int = 10_000) -> None:
    """The options that describe a load, the same in every script that runs one."""
    p.add_argument("--users", type=int, default=users)
    p.add_argument("--groups", type=int, default=None, help="default: users / 100")
    p.add_argument("--members", type=int, default=100, help="members per group")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    p.add_argument("--rtt-ms", type=float, default=50.0, help="0: no proxy")
    p.add_argument("--match", default="none", help="profile.match (lookups), or none")
    p.add_argument("--no-handshake", action="store_true",
                   help="the proxy does not charge a round trip per new connection")
    p.add_argument("--out", default=None, help="write the results to this JSON file")


def shape_of(args: argparse.Namespace) -> Shape:
    """The load the options describe."""
    if args.groups is None:
        args.groups = args.users // 100
    return Shape(args.users, args.groups, args.members, parse_match(args.match))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    load_arguments(p)
    p.add_argument("--mode", choices=["both", *RUNNERS], default="both")
    args = p.parse_args()
    shape = shape_of(args)
    modes = tuple(RUNNERS) if args.mode == "both" else (args.mode,)
    workdir = Path(tempfile.mkdtemp(prefix="plain-client-"))
    try:
        result = baseline(workdir, shape, args.concurrency, args.rtt_ms,
                          not args.no_handshake, modes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    best = result["best"]
    print(f"best: {best['mode']}, {best['users_per_s']} users/s, "
          f"{best['requests_per_s']} requests/s, whole load {best['seconds']} s")
    write_json(args.out, {"users": args.users, "groups": args.groups,
                          "concurrency": args.concurrency, "rtt_ms": args.rtt_ms, **result})


if __name__ == "__main__":
    main()
