"""CLI for drift detection: `scimsync drift TARGET` and `scimsync findings ...`."""

from __future__ import annotations

import sys
from typing import Any

import click

from scimsync.cli.base import _emit, _engine, _run, console, database_option, main
from scimsync.sync.config import DRIFT_CLASSES

COLUMNS = ["class", "severity", "status", "resource_type", "identity", "remote_id",
           "summary", "first_seen", "id"]


def _print(rows: list[dict[str, Any]], as_json: bool, as_csv: bool, title: str) -> None:
    from scimsync.drift.findings import LINE_COLUMNS, as_line
    from scimsync.reports import csv_text

    if as_csv:
        click.echo(csv_text((as_line(r) for r in rows), LINE_COLUMNS), nl=False)
        return
    _emit(rows if as_json else [as_line(r) for r in rows], as_json, COLUMNS, title)


@main.command("drift")
@click.argument("target")
@click.option("--directory")
@click.option("--fix", "fix_classes", multiple=True, type=click.Choice(DRIFT_CLASSES),
              help="After the run, fix the open findings of this class (repeatable).")
@click.option("--approve", is_flag=True,
              help="Approve fixes that go past the target's accidental-deletion guard.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--csv", "as_csv", is_flag=True)
@database_option
def drift_cmd(target: str, directory: str | None, fix_classes: tuple[str, ...], approve: bool,
              as_json: bool, as_csv: bool, database: str | None) -> None:
    """Reconcile TARGET in full: read it back, list every difference from the directory."""

    def go() -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn

        from scimsync.drift.detect import Detector
        from scimsync.drift.findings import list_findings
        from scimsync.drift.remediate import fix
        from scimsync.store.targets import Targets

        engine = _engine(database)
        t = Targets(engine).show(target, directory)
        quiet = as_json or as_csv
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console,
                      transient=True, disable=quiet) as progress:
            task = progress.add_task("reading the target")
            run = Detector(engine).run(
                t["id"], progress=lambda phase, n: progress.update(
                    task, description=f"{phase}: {n:,}"))
        fixed = fix(engine, t["id"], list(fix_classes), approved=approve) if fix_classes \
            else None
        rows = list_findings(engine, target_id=t["id"], status="open")
        if as_json:
            _emit({"run": run, "remediation": fixed, "findings": rows}, True)
        else:
            _print(rows, False, as_csv, f"open findings on {t['name']}")
            if not as_csv:
                stats = run["stats"] or {}
                console.print(f"run {run['status']}: {stats.get('listed_users', 0):,} "
                              f"accounts listed in {stats.get('listing_seconds', 0)} s, "
                              f"{stats.get('compared', 0):,} identities compared "
                              f"({stats.get('compared_per_second', 0):,}/s), "
                              f"{stats.get('new', 0)} new, {stats.get('resolved', 0)} resolved")
                if run["error"]:
                    console.print(f"[yellow]{run['error']}[/yellow]")
                if stats.get("incomplete"):
                    console.print(f"[yellow]listing incomplete "
                                  f"({stats['incomplete']['reason']}): no finding changed, "
                                  "nothing fixed[/yellow]")
                if fixed:
                    console.print(f"fixed {fixed['fixed']}, failed {fixed['failed']}"
                                  + (f": {fixed['error']}" if fixed["error"] else ""))
        if run["status"] not in ("complete", "not_reconcilable") or (
                fixed and fixed["error"]):
            sys.exit(1)

    _run(go)


@main.group("findings")
def findings_group() -> None:
    """Drift findings kept across runs."""


@findings_group.command("list")
@click.option("--directory")
@click.option("--target")
@click.option("--class", "cls", type=click.Choice(DRIFT_CLASSES))
@click.option("--status", type=click.Choice(["open", "remediated", "accepted", "resolved"]))
@click.option("--identity", help="A directory id or remote id.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--csv", "as_csv", is_flag=True)
@database_option
def findings_list(directory: str | None, target: str | None, cls: str | None,
                  status: str | None, identity: str | None, as_json: bool, as_csv: bool,
                  database: str | None) -> None:
    """Findings, filtered by target, class, status or identity."""

    def go() -> None:
        from scimsync.drift.findings import list_findings
        from scimsync.store.targets import Targets

        engine = _engine(database)
        tid = Targets(engine).show(target, directory)["id"] if target else None
        did = None
        if directory and not target:
            did = Targets(engine).directory_id(directory)
        rows = list_findings(engine, directory_id=did, target_id=tid, cls=cls,
                             status=status, identity=identity)
        _print(rows, as_json, as_csv, "findings")

    _run(go)


@findings_group.command("accept")
@click.argument("finding_id")
@click.option("--reason", required=True)
@click.option("--approver", required=True)
@click.option("--until", required=True, help="When the acceptance expires (date-time).")
@click.option("--json", "as_json", is_flag=True)
@database_option
def findings_accept(finding_id: str, reason: str, approver: str, until: str, as_json: bool,
                    database: str | None) -> None:
    """Accept a finding as a risk, until a date; it reopens when that passes."""

    def go() -> None:
        from scimsync.drift.findings import accept

        row = accept(_engine(database), finding_id, reason, approver, until)
        from scimsync.drift.findings import as_line

        _emit(row if as_json else as_line(row), as_json, None if as_json else
              ["class", "status", "identity", "id"], "accepted")

    _run(go)
