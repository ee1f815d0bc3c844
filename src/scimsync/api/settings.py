"""Settings of the HTTP service, from the environment (`scimsync serve` flags set them).

Every one is checked when the application is built: a bad value is a clear error at
start, not a surprise on the first request.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from scimsync.errors import UsageError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

HEADER_TIMEOUT = 10.0
KEEP_ALIVE_TIMEOUT = 5
LIMIT_CONCURRENCY = 1000


@dataclass(frozen=True)
class Settings:
    """How the service presents itself and how it treats slow or unknown clients."""

    # The URL clients reach the service at (`https://scim.example.com`, maybe with a
    # path prefix): Location, meta.location and scim_url are built on it.
    public_url: str | None = None
    # Peers whose X-Forwarded-Proto/-Host/-Prefix headers are believed.
    trusted_proxies: tuple[Network, ...] = ()
    # /metrics: a bearer token that may read it (admin tokens may too), or open.
    metrics_token: str | None = None
    metrics_open: bool = False
    # Target and directory names as metric labels (ids only by default).
    metrics_names: bool = False
    # Seconds a client has to send a request's headers once the connection is ready.
    header_timeout: float = HEADER_TIMEOUT
    # Seconds an idle keep-alive connection stays open.
    keep_alive_timeout: int = KEEP_ALIVE_TIMEOUT
    # Connections plus requests in progress past which new requests get a 503.
    limit_concurrency: int | None = LIMIT_CONCURRENCY

    def trusts(self, host: str | None) -> bool:
        """Whether a peer address is one of the trusted proxies."""
        if host is None or not self.trusted_proxies:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self.trusted_proxies)


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """The settings in SCIMSYNC_* environment variables; UsageError for bad values."""
    env = os.environ if env is None else env
    return Settings(
        public_url=public_url(env.get("SCIMSYNC_PUBLIC_URL")),
        trusted_proxies=networks(env.get("SCIMSYNC_TRUSTED_PROXIES", "")),
        metrics_token=env.get("SCIMSYNC_METRICS_TOKEN") or None,
        metrics_open=_flag(env, "SCIMSYNC_METRICS_OPEN"),
        metrics_names=_flag(env, "SCIMSYNC_METRICS_NAMES"),
        header_timeout=_number(env, "SCIMSYNC_HEADER_TIMEOUT", HEADER_TIMEOUT),
        keep_alive_timeout=int(_number(env, "SCIMSYNC_KEEP_ALIVE_TIMEOUT", KEEP_ALIVE_TIMEOUT)),
        limit_concurrency=_limit(env.get("SCIMSYNC_LIMIT_CONCURRENCY")),
    )


def public_url(value: str | None) -> str | None:
    """An absolute http(s) URL without query or fragment, kept without a final slash."""
    if not value:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or \
            parts.fragment or parts.username or parts.password:
        raise UsageError(f"SCIMSYNC_PUBLIC_URL must be an http(s) URL like "
                         f"https://scim.example.com, not {value!r}")
    return value.strip().rstrip("/")


def networks(value: str) -> tuple[Network, ...]:
    """Comma-separated addresses or CIDRs (`10.0.0.0/8, ::1`)."""
    out: list[Network] = []
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise UsageError(f"SCIMSYNC_TRUSTED_PROXIES: {item!r} is not an address or "
                             "CIDR") from exc
    return tuple(out)


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "0").strip().lower()
    if value not in ("0", "1", "true", "false", "yes", "no", ""):
        raise UsageError(f"{name} is 1 or 0, not {value!r}")
    return value in ("1", "true", "yes")


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise UsageError(f"{name} is a number of seconds, not {raw!r}") from exc
    if not 0 < value <= 3600:
        raise UsageError(f"{name} must be between 0 and 3600 seconds")
    return value


def _limit(raw: str | None) -> int | None:
    """A positive number of connections, or 0 / `none` for no limit."""
    if raw is None or not raw.strip():
        return LIMIT_CONCURRENCY
    if raw.strip().lower() in ("0", "none"):
        return None
    if not raw.strip().isdigit():
        raise UsageError(f"SCIMSYNC_LIMIT_CONCURRENCY is a number, not {raw!r}")
    return int(raw)
