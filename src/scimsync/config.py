"""Configuration from the environment (each setting also has a CLI flag)."""

from __future__ import annotations

import os

from scimsync.store.engine import DEFAULT_URL


def database_url(explicit: str | None = None) -> str:
    """--database, else SCIMSYNC_DATABASE_URL, else ./scimsync.db (SQLite)."""
    return explicit or os.environ.get("SCIMSYNC_DATABASE_URL") or DEFAULT_URL
