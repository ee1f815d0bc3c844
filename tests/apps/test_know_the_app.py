"""Issue 12, "know the app": scimsync discovers what each real app stores and requires
(connectors/discovery.py) and sends only that, filled where it must be
(connectors/shaping.py); drift compares the same; a failed discovery is never
replaced by defaults; the profile's overrides win (docs/apps.md)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from sqlalchemy import Engine

from apps.servers import App
from conftest import Scim
from downstream import ThreadedServer, converge, read_body
from scimsync.connectors import discovery
from scimsync.connectors.contract import Transient
from scimsync.connectors.scim import ScimConnector
from scimsync.drift.detect import Detector
from scimsync.drift.findings import list_findings
from scimsync.store.targets import Targets
from scimsync.sync.config import parse_config
from scimsync.sync.engine import Reconciler
from test_targets_admin import cli

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def add_target(engine: Engine, scim: Scim, app: App, url: str | None = None,
               **profile: Any) -> str:
    settings = {**app.target(**profile), "url": url or app.url}
    return str(Targets(engine).add(scim.directory_id, f"{app.name}-{secrets.token_hex(3)}",
                                   "scim", settings)["id"])


def joiner(scim: Scim, tag: str) -> dict[str, Any]:
    """A person as an IdP pushes one: typed primary email, a locale, an employee number."""
    name = f"ada.{tag}@example.com"
    return scim.user(name, name={"givenName": "Ada", "familyName": f"Lovelace{tag}"},
                     emails=[{"value": name, "type": "work", "primary": True}],
                     locale="en-GB", title="Engineer",
                     schemas=["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                     **{ENTERPRISE: {"employeeNumber": "42", "costCenter": "7"}})


def remote_users(app: App) -> dict[str, dict[str, Any]]:
    r = httpx2.get(f"{app.url}/Users", headers={"Authorization": f"Bearer {app.auth['token']}"},
                   timeout=30)
    r.raise_for_status()
    return {u["userName"]: u for u in r.json()["Resources"]}


def test_a_joiner_and_a_group_reach_canaille_without_mapping_rules(
        engine: Engine, scim: Scim, canaille: App) -> None:
    """Canaille requires name.formatted and member $ref, refuses emails[].type, locale
    and member type: all learnt from its Schemas, no rule written by hand."""
    tag = secrets.token_hex(3)
    user = joiner(scim, tag)
    scim.group(f"team {tag}", [user["id"]])
    tid = add_target(engine, scim, canaille, count="omit")
    converge(engine, tid)
    shown = Targets(engine).show(tid)
    assert shown["dead_letters"] == 0, shown
    remote = remote_users(canaille)[user["userName"]]
    assert remote["name"]["formatted"] == f"Ada Lovelace{tag}"
    assert remote["emails"] == [{"value": user["userName"]}]
    assert remote[ENTERPRISE]["employeeNumber"] == "42"
    discovered = shown["discovered"]
    assert discovered["features"]["filter"] is False
    not_sent = {(n["resource"], n["attribute"]) for n in discovered["not_sent"]}
    assert {("User", "locale"), ("User", "emails.type"), ("User", "emails.primary"),
            ("Group", "members.type")} <= not_sent
    assert {(f["resource"], f["attribute"]) for f in discovered["filled"]} == {
        ("User", "name.formatted"), ("Group", "members.$ref")}


def test_a_converged_target_shows_no_drift_for_what_the_app_does_not_store(
        engine: Engine, scim: Scim, canaille: App) -> None:
    tag = secrets.token_hex(3)
    user = joiner(scim, tag)
    tid = add_target(engine, scim, canaille, count="omit")
    converge(engine, tid)
    run = Detector(engine).run(tid)
    assert run["status"] == "complete", run
    drift = [f for f in list_findings(engine, target_id=tid, cls="attribute_drift")
             if f.get("resource_id") == user["id"]]
    assert drift == []


@pytest.fixture
def refusing_once(canaille: App) -> Iterator[tuple[ThreadedServer, list[int]]]:
    """Canaille behind a double that answers its first request 401 (a token the app
    did not take yet), then passes everything through."""
    answered: list[int] = []
    upstream = httpx.AsyncClient(timeout=30)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if not answered:
            answered.append(401)
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        query = scope["query_string"].decode()
        r = await upstream.request(
            scope["method"], canaille.url + scope["path"] + (f"?{query}" if query else ""),
            content=body, headers=[(k.decode(), v.decode()) for k, v in scope["headers"]
                                   if k.lower() not in (b"host", b"content-length")])
        answered.append(r.status_code)
        await send({"type": "http.response.start", "status": r.status_code,
                    "headers": [(b"content-type", b"application/scim+json")]})
        await send({"type": "http.response.body", "body": r.content})

    with ThreadedServer(app) as server:
        yield server, answered


def test_a_failed_discovery_does_not_leave_default_capabilities_behind(
        engine: Engine, scim: Scim, canaille: App,
        refusing_once: tuple[ThreadedServer, list[int]]) -> None:
    server, answered = refusing_once
    tid = add_target(engine, scim, canaille, url=server.url, count="omit")
    joiner(scim, secrets.token_hex(3))
    first = Reconciler(engine).run(tid)
    assert first.error is not None and "discovery failed" in first.error
    assert answered == [401]
    config, creds = parse_config("scim", {**canaille.target(count="omit"),
                                          "url": server.url})
    connector = ScimConnector(config.settings, config.profile, creds)
    try:
        # Discovered afresh: the app announces no filter, and none is sent.
        assert connector.capabilities().find is False
    finally:
        connector.close()
    converge(engine, tid)
    assert Targets(engine).show(tid)["discovered"]["features"]["filter"] is False


def test_a_refused_discovery_is_transient_then_stale_once_one_succeeded(
        canaille: App) -> None:
    cache = discovery.Cache()
    wrong = {**canaille.target(), "auth": {"type": "bearer", "token": "wrong"}}
    for settings, outcome in ((wrong, "transient"), (canaille.target(), "fresh"),
                              (wrong, "stale")):
        config, creds = parse_config("scim", settings)
        connector = ScimConnector(config.settings, config.profile, creds, cache=cache)
        try:
            if outcome == "transient":
                with pytest.raises(Transient, match="discovery failed"):
                    connector.capabilities()
            else:
                discovered = connector.capabilities().discovered
                assert discovered is not None and discovered["features"]["filter"] is False
                assert (discovered["stale"] is not None) is (outcome == "stale")
        finally:
            connector.close()


def test_profile_overrides_win_over_what_the_app_announced(
        engine: Engine, scim: Scim, canaille: App) -> None:
    tag = secrets.token_hex(3)
    user = joiner(scim, tag)
    tid = add_target(engine, scim, canaille, count="omit", discovery={
        "attributes": {"User": {"title": {"stored": False}}}})
    converge(engine, tid)
    assert "title" not in remote_users(canaille)[user["userName"]]
    why = {n["attribute"]: n["reason"] for n in Targets(engine).show(tid)["discovered"]["not_sent"]}
    assert why["title"] == "the profile says the app does not store it"


def test_overrides_are_applied_and_checked_from_a_file_and_shown(
        engine: Engine, scim: Scim, canaille: App, tmp_path: Path) -> None:
    joiner(scim, secrets.token_hex(3))
    name = f"canaille-{secrets.token_hex(3)}"
    head = (f"targets:\n  - directory: {scim.directory_id}\n    name: {name}\n"
            f"    url: {canaille.url}\n    auth: {{type: bearer, token: \"${{TOK}}\"}}\n"
            f"    profile:\n      count: omit\n      discovery:\n")
    env = {"TOK": canaille.auth["token"]}
    bad = tmp_path / "bad.yaml"
    bad.write_text(head + "        filter: sometimes\n"
                          "        attributes: {User: {title: {stored: maybe}}}\n")
    refused = cli(engine, "apply", "-f", str(bad), env=env, ok=False)
    assert refused.returncode == 2
    assert "profile.discovery.filter is true or false" in refused.stderr
    assert "profile.discovery.attributes.User.title.stored is true or false" in refused.stderr
    good = tmp_path / "good.yaml"
    good.write_text(head + "        attributes: {User: {title: {stored: false}}}\n")
    cli(engine, "apply", "-f", str(good), env=env)
    tid = str(Targets(engine).show(name, scim.directory_id)["id"])
    converge(engine, tid)
    shown = cli(engine, "targets", "show", tid, env={"COLUMNS": "250"}).stdout
    assert "the profile says the app does not store it" in shown
    assert "name.formatted" in shown and "filled" in shown
    as_json = json.loads(cli(engine, "targets", "show", tid, "--json").stdout)
    assert as_json["discovered"]["features"]["filter"] is False


def test_better_auth_still_gets_all_it_stores(engine: Engine, scim: Scim,
                                             better_auth: App) -> None:
    """Its schema has locale and typed emails, and declares the enterprise extension
    with no attribute: all of that is still sent, and kept."""
    user = joiner(scim, secrets.token_hex(3))
    tid = add_target(engine, scim, better_auth)
    converge(engine, tid)
    remote = remote_users(better_auth)[user["userName"]]
    assert remote["locale"] == "en-GB" and remote["title"] == "Engineer"
    assert remote["emails"][0]["type"] == "work"
    assert remote[ENTERPRISE]["employeeNumber"] == "42"
    assert Targets(engine).show(tid)["dead_letters"] == 0
