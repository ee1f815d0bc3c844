"""Agents and agentic applications (draft-abbey-scim-agent-extension-00) and non-human
Users (scimsync's extension), through a real HTTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from conftest import Scim
from scimsync.store.directories import Directories

AGENT = "urn:ietf:params:scim:schemas:core:2.0:Agent"
APP = "urn:ietf:params:scim:schemas:core:2.0:AgenticApplication"
NHI = "urn:scimsync:params:scim:schemas:extension:nhi:1.0:User"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@pytest.fixture
def admin(directories: Directories) -> dict[str, str]:
    return {"Authorization": f"Bearer {directories.create_token(None, 'agents')['token']}"}


def agent(web: Scim, name: str, **attrs: Any) -> dict[str, Any]:
    r = web.post("/Agents", {"schemas": [AGENT], "name": name, **attrs})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def error(r: Any, status: int, scim_type: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    if scim_type:
        assert body["scimType"] == scim_type
    return str(body["detail"])


def test_discovery_advertises_agents(web: Scim) -> None:
    # Through /ResourceTypes, which strict clients read; the draft's top-level member
    # only where a directory asks for it (tests/test_agent_discovery.py).
    assert "agentExtension" not in web.get("/ServiceProviderConfig").json()
    types = {t["id"]: t for t in web.get("/ResourceTypes").json()["Resources"]}
    assert types["Agent"]["endpoint"] == "/Agents" and types["Agent"]["schema"] == AGENT
    assert types["AgenticApplication"]["endpoint"] == "/AgenticApplications"
    assert {"schema": NHI, "required": False} in types["User"]["schemaExtensions"]
    schemas = {s["id"]: s for s in web.get("/Schemas").json()["Resources"]}
    owners = next(a for a in schemas[AGENT]["attributes"] if a["name"] == "owners")
    assert owners["mutability"] == "readWrite" and owners["multiValued"] is True
    assert {s["name"] for s in owners["subAttributes"]} == {"value", "$ref", "display", "type"}
    ref = next(s for s in owners["subAttributes"] if s["name"] == "$ref")
    assert ref["mutability"] == "readWrite" and ref["referenceTypes"] == ["User", "Group"]
    name = next(a for a in schemas[APP]["attributes"] if a["name"] == "name")
    assert name["required"] is True and name["uniqueness"] == "server"
    assert web.get(f"/Schemas/{NHI}").json()["name"] == "NonHumanIdentity"


def test_agent_lifecycle(web: Scim, admin: dict[str, str]) -> None:
    owner = web.user("alice@x.test")
    team = web.group("ml-platform")
    created = agent(web, "Helpdesk bot", externalId="ext-1", agentType="Assistant",
                    owners=[{"value": owner["id"]}, {"value": team["id"]}],
                    protocols=[{"type": "MCP-Server",
                                "specificationUrl": "https://bots.x.test/mcp"}])
    aid = created["id"]
    assert created["active"] is True  # active unless said otherwise
    assert created["meta"]["resourceType"] == "Agent"
    assert created["meta"]["location"].endswith(f"/Agents/{aid}")
    # Owner types are filled in from the directory; $ref points into it.
    assert [(o["value"], o["type"]) for o in created["owners"]] == [
        (owner["id"], "User"), (team["id"], "Group")]
    assert created["owners"][0]["$ref"].endswith(f"/Users/{owner['id']}")
    got = web.get(f"/Agents/{aid}")
    assert got.status_code == 200 and got.json()["name"] == "Helpdesk bot"
    etag = got.headers["ETag"]
    # Filters the draft recommends: name (case-insensitive) and externalId.
    for flt in ('name eq "helpdesk BOT"', 'externalId eq "ext-1"', 'agentType eq "Assistant"',
                f'owners.value eq "{owner["id"]}"'):
        found = web.get("/Agents", params={"filter": flt}).json()
        assert [r["id"] for r in found["Resources"]] == [aid], flt
    assert web.get("/Agents", params={"filter": 'name eq "other"'}).json()["totalResults"] == 0
    # Names are unique within the directory.
    error(web.post("/Agents", {"schemas": [AGENT], "name": "HELPDESK bot"}), 409, "uniqueness")
    # Replace, with the ETag; a stale one is refused.
    body = {"schemas": [AGENT], "name": "Helpdesk bot", "description": "Answers tickets",
            "owners": [{"value": owner["id"]}]}
    replaced = web.put(f"/Agents/{aid}", body, headers={"If-Match": etag})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["description"] == "Answers tickets"
    assert "agentType" not in replaced.json()
    error(web.put(f"/Agents/{aid}", body, headers={"If-Match": etag}), 412)
    # Patch: deactivate (suspend) the agent.
    patched = web.patch(f"/Agents/{aid}", [{"op": "replace", "path": "active",
                                            "value": False}])
    assert patched.status_code == 200 and patched.json()["active"] is False
    inactive = web.get("/Agents", params={"filter": "active eq false"}).json()
    assert [r["id"] for r in inactive["Resources"]] == [aid]
    # The journal has it all, as events.
    events = web.http.get(f"/admin/directories/{web.directory_id}/events",
                          headers=admin).json()
    kinds = [e["type"] for e in events["events"] if e["resource_id"] == aid]
    assert kinds == ["agent.created", "agent.updated", "agent.deactivated"]
    assert web.delete(f"/Agents/{aid}").status_code == 204
    error(web.get(f"/Agents/{aid}"), 404)


def test_agentic_application_lifecycle(web: Scim) -> None:
    bot = agent(web, "Clippy")
    r = web.post("/AgenticApplications", {
        "schemas": [APP], "name": "AI Assistant Platform", "externalId": "app-123456",
        "applicationUrls": [{"type": "homepage", "value": "https://ai.x.test/",
                             "primary": True}],
        "oAuthConfiguration": [{"clientId": "cid-1", "issuerUri": "https://idp.x.test"}],
        "agents": [{"value": bot["id"], "type": "owned"}]})
    assert r.status_code == 201, r.text
    app = r.json()
    assert app["active"] is True and app["meta"]["resourceType"] == "AgenticApplication"
    assert app["agents"][0]["$ref"].endswith(f"/Agents/{bot['id']}")
    for flt in ('name eq "ai assistant platform"', 'externalId eq "app-123456"',
                'applicationUrls.value eq "https://ai.x.test/"'):
        found = web.get("/AgenticApplications", params={"filter": flt}).json()
        assert [x["id"] for x in found["Resources"]] == [app["id"]], flt
    # The agent says which application it belongs to; both references are checked.
    linked = web.patch(f"/Agents/{bot['id']}", [{"op": "add", "path": "applications",
                                                 "value": [{"value": app["id"]}]}])
    assert linked.status_code == 200, linked.text
    assert linked.json()["applications"][0]["$ref"].endswith(
        f"/AgenticApplications/{app['id']}")
    put = web.put(f"/AgenticApplications/{app['id']}", {
        "schemas": [APP], "name": "AI Assistant Platform", "active": False})
    assert put.status_code == 200 and put.json()["active"] is False and "agents" not in put.json()
    assert web.delete(f"/AgenticApplications/{app['id']}").status_code == 204
    assert web.get("/AgenticApplications").json()["totalResults"] == 0


def test_references_must_name_resources_of_the_same_directory(
        web: Scim, directories: Directories) -> None:
    owner = web.user("bob@x.test")
    team = web.group("team")
    other = directories.create(f"other-{secrets.token_hex(4)}")
    stranger = Scim(web.http, other["id"], other["token"], other["token_id"]).user("eve@x.test")
    bad = [
        ({"owners": [{"value": stranger["id"]}]}, "no User or Group"),  # another tenant's
        ({"owners": [{"value": "nope"}]}, "no User or Group 'nope'"),
        ({"owners": [{"value": team["id"], "type": "User"}]}, "is a Group, not a User"),
        ({"parent": {"value": owner["id"]}}, "no Agent"),
        ({"applications": [{"value": owner["id"]}]}, "no AgenticApplication"),
    ]
    for attrs, message in bad:
        detail = error(web.post("/Agents", {"schemas": [AGENT], "name": "x", **attrs}), 400,
                       "invalidValue")
        assert message in detail, (attrs, detail)
    assert web.get("/Agents").json()["totalResults"] == 0  # nothing was created
    parent = agent(web, "parent")
    child = agent(web, "child", parent={"value": parent["id"]})
    assert child["parent"]["$ref"].endswith(f"/Agents/{parent['id']}")
    detail = error(web.patch(f"/Agents/{child['id']}", [
        {"op": "replace", "path": "parent", "value": {"value": child["id"]}}]), 400)
    assert "itself" in detail
    # Bulk goes through the same checks.
    bulk = web.post("/Bulk", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                              "Operations": [
        {"method": "POST", "path": "/Agents", "bulkId": "a",
         "data": {"schemas": [AGENT], "name": "bulk-ok", "owners": [{"value": owner["id"]}]}},
        {"method": "POST", "path": "/Agents", "bulkId": "b",
         "data": {"schemas": [AGENT], "name": "bulk-bad", "owners": [{"value": "nope"}]}}]})
    statuses = [op["status"] for op in bulk.json()["Operations"]]
    assert statuses == ["201", "400"], bulk.text


def test_a_deleted_owner_does_not_block_other_changes(web: Scim) -> None:
    owner = web.user("carol@x.test")
    bot = agent(web, "orphan-to-be", owners=[{"value": owner["id"]}])
    assert web.delete(f"/Users/{owner['id']}").status_code == 204
    r = web.patch(f"/Agents/{bot['id']}", [{"op": "replace", "path": "description",
                                            "value": "still editable"}])
    assert r.status_code == 200, r.text
    # A new owner is still checked.
    error(web.patch(f"/Agents/{bot['id']}", [{"op": "add", "path": "owners",
                                              "value": [{"value": "ghost"}]}]), 400)


def test_service_account_extension(web: Scim) -> None:
    owner = web.user("dana@x.test")
    r = web.post("/Users", {
        "schemas": [USER, NHI], "userName": "svc-backup",
        NHI: {"kind": "service", "purpose": "nightly backups",
              "validUntil": "2027-01-31T00:00:00Z",
              "owners": [{"value": owner["id"]}],
              "credentials": [{"value": "AKIA-EXAMPLE-ID", "type": "apiKey",
                               "system": "aws"}]}})
    assert r.status_code == 201, r.text
    svc = r.json()
    ext = svc[NHI]
    assert ext["owners"][0]["type"] == "User"
    assert ext["owners"][0]["$ref"].endswith(f"/Users/{owner['id']}")
    found = web.get("/Users", params={"filter": f'{NHI}:kind eq "service"'}).json()
    assert [u["id"] for u in found["Resources"]] == [svc["id"]]
    by_owner = web.get("/Users", params={
        "filter": f'{NHI}:owners.value eq "{owner["id"]}"'}).json()
    assert [u["id"] for u in by_owner["Resources"]] == [svc["id"]]
    error(web.post("/Users", {"schemas": [USER, NHI], "userName": "svc-2",
                              NHI: {"kind": "service", "owners": [{"value": "nope"}]}}),
          400, "invalidValue")


def test_bad_values_are_refused(web: Scim) -> None:
    detail = error(web.post("/Users", {"schemas": [USER, NHI], "userName": "svc-bad",
                                       NHI: {"kind": "service", "validUntil": "soon"}}),
                   400, "invalidValue")
    assert "validUntil" in detail
    detail = error(web.post("/Agents", {"schemas": [AGENT, "urn:scimsync:params:scim:schemas:"
                                                           "extension:nhi:1.0:Agent"],
                                        "name": "bad", "urn:scimsync:params:scim:schemas:"
                                        "extension:nhi:1.0:Agent": {"validUntil": "x"}}),
                   400, "invalidValue")
    assert "validUntil" in detail
    error(web.post("/Users", {"schemas": [USER, NHI], "userName": "svc-nokind",
                              NHI: {"purpose": "no kind"}}),
          400)


def test_agents_are_provisioned_to_applications_that_take_them(
        engine: Any, web: Scim, live_server: str, directories: Directories,
        peer_root: str) -> None:
    """Agents and agentic applications reach a downstream scimsync (it advertises them
    on /ResourceTypes), with their references as the application's ids, suspension and
    deletion included; python-scim's scim2-server, which does not take agents, is
    sent none."""
    from downstream import PEER_TOKEN, converge
    from scimsync.store.targets import Targets
    from scimsync.sync.engine import Reconciler

    app_dir = directories.create(f"app-{secrets.token_hex(3)}")
    app = Scim(web.http, app_dir["id"], app_dir["token"], app_dir["token_id"])
    owner = web.user("olga@x.test")
    bot = agent(web, "ship-it", agentType="Assistant", owners=[{"value": owner["id"]}])
    portal = web.post("/AgenticApplications", {
        "schemas": [APP], "name": "ship portal",
        "agents": [{"value": bot["id"], "type": "owned"}]}).json()
    takes = Targets(engine).add(web.directory_id, "agents-app", "scim", {
        "url": f"{live_server}{app_dir['scim_path']}",
        "auth": {"type": "bearer", "token": app_dir["token"]}})["id"]
    plain = Targets(engine).add(web.directory_id, "plain-app", "scim", {
        "url": f"{peer_root}/t{secrets.token_hex(4)}",
        "auth": {"type": "bearer", "token": PEER_TOKEN}})["id"]
    converge(engine, takes)
    converge(engine, plain)
    remote_owner = app.get("/Users", params={"filter": 'userName eq "olga@x.test"'}
                           ).json()["Resources"][0]
    found = app.get("/Agents", params={"filter": f'externalId eq "{bot["id"]}"'}).json()
    assert found["totalResults"] == 1
    remote = found["Resources"][0]
    assert remote["name"] == "ship-it" and remote["agentType"] == "Assistant"
    assert [o["value"] for o in remote["owners"]] == [remote_owner["id"]]
    apps = app.get("/AgenticApplications", params={
        "filter": f'externalId eq "{portal["id"]}"'}).json()["Resources"]
    assert [(a["name"], [(x["value"], x["type"]) for x in a["agents"]]) for a in apps] == [
        ("ship portal", [(remote["id"], "owned")])]
    from scimsync.nhi.reports import report
    listed = report(engine, web.directory_id, "inventory")
    assert [(r["name"], r["targets"]) for r in listed] == [("ship-it", ["agents-app"])]
    # Suspended in the hub: suspended in the application.
    web.patch(f"/Agents/{bot['id']}", [{"op": "replace", "path": "active", "value": False}])
    assert Reconciler(engine).run(takes).error is None
    assert app.get(f"/Agents/{remote['id']}").json()["active"] is False
    # Deleted in the hub: deleted in the application.
    assert web.delete(f"/AgenticApplications/{portal['id']}").status_code == 204
    assert web.delete(f"/Agents/{bot['id']}").status_code == 204
    assert Reconciler(engine).run(takes).error is None
    assert app.get(f"/Agents/{remote['id']}").status_code == 404
    assert app.get(f"/AgenticApplications/{apps[0]['id']}").status_code == 404
    # The other application got the person and no agent, and no error.
    assert Reconciler(engine).run(plain).error is None
    from sqlalchemy import select

    from scimsync.store.tables import links
    with engine.connect() as conn:
        kinds = set(conn.execute(select(links.c.resource_type).where(
            links.c.target_id == plain)).scalars())
    assert kinds == {"User"}


def test_agents_belong_to_groups(web: Scim) -> None:
    bot = agent(web, "grouped-bot")
    person = web.user("member@x.test")
    team = web.group("bots-and-people", [bot["id"], person["id"]])
    assert sorted((m["value"], m["type"]) for m in team["members"]) == sorted(
        [(bot["id"], "Agent"), (person["id"], "User")])
    ref = next(m["$ref"] for m in team["members"] if m["value"] == bot["id"])
    assert ref.endswith(f"/Agents/{bot['id']}")
    got = web.get(f"/Agents/{bot['id']}").json()
    assert [(g["value"], g["display"]) for g in got["groups"]] == [
        (team["id"], "bots-and-people")]
    found = web.get("/Agents", params={"filter": f'groups.value eq "{team["id"]}"'}).json()
    assert [a["id"] for a in found["Resources"]] == [bot["id"]]
    by_member = web.get("/Groups", params={"filter": f'members.value eq "{bot["id"]}"'}).json()
    assert [g["id"] for g in by_member["Resources"]] == [team["id"]]
    # An application is not a member type.
    app = web.post("/AgenticApplications", {"schemas": [APP], "name": "not-a-member"}).json()
    r = web.patch(f"/Groups/{team['id']}", [{"op": "add", "path": "members",
                                             "value": [{"value": app["id"]}]}])
    error(r, 400, "invalidValue")
    # Deleting the agent takes it out of the group.
    assert web.delete(f"/Agents/{bot['id']}").status_code == 204
    members = web.get(f"/Groups/{team['id']}").json()["members"]
    assert [m["value"] for m in members] == [person["id"]]


def test_drift_reads_agents_back(engine: Any, web: Scim, live_server: str,
                                 directories: Directories) -> None:
    """A target that takes agents is reconciled for them too: every class, exactly,
    then fixed through the engine until nothing is left."""
    from downstream import converge
    from scimsync.drift.detect import Detector
    from scimsync.drift.findings import list_findings
    from scimsync.drift.remediate import fix
    from scimsync.store.targets import Targets

    app_dir = directories.create(f"app-{secrets.token_hex(3)}")
    app = Scim(web.http, app_dir["id"], app_dir["token"], app_dir["token_id"])
    owner = web.user("drift-owner@x.test")
    kept = agent(web, "kept", agentType="Assistant", owners=[{"value": owner["id"]}])
    drifted = agent(web, "drifted", agentType="Assistant")
    suspended = agent(web, "suspended-later")
    tid = Targets(engine).add(web.directory_id, "agents-app", "scim", {
        "url": f"{live_server}{app_dir['scim_path']}",
        "auth": {"type": "bearer", "token": app_dir["token"]}})["id"]
    converge(engine, tid)
    clean = Detector(engine).run(tid)
    assert clean["status"] == "complete" and clean["stats"]["findings"] == {}, clean
    assert clean["stats"]["listed_agents"] == 3

    def remote(hub: dict[str, Any]) -> dict[str, Any]:
        found = app.get("/Agents", params={"filter": f'externalId eq "{hub["id"]}"'}).json()
        return found["Resources"][0]  # type: ignore[no-any-return]

    # Drift made behind the hub's back, and hub changes not yet provisioned.
    app.patch(f"/Agents/{remote(drifted)['id']}", [
        {"op": "replace", "path": "agentType", "value": "Admin"}])
    stray = app.post("/Agents", {"schemas": [AGENT], "name": "shadow-agent"}).json()
    web.patch(f"/Agents/{suspended['id']}", [{"op": "replace", "path": "active",
                                              "value": False}])
    missing = agent(web, "not-yet-there")
    run = Detector(engine).run(tid)
    assert run["stats"]["findings"] == {"attribute_drift": 1, "orphaned_account": 1,
                                        "lingering_access": 1, "missing_account": 1}, run
    got = {(f["class"], f["resource_type"], f["resource_id"] or f["remote_id"])
           for f in list_findings(engine, target_id=tid, status="open")}
    assert got == {("attribute_drift", "Agent", drifted["id"]),
                   ("orphaned_account", "Agent", stray["id"]),
                   ("lingering_access", "Agent", suspended["id"]),
                   ("missing_account", "Agent", missing["id"])}
    changed = next(f for f in list_findings(engine, target_id=tid, cls="attribute_drift"))
    assert changed["evidence"]["differences"] == [
        {"attribute": "agentType", "desired": "Assistant", "actual": "Admin"}]
    done = fix(engine, tid, ["attribute_drift", "orphaned_account", "lingering_access",
                             "missing_account"], approved=True)
    assert done["fixed"] == 4 and done["error"] is None, done
    assert remote(drifted)["agentType"] == "Assistant"
    assert remote(suspended)["active"] is False
    assert app.get(f"/Agents/{stray['id']}").json()["active"] is False
    assert remote(missing)["name"] == "not-yet-there"
    again = Detector(engine).run(tid)
    assert again["stats"]["findings"] == {}, again
    assert kept["id"] == remote(kept)["externalId"]
