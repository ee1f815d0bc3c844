"""Third-party servers the tests run as processes on loopback (scim2-server, the apps
of tests/apps): started on a free port, awaited, stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2

# A loaded machine can take a long while to import a server's dependencies.
START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(argv: list[str], *, ready: str, env: dict[str, str] | None = None,
           cwd: Path | None = None) -> Iterator[int]:
    """Run `argv` (`{port}` filled in, PORT in its environment) until it answers at
    `ready`; yields the port, then stops it.

    Any HTTP answer counts (an app that needs credentials says 401). A server that
    exits (its port taken meanwhile) is started again on another port; what it
    printed is shown if it never answers.
    """
    printed = ""
    for _attempt in range(3):
        port = free_port()
        args = [a.replace("{port}", str(port)) for a in argv]
        url = ready.replace("{port}", str(port))
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                    env={**os.environ, **(env or {}), "PORT": str(port)})
            if _answers(proc, url):
                try:
                    yield port
                finally:
                    _stop(proc)
                return
            _stop(proc)
            log.seek(0)
            printed = log.read().decode(errors="replace")[-3000:]
    raise AssertionError(f"{argv[0]} never answered at {ready}; it printed:\n{printed}")


def _answers(proc: subprocess.Popen[bytes], url: str) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            httpx2.get(url, timeout=2)
            return True
        except httpx2.TransportError:
            time.sleep(0.2)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
