"""`scimsync serve` and `scimsync migrate`."""

from __future__ import annotations

from typing import Any

import click

from scimsync.cli.base import (
    _engine,
    database_option,
    main,
)
from scimsync.cli.serve_options import apply_serve_options, serve_options
from scimsync.config import database_url


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="HTTP worker processes (use PostgreSQL, or SQLite on one machine).")
@click.option("--log-level", default="info", show_default=True)
@click.option("--no-worker", is_flag=True, help="Do not embed a provisioning worker.")
@serve_options
@database_option
def serve(host: str, port: int, workers: int, log_level: str, no_worker: bool,
          database: str | None, **server: Any) -> None:
    """Run the SCIM API, the admin API and (unless --no-worker) a provisioning worker."""
    import os

    import uvicorn

    from scimsync.api.server import uvicorn_options
    from scimsync.logs import configure

    configure(log_level)
    settings = apply_serve_options(server)
    url = database_url(database)
    _engine(url).dispose()
    os.environ["SCIMSYNC_DATABASE_URL"] = url
    os.environ["SCIMSYNC_EMBEDDED_WORKER"] = "0" if no_worker else "1"
    uvicorn.run("scimsync.api.asgi:app", host=host, port=port, workers=workers,
                log_level=log_level, access_log=False, log_config=None,
                **uvicorn_options(settings))


@main.command()
@database_option
def migrate(database: str | None) -> None:
    """Create or upgrade the database schema."""
    from scimsync.store.engine import current_revision, make_engine, upgrade

    engine = make_engine(database_url(database))
    before = current_revision(engine)
    upgrade(engine)
    after = current_revision(engine)
    click.echo(f"schema at revision {after}" + ("" if before == after else
                                                f" (was {before or 'empty'})"))


# --- directories ---------------------------------------------------------------
