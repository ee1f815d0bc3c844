"""The flags of `scimsync serve` for how the service presents itself and treats slow
clients: each sets its SCIMSYNC_* variable, which worker processes inherit."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from scimsync.api.settings import Settings, from_env
from scimsync.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])

# flag name -> (environment variable, help)
FLAGS: dict[str, tuple[str, str]] = {
    "public_url": ("SCIMSYNC_PUBLIC_URL",
                   "URL clients reach the service at, for Location and meta.location."),
    "trusted_proxies": ("SCIMSYNC_TRUSTED_PROXIES",
                        "Comma-separated proxy addresses/CIDRs whose X-Forwarded-* "
                        "headers are believed."),
    "header_timeout": ("SCIMSYNC_HEADER_TIMEOUT",
                       "Seconds a client has to send a request's headers (default 10)."),
    "keep_alive_timeout": ("SCIMSYNC_KEEP_ALIVE_TIMEOUT",
                           "Seconds an idle keep-alive connection stays open (default 5)."),
    "limit_concurrency": ("SCIMSYNC_LIMIT_CONCURRENCY",
                          "Connections plus requests in progress before new requests get "
                          "503 (default 1000; 0 for none)."),
}


def serve_options(fn: F) -> F:
    """Add the flags to a click command."""
    for name, (_env, text) in reversed(FLAGS.items()):
        fn = click.option(f"--{name.replace('_', '-')}", name, default=None, help=text)(fn)
    return fn


def apply_serve_options(values: dict[str, Any]) -> Settings:
    """Set the variables of the flags given, then check every setting (exit 2 if bad)."""
    for name, value in values.items():
        if value is not None:
            os.environ[FLAGS[name][0]] = str(value)
    try:
        return from_env()
    except UsageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
