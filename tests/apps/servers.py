"""Real SCIM service providers from PyPI and npm, started on loopback (docs/apps.md).

Each app runs in its own process, started the way its project documents (a WSGI
server for Canaille and django-scim2, Node.js for Better Auth), on a free port by
tests/processes.py, which waits until it answers (a minute and a half, for a loaded
machine), shows what it printed if it never does, and stops it. Each fixture yields
where the app is and how to authenticate; `RUNNING` starts a fresh one, for a test
that must be alone in it (a drift run that expects no finding).
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from processes import launch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# Where the Makefile's install step puts what the apps need (docs/apps.md).
CANAILLE_PYTHON = ROOT / ".venv-apps" / "canaille" / "bin" / "python"
NODE_MODULES = HERE / "node" / "node_modules"


@dataclass
class App:
    """A running app: its SCIM base URL and the target settings that reach it."""

    name: str
    url: str
    auth: dict[str, Any]
    # Anything else a test needs to know about this app (an OAuth token URL, ...).
    extra: dict[str, Any] = field(default_factory=dict)

    def target(self, **profile: Any) -> dict[str, Any]:
        """Settings for `parse_config("scim", ...)` with the given profile."""
        return {"url": self.url, "auth": dict(self.auth), "profile": profile}


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
    missing(CANAILLE_PYTHON, "run `make install` (it builds .venv-apps/canaille)")
    client_id, client_secret = "scimsync", secrets.token_urlsafe(24)
    for port in launch([str(CANAILLE_PYTHON), str(HERE / "canaille_server.py"), "{port}"],
                       env={"CLIENT_ID": client_id, "CLIENT_SECRET": client_secret},
                       ready="http://127.0.0.1:{port}/scim/v2/ServiceProviderConfig"):
        root = f"http://127.0.0.1:{port}"
        token_url = f"{root}/oauth/token"
        # Canaille takes the client's credentials in an Authorization header only.
        r = httpx2.post(token_url, data={"grant_type": "client_credentials"},
                        auth=(client_id, client_secret), timeout=30)
        r.raise_for_status()
        yield App("canaille", f"{root}/scim/v2",
                  {"type": "bearer", "token": r.json()["access_token"]},
                  {"token_url": token_url, "client_id": client_id,
                   "client_secret": client_secret})


@contextmanager
def running_django_scim2() -> Iterator[App]:
    """django-scim2 0.23.0 in a tiny Django project on SQLite (tests/apps/djangoscim);
    the host project's service account is `scim-service`."""
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="django-scim2-") as state:
        for port in launch([sys.executable, str(HERE / "djangoscim" / "serve.py"), "{port}"],
                           env={"SCIM_TOKEN": token, "STATE_DIR": state},
                           ready="http://127.0.0.1:{port}/scim/v2/ServiceProviderConfig"):
            yield App("django-scim2", f"http://127.0.0.1:{port}/scim/v2",
                      {"type": "bearer", "token": token})


@contextmanager
def running_better_auth() -> Iterator[App]:
    """Better Auth 1.7.5 with its SCIM plugin (memory adapter) on Node.js."""
    missing(NODE_MODULES / "@better-auth" / "scim",
            "run `make install` (it runs npm ci in tests/apps/node)")
    token = secrets.token_urlsafe(24)
    for port in launch(["node", str(HERE / "node" / "better_auth_server.mjs")],
                       env={"SCIM_TOKEN": token}, cwd=HERE / "node",
                       ready="http://127.0.0.1:{port}/api/auth/scim/v2/ServiceProviderConfig"):
        yield App("better-auth", f"http://127.0.0.1:{port}/api/auth/scim/v2",
                  {"type": "bearer", "token": token})


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
