"""CLI for the accidental-deletion guard and re-evaluation: approve, reject, resync."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from scimsync.cli.base import _emit, _engine, _run, database_option, main
from scimsync.cli.targets import targets


def _decision_command(verb: str, doc: str) -> None:
    @targets.command(verb)
    @click.argument("target")
    @click.option("--directory")
    @click.option("--json", "as_json", is_flag=True)
    @database_option
    def command(target: str, directory: str | None, as_json: bool,
                database: str | None) -> None:
        from scimsync.store import holds
        from scimsync.store.targets import Targets

        decide: Callable[[Any, str], dict[str, Any]] = getattr(holds, verb)

        def go() -> None:
            engine = _engine(database)
            t = Targets(engine).show(target, directory)
            hold = t["hold"] or {}
            if not as_json and hold.get("count"):  # who, for the person deciding
                shown = hold["identities"][:10]
                names = ", ".join(str(i.get("userName") or i.get("displayName")
                                      or i.get("name") or i["id"]) for i in shown)
                more = hold["count"] - len(shown)
                click.echo(f"{t['name']}: {hold['count']} deprovisionings held since "
                           f"{hold['since']}: {names}{f' and {more} more' if more else ''}")
            _emit(decide(engine, t["id"]), as_json)

        _run(go)

    command.__doc__ = doc


_decision_command("approve", "Approve the deprovisionings a target holds: those still "
                  "wanted are applied.")
_decision_command("reject", "Reject the deprovisionings a target holds: the accounts stay, "
                  "and are not proposed again until the configuration or those identities "
                  "change.")


@main.command("resync")
@click.argument("target")
@click.option("--directory")
@click.option("--json", "as_json", is_flag=True)
@database_option
def resync_cmd(target: str, directory: str | None, as_json: bool, database: str | None) -> None:
    """Re-evaluate every identity of TARGET, as bulk work in its lane."""
    from scimsync.store.targets import Targets

    def go() -> None:
        _emit(Targets(_engine(database)).resync(target, directory), as_json,
              ["id", "name", "status", "resync"], "resync started")

    _run(go)
