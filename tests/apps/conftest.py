"""Fixtures for the real applications (tests/apps/servers.py, docs/apps.md).

Each test module names its application with an `app` fixture; `connector` is the
current SCIM connector configured for it with the app's shipped profile, `wire`
raw SCIM requests to it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.probe import Wire, connected
from apps.servers import App, better_auth, canaille, django_scim2  # noqa: F401  (fixtures)
from scimsync.connectors.contract import Connector


@pytest.fixture
def connector(app: App) -> Iterator[Connector]:
    """The connector with the profile scimsync ships for the app (scimsync.profiles),
    and small pages, so that listing really pages."""
    with connected(app, app=app.name, page_size=3) as c:
        yield c


@pytest.fixture
def wire(app: App) -> Iterator[Wire]:
    w = Wire(app)
    yield w
    w.close()
