"""Tenants and their tokens: `directories`, `tokens`, `admin-tokens`."""

from __future__ import annotations

from datetime import timedelta

import click

from scimsync.cli.base import (
    F,
    _dirs,
    _emit,
    _run,
    database_option,
    main,
    parse_duration,
)


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


@directories.command("discovery")
@click.argument("directory_id")
@click.option("--agent-extension/--no-agent-extension", default=None,
              help="Serve the draft's agentExtension member in /ServiceProviderConfig "
                   "(strict clients refuse it; docs/scim.md).")
@click.option("--json", "as_json", is_flag=True)
@database_option
def directories_discovery(directory_id: str, agent_extension: bool | None, as_json: bool,
                          database: str | None) -> None:
    """Show what a directory's discovery documents advertise, or change it."""

    def go() -> None:
        from scimsync.store.advertised import get_advertised, set_advertised

        dirs = _dirs(database)
        did = dirs.get(directory_id)["id"]
        chosen = get_advertised(dirs.engine, did) if agent_extension is None else \
            set_advertised(dirs.engine, did, {"agent_extension": agent_extension})
        _emit(chosen.to_json(), as_json, None, "discovery")

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
    @click.option("--expires-in", default=None,
                  help="The successor's lifetime, e.g. 90d, or 'never' "
                       "(default: the old token's lifetime).")
    @click.option("--json", "as_json", is_flag=True)
    @database_option
    def rotate(token_id: str, overlap: str, expires_in: str | None, as_json: bool,
               database: str | None, directory_id: str | None = None) -> None:
        """Issue a successor token; the old one expires after the overlap."""

        def go() -> None:
            from scimsync.store.directories import Lifetime

            ttl: timedelta | Lifetime | None = Lifetime.KEEP if expires_in is None else (
                None if expires_in == "never" else parse_duration(expires_in))
            t = _dirs(database).rotate_token(directory_id, token_id, parse_duration(overlap),
                                             ttl)
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
