"""`scimsync apply -f` as a real subprocess: strict, positioned, all or nothing, dry runs."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from conftest import Scim
from downstream import PEER_TOKEN, Peer, converge
from scimsync.store.targets import Targets
from test_targets_admin import cli


def at(text: str, needle: str) -> str:
    """`LINE:COLUMN` of the first `needle` in `text`, as messages count them."""
    before = text[:text.index(needle)]
    return f"{before.count(chr(10)) + 1}:{len(before) - before.rfind(chr(10))}"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / f"scimsync-{secrets.token_hex(3)}.yaml"
    path.write_text(text)
    return str(path)


def names(engine: Engine, scim: Scim) -> list[str]:
    return [t["name"] for t in Targets(engine).list(scim.directory_id)]


def whsec(size: int = 32) -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(size)).decode()


def test_an_error_in_the_third_of_three_targets_applies_nothing(
        engine: Engine, scim: Scim, peer: Peer, tmp_path: Path) -> None:
    text = f"""targets:
  - {{directory: {scim.directory_id}, name: a, url: {peer.base}}}
  - {{directory: {scim.directory_id}, name: b, kind: webhook, url: {peer.base}/h,
     secret: {whsec()}}}
  - directory: {scim.directory_id}
    name: c
    url: {peer.base}
    scope: {{groups: [Nobody]}}
"""
    path = write(tmp_path, text)
    proc = cli(engine, "apply", "-f", path, ok=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    target = f"target {scim.directory_id}/c (targets[2])"
    assert proc.stderr.splitlines() == [
        f"{path}:{at(text, 'Nobody')}: {target}: scope.groups[0]: no group 'Nobody' in the "
        "directory (rules name a group by displayName or id; create the group first)",
        f"{path}: 1 problem; nothing was applied"]
    assert names(engine, scim) == []


def test_unknown_keys_at_every_level_are_each_shown_at_their_key(
        engine: Engine, scim: Scim, peer: Peer, tmp_path: Path) -> None:
    text = f"""target: []
targets:
  - directory: {scim.directory_id}
    name: crm
    url: {peer.base}
    scopes: {{groups: [Sales]}}
    auth: {{type: bearer, token: t, tokn: x}}
    profile: {{concurency: 2}}
    scope: {{group: [Sales]}}
    drift: {{intervall: 1h}}
    mapping:
      - {{target: title, value: x, sorce: department}}
    roles:
      - {{group: Admins, value: admin, atribute: roles}}
"""
    path = write(tmp_path, text)
    proc = cli(engine, "apply", "-f", path, "--json", ok=False)
    assert proc.returncode == 2
    errors = json.loads(proc.stdout)["errors"]
    where = {e["path"]: f"{e['line']}:{e['column']}" for e in errors}
    assert where == {"target": "1:1",
                     "targets[0].scopes": at(text, "scopes"),
                     "targets[0].auth.tokn": at(text, "tokn"),
                     "targets[0].profile.concurency": at(text, "concurency"),
                     "targets[0].scope.group": at(text, "group:"),
                     "targets[0].drift.intervall": at(text, "intervall"),
                     "targets[0].mapping[0].sorce": at(text, "sorce"),
                     "targets[0].roles[0].atribute": at(text, "atribute")}
    assert {e["target"] for e in errors} == {None, f"{scim.directory_id}/crm"}
    assert "did you mean `scope`?" in next(e["message"] for e in errors
                                          if e["path"] == "targets[0].scopes")
    assert "7 problems" not in proc.stderr and "8 problems; nothing was applied" in proc.stderr
    assert names(engine, scim) == []


def test_a_misspelt_section_leaves_the_stored_target_as_it_was_and_paused_is_applied(
        engine: Engine, scim: Scim, peer: Peer, tmp_path: Path) -> None:
    scim.group("Sales")
    head = f"targets:\n  - {{directory: {scim.directory_id}, name: crm, url: {peer.base}"
    cli(engine, "apply", "-f", write(tmp_path, head + ", scope: {groups: [Sales]}}\n"))
    typo = cli(engine, "apply", "-f", write(tmp_path, head + ", scopes: {groups: [X]}}\n"),
               ok=False)
    assert typo.returncode == 2 and "did you mean `scope`?" in typo.stderr
    paused = json.loads(cli(engine, "apply", "-f", write(
        tmp_path, head + ", scope: {groups: [Sales]}, paused: true}\n"), "--json").stdout)
    assert [r["result"] for r in paused] == ["updated"]
    (stored,) = Targets(engine).list(scim.directory_id)
    assert stored["status"] == "paused" and stored["config"]["scope"]["groups"] == ["Sales"]
    resumed = json.loads(cli(engine, "apply", "-f", write(
        tmp_path, head + ", scope: {groups: [Sales]}, paused: false}\n"), "--json").stdout)
    assert [r["result"] for r in resumed] == ["updated"]
    assert Targets(engine).list(scim.directory_id)[0]["status"] == "active"
    again = json.loads(cli(engine, "apply", "-f", write(
        tmp_path, head + ", scope: {groups: [Sales]}}\n"), "--json").stdout)
    assert [r["result"] for r in again] == ["unchanged"]


def test_a_file_without_a_targets_list_is_an_error(engine: Engine, scim: Scim,
                                                    tmp_path: Path) -> None:
    typo = cli(engine, "apply", "-f", write(tmp_path, f"target:\n  - directory: "
                                                      f"{scim.directory_id}\n"), ok=False)
    assert typo.returncode == 2
    assert ":1:1: unknown top-level setting `target`; did you mean `targets`?" in typo.stderr
    for text in ("", "targets: {}\n", "- a\n"):
        proc = cli(engine, "apply", "-f", write(tmp_path, text), ok=False)
        assert proc.returncode == 2 and "a mapping with a `targets` list" in proc.stderr
    broken = cli(engine, "apply", "-f", write(tmp_path, "targets: [\n"), ok=False)
    assert broken.returncode == 2 and ":2:1: not valid YAML" in broken.stderr
    assert "Traceback" not in typo.stderr + broken.stderr
    assert names(engine, scim) == []


def test_repeated_keys_repeated_targets_and_a_new_kind_are_refused(
        engine: Engine, scim: Scim, peer: Peer, tmp_path: Path) -> None:
    d = scim.directory_id
    scim.group("Wiki")
    cli(engine, "apply", "-f", write(tmp_path, f"targets: [{{directory: {d}, name: crm, "
                                               f"url: {peer.base}}}]\n"))
    text = f"""targets:
  - directory: {d}
    name: crm
    kind: webhook
    url: {peer.base}
    secret: {whsec()}
  - directory: {d}
    name: wiki
    url: {peer.base}
    scope: {{filter: 'active eq true'}}
    scope: {{groups: [Wiki]}}
  - {{directory: {d}, name: wiki, url: {peer.base}}}
"""
    path = write(tmp_path, text)
    proc = cli(engine, "apply", "-f", path, ok=False)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert lines[0] == f"{path}:{at(text, 'webhook')}: target {d}/crm (targets[0]): target " \
                       "crm is a scim target; a kind cannot change (remove the target and " \
                       "apply again to make it a webhook)"
    assert lines[1] == f"{path}:{at(text, 'scope: {groups')}: key `scope` is written twice " \
                       "in this mapping"
    assert lines[2:] == [f"{path}:{at(text, 'wiki, url')}: target {d}/wiki (targets[2]): "
                         f"targets[1] already declares {d}/wiki",
                         f"{path}: 3 problems; nothing was applied"]
    assert names(engine, scim) == ["crm"]


def test_the_environment_is_read_only_in_credentials_and_where_the_file_says(
        engine: Engine, scim: Scim, peer: Peer, tmp_path: Path) -> None:
    d = scim.directory_id
    env = {"PEER_TOKEN": PEER_TOKEN, "PEER_BASE": peer.base, "SECRET_TITLE": "leaked",
           "HOOK": whsec()}
    text = f"""targets:
  - directory: {d}
    name: crm
    url: !env "${{PEER_BASE}}"
    auth: {{type: bearer, token: "${{PEER_TOKEN}}"}}
    mapping:
      - {{target: title, value: "$${{not a reference}}"}}
  - directory: {d}
    name: hook
    kind: webhook
    url: "{peer.base}/${{SECRET_TITLE}}"
    secret: ["${{HOOK}}", "${{SCIMSYNC_DATABASE_URL}}", "${{NOT_SET_ANYWHERE}}"]
    mapping:
      - {{target: nickName, value: "${{SECRET_TITLE}}"}}
      - {{target: title, value: "${{oops"}}
"""
    path = write(tmp_path, text)
    proc = cli(engine, "apply", "-f", path, env=env, ok=False)
    assert proc.returncode == 2 and "leaked" not in proc.stderr
    hook = f"target {d}/hook (targets[1]): "
    unread = "the environment is read only in credential fields (secret) or in a value " \
             "marked `!env`"
    assert proc.stderr.splitlines()[:-1] == [
        f"{path}:{at(text, chr(34) + peer.base)}: {hook}`${{SECRET_TITLE}}`: {unread}",
        f"{path}:{at(text, chr(34) + '${SCIMSYNC')}: {hook}`${{SCIMSYNC_DATABASE_URL}}`: "
        "the hub's own settings (SCIMSYNC_*) are never read into a target",
        f"{path}:{at(text, chr(34) + '${NOT_SET')}: {hook}environment variable "
        "NOT_SET_ANYWHERE is not set",
        f"{path}:{at(text, chr(34) + '${SECRET_TITLE}' + chr(34))}: {hook}"
        f"`${{SECRET_TITLE}}`: {unread}",
        f"{path}:{at(text, chr(34) + '${oops')}: {hook}`${{` starts an environment "
        "reference such as `${NAME}` (letters, digits, _); write `$${` for a literal `${`"]
    assert names(engine, scim) == []
    fixed = text[:text.index("  - directory: " + d + "\n    name: hook")]
    cli(engine, "apply", "-f", write(tmp_path, fixed), env=env)
    (crm,) = Targets(engine).list(d)
    assert crm["config"]["url"] == peer.base and crm["has_credentials"]
    assert crm["config"]["mapping"] == [{"target": "title", "value": "${not a reference}"}]


def dry_run(engine: Engine, path: str, **kw: Any) -> Any:
    return json.loads(cli(engine, "apply", "-f", path, "--dry-run", "--json", **kw).stdout)


def test_dry_run_shows_changes_and_their_plan_and_changes_nothing(
        engine: Engine, scim: Scim, peer: Peer, tmp_path: Path) -> None:
    d = scim.directory_id
    sales = [scim.user(f"s{i}@x.test", title="Rep")["id"] for i in range(2)]
    other = scim.user("o@x.test", title="Ops")["id"]
    scim.group("Sales", sales)
    env = {"TOK": PEER_TOKEN}
    first = f"""targets:
  - directory: {d}
    name: crm
    url: {peer.base}
    auth: {{type: bearer, token: "${{TOK}}"}}
    scope: {{groups: [Sales]}}
    profile: {{groups: false}}
"""
    cli(engine, "apply", "-f", write(tmp_path, first), env=env)
    (crm,) = Targets(engine).list(d)
    converge(engine, crm["id"])
    assert set(peer.users()) == set(sales)
    second = first.replace("    profile:", "    mapping: [{target: title, value: Seller}]\n"
                                          "    profile:") + f"""    paused: true
  - {{directory: {d}, name: wiki, url: {peer.base}/wiki}}
  - {{directory: {d}, name: hook, kind: webhook, url: {peer.base}/h, secret: {whsec()},
     scope: {{groups: [Sales]}}}}
"""
    path = write(tmp_path, second)
    out = dry_run(engine, path, env=env)
    assert out["dry_run"] is True
    shown = {t["name"]: t for t in out["targets"]}
    assert shown["crm"]["result"] == "updated" and shown["crm"]["new_status"] == "paused"
    assert shown["crm"]["settings"] == [{"setting": "mapping", "before": [],
                                         "after": [{"target": "title", "value": "Seller"}]}]
    assert shown["crm"]["credentials_change"] is False and shown["crm"]["resync"] is True
    planned = {(a["resource_id"], a["action"]) for a in shown["crm"]["plan"]["actions"]}
    assert planned == {(uid, "update") for uid in sales}
    assert shown["wiki"]["result"] == "created"
    assert shown["wiki"]["plan"]["initial"] == {"users": 3, "groups": 1}
    assert shown["hook"]["plan"]["initial"] is None
    assert shown["hook"]["plan"]["in_scope"] == {"users": 2, "groups": 1}
    human = cli(engine, "apply", "-f", path, "--dry-run",
                env={**env, "COLUMNS": "250"}).stdout
    assert "dry run: nothing was changed" in human
    assert "initial load of 3 users and 1 group in scope" in human
    assert "2 updates, by a resync once resumed (the file pauses it)" in human
    assert f"{d}/crm: plan under the new settings" in human
    assert "status: active → paused" in human and "title=Seller" in human
    # Nothing changed: no new target, crm as it was, the application untouched.
    (after,) = Targets(engine).list(d)
    assert after["config"] == crm["config"] and after["status"] == "active"
    assert {u["title"] for u in peer.users().values()} == {"Rep"} and other not in peer.users()
    new_token = dry_run(engine, path, env={"TOK": "another"})
    assert next(t for t in new_token["targets"] if t["name"] == "crm")["credentials_change"]
    # Who comes into scope is looked for in the application, which does not answer.
    unreachable = first.replace(peer.base, "http://127.0.0.1:9/x").replace(
        "    scope: {groups: [Sales]}\n", "")
    gone = dry_run(engine, write(tmp_path, unreachable), env=env)["targets"][0]
    assert [s["setting"] for s in gone["settings"]] == ["url", "scope.groups"]
    assert gone["plan"]["error"] == "discovery failed: GET ServiceProviderConfig: ConnectError"
    bad = cli(engine, "apply", "-f", write(tmp_path, second + "  - {name: x}\n"),
              "--dry-run", env=env, ok=False)
    assert bad.returncode == 2 and "a target needs a directory" in bad.stderr


def test_a_file_names_profiles_of_its_own_and_targets_start_from_them(
        engine: Engine, scim: Scim, peer: Peer, tmp_path: Path) -> None:
    """A file's profile may start from a shipped one; a target that names it keeps its
    own settings over it; a stored target holds the shipped name and what differs."""
    text = f"""profiles:
  our-canaille:
    app: canaille
    page_size: 25
    rate_limit: 5
targets:
  - directory: {scim.directory_id}
    name: a
    url: {peer.base}
    profile: {{app: our-canaille, rate_limit: 2}}
"""
    cli(engine, "apply", "-f", write(tmp_path, text))
    stored = Targets(engine).list(scim.directory_id)[0]["config"]["profile"]
    assert stored == {"app": "canaille", "page_size": 25, "rate_limit": 2}


def test_a_files_profiles_are_checked_where_they_are_written(
        engine: Engine, scim: Scim, peer: Peer, tmp_path: Path) -> None:
    text = f"""profiles:
  canaille: {{count: omit}}
  slow: {{rate_limit: -1, member_value: name}}
  nowhere: {{app: nobody}}
targets:
  - directory: {scim.directory_id}
    name: a
    url: {peer.base}
    profile: {{app: missing}}
"""
    path = write(tmp_path, text)
    proc = cli(engine, "apply", "-f", path, "--json", ok=False)
    assert proc.returncode == 2
    errors = {e["path"]: e for e in json.loads(proc.stdout)["errors"]}
    assert set(errors) == {"profiles.canaille", "profiles.slow.rate_limit",
                           "profiles.slow.member_value", "profiles.nowhere.app",
                           "targets[0].profile.app"}
    assert "scimsync ships a profile of that name" in errors["profiles.canaille"]["message"]
    assert f"{errors['profiles.slow.member_value']['line']}:" \
        f"{errors['profiles.slow.member_value']['column']}" == at(text, "name}")
    assert "no shipped profile 'missing'" in errors["targets[0].profile.app"]["message"]
    assert names(engine, scim) == []
