"""Real SCIM service providers from PyPI and npm, started on loopback (docs/apps.md).

How each is started lives in tests/apps/launchers.py (the benchmark starts them the
same way). Here each start first skips (fails on CI) when the install step did not
provide the app; the fixtures are session-scoped and yield where the app is and how
to authenticate; `RUNNING` starts a fresh one, for a test that must be alone in it
(a drift run that expects no finding).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from apps import launchers
from apps.launchers import App

__all__ = ["RUNNING", "App", "better_auth", "canaille", "django_scim2"]


def missing(what: Path, hint: str) -> None:
    """Skip (fail on CI) when the install step did not provide `what`."""
    if what.exists():
        return
    message = f"{what} is missing: {hint}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def running_canaille() -> Iterator[App]:
    """Canaille 0.3.6 (in-memory store) with one OAuth client (client_secret_basic)."""
    missing(launchers.CANAILLE_PYTHON, "run `make install` (it builds .venv-apps/canaille)")
    with launchers.canaille() as app:
        yield app


@contextmanager
def running_django_scim2() -> Iterator[App]:
    """django-scim2 0.23.0 in a tiny Django project on SQLite (tests/apps/djangoscim);
    the host project's service account is `scim-service`."""
    with launchers.django_scim2() as app:
        yield app


@contextmanager
def running_better_auth() -> Iterator[App]:
    """Better Auth 1.7.5 with its SCIM plugin (memory adapter) on Node.js."""
    missing(launchers.NODE_MODULES / "@better-auth" / "scim",
            "run `make install` (it runs npm ci in tests/apps/node)")
    with launchers.better_auth() as app:
        yield app


# Each app by the name of the profile scimsync ships for it.
RUNNING = {"canaille": running_canaille, "django-scim2": running_django_scim2,
           "better-auth": running_better_auth}


@pytest.fixture(scope="session")
def canaille() -> Iterator[App]:
    with running_canaille() as app:
        yield app


@pytest.fixture(scope="session")
def django_scim2() -> Iterator[App]:
    with running_django_scim2() as app:
        yield app


@pytest.fixture(scope="session")
def better_auth() -> Iterator[App]:
    with running_better_auth() as app:
        yield app
