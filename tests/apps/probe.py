"""Helpers shared by the tests against real applications (docs/apps.md)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import pytest

from apps.servers import App
from scimsync.connectors.scim import ScimConnector
from scimsync.sync.config import parse_config

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def quirk(app: str, what: str) -> pytest.MarkDecorator:
    """A contract check that fails because of the app's quirk, until a profile absorbs it."""
    return pytest.mark.xfail(strict=True, reason=f"{app}: {what}; issue 12 profile")


def failing(check: Callable[..., None], mark: pytest.MarkDecorator) -> Callable[..., None]:
    """A contract check of the base class, marked for one app only (the base's own
    function is shared by every subclass, so it is wrapped, not marked)."""

    @functools.wraps(check)
    def wrapped(*args: Any, **kwargs: Any) -> None:
        check(*args, **kwargs)

    return mark(wrapped)  # type: ignore[no-any-return]


@contextmanager
def connected(where: App, /, **profile: Any) -> Iterator[ScimConnector]:
    """The current SCIM connector, configured as an operator would, against `where`
    with `profile` (`app=...` names a shipped profile)."""
    config, creds = parse_config("scim", where.target(**profile))
    connector = ScimConnector(config.settings, config.profile, creds)
    try:
        yield connector
    finally:
        connector.close()


class Wire:
    """Raw SCIM requests to an app, to show what it answers (the evidence in docs/apps.md)."""

    def __init__(self, app: App):
        headers = {"Content-Type": "application/scim+json"}
        if app.auth.get("type") == "bearer":
            headers["Authorization"] = f"Bearer {app.auth['token']}"
        self.http = httpx2.Client(base_url=app.url + "/", headers=headers, timeout=30)

    def __call__(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        return self.http.request(method, path, json=body, params=params or None)

    def close(self) -> None:
        self.http.close()
