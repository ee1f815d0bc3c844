"""CLI for outbound provisioning: targets, apply, plan, sync, worker."""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

import click

from scimsync.cli.base import _emit, _emit_fields, _engine, _run, console, database_option, main
from scimsync.errors import UsageError


def _targets(database: str | None) -> Any:
    from scimsync.store.targets import Targets

    return Targets(_engine(database))


def _secret(env: str | None, what: str) -> str | None:
    if env is None:
        return None
    value = os.environ.get(env)
    if not value:
        raise UsageError(f"{what}: environment variable {env} is empty or unset")
    return value


@main.group()
def targets() -> None:
    """Downstream applications a directory provisions."""


@targets.command("add")
@click.argument("directory")
@click.argument("name")
@click.option("--kind", default="scim", show_default=True,
              help="The connector kind (scim, webhook, ...).")
@click.option("--url", required=True, help="The SCIM base URL, or the webhook endpoint.")
@click.option("--signing-secret-env", "signing_env", multiple=True, metavar="VAR",
              help="Webhooks: read a whsec_ signing secret from $VAR (repeat while rotating).")
@click.option("--bearer-token-env", metavar="VAR", help="Read a bearer token from $VAR.")
@click.option("--basic-user", help="Basic auth user name (password from --basic-password-env).")
@click.option("--basic-password-env", metavar="VAR")
@click.option("--deprovision", type=click.Choice(["deactivate", "delete"]),
              default="deactivate", show_default=True)
@click.option("--no-patch", is_flag=True, help="The app takes only full PUTs.")
@click.option("--no-groups", is_flag=True, help="Do not push groups.")
@click.option("--match", default="externalId,userName", show_default=True,
              help="How existing accounts are found, in order (externalId, userName, email).")
@click.option("--scope-group", multiple=True, help="Provision only members of this group.")
@click.option("--scope-filter", help="Provision only users matching this SCIM filter.")
@click.option("--rate-limit", type=float, default=0.0, help="Requests per second (0: none).")
@click.option("--paused", is_flag=True, help="Create the target paused.")
@click.option("--json", "as_json", is_flag=True)
@database_option
def targets_add(directory: str, name: str, kind: str, url: str, signing_env: tuple[str, ...],
                bearer_token_env: str | None,
                basic_user: str | None, basic_password_env: str | None, deprovision: str,
                no_patch: bool, no_groups: bool, match: str, scope_group: tuple[str, ...],
                scope_filter: str | None, rate_limit: float, paused: bool, as_json: bool,
                database: str | None) -> None:
    """Add a SCIM application or a webhook as a target of DIRECTORY (id or name)."""

    def go() -> None:
        auth: dict[str, Any] | None = None
        if bearer_token_env:
            auth = {"type": "bearer", "token": _secret(bearer_token_env, "bearer token")}
        elif basic_user:
            auth = {"type": "basic", "username": basic_user,
                    "password": _secret(basic_password_env, "basic password")}
        settings: dict[str, Any] = {
            "url": url,
            "profile": {"patch": not no_patch, "groups": not no_groups,
                        "deprovision": deprovision, "rate_limit": rate_limit,
                        "match": [m.strip() for m in match.split(",") if m.strip()]},
            "scope": {"groups": list(scope_group), "filter": scope_filter},
        }
        # Each kind checks its own settings: a webhook refuses auth, a SCIM app a secret.
        if auth is not None:
            settings["auth"] = auth
        if signing_env:
            settings["secret"] = [s for v in signing_env
                                  if (s := _secret(v, "signing secret")) is not None]
        t = _targets(database).add(directory, name, kind, settings,
                                   "paused" if paused else "active")
        _emit(t, as_json, ["id", "name", "kind", "status", "directory_id"], "target added")

    _run(go)


@targets.command("list")
@click.option("--directory", help="Only this directory's targets.")
@click.option("--json", "as_json", is_flag=True)
@database_option
def targets_list(directory: str | None, as_json: bool, database: str | None) -> None:
    """List targets, with how each is doing (failures, last error, next retry)."""

    def go() -> None:
        rows = _targets(database).list(directory)
        if not as_json:  # the whole error is in `targets show`
            rows = [{**r, "last_error": _brief(r["last_error"])} for r in rows]
        _emit(rows, as_json, ["id", "name", "kind", "status", "cursor", "failures",
                              "last_error", "retry_at"])

    _run(go)


def _brief(error: str | None, width: int = 40) -> str | None:
    return error if error is None or len(error) <= width else error[:width - 1] + "…"


def _status_command(verb: str, status: str) -> None:
    @targets.command(verb)
    @click.argument("target")
    @click.option("--directory", help="The directory, if the name is not unique.")
    @click.option("--json", "as_json", is_flag=True)
    @database_option
    def command(target: str, directory: str | None, as_json: bool, database: str | None) -> None:
        t = status
        _run(lambda: _emit(_targets(database).set_status(target, t, directory), as_json,
                           ["id", "name", "status"]))

    command.__doc__ = f"Set a target's status to {status}."


_status_command("pause", "paused")
_status_command("resume", "active")


@targets.command("show")
@click.argument("target")
@click.option("--directory")
@click.option("--json", "as_json", is_flag=True)
@database_option
def targets_show(target: str, directory: str | None, as_json: bool,
                 database: str | None) -> None:
    """Show a target and how it is doing (never its credentials), and what scimsync
    discovered of the app: what it does not send and why, what it fills in."""
    def show() -> None:
        shown = _targets(database).show(target, directory)
        if as_json:
            _emit_fields(shown, True)
            return
        discovered = shown.pop("discovered", None)
        _emit_fields(shown, False)
        if discovered:
            _emit_discovered(discovered)

    _run(show)


def _emit_discovered(discovered: dict[str, Any]) -> None:
    """The app as discovered (connectors/shaping.py: report), one row per fact."""
    features = discovered.get("features") or {}
    state = f"discovered {discovered.get('discovered_at') or '-'}"
    if discovered.get("stale"):
        state += f" (stale: {discovered['stale']})"
    rows = [{"resource": "-", "attribute": k, "what": str(v), "why": "announced or profile"}
            for k, v in features.items()]
    for section, what in (("not_sent", "not sent"), ("create_only", "create only"),
                          ("filled", "filled")):
        rows += [{"resource": r["resource"], "attribute": r["attribute"], "what": what,
                  "why": r["reason"] + (f", from {r['from']}" if r.get("from") else "")}
                 for r in discovered.get(section) or []]
    _emit(rows, False, ["resource", "attribute", "what", "why"], title=f"the app: {state}")


@targets.command("remove")
@click.argument("target")
@click.option("--directory")
@click.option("--yes", is_flag=True)
@database_option
def targets_remove(target: str, directory: str | None, yes: bool, database: str | None) -> None:
    """Remove a target and what the hub knows of it (the application is not touched)."""

    def go() -> None:
        t = _targets(database)
        shown = t.show(target, directory)
        if not yes:
            click.confirm(f"remove target {shown['name']} ({shown['id']})?", abort=True)
        t.remove(shown["id"])
        click.echo(f"removed target {shown['id']}")

    _run(go)


@main.command("apply")
@click.option("-f", "--file", "path", required=True,
              type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True,
              help="Show what would change and the plan it causes; change nothing.")
@click.option("--json", "as_json", is_flag=True)
@database_option
def apply_cmd(path: str, dry_run: bool, as_json: bool, database: str | None) -> None:
    """Create or update the targets a YAML file declares: all of them or, if the file
    has any problem, none (idempotent; targets it does not name are left alone)."""
    from scimsync.cli.apply_file import apply_file

    _run(lambda: apply_file(_engine(database), path, dry_run, as_json))


def _change_text(action: dict[str, Any]) -> str:
    """What an action changes, in a few words: set attributes, cleared ones, members."""
    changes = action.get("changes") or {}
    parts = [f"{k}={_short(v)}" for k, v in (changes.get("set") or {}).items()]
    parts += [f"-{k}" for k in changes.get("clear") or []]
    if changes.get("add_members"):
        parts.append(f"+{changes['add_members']} members")
    if changes.get("remove_members"):
        parts.append(f"-{changes['remove_members']} members")
    if changes.get("reason"):
        parts.append(str(changes["reason"]))
    if not parts and action.get("detail"):
        parts.append(str(action["detail"]))
    return "; ".join(parts)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _show_actions(result: Any, as_json: bool) -> None:
    if as_json:
        _emit({"processed": result.processed, "error": result.error,
               "actions": result.actions}, True)
        return
    if result.actions:
        rows = [{**a, "name": a.get("name") or a["resource_id"],
                 "change": _change_text(a)} for a in result.actions]
        _emit(rows, False, ["action", "resource_type", "name", "remote_id", "change",
                            "outcome"])
    else:
        console.print("nothing to change")
    if result.error:
        click.echo(f"stopped: {result.error}", err=True)


@main.command("plan")
@click.argument("target")
@click.option("--directory")
@click.option("--json", "as_json", is_flag=True)
@database_option
def plan_cmd(target: str, directory: str | None, as_json: bool, database: str | None) -> None:
    """Show what a full reconciliation of TARGET would change, changing nothing."""

    def go() -> None:
        from scimsync.store.targets import Targets
        from scimsync.sync.engine import Reconciler

        engine = _engine(database)
        t = Targets(engine).show(target, directory)
        result = Reconciler(engine).plan(t["id"])
        _show_actions(result, as_json)

    _run(go)


@main.command("sync")
@click.argument("target")
@click.option("--user", "user_id", required=True, help="The user's id in the directory.")
@click.option("--directory")
@click.option("--json", "as_json", is_flag=True)
@database_option
def sync_cmd(target: str, user_id: str, directory: str | None, as_json: bool,
             database: str | None) -> None:
    """Provision one user to TARGET now, and show each step."""

    def go() -> None:
        from scimsync.store.targets import Targets
        from scimsync.sync import origins
        from scimsync.sync.engine import Reconciler

        engine = _engine(database)
        t = Targets(engine).show(target, directory)
        result = Reconciler(engine).run(t["id"], only=[
            origins.by_hand(engine, t["id"], "User", user_id)])
        _show_actions(result, as_json)
        if result.error or result.dead:
            sys.exit(1)

    _run(go)


@main.command("worker")
@database_option
def worker_cmd(database: str | None) -> None:
    """Run a provisioning worker alone (several may share a PostgreSQL database)."""
    from scimsync.logs import configure
    from scimsync.sync.worker import Worker

    configure("info")
    w = Worker(_engine(database))
    signal.signal(signal.SIGTERM, lambda *_: w.stop())
    try:
        w.run_forever()
    except KeyboardInterrupt:
        w.stop()


@main.command("lag")
@click.option("--json", "as_json", is_flag=True)
@database_option
def lag_cmd(as_json: bool, database: str | None) -> None:
    """Propagation lag per target (p50/p95/p99/max), all together and per phase
    (initial load and resyncs, incremental changes, remediation), and the worst recent
    leaver."""
    from scimsync.sync.lag import all_targets

    def go() -> None:
        rows = all_targets(_engine(database))
        if as_json:
            _emit(rows, True)
            return
        table = []
        for r in rows:  # a row for the target, then one per phase
            table.append({**r, "phase": "all",
                          "worst_leaver_ms": (r["worst_leaver"] or {}).get("lag_ms")})
            table += [{"name": r["name"], "phase": p, **f} for p, f in r["phases"].items()]
        _emit(table, False,
              ["name", "phase", "samples", "p50_ms", "p95_ms", "p99_ms", "max_ms",
               "worst_leaver_ms", "status", "backlog", "dead_letters", "failures"],
              "propagation lag")

    _run(go)


@main.group("dead-letters")
def dead_letters_group() -> None:
    """Operations a target refused (4xx that retrying cannot fix)."""


@dead_letters_group.command("list")
@click.argument("target")
@click.option("--directory")
@click.option("--all", "show_all", is_flag=True, help="Include retried ones.")
@click.option("--json", "as_json", is_flag=True)
@database_option
def dead_letters_list(target: str, directory: str | None, show_all: bool, as_json: bool,
                      database: str | None) -> None:
    """List a target's dead letters, with the request and response (secrets redacted)."""
    from scimsync.store.targets import list_dead_letters

    def go() -> None:
        engine = _engine(database)
        t = _targets(database).show(target, directory)
        rows = list_dead_letters(engine, t["id"], None if show_all else "open")
        _emit(rows, as_json, ["id", "created", "resource_type", "resource_id", "action",
                              "status", "error"])

    _run(go)


@dead_letters_group.command("retry")
@click.argument("target")
@click.option("--directory")
@click.option("--id", "ids", multiple=True, type=int,
              help="Only these (default: all open). An unknown create (action verify) is "
              "made again only when its dead letter is named here.")
@click.option("--json", "as_json", is_flag=True)
@database_option
def dead_letters_retry(target: str, directory: str | None, ids: tuple[int, ...],
                       as_json: bool, database: str | None) -> None:
    """Reconcile the resources of open dead letters now."""
    from scimsync.sync.engine import retry_dead_letters

    def go() -> None:
        t = _targets(database).show(target, directory)
        out = retry_dead_letters(_engine(database), t["id"], list(ids) or None)
        if as_json:
            _emit(out, True)
            return
        click.echo(f"retried {out['retried']} dead letters")
        if out.get("actions"):
            _emit(out["actions"], False, ["resource_type", "resource_id", "action",
                                          "outcome", "detail"])

    _run(go)
