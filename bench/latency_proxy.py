"""A TCP proxy on loopback that puts an application "far away", or makes it a black hole.

Usage as a script (Ctrl-C stops it):

    .venv/bin/python bench/latency_proxy.py --upstream 127.0.0.1:8080 --delay-ms 25
    .venv/bin/python bench/latency_proxy.py --black-hole

As a library: `LatencyProxy(("127.0.0.1", 8080), delay=0.025).start()` returns the
port it listens on, and `stop()` ends it; it runs its own event loop in a thread.

Every chunk read from either side is written to the other side `delay` seconds after
it arrived, so a request and its answer take two delays (25 ms each way = 50 ms
RTT). Chunks are not held back behind each other: each one is due at its own arrival
plus the delay, so throughput is not limited, only latency added; order is kept per
direction. A new connection also pays the TCP handshake a remote peer would cost
(one round trip before the client's first bytes can leave), so a client that opens
a connection per request pays for it as it would on a real network (`handshake=False`,
`--no-handshake`: it does not).

A black hole accepts connections, reads and discards what it is sent, and never
answers: a client waits until its own timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import threading
import time
from dataclasses import dataclass, field

CHUNK = 65536


@dataclass
class Stats:
    """What went through the proxy (counted on its event loop)."""

    connections: int = 0
    open: int = 0
    bytes_up: int = 0  # client to upstream
    bytes_down: int = 0  # upstream to client
    upstream_errors: int = 0
    started: float = field(default_factory=time.monotonic)


class LatencyProxy:
    """Forward loopback TCP connections to `upstream` `delay` seconds late each way;
    with `upstream=None`, swallow them (a black hole)."""

    def __init__(self, upstream: tuple[str, int] | None, delay: float = 0.0,
                 host: str = "127.0.0.1", port: int = 0, handshake: bool = True):
        self.upstream = upstream
        self.delay = delay
        self.handshake = handshake
        self.host = host
        self.port = port
        self.stats = Stats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = threading.Event()
        self._failed: BaseException | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> int:
        """Listen in a background thread; return the port."""
        self._thread = threading.Thread(target=self._run, name="latency-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._failed is not None:
            raise RuntimeError(f"proxy did not start: {self._failed}") from self._failed
        return self.port

    def stop(self) -> None:
        """Close the listener and every connection, and end the thread."""
        if self._loop is None or self._thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has already ended
            self._loop.call_soon_threadsafe(self._shutdown)
        self._thread.join(10)

    def __enter__(self) -> LatencyProxy:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:  # uvloop (installed with uvicorn[standard]) forwards at less CPU per chunk
            import uvloop

            self._loop = uvloop.new_event_loop()
        except ImportError:
            self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._listen())
        except OSError as exc:
            self._failed = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accepted, self.host, self.port,
                                                  backlog=1024)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def _shutdown(self) -> None:
        assert self._loop is not None
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()

        async def drained() -> None:
            # A connection accepted just before the server closed starts its task on a
            # later turn of the loop: let it start, then end it too, until none is left.
            for _ in range(3):
                await asyncio.gather(*self._tasks, return_exceptions=True)
                await asyncio.sleep(0)
                for task in list(self._tasks):
                    task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._loop.stop()  # type: ignore[union-attr]

        self._loop.create_task(drained())

    # --- connections -------------------------------------------------------------------

    async def _accepted(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # so that stop() can end it
        self.stats.connections += 1
        self.stats.open += 1
        try:
            if self.upstream is None:
                await self._swallow(reader)
            else:
                await self._relay(reader, writer, self.upstream)
        except (OSError, asyncio.CancelledError):
            pass  # either side went away: close both
        finally:
            self._tasks.discard(task)
            self.stats.open -= 1
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(CHUNK):
            self.stats.bytes_up += len(data)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     upstream: tuple[str, int]) -> None:
        # The handshake a remote peer would cost: the client's first bytes cannot
        # leave before one round trip after it connected.
        ready_at = time.monotonic() + 2 * self.delay if self.handshake else 0.0
        try:
            up_reader, up_writer = await asyncio.open_connection(*upstream)
        except OSError:
            self.stats.upstream_errors += 1
            return
        pipes = [asyncio.ensure_future(self._pipe(reader, up_writer, ready_at, up=True)),
                 asyncio.ensure_future(self._pipe(up_reader, writer, 0.0, up=False))]
        try:
            # Both directions end (each half-closes the other side), or one fails.
            await asyncio.wait(pipes, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for pipe in pipes:
                pipe.cancel()
            # Closed before anything is awaited: a stop() that cancels this task again
            # while it waits below must not leave the upstream connection open.
            up_writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await asyncio.gather(*pipes, return_exceptions=True)
                await up_writer.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    not_before: float, up: bool) -> None:
        """Copy one direction, each chunk `delay` after it arrived, then half-close."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                # The event loop's clock is cached per iteration (uvloop's in whole
                # milliseconds), so its timers can fire early: wait on the real clock.
                while (wait := due - time.monotonic()) > 0:  # noqa: ASYNC110 (a deadline)
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        sender = loop.create_task(deliver())
        try:
            while True:
                data = await reader.read(CHUNK)
                if up:
                    self.stats.bytes_up += len(data)
                else:
                    self.stats.bytes_down += len(data)
                queue.put_nowait((max(time.monotonic(), not_before) + self.delay, data))
                if not data or sender.done():
                    break
            await sender
        except (OSError, asyncio.CancelledError):
            sender.cancel()
            raise


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--upstream", help="HOST:PORT to forward to")
    p.add_argument("--delay-ms", type=float, default=25.0, help="one-way delay")
    p.add_argument("--black-hole", action="store_true",
                   help="accept connections and never answer")
    p.add_argument("--port", type=int, default=0, help="port to listen on (0: any)")
    p.add_argument("--no-handshake", action="store_true",
                   help="do not charge a round trip per new connection")
    args = p.parse_args()
    if args.black_hole == bool(args.upstream):
        p.error("give either --upstream HOST:PORT or --black-hole")
    upstream = None
    if args.upstream:
        host, _, port = args.upstream.rpartition(":")
        upstream = (host or "127.0.0.1", int(port))
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # set before anything can be interrupted
        signal.signal(sig, lambda *_: stopping.set())
    proxy = LatencyProxy(upstream, args.delay_ms / 1000, port=args.port,
                         handshake=not args.no_handshake)
    port = proxy.start()
    what = "black hole" if upstream is None else \
        f"to {args.upstream}, {args.delay_ms:g} ms each way"
    print(f"listening on 127.0.0.1:{port} ({what}); Ctrl-C stops", flush=True)
    stopping.wait()
    proxy.stop()
    print(f"{proxy.stats.connections} connections, {proxy.stats.bytes_up} bytes up, "
          f"{proxy.stats.bytes_down} bytes down, {proxy.stats.upstream_errors} upstream "
          "errors", flush=True)

if __name__ == "__main__":
    main()
