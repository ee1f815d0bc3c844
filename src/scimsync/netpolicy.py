"""Which target URLs scimsync may call (server-side request forgery guard).

By default every http(s) URL is allowed except link-local addresses (169.254.0.0/16,
fe80::/10), where cloud metadata services live, and the metadata host names. The
environment can narrow or widen this: SCIMSYNC_TARGET_DENY and SCIMSYNC_TARGET_ALLOW
hold comma-separated CIDR networks or host names; allow wins over deny.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

from scimsync.errors import UsageError

DEFAULT_DENY = ("169.254.0.0/16", "fe80::/10", "metadata.google.internal",
                "metadata.goog", "100.100.100.200/32")


def _rules(name: str, default: tuple[str, ...] = ()) -> list[str]:
    raw = os.environ.get(name)
    items = default if raw is None else tuple(x.strip() for x in raw.split(","))
    return [x for x in items if x]


def _matches(rule: str, host: str, addresses: list[ipaddress.IPv4Address |
                                                 ipaddress.IPv6Address]) -> bool:
    try:
        net = ipaddress.ip_network(rule, strict=False)
    except ValueError:
        return host.lower() == rule.lower()
    return any(a in net for a in addresses if a.version == net.version)


def check_url(url: str, resolve: bool = True) -> str:
    """Return `url` if the policy allows calling it; a readable UsageError if not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"target URL must be http(s)://host/...: {url!r}")
    host = parts.hostname
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    try:
        addresses.append(ipaddress.ip_address(host))
    except ValueError:
        if resolve:
            try:
                infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
                addresses.extend(ipaddress.ip_address(i[4][0]) for i in infos)
            except OSError:
                pass  # unresolvable now; checked again when called
    if any(_matches(r, host, addresses) for r in _rules("SCIMSYNC_TARGET_ALLOW")):
        return url
    for rule in _rules("SCIMSYNC_TARGET_DENY", DEFAULT_DENY):
        if _matches(rule, host, addresses):
            raise UsageError(f"target URL {url!r} is denied by the network policy ({rule})")
    return url
