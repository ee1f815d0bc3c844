"""The URL a client reached the service at, for `Location`, `meta.location` and
`scim_url` (RFC7644 §3.1, RFC7643 §3.1), without believing what clients say.

In order: X-Forwarded-Proto/-Host/-Prefix when the peer is a trusted proxy; else the
configured public URL; else the address the connection was accepted on. The `Host`
header is never used: a client could set it to anything and have scimsync hand its
name back as where a resource lives.
"""

from __future__ import annotations

import re

from starlette.requests import Request

from scimsync.api.settings import Settings

_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])"
                   r"(?::[0-9]{1,5})?$")
_PREFIX = re.compile(r"^(?:/[A-Za-z0-9._~-]+)*/?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def public_root(request: Request) -> str:
    """The service's root URL as this request should see it, without a final slash."""
    settings: Settings = request.app.state.settings
    peer = request.client.host if request.client else None
    if settings.trusts(peer):
        forwarded = _forwarded(request)
        if forwarded is not None:
            return forwarded
    if settings.public_url is not None:
        return settings.public_url
    return _own_address(request)


def _first(request: Request, name: str) -> str | None:
    value = request.headers.get(name)
    if value is None:
        return None
    return value.split(",")[0].strip() or None


def _forwarded(request: Request) -> str | None:
    """The origin a trusted proxy reports, if it reports a well-formed one."""
    host = _first(request, "x-forwarded-host")
    if host is None or not _HOST.match(host):
        return None
    proto = (_first(request, "x-forwarded-proto") or request.url.scheme).lower()
    if proto not in _DEFAULT_PORTS:
        return None
    prefix = _first(request, "x-forwarded-prefix") or ""
    if not _PREFIX.match(prefix):
        return None
    return f"{proto}://{host}{prefix.rstrip('/')}"


def _own_address(request: Request) -> str:
    """scheme://address:port of the socket the request came in on."""
    scheme = request.scope.get("scheme", "http")
    server = request.scope.get("server")
    if not server:
        return f"{scheme}://localhost"
    host, port = server[0], server[1]
    if ":" in host:
        host = f"[{host}]"
    if port is None or _DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"
