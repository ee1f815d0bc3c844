"""`scimsync targets check`: probe a SCIM target's application and suggest its profile
(scimsync.connectors.probe, docs/provisioning.md: Checking an app)."""

from __future__ import annotations

import sys
from typing import Any

import click
import yaml

from scimsync.cli.base import _emit, _engine, _run, console, database_option
from scimsync.cli.targets import targets
from scimsync.errors import UsageError


@targets.command("check")
@click.argument("target")
@click.option("--directory", help="The directory, if the name is not unique.")
@click.option("--write", is_flag=True,
              help="Also create one marked user and group, read them back and delete them.")
@click.option("--json", "as_json", is_flag=True)
@database_option
def targets_check(target: str, directory: str | None, write: bool, as_json: bool,
                  database: str | None) -> None:
    """Probe what TARGET's application really does, through the target's own connector,
    and print the profile that says so. Read-only unless --write. Exits 0 when the
    probe ran (whatever it found), 1 when it could not (the app refused the
    credential, did not answer, ...)."""

    def go() -> None:
        from scimsync.connectors import probe
        from scimsync.connectors.scim import ScimConnector
        from scimsync.store.targets import Targets
        from scimsync.sync.engine import make_connector

        store = Targets(_engine(database))
        shown = store.show(target, directory)
        row, config, secrets = store.runtime(shown["id"])
        if row.kind != "scim":
            raise UsageError(f"targets check probes SCIM applications; target {row.name!r} "
                             f"is of kind {row.kind!r}")
        connector = make_connector(row.kind, config, secrets)  # as the engine opens it
        assert isinstance(connector, ScimConnector)
        try:
            report = probe.run(connector, row.name, write)
        except probe.ProbeFailed as exc:
            click.echo(f"error: target {row.name!r}: {exc}", err=True)
            _left_behind(exc.report.left_behind if exc.report else [])
            sys.exit(1)
        finally:
            connector.close()
        if as_json:
            _emit(report.to_json(), True)
            return
        _emit([c.to_json() for c in report.checks], False, ["check", "result", "evidence"],
              f"targets check {row.name}")
        if not report.wrote:
            console.print("Writes were not probed: the check only read. Run it with "
                          "--write to create one marked user and group "
                          "(scimsync-check-…), read them back and delete them.")
        _left_behind(report.left_behind)
        _suggested(report.suggested)
        shipped = report.shipped()
        if shipped:
            click.echo(f"scimsync ships this profile: `profile: {{app: {shipped}}}` says it "
                       f"(scimsync profiles show {shipped}).")

    _run(go)


def _left_behind(items: list[dict[str, Any]]) -> None:
    if not items:
        return
    click.echo("Left behind (could not be deleted; remove them from the app):", err=True)
    for item in items:
        name = item.get("userName") or item.get("displayName")
        click.echo(f"  {item['resource']} id={item.get('id')} {name}: {item.get('error')}",
                   err=True)


def _suggested(profile: dict[str, Any]) -> None:
    """The suggestion as YAML, to paste under the target's `profile:`."""
    if not profile:
        click.echo("Suggested profile: nothing differs from the defaults.")
        return
    click.echo("Suggested profile (paste under the target's `profile:`):")
    click.echo(yaml.safe_dump({"profile": profile}, sort_keys=False,
                              default_flow_style=False).rstrip())
