"""How a SCIM target authenticates: static credentials on the wire, the settings'
checks (each problem at its path, no secret repeated), and targets that store them
(SQLite and PostgreSQL) through the admin API, the CLI and `apply -f`."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from auth_app import AuthApp, serving
from conftest import Scim
from downstream import PEER_TOKEN, Peer, converge
from scimsync.connectors.contract import Rejected
from scimsync.connectors.scim import ScimConnector
from scimsync.errors import UsageError
from scimsync.store.directories import Directories
from scimsync.store.targets import Targets, list_dead_letters
from scimsync.sync.config import parse_config
from scimsync.sync.engine import Reconciler
from scimsync.validation import problems_of
from test_apply_file import at, write
from test_targets_admin import cli

KEY = "k3y-0123456789abcdef"
SECRET = "client s3cret/+"


def static(url: str, auth: dict[str, Any]) -> ScimConnector:
    config, secrets = parse_config("scim", {"url": f"{url}/scim", "auth": auth})
    return ScimConnector(config.settings, config.profile, secrets)


@pytest.mark.parametrize(("auth", "header", "value"), [
    ({"type": "bearer", "token": KEY}, "authorization", f"Bearer {KEY}"),
    ({"type": "basic", "username": "hub", "password": "pässword"}, "authorization",
     "Basic " + base64.b64encode("hub:pässword".encode()).decode()),  # RFC 7617 §2.1: UTF-8
    ({"type": "header", "name": "X-API-Key", "value": KEY}, "x-api-key", KEY),
    ({"type": "header", "name": "Authorization", "value": f"SSWS {KEY}"}, "authorization",
     f"SSWS {KEY}"),
])
def test_static_credentials_go_in_their_header_and_a_401_is_not_tried_again(
        auth: dict[str, Any], header: str, value: str) -> None:
    app = AuthApp(accepts=lambda h: h.get(header) == value)
    with serving(app) as url:
        connector = static(url, auth)
        assert connector.get("User", "a") is None
        assert KEY not in repr(connector.credentials)
        connector.close()
        wrong = static(url, {**auth, **{k: "wrong" for k in ("token", "password", "value")
                                         if k in auth}})
        with pytest.raises(Rejected) as refused:
            wrong.get("User", "b")
        assert str(refused.value) == "GET Users/b answered 401"
        wrong.close()
    assert [h.get(header) for h in app.seen[:1]] == [value] and len(app.seen) == 2
    assert app.tokens == []
    if auth["type"] == "header" and header != "authorization":
        assert "authorization" not in app.seen[0]


def problems(auth: Any) -> dict[tuple[str | int, ...], str]:
    """The problems of a SCIM target with these auth settings, by path."""
    with pytest.raises(UsageError) as refused:
        parse_config("scim", {"url": "http://127.0.0.1:9/scim", "auth": auth})
    return {e.path: e.message for e in problems_of(refused.value)}


def test_oauth2_settings_show_every_problem_at_its_path() -> None:
    found = problems({"type": "oauth2", "token_url": "http://127.0.0.1:9/token",
                      "client_secret": SECRET, "token_endpoint_auth_method": "private_key_jwt",
                      "audiance": "https://api.example.com", "scope": 'scim "all"',
                      "resource": ["https://api.example.com/#frag"]})
    assert found == {
        ("auth", "audiance"): "unknown auth (oauth2) setting `audiance`; did you mean "
        "`audience`? (known: token_url, client_id, client_secret, token_endpoint_auth_method, "
        "scope, audience, resource)",
        ("auth", "client_id"): "auth type oauth2 needs client_id",
        ("auth", "token_endpoint_auth_method"): "auth.token_endpoint_auth_method is "
        "client_secret_basic or client_secret_post",
        ("auth", "scope"): "auth.scope is a scope or a list of them, each without spaces, "
        "quotes or backslashes (RFC 6749 §3.3)",
        ("auth", "resource"): "auth.resource is an absolute URI without a fragment, or a list "
        "of them (RFC 8707 §2)"}
    assert SECRET not in json.dumps(list(found.values()))
    assert problems({"type": "oauth2", "client_id": "c", "client_secret": SECRET,
                     "audience": 3}) == {
        ("auth", "token_url"): "auth type oauth2 needs token_url",
        ("auth", "audience"): "auth.audience is a string"}


@pytest.mark.parametrize(("auth", "expected"), [
    ({"type": "apikey"}, {("auth", "type"): "unknown auth type 'apikey'; known: none, bearer, "
                                            "basic, header, oauth2"}),
    ({"type": "header"}, {("auth", "name"): "auth type header needs name (the header, e.g. "
                                            "X-API-Key)",
                          ("auth", "value"): "auth type header needs value"}),
    ({"type": "header", "name": "X API Key", "value": "ok"},
     {("auth", "name"): "auth.name is not a header name (RFC 9110 §5.1)"}),
    ({"type": "header", "name": "content-type", "value": "ok"},
     {("auth", "name"): "auth.name may not be content-type: the connector or HTTP sets it"}),
    ({"type": "header", "name": "X-API-Key", "value": "k\r\nX-Injected: 1"},
     {("auth", "value"): "auth.value holds a character an HTTP header cannot carry (visible "
                         "ASCII only, no space at either end)"}),
    ({"type": "bearer", "token": "tøken"},
     {("auth", "token"): "auth.token holds a character an HTTP header cannot carry (visible "
                         "ASCII only, no space at either end)"}),
    ({"type": "basic", "username": "a:b", "password": "p"},
     {("auth", "username"): "auth.username may not hold a colon or a control character"}),
    ({"type": "basic", "password": "p", "token": "t"},
     {("auth", "username"): "auth type basic needs username",
      ("auth", "token"): "unknown auth (basic) setting `token` (known: username, password)"}),
    ("bearer", {("auth",): "auth must be a mapping with a type"}),
])
def test_static_settings_show_each_problem_at_its_path_without_the_secret(
        auth: Any, expected: dict[tuple[str, ...], str]) -> None:
    assert problems(auth) == expected


def test_a_target_by_client_credentials_provisions_and_never_shows_its_secret(
        engine: Engine, scim: Scim, peer: Peer, client: Any, directories: Directories,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # The token endpoint issues the token scim2-server takes.
    app = AuthApp(client_id="hub", client_secret=SECRET, method="client_secret_post",
                  issue=lambda n: PEER_TOKEN)
    admin = {"Authorization": f"Bearer {directories.create_token(None, 't')['token']}"}
    with serving(app) as url:
        auth = {"type": "oauth2", "token_url": f"{url}/token", "client_id": "hub",
                "token_endpoint_auth_method": "client_secret_post", "scope": ["scim"],
                "audience": "https://crm.example.com"}
        r = client.post(f"/admin/directories/{scim.directory_id}/targets", headers=admin,
                        json={"name": "crm", "url": peer.base,
                              "auth": {**auth, "client_secret": SECRET}})
        assert r.status_code == 201, r.text
        tid = r.json()["id"]
        assert r.json()["config"]["auth"] == {**auth, "type": "oauth2"}
        assert r.json()["has_credentials"] is True
        scim.user("first@x.test")
        converge(engine, tid)
        scim.user("second@x.test")
        converge(engine, tid)  # another run, another connector: the same token
    assert {u["userName"] for u in peer.users().values()} == {"first@x.test", "second@x.test"}
    assert len(app.tokens) == 1 and app.tokens[0].method == "client_secret_post"
    assert app.tokens[0].form["audience"] == ["https://crm.example.com"]
    shown = [client.get(f"/admin/targets/{tid}", headers=admin).text,
             client.get(f"/admin/directories/{scim.directory_id}/targets", headers=admin).text,
             cli(engine, "targets", "show", tid, "--json").stdout,
             cli(engine, "targets", "show", tid).stdout,
             str(Targets(engine).row(tid).secret)]  # encrypted at rest
    for text in (*shown, caplog.text):
        assert SECRET not in text and PEER_TOKEN not in text


def test_a_refused_client_stops_the_run_with_the_method_named_and_sets_nothing_aside(
        engine: Engine, scim: Scim, peer: Peer) -> None:
    app = AuthApp(method="client_secret_post")
    with serving(app) as url:
        t = Targets(engine).add(scim.directory_id, "crm", "scim", {"url": peer.base, "auth": {
            "type": "oauth2", "token_url": f"{url}/token", "client_id": "hub:1",
            "client_secret": app.client_secret}})
        for i in range(20):
            scim.user(f"u{i}@x.test")
        result = Reconciler(engine).run(t["id"])
    assert result.error is not None
    assert "refused the client (client_secret_basic): 401 invalid_client" in result.error
    assert "client_secret_post" in result.error and app.client_secret not in result.error
    # Not one token request per user: the run stops at the first refusal (the
    # capabilities probe, and requests already on their way, ask too).
    assert len(app.tokens) < 5 and list_dead_letters(engine, t["id"]) == []
    shown = Targets(engine).show(t["id"])
    assert shown["failures"] == 1 and "client_secret_basic" in shown["last_error"]


def test_apply_file_takes_the_auth_forms_and_refuses_unknown_keys_at_their_line(
        engine: Engine, scim: Scim, peer: Peer, tmp_path: Path) -> None:
    d = scim.directory_id
    env = {"CRM_SECRET": SECRET, "API_KEY": KEY}
    text = f"""targets:
  - directory: {d}
    name: crm
    url: {peer.base}
    auth:
      type: oauth2
      token_url: {peer.base}/token
      client_id: scimsync
      client_secret: "${{CRM_SECRET}}"
      token_endpoint_auth_method: client_secret_post
      scope: [scim.read, scim.write]
      audience: https://crm.example.com
      resource: https://crm.example.com/scim
  - directory: {d}
    name: wiki
    url: {peer.base}
    auth: {{type: header, name: X-API-Key, value: "${{API_KEY}}"}}
"""
    applied = cli(engine, "apply", "-f", write(tmp_path, text), "--json", env=env)
    crm, wiki = sorted(Targets(engine).list(d), key=lambda t: t["name"])
    assert crm["config"]["auth"]["token_endpoint_auth_method"] == "client_secret_post"
    assert crm["config"]["auth"]["scope"] == ["scim.read", "scim.write"]
    assert wiki["config"]["auth"] == {"type": "header", "name": "X-API-Key"}
    assert crm["has_credentials"] and wiki["has_credentials"]
    again = cli(engine, "apply", "-f", write(tmp_path, text), "--json", env=env)
    assert {t["result"] for t in json.loads(again.stdout)} == {"unchanged"}
    for out in (applied.stdout, applied.stderr, again.stdout):
        assert SECRET not in out and KEY not in out
    bad = text.replace("audience:", "audiance:").replace(
        "method: client_secret_post", "method: private_key_jwt")
    proc = cli(engine, "apply", "-f", write(tmp_path, bad), "--json", env=env, ok=False)
    assert proc.returncode == 2
    errors = {e["path"]: f"{e['line']}:{e['column']}"
              for e in json.loads(proc.stdout)["errors"]}
    assert errors == {"targets[0].auth.audiance": at(bad, "audiance"),
                      "targets[0].auth.token_endpoint_auth_method": at(bad, "private_key_jwt")}
