"""uvicorn, configured for clients that are slow on purpose.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) but sets no limit
on how long a client may take to send a request's headers: 300 connections sending
one header line every 5 s all stayed open. The protocols here give every request a
header deadline, from the moment the connection is ready for it (opened, or the
previous response sent) until its headers are complete; past it the connection is
closed. `limit_concurrency` caps connections plus requests in progress (503 beyond).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from scimsync.api.settings import HEADER_TIMEOUT, Settings

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


class HeaderDeadline:
    """Mixin for uvicorn's HTTP protocols: close connections whose request headers do
    not arrive in time."""

    # None: SCIMSYNC_HEADER_TIMEOUT, read per process (the flag of `serve` sets it).
    header_timeout: float | None = None

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any
    _deadline: asyncio.TimerHandle | None
    _armed_for: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._deadline = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if self._deadline is not None and self.cycle is not self._armed_for:
            self._disarm()  # a new request cycle began: its headers are complete

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self) -> None:
        self._disarm()
        self._armed_for = self.cycle
        self._deadline = self.loop.call_later(_timeout(self.header_timeout), self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        running = self.cycle is not None and not self.cycle.response_complete
        if self.cycle is self._armed_for and not running and not self.transport.is_closing():
            self.transport.close()


def _timeout(explicit: float | None) -> float:
    if explicit is not None:
        return explicit
    raw = os.environ.get("SCIMSYNC_HEADER_TIMEOUT")
    return float(raw) if raw else HEADER_TIMEOUT


class H11Deadline(HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol with a header deadline."""


if HttpToolsProtocol is not None:

    class HttpToolsDeadline(HeaderDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol with a header deadline."""

    AUTO = "scimsync.api.server:HttpToolsDeadline"
else:  # pragma: no cover
    AUTO = "scimsync.api.server:H11Deadline"


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.run/Config keyword arguments for these settings."""
    return {
        "http": AUTO,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "limit_concurrency": settings.limit_concurrency,
        # Forwarded headers are read by the application, and only from trusted
        # proxies (api/origin.py); uvicorn would believe any peer on 127.0.0.1.
        "proxy_headers": False,
        "server_header": False,
    }
