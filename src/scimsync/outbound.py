"""The HTTP client of every outbound call: connections go only where the policy says.

A name is resolved once, in the network backend, each address is checked
(scimsync.netpolicy), and the socket is connected to a checked address. Nothing
resolves the name again, so DNS rebinding between the check and the connection has
nothing to win. TLS still verifies the certificate against the name, and sends it as
SNI: httpcore takes both from the URL, not from the address connected to.

Environment proxies are not used: a proxy would resolve the name itself.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterable

import httpcore
import httpx

from scimsync.errors import UsageError
from scimsync.netpolicy import Policy

SocketOption = (tuple[int, int, int] | tuple[int, int, bytes | bytearray]
                | tuple[int, int, None, int])
# httpx's own defaults (httpx._config.DEFAULT_LIMITS), spelled out.
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


class PolicyRefused(httpcore.ConnectError):
    """The policy refused the connection (httpx raises it as httpx.ConnectError)."""


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's synchronous sockets, connected only to addresses the policy admits."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[SocketOption] | None = None,
                    ) -> httpcore.NetworkStream:
        try:
            addresses = self.policy.admit(host, port)
        except UsageError as exc:
            raise PolicyRefused(str(exc)) from exc
        options = list(socket_options or ())
        failure: Exception | None = None
        for address in addresses:
            try:
                return self.inner.connect_tcp(str(address), port, timeout, local_address,
                                              options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # the next address of the name may answer
        assert failure is not None  # admit() returns at least one address
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[SocketOption] | None = None,
                            ) -> httpcore.NetworkStream:
        raise PolicyRefused("the network policy allows TCP connections only")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


@functools.cache
def _verifying_context() -> ssl.SSLContext:
    """The default verifying TLS context, made once per process.

    Building one loads the whole CA bundle (about 10 ms of CPU); a lane opens a
    connector per run, so a fresh context each time cost an initial load a tenth of
    its time. An SSLContext is safe to share between threads and clients.
    """
    return httpx.create_ssl_context(verify=True)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over a GuardedBackend.

    httpx 0.28 takes no network backend, so the connection pool is built here with
    the settings httpx.HTTPTransport would give it (httpx is pinned for this reason).
    """

    def __init__(self, policy: Policy | None = None,
                 verify: ssl.SSLContext | bool = True, limits: httpx.Limits = LIMITS):
        # Deliberately not super().__init__(): it would build a pool of its own.
        self._pool = httpcore.ConnectionPool(
            ssl_context=(_verifying_context() if verify is True
                         else httpx.create_ssl_context(verify=verify)),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy or Policy.from_env()))


def client(timeout: float, transport: httpx.BaseTransport | None = None,
           headers: dict[str, str] | None = None) -> httpx.Client:
    """An HTTP client whose every connection passes the outbound URL policy."""
    return httpx.Client(timeout=timeout, headers=headers, trust_env=False,
                        transport=transport if transport is not None else GuardedTransport())


def reason(exc: httpx.TransportError) -> str:
    """What went wrong with a connection, for a run's error: the policy's words if it
    refused, else the error's name."""
    if isinstance(exc.__cause__, PolicyRefused) or isinstance(exc.__context__, PolicyRefused):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__
