"""Slow clients are cut off: a header deadline per request, keep-alive timeouts and a
connection limit, on a real uvicorn server (and through `scimsync serve`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from downstream import ThreadedServer, free_port, wait_http
from scimsync.api.server import H11Deadline, HttpToolsDeadline, uvicorn_options
from scimsync.api.settings import Settings

PROTOCOLS = {"h11": H11Deadline, "httptools": HttpToolsDeadline}


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def serve(protocol: str, header_timeout: float, **settings: Any) -> ThreadedServer:
    options = uvicorn_options(Settings(header_timeout=header_timeout, **settings))
    options["http"] = type("Timed", (PROTOCOLS[protocol],), {"header_timeout": header_timeout})
    return ThreadedServer(hello, **options)


def closed_by_peer(sock: socket.socket, lines: int, gap: float) -> bool:
    """Send a request's header lines `gap` seconds apart; True when the server closes
    the connection before the headers are complete."""
    sock.settimeout(30)  # a safety net, not the measure: the server must close first
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: slow\r\n")
        for i in range(lines):
            time.sleep(gap)
            sock.sendall(f"X-Slow-{i}: 1\r\n".encode())
            sock.setblocking(False)
            try:
                if sock.recv(1024) == b"":
                    return True
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
                sock.settimeout(30)
    except (BrokenPipeError, ConnectionResetError):
        return True
    return False


@pytest.fixture(params=sorted(PROTOCOLS))
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_slow_header_senders_are_cut_off_and_others_are_served(protocol: str) -> None:
    with serve(protocol, header_timeout=1.0) as server:
        socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
        try:
            assert closed_by_peer(socks[0], lines=40, gap=0.25)
            assert all(closed_by_peer(s, lines=40, gap=0.25) for s in socks[1:])
            assert httpx.get(server.url, timeout=10).text == "ok"
        finally:
            for s in socks:
                s.close()


def test_headers_within_the_deadline_are_answered(protocol: str) -> None:
    with serve(protocol, header_timeout=5.0) as server, \
            socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: slow\r\n")
        time.sleep(0.1)
        sock.sendall(b"X-A: 1\r\n\r\n")
        sock.settimeout(30)
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")


def test_a_second_request_on_a_kept_alive_connection_has_a_deadline_too(
        protocol: str) -> None:
    with serve(protocol, header_timeout=1.0, keep_alive_timeout=30) as server, \
            socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(30)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: fast\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        assert closed_by_peer(sock, lines=40, gap=0.25)


def test_an_idle_keep_alive_connection_is_closed(protocol: str) -> None:
    with serve(protocol, header_timeout=30.0, keep_alive_timeout=1) as server, \
            socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(30)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: fast\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        assert sock.recv(1024) == b""  # closed by the server, well before the net


def test_past_the_connection_limit_new_requests_get_503(protocol: str) -> None:
    with serve(protocol, header_timeout=30.0, limit_concurrency=4) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
        try:
            for s in idle:  # each connection has begun a request
                s.sendall(b"GET / HTTP/1.1\r\n")
            assert httpx.get(server.url, timeout=10).status_code == 503
        finally:
            for s in idle:
                s.close()
        # The slots are free again once those clients are gone.
        deadline = time.monotonic() + 30
        while httpx.get(server.url, timeout=10).status_code == 503:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_scimsync_serve_cuts_off_slow_header_senders(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SCIMSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scimsync.cli", "serve", "--port", str(port), "--no-worker",
         "--header-timeout", "1", "--log-level", "warning"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            assert closed_by_peer(sock, lines=40, gap=0.25)
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert r.text == "ok" and "server" not in r.headers
    finally:
        proc.terminate()
        proc.wait(timeout=30)
