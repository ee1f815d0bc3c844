"""`scimsync profiles`: the app profiles scimsync ships (scimsync.profiles)."""

from __future__ import annotations

import click
import yaml

from scimsync import profiles
from scimsync.cli.base import _emit, _run, main
from scimsync.errors import UsageError


@main.group("profiles")
def profiles_group() -> None:
    """App profiles scimsync ships: a target starts from one with profile.app."""


@profiles_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def profiles_list(as_json: bool) -> None:
    """Every shipped profile, with the app version the tests run."""
    rows = [{"app": s.app, "tested": s.tested, "settings": ", ".join(sorted(s.profile)),
             "description": s.description.split(". ")[0]}
            for s in sorted(profiles.shipped().values(), key=lambda s: s.app)]
    _emit(rows, as_json, ["app", "tested", "settings", "description"], "shipped profiles")


@profiles_group.command("show")
@click.argument("app")
@click.option("--json", "as_json", is_flag=True)
def profiles_show(app: str, as_json: bool) -> None:
    """One shipped profile: its settings as a target's `profile:` takes them, and what
    it cannot absorb."""

    def go() -> None:
        found = profiles.shipped().get(app)
        if found is None:
            raise UsageError(f"no shipped profile {app!r}; shipped: "
                             f"{', '.join(profiles.names())}")
        if as_json:
            _emit(found.to_json(), True)
            return
        click.echo(f"# {found.app} (tested with {found.tested})")
        click.echo(f"# {found.description}")
        click.echo(yaml.safe_dump({"profile": {"app": found.app, **found.profile}},
                                  sort_keys=False).rstrip())
        for note in found.notes:
            click.echo(f"# not absorbed: {note}")

    _run(go)
