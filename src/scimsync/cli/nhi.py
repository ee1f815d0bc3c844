"""CLI for non-human identities: `scimsync nhi policy|sweep|report|revocations|ack`."""

from __future__ import annotations

from typing import Any

import click

from scimsync.cli.base import _emit, _engine, _run, database_option, main


def _directory(engine: Any, name_or_id: str) -> str:
    from scimsync.store.targets import Targets

    return Targets(engine).directory_id(name_or_id)


def _out(rows: list[dict[str, Any]], as_json: bool, as_csv: bool, columns: list[str],
         title: str) -> None:
    from scimsync.reports import csv_text

    if as_csv:
        click.echo(csv_text(rows, columns), nl=False)
        return
    table = rows if as_json else [{k: ", ".join(map(str, v)) if isinstance(v, list) else v
                                   for k, v in r.items()} for r in rows]
    _emit(table, as_json, columns, title)


@main.group("nhi")
def nhi_group() -> None:
    """Non-human identities: ownership policy, sweeps, reports, revocations."""


@nhi_group.command("policy")
@click.argument("directory")
@click.option("--unowned", type=click.Choice(["flag", "reject"]))
@click.option("--on-owner-departure", type=click.Choice(["manager", "group", "suspend"]))
@click.option("--fallback-group", help="Id of the Group that takes over (or '' to clear).")
@click.option("--grace", help="How long before an identity without owner is suspended (7d).")
@click.option("--json", "as_json", is_flag=True)
@database_option
def nhi_policy(directory: str, unowned: str | None, on_owner_departure: str | None,
               fallback_group: str | None, grace: str | None, as_json: bool,
               database: str | None) -> None:
    """Show DIRECTORY's ownership policy, or change the settings given."""

    def go() -> None:
        from scimsync.nhi.policy import get_policy, set_policy
        from scimsync.store.nhi import policy_settings

        engine = _engine(database)
        did = _directory(engine, directory)
        given = {"unowned": unowned, "on_owner_departure": on_owner_departure,
                 "fallback_group": fallback_group, "grace": grace}
        if any(v is not None for v in given.values()):
            with engine.connect() as conn:
                raw = dict(policy_settings(conn, did))
            for k, v in given.items():
                if v == "" and k == "fallback_group":
                    raw.pop(k, None)
                elif v is not None:
                    raw[k] = v
            policy = set_policy(engine, did, raw)
        else:
            policy = get_policy(engine, did)
        _emit(policy.to_json(), as_json, None, "ownership policy")

    _run(go)


@nhi_group.command("sweep")
@click.option("--directory", help="One directory (default: all).")
@click.option("--json", "as_json", is_flag=True)
@database_option
def nhi_sweep(directory: str | None, as_json: bool, database: str | None) -> None:
    """Apply the ownership policy and expiry now (workers do it every minute)."""

    def go() -> None:
        from scimsync.nhi.sweep import Sweeper

        engine = _engine(database)
        did = _directory(engine, directory) if directory else None
        done = Sweeper(engine).run(did)
        if as_json:
            _emit(done, True)
            return
        notices = ", ".join(f"{k}: {v}" for k, v in sorted(done["notices"].items()))
        click.echo(f"{done['checked']} non-human identities checked; "
                   f"{notices or 'nothing to do'}")

    _run(go)


@nhi_group.command("report")
@click.argument("kind", type=click.Choice(["inventory", "orphaned", "expiring", "leavers"]))
@click.option("--directory", required=True)
@click.option("--days", type=int, default=30, show_default=True,
              help="expiring: within this many days; leavers: owners who left this recently.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--csv", "as_csv", is_flag=True)
@database_option
def nhi_report(kind: str, directory: str, days: int, as_json: bool, as_csv: bool,
               database: str | None) -> None:
    """Inventory, orphaned, expiring, or owned by leavers."""

    def go() -> None:
        from scimsync.nhi.reports import COLUMNS, LEAVER_COLUMNS, report

        engine = _engine(database)
        rows = report(engine, _directory(engine, directory), kind, days)
        columns = LEAVER_COLUMNS if kind == "leavers" else COLUMNS
        _out(rows, as_json, as_csv, columns, f"non-human identities: {kind}")

    _run(go)


@nhi_group.command("revocations")
@click.option("--directory")
@click.option("--status", type=click.Choice(["open", "acknowledged"]))
@click.option("--json", "as_json", is_flag=True)
@click.option("--csv", "as_csv", is_flag=True)
@database_option
def nhi_revocations(directory: str | None, status: str | None, as_json: bool, as_csv: bool,
                    database: str | None) -> None:
    """Credential revocation requests (open ones are open risks)."""

    def go() -> None:
        from scimsync.nhi.revocations import COLUMNS, list_revocations

        engine = _engine(database)
        did = _directory(engine, directory) if directory else None
        _out(list_revocations(engine, did, status), as_json, as_csv, COLUMNS,
             "credential revocations")

    _run(go)


@nhi_group.command("ack")
@click.argument("revocation_id")
@click.option("--by", required=True, help="Who revoked the credential.")
@click.option("--note")
@click.option("--json", "as_json", is_flag=True)
@database_option
def nhi_ack(revocation_id: str, by: str, note: str | None, as_json: bool,
            database: str | None) -> None:
    """Record that a credential was revoked."""

    def go() -> None:
        from scimsync.nhi.revocations import acknowledge

        row = acknowledge(_engine(database), revocation_id, by, note)
        _emit(row, as_json, None if as_json else
              ["credential", "identity", "status", "acknowledged", "acknowledged_by"],
              "acknowledged")

    _run(go)
