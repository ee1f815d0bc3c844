"""`scimsync targets check`: the conformance probe against the real apps (docs/apps.md,
docs/provisioning.md: Checking an app). Each app's probe suggests its profile; a
read-only probe creates nothing; a probe that fails midway still deletes what it
created, and names what it could not; a refused credential is a clear error."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine

from apps.probe import Wire
from apps.servers import App
from conftest import Scim
from downstream import ThreadedServer, read_body
from scimsync.connectors import overrides
from scimsync.store.targets import Targets
from test_targets_admin import cli

MARK = "scimsync-check-"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# (method, path under the SCIM base) -> a status to answer instead of the app, or None.
Refuse = Callable[[str, str], "int | tuple[int, bool] | None"]


def add_target(engine: Engine, scim: Scim, app: App, url: str | None = None,
               auth: dict[str, Any] | None = None) -> str:
    name = f"{app.name}-{secrets.token_hex(3)}"
    settings = {**app.target(), "url": url or app.url, "auth": auth or dict(app.auth)}
    Targets(engine).add(scim.directory_id, name, "scim", settings)
    return name


def check(engine: Engine, name: str, *args: str, ok: bool = True) -> Any:
    return cli(engine, "targets", "check", name, *args, env={"COLUMNS": "250"}, ok=ok)


def probed(engine: Engine, name: str) -> dict[str, Any]:
    out = json.loads(check(engine, name, "--write", "--json").stdout)
    assert out["target"] == name
    return out  # type: ignore[no-any-return]


def results(out: dict[str, Any]) -> dict[str, str]:
    return {c["check"]: c["result"] for c in out["checks"]}


def held(app: App, kind: str) -> list[dict[str, Any]]:
    """Every resource of `kind` the app holds (no count: Canaille fails on any)."""
    wire = Wire(app)
    try:
        r = wire("GET", kind)
        assert r.status_code == 200, r.text
        return r.json().get("Resources") or []  # type: ignore[no-any-return]
    finally:
        wire.close()


def marked(app: App) -> list[str]:
    """What the probe created and left in the app."""
    return [str(r.get("userName") or r.get("displayName")) for kind in ("Users", "Groups")
            for r in held(app, kind) if str(r.get("userName") or r.get("displayName")
                                            ).startswith(MARK)]


@pytest.fixture
def two_users(canaille: App) -> Iterator[None]:
    """Two users of Canaille's own, so that paging has pages (the probe only reads them)."""
    wire = Wire(canaille)
    ids = []
    for i in range(2):
        name = f"pager{i}-{secrets.token_hex(3)}@example.com"
        r = wire("POST", "Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                   "userName": name, "active": True, "emails": [{"value": name}],
                                   "name": {"formatted": "P Q", "familyName": "Q"}})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    yield
    for rid in ids:
        wire("DELETE", f"Users/{rid}")
    wire.close()


def test_canaille_needs_count_omitted_user_name_matching_and_member_user_names(
        engine: Engine, scim: Scim, canaille: App, two_users: None) -> None:
    out = probed(engine, add_target(engine, scim, canaille))
    # Seen on Canaille 0.3.6: a group with `members: []` (as the engine sends an empty
    # group) is created; one without `members` at all is refused (docs/apps.md).
    assert out["suggested_profile"] == {"count": "omit", "match": ["userName"],
                                        "member_value": "userName", "empty_group": "put"}
    assert out["shipped"] == "canaille"  # what the probe saw is what scimsync ships
    seen = results(out)
    assert seen["listing with count"] == "quirk" and seen["paging (startIndex)"] == "ok"
    # Filters are ignored, but not announced: the connector never searches there.
    assert seen["filter userName eq"] == "quirk"
    assert seen["user externalId"] == "skipped"  # read-only in its schema: never sent
    assert seen["create empty group"] == "ok"
    # Its only member cannot be removed by PATCH (by filter a 500, by value list a
    # 400); a PUT with `members: []` empties the group.
    assert seen["remove member"] == "quirk"
    removal = next(c for c in out["checks"] if c["check"] == "remove member")
    assert "(empty_group: put)" in removal["evidence"]
    assert seen["delete user"] == seen["delete group"] == "ok"
    assert out["left_behind"] == [] and marked(canaille) == []


def test_django_scim2_takes_members_by_patch_and_keeps_only_its_map(
        engine: Engine, scim: Scim, django_scim2: App) -> None:
    out = probed(engine, add_target(engine, scim, django_scim2))
    suggested = out["suggested_profile"]
    assert suggested["group_members"] == "patch" and suggested["member_remove"] == "value"
    assert set(suggested["discovery"]["attributes"]["User"]) == {
        "title", "locale", "displayName", "name.formatted", "emails.type"}
    overrides.check(suggested["discovery"])  # as a profile takes it
    assert suggested["patch_complex"] == "sub"
    assert set(suggested) == {"group_members", "member_remove", "patch_complex", "discovery"}
    assert out["shipped"] == "django-scim2"
    seen = results(out)
    # title is not kept, so the name is patched, as the engine does it: the whole `name`
    # replaced. django-scim2 fails on that; one replace per sub-attribute works.
    patched = next(c for c in out["checks"] if c["check"] == "patch user name")
    assert patched["result"] == "quirk" and "→ 500" in patched["evidence"]
    assert "(patch_complex: sub)" in patched["evidence"]
    assert seen[f"user {ENTERPRISE}:employeeNumber"] == "skipped"  # no extension
    assert out["left_behind"] == [] and marked(django_scim2) == []


def test_better_auth_refuses_or_filters_and_keeps_everything_else(
        engine: Engine, scim: Scim, better_auth: App) -> None:
    out = probed(engine, add_target(engine, scim, better_auth))
    assert out["suggested_profile"] == {"find_batch": 1}
    assert out["shipped"] == "better-auth"
    seen = results(out)
    assert seen["filter with or"] == "quirk" and seen["filter userName eq"] == "ok"
    assert all(r == "ok" for c, r in seen.items() if c.startswith("user ")), seen
    assert out["left_behind"] == [] and marked(better_auth) == []


def test_a_read_only_check_creates_nothing_and_prints_a_profile_to_paste(
        engine: Engine, scim: Scim, canaille: App) -> None:
    name = add_target(engine, scim, canaille)
    before = (len(held(canaille, "Users")), len(held(canaille, "Groups")))
    shown = check(engine, name).stdout
    assert (len(held(canaille, "Users")), len(held(canaille, "Groups"))) == before
    assert "Writes were not probed" in shown and "--write" in shown
    assert canaille.auth["token"] not in shown
    pasted = yaml.safe_load(shown.split("paste under the target's `profile:`):\n", 1)[1])
    as_json = json.loads(check(engine, name, "--json").stdout)
    assert pasted == {"profile": as_json["suggested_profile"]} == {"profile": {"count": "omit"}}
    assert results(as_json)["writes"] == "skipped"


@pytest.fixture
def refusing(better_auth: App) -> Iterator[Callable[[Refuse], ThreadedServer]]:
    """Better Auth behind a double that answers some requests itself (`refuse`)."""
    rule: list[Refuse] = []

    async def forward(scope: dict[str, Any], body: bytes) -> httpx.Response:
        query = scope["query_string"].decode()
        # A client per request: a kept-alive connection would outlive the server's loop.
        async with httpx.AsyncClient(timeout=30) as upstream:
            return await upstream.request(
                scope["method"], better_auth.url + scope["path"] + (f"?{query}" if query else ""),
                content=body, headers=[(k.decode(), v.decode()) for k, v in scope["headers"]
                                       if k.lower() not in (b"host", b"content-length")])

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        status = rule[0](scope["method"], scope["path"])
        if isinstance(status, tuple):  # (status, True): the app keeps it, says status
            await forward(scope, body)
            status = status[0]
        if status is not None:
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/scim+json")]})
            await send({"type": "http.response.body", "body": json.dumps(
                {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                 "status": str(status), "detail": "refused by the test"}).encode()})
            return
        r = await forward(scope, body)
        await send({"type": "http.response.start", "status": r.status_code,
                    "headers": [(b"content-type", b"application/scim+json")]})
        await send({"type": "http.response.body", "body": r.content})

    with ThreadedServer(app) as server:
        def start(refuse: Refuse) -> ThreadedServer:
            rule[:] = [refuse]
            return server

        yield start


def test_a_probe_that_fails_midway_deletes_what_it_created(
        engine: Engine, scim: Scim, better_auth: App,
        refusing: Callable[[Refuse], ThreadedServer]) -> None:
    server = refusing(lambda method, path: 500 if (method, path) == ("POST", "/Groups")
                      else None)
    out = probed(engine, add_target(engine, scim, better_auth, url=server.url))
    seen = results(out)
    assert seen["create user"] == "ok" and seen["create group with a member"] == "failed"
    assert "remove member" not in seen
    assert out["left_behind"] == [] and marked(better_auth) == []


def test_what_the_app_kept_though_it_answered_an_error_is_found_and_deleted(
        engine: Engine, scim: Scim, better_auth: App,
        refusing: Callable[[Refuse], ThreadedServer]) -> None:
    """A POST the app carried out and answered 500 (or whose answer was lost): the
    probe never learnt the ids; its cleanup finds its marked objects in the listing."""
    server = refusing(lambda method, path: (500, True) if method == "POST" else None)
    out = probed(engine, add_target(engine, scim, better_auth, url=server.url))
    assert results(out)["create user"] == "failed"
    assert out["left_behind"] == [] and marked(better_auth) == []


def test_what_cannot_be_deleted_is_named_for_the_operator(
        engine: Engine, scim: Scim, better_auth: App,
        refusing: Callable[[Refuse], ThreadedServer]) -> None:
    server = refusing(lambda method, path: 403 if method == "DELETE" else None)
    name = add_target(engine, scim, better_auth, url=server.url)
    proc = check(engine, name, "--write")
    assert "Left behind" in proc.stderr
    out = probed(engine, name)
    left = {(i["resource"], i["id"]) for i in out["left_behind"]}
    assert {r for r, _ in left} == {"User", "Group"}
    assert all("403" in i["error"] for i in out["left_behind"])
    wire = Wire(better_auth)
    try:
        for resource, rid in left:
            assert wire("DELETE", f"{resource}s/{rid}").status_code == 204
        # The human run left its own, named on stderr: remove those too.
        for kind in ("Users", "Groups"):
            for r in held(better_auth, kind):
                if str(r.get("userName") or r.get("displayName")).startswith(MARK):
                    wire("DELETE", f"{kind}/{r['id']}")
    finally:
        wire.close()
    assert marked(better_auth) == []


def test_a_refused_credential_is_a_clear_error(engine: Engine, scim: Scim,
                                               better_auth: App) -> None:
    name = add_target(engine, scim, better_auth, auth={"type": "bearer", "token": "wrong"})
    proc = check(engine, name, "--write", "--json", ok=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "refused the credential (401)" in proc.stderr and "wrong" not in proc.stderr


def test_only_scim_targets_and_known_ones_are_checked(engine: Engine, scim: Scim) -> None:
    hook = f"hook-{secrets.token_hex(2)}"
    Targets(engine).add(scim.directory_id, hook, "webhook", {
        "url": "http://127.0.0.1:9/hook", "secret": "whsec_" + "A" * 32})
    proc = check(engine, hook, ok=False)
    assert proc.returncode == 2 and "probes SCIM applications" in proc.stderr
    missing = check(engine, "no-such-target", ok=False)
    assert missing.returncode == 2 and "no target 'no-such-target'" in missing.stderr
