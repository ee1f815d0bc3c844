"""`scimsync apply -f FILE [--dry-run] [--json]`: what a person or a script reads.

A file with any problem applies nothing: every problem is printed as
`FILE:LINE:COLUMN: target DIR/NAME (targets[i]): message` (or as JSON) and the exit
code is 2. A dry run prints what would change and the plan each change causes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Engine

from scimsync.cli.base import _emit, console
from scimsync.cli.targets import _change_text, _short
from scimsync.configfile import changes
from scimsync.configfile.declared import FileError, read
from scimsync.errors import UsageError
from scimsync.store.targets import Targets


def apply_file(engine: Engine, path: str, dry_run: bool, as_json: bool) -> None:
    """Check the whole file, then apply it (or show what applying would do)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot be read as UTF-8 text: {exc}") from exc
    targets = Targets(engine)
    declared, errors = read(path, text, targets)
    if errors:
        _fail(path, errors, as_json)
    found = changes.compare(targets, declared)
    if dry_run:
        _dry_run(engine, found, as_json)
        return
    _emit(changes.apply(targets, found), as_json, ["directory", "name", "result", "resync"])


def _fail(path: str, errors: list[FileError], as_json: bool) -> None:
    if as_json:
        _emit({"errors": [e.to_json() for e in errors]}, True)
    else:
        for e in errors:
            click.echo(str(e), err=True)
    n = len(errors)
    click.echo(f"{path}: {n} problem{'s' if n != 1 else ''}; nothing was applied", err=True)
    sys.exit(2)


def _what(c: changes.Change) -> str:
    parts = [f"{s['setting']}: {_shown(s['before'])} → {_shown(s['after'])}"
             for s in c.settings]
    if c.credentials:
        parts.append("credentials")
    if c.result == "created" and c.new_status == "paused":
        parts.append("created paused")
    elif c.result != "created" and c.new_status:
        parts.append(f"status: {c.status} → {c.new_status}")
    if c.note:
        parts.append(c.note)
    return "\n".join(parts)


def _shown(value: Any) -> str:
    return "(none)" if value is None else _short(value)


def _dry_run(engine: Engine, found: list[changes.Change], as_json: bool) -> None:
    plans = [changes.plan(engine, c) for c in found]
    if as_json:
        _emit({"dry_run": True, "targets": [{**c.to_json(), "plan": p}
                                            for c, p in zip(found, plans, strict=True)]},
              True)
        return
    rows = [{"target": c.declared.label, "kind": c.declared.kind, "result": c.result,
             "changes": _what(c), "plan": (p or {}).get("summary", "")}
            for c, p in zip(found, plans, strict=True)]
    _emit(rows, False, ["target", "kind", "result", "changes", "plan"],
          "dry run: what applying the file would change")
    for c, p in zip(found, plans, strict=True):
        if not p:
            continue
        if p.get("error"):
            click.echo(f"{c.declared.label}: the plan stopped: {p['error']}", err=True)
        if p.get("actions"):
            _emit([{**a, "name": a.get("name") or a["resource_id"], "change": _change_text(a)}
                   for a in p["actions"]], False,
                  ["action", "resource_type", "name", "remote_id", "change", "outcome"],
                  f"{c.declared.label}: plan under the new settings")
    console.print("dry run: nothing was changed")
