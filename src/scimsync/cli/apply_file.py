"""`scimsync apply -f FILE [--dry-run] [--json]`: what a person or a script reads.

A file with any problem applies nothing: every problem is printed as
`FILE:LINE:COLUMN: target DIR/NAME (targets[i]): message` (or as JSON) and the exit
code is 2. A dry run prints what would change and the plan each change causes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy import Engine

from scimsync.cli.base import _emit
from scimsync.configfile import changes
from scimsync.configfile.declared import FileError, read
from scimsync.errors import UsageError
from scimsync.store.targets import Targets


def apply_file(engine: Engine, path: str, as_json: bool) -> None:
    """Check the whole file, then apply it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot be read as UTF-8 text: {exc}") from exc
    targets = Targets(engine)
    declared, errors = read(path, text, targets)
    if errors:
        _fail(path, errors, as_json)
    found = changes.compare(targets, declared)
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
