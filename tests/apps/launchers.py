"""How each real SCIM application of docs/apps.md is started on loopback, and how to
reach it: one place for the test fixtures (tests/apps/servers.py) and the benchmark
(bench/apps_bench.py).

Each app runs in its own process, started the way its project documents (a WSGI
server for Canaille and django-scim2, Node.js for Better Auth), on a free port by
tests/processes.py, which waits until it answers (a minute and a half, for a loaded
machine), shows what it printed if it never does, and stops it. Nothing here needs
pytest: a starter is a context manager that yields where the app is and how to
authenticate.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

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


@contextlib.contextmanager
def canaille() -> Iterator[App]:
    """Canaille 0.3.6 (in-memory store) with one OAuth client (client_secret_basic)."""
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


@contextlib.contextmanager
def django_scim2() -> Iterator[App]:
    """django-scim2 0.23.0 in a tiny Django project on SQLite (tests/apps/djangoscim);
    the host project's service account is `scim-service`."""
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="django-scim2-") as state:
        for port in launch([sys.executable, str(HERE / "djangoscim" / "serve.py"), "{port}"],
                           env={"SCIM_TOKEN": token, "STATE_DIR": state},
                           ready="http://127.0.0.1:{port}/scim/v2/ServiceProviderConfig"):
            yield App("django-scim2", f"http://127.0.0.1:{port}/scim/v2",
                      {"type": "bearer", "token": token})


@contextlib.contextmanager
def better_auth() -> Iterator[App]:
    """Better Auth 1.7.5 with its SCIM plugin (memory adapter) on Node.js."""
    token = secrets.token_urlsafe(24)
    for port in launch(["node", str(HERE / "node" / "better_auth_server.mjs")],
                       env={"SCIM_TOKEN": token}, cwd=HERE / "node",
                       ready="http://127.0.0.1:{port}/api/auth/scim/v2/ServiceProviderConfig"):
        yield App("better-auth", f"http://127.0.0.1:{port}/api/auth/scim/v2",
                  {"type": "bearer", "token": token})


# Each app by the name docs/apps.md and the benchmark use, and what the install step
# must have provided for it (None: the project's own environment suffices).
STARTERS: dict[str, Callable[[], contextlib.AbstractContextManager[App]]] = {
    "canaille": canaille, "django-scim2": django_scim2, "better-auth": better_auth}
NEEDS: dict[str, Path | None] = {
    "canaille": CANAILLE_PYTHON, "django-scim2": None,
    "better-auth": NODE_MODULES / "@better-auth" / "scim"}
