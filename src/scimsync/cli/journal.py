"""The change journal: `journal` and `prune-journal`."""

from __future__ import annotations

import time

import click
import orjson

from scimsync.cli.base import (
    _dirs,
    _emit,
    _engine,
    _run,
    database_option,
    main,
    parse_duration,
)


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
