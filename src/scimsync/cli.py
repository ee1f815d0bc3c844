"""The `scimsync` command line: serve, migrate, directories, tokens, journal."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.table import Table

from scimsync.config import database_url
from scimsync.durations import UNITS
from scimsync.errors import ScimError, UsageError

F = TypeVar("F", bound=Callable[..., Any])
console = Console()

_DURATION = re.compile(r"^(\d+)([smhdw])$")


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `12h`, `30d`, `2w`."""
    m = _DURATION.match(text.strip())
    if m is None:
        raise click.BadParameter(f"{text!r} is not a duration like 30m, 12h or 90d")
    return timedelta(seconds=int(m.group(1)) * UNITS[m.group(2)])


def database_option(fn: F) -> F:
    return click.option(
        "--database", "database", default=None, metavar="URL",
        help="Database URL (default: $SCIMSYNC_DATABASE_URL or sqlite:///./scimsync.db).",
    )(fn)


def _engine(database: str | None) -> Any:
    from scimsync.store.engine import make_engine, upgrade

    engine = make_engine(database_url(database))
    upgrade(engine)
    return engine


def _dirs(database: str | None) -> Any:
    from scimsync.store.directories import Directories

    return Directories(_engine(database))


def _emit(data: Any, as_json: bool, columns: list[str] | None = None, title: str = "") -> None:
    if as_json:
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    rows = data if isinstance(data, list) else [data]
    cols = columns or (list(rows[0].keys()) if rows else [])
    table = Table(title=title or None)
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in cols))
    console.print(table)


def _run(fn: Callable[[], None]) -> None:
    try:
        fn()
    except UsageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except ScimError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(2)


@click.group()
@click.version_option(package_name="scimsync")
def main() -> None:
    """scimsync: a SCIM 2.0 directory-sync hub."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="HTTP worker processes (use PostgreSQL, or SQLite on one machine).")
@click.option("--log-level", default="info", show_default=True)
@click.option("--no-worker", is_flag=True, help="Do not embed a provisioning worker.")
@database_option
def serve(host: str, port: int, workers: int, log_level: str, no_worker: bool,
          database: str | None) -> None:
    """Run the SCIM API, the admin API and (unless --no-worker) a provisioning worker."""
    import os

    import uvicorn

    from scimsync.logs import configure

    configure(log_level)
    url = database_url(database)
    _engine(url).dispose()
    os.environ["SCIMSYNC_DATABASE_URL"] = url
    os.environ["SCIMSYNC_EMBEDDED_WORKER"] = "0" if no_worker else "1"
    uvicorn.run("scimsync.api.asgi:app", host=host, port=port, workers=workers,
                log_level=log_level, access_log=False, log_config=None)


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


@main.group()
def directories() -> None:
    """Tenant directories: each has its own SCIM base URL and tokens."""


@directories.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
def directories_create(name: str, as_json: bool, database: str | None) -> None:
    """Create a directory; its first token is printed once."""

    def go() -> None:
        d = _dirs(database).create(name)
        if as_json:
            _emit(d, True)
            return
        _emit(d, False, ["id", "name", "scim_path", "token_id"], "directory created")
        click.echo(f"token (shown once): {d['token']}")

    _run(go)


@directories.command("list")
@click.option("--json", "as_json", is_flag=True)
@database_option
def directories_list(as_json: bool, database: str | None) -> None:
    """List directories."""
    _run(lambda: _emit(_dirs(database).list_all(), as_json,
                       ["id", "name", "created", "scim_path", "journal_seq"]))


@directories.command("show")
@click.argument("directory_id")
@click.option("--json", "as_json", is_flag=True)
@database_option
def directories_show(directory_id: str, as_json: bool, database: str | None) -> None:
    """Show one directory."""
    _run(lambda: _emit(_dirs(database).get(directory_id), as_json))


@directories.command("delete")
@click.argument("directory_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@database_option
def directories_delete(directory_id: str, yes: bool, database: str | None) -> None:
    """Delete a directory with all its users, groups, tokens and journal."""

    def go() -> None:
        dirs = _dirs(database)
        d = dirs.get(directory_id)
        if not yes:
            click.confirm(f"delete directory {d['name']} ({d['id']}) and everything in it?",
                          abort=True)
        dirs.delete(directory_id)
        click.echo(f"deleted directory {directory_id}")

    _run(go)


# --- tokens ----------------------------------------------------------------------


def _token_commands(group: click.Group, admin: bool) -> None:
    """create/list/rotate/revoke for directory tokens or admin tokens."""
    def scope_arg(fn: F) -> F:
        return fn if admin else click.argument("directory_id")(fn)

    cols = ["id", "name", "created", "expires_at", "revoked_at", "last_used_at"]

    @group.command("create")
    @scope_arg
    @click.option("--name", default="", help="A label for the token.")
    @click.option("--expires-in", default=None, help="Lifetime, e.g. 90d.")
    @click.option("--json", "as_json", is_flag=True)
    @database_option
    def create(name: str, expires_in: str | None, as_json: bool, database: str | None,
               directory_id: str | None = None) -> None:
        """Create a token (printed once)."""

        def go() -> None:
            ttl = parse_duration(expires_in) if expires_in else None
            t = _dirs(database).create_token(directory_id, name, ttl)
            if as_json:
                _emit(t, True)
            else:
                _emit(t, False, ["id", "name", "expires_at"], "token created")
                click.echo(f"token (shown once): {t['token']}")

        _run(go)

    @group.command("list")
    @scope_arg
    @click.option("--json", "as_json", is_flag=True)
    @database_option
    def list_(as_json: bool, database: str | None, directory_id: str | None = None) -> None:
        """List tokens (never their secrets)."""
        _run(lambda: _emit(_dirs(database).list_tokens(directory_id), as_json, cols))

    @group.command("rotate")
    @scope_arg
    @click.argument("token_id")
    @click.option("--overlap", default="1h", show_default=True,
                  help="How long the old token keeps working.")
    @click.option("--json", "as_json", is_flag=True)
    @database_option
    def rotate(token_id: str, overlap: str, as_json: bool, database: str | None,
               directory_id: str | None = None) -> None:
        """Issue a successor token; the old one expires after the overlap."""

        def go() -> None:
            t = _dirs(database).rotate_token(directory_id, token_id, parse_duration(overlap))
            if as_json:
                _emit(t, True)
            else:
                _emit(t, False, ["id", "previous_token_id", "previous_expires_at"],
                      "token rotated")
                click.echo(f"token (shown once): {t['token']}")

        _run(go)

    @group.command("revoke")
    @scope_arg
    @click.argument("token_id")
    @database_option
    def revoke(token_id: str, database: str | None, directory_id: str | None = None) -> None:
        """Revoke a token at once."""

        def go() -> None:
            _dirs(database).revoke_token(directory_id, token_id)
            click.echo(f"revoked token {token_id}")

        _run(go)


@main.group()
def tokens() -> None:
    """Bearer tokens of a directory (for its IdP)."""


@main.group("admin-tokens")
def admin_tokens() -> None:
    """Tokens for the admin API."""


_token_commands(tokens, admin=False)
_token_commands(admin_tokens, admin=True)


# --- journal -----------------------------------------------------------------------


@main.command("prune-journal")
@click.argument("directory_id")
@click.option("--older-than", default="30d", show_default=True,
              help="Keep this much history (events API retention).")
@database_option
def prune_journal(directory_id: str, older_than: str, database: str | None) -> None:
    """Delete journal entries older than the retention that every target has consumed."""
    from datetime import UTC, datetime

    from scimsync.protocol.timefmt import format_time
    from scimsync.store import journal

    def go() -> None:
        engine = _engine(database)
        _dirs(database).get(directory_id)
        cutoff = format_time(datetime.now(UTC) - parse_duration(older_than))
        with engine.begin() as conn:
            n = journal.prune(conn, directory_id, cutoff)
        click.echo(f"deleted {n} journal entries older than {cutoff}")

    _run(go)


@main.command("journal")
@click.argument("directory_id")
@click.option("--after", default=0, show_default=True, type=int, help="Show entries after seq.")
@click.option("--limit", default=100, show_default=True, type=int)
@click.option("--follow", is_flag=True, help="Keep printing new entries.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@database_option
def journal_cmd(directory_id: str, after: int, limit: int, follow: bool, as_json: bool,
                database: str | None) -> None:
    """Read a directory's change journal."""
    from scimsync.store import journal
    from scimsync.store.resources import Store

    def go() -> None:
        engine = _engine(database)
        _dirs(database).get(directory_id)
        store = Store(engine)
        cursor = after
        while True:
            with store.read() as conn:
                entries = journal.read(conn, directory_id, cursor, limit)
            if entries:
                cursor = entries[-1]["seq"]
                if as_json:
                    for e in entries:
                        click.echo(orjson.dumps(e).decode())
                else:
                    _emit([{**e, "changed": ",".join(e["changed"])} for e in entries], False,
                          ["seq", "at", "resource_type", "resource_id", "op", "lifecycle",
                           "changed", "actor"])
            if not follow:
                return
            if not entries:
                time.sleep(0.5)

    _run(go)


def _load_commands() -> None:
    from scimsync import cli_drift, cli_nhi, cli_targets  # register their commands on `main`

    del cli_drift, cli_nhi, cli_targets


_load_commands()

if __name__ == "__main__":
    # Run as `python -m scimsync.cli`, this file is `__main__`; the commands registered
    # by cli_targets live on the `main` of the module `scimsync.cli`.
    from scimsync.cli import main as entry

    entry()
