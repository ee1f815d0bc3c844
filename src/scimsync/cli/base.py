"""The `scimsync` command group and what every command shares (database, output)."""

from __future__ import annotations

import re
import sys
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


def _emit_fields(data: dict[str, Any], as_json: bool, title: str = "") -> None:
    """One record: a field per line for people (a wide row would wrap), JSON for machines."""
    if as_json:
        _emit(data, True)
        return
    table = Table(title=title or None, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in data.items():
        shown = value if isinstance(value, str) else orjson.dumps(value).decode()
        table.add_row(key, "" if value is None else shown)
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
