"""The benchmarks' latency proxy (bench/latency_proxy.py), over real loopback sockets."""

from __future__ import annotations

import os
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from latency_proxy import LatencyProxy

TIMEOUT = 10.0  # no test can hang: every socket gives up after this


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    """A TCP echo server on loopback: it sends back what it reads, then closes."""
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[0], server.server_address[1]
    server.shutdown()
    server.server_close()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def receive(sock: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


def test_a_round_trip_through_the_proxy_takes_at_least_both_delays(
        echo: tuple[str, int]) -> None:
    with LatencyProxy(echo, delay=0.05) as proxy, connect(proxy.port) as sock:
        sock.sendall(b"warm")
        assert receive(sock, 4) == b"warm"  # pays the handshake's round trip too
        start = time.monotonic()
        sock.sendall(b"ping")
        assert receive(sock, 4) == b"ping"
        assert time.monotonic() - start >= 0.1


def test_the_first_bytes_of_a_connection_wait_for_a_handshake_round_trip(
        echo: tuple[str, int]) -> None:
    with LatencyProxy(echo, delay=0.05) as proxy:
        start = time.monotonic()
        with connect(proxy.port) as sock:
            sock.sendall(b"hello")
            assert receive(sock, 5) == b"hello"
        assert time.monotonic() - start >= 0.2  # handshake RTT + request RTT


def test_bytes_arrive_whole_and_in_order_on_many_connections_at_once(
        echo: tuple[str, int]) -> None:
    results: dict[int, bool] = {}

    def one(k: int, port: int) -> None:
        payload = os.urandom(200_000)
        with connect(port) as sock:
            # Sent in pieces while the answer streams back.
            pieces = [payload[i:i + 7001] for i in range(0, len(payload), 7001)]
            writer = threading.Thread(target=lambda: [sock.sendall(p) for p in pieces])
            writer.start()
            got = receive(sock, len(payload))
            writer.join(TIMEOUT)
        results[k] = got == payload

    with LatencyProxy(echo, delay=0.01) as proxy:
        threads = [threading.Thread(target=one, args=(k, proxy.port)) for k in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT * 2)
        assert proxy.stats.connections == 20
    assert results == dict.fromkeys(range(20), True)


def test_a_half_close_reaches_the_far_side_and_its_close_comes_back(
        echo: tuple[str, int]) -> None:
    with LatencyProxy(echo, delay=0.01) as proxy, connect(proxy.port) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        assert receive(sock, 100) == b"last words"  # then the echo server closed
        assert sock.recv(1) == b""


def test_a_black_hole_accepts_and_reads_but_never_answers() -> None:
    with LatencyProxy(None) as proxy, connect(proxy.port) as sock:
        sock.sendall(b"GET /ServiceProviderConfig HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)
        assert proxy.stats.connections == 1
        assert proxy.stats.open == 1
        deadline = time.monotonic() + TIMEOUT
        while proxy.stats.bytes_up == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # read on the proxy's own thread
        assert proxy.stats.bytes_up > 0


def test_an_unreachable_upstream_closes_the_client_connection() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()  # bound, never listening: connections are refused
        with LatencyProxy(dead, delay=0.0) as proxy, connect(proxy.port) as sock:
            assert sock.recv(1) == b""
            assert proxy.stats.upstream_errors == 1


def test_stop_ends_the_connections_still_open(echo: tuple[str, int]) -> None:
    proxy = LatencyProxy(echo, delay=0.01)
    with connect(proxy.start()) as sock:
        sock.sendall(b"x")
        assert receive(sock, 1) == b"x"
        proxy.stop()
        try:
            closed = sock.recv(1) == b""
        except ConnectionResetError:
            closed = True  # reset or closed: ended either way
        assert closed
