"""References written by URI (`$ref`, writable as in Group.members) and dateTime values
of non-human identities: what strict clients such as scim2-tester send. SQLite and
PostgreSQL."""

from __future__ import annotations

from typing import Any

from conftest import USER, Scim

AGENT = "urn:ietf:params:scim:schemas:core:2.0:Agent"
APP = "urn:ietf:params:scim:schemas:core:2.0:AgenticApplication"
NHI = "urn:scimsync:params:scim:schemas:extension:nhi:1.0:User"
NHI_AGENT = "urn:scimsync:params:scim:schemas:extension:nhi:1.0:Agent"


def refused(r: Any, fragment: str) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["scimType"] == "invalidValue" and fragment in body["detail"], body


def test_a_reference_can_be_given_by_its_uri(scim: Scim) -> None:
    owner = scim.user("uri-owner@x.test")
    r = scim.post("/Agents", {"schemas": [AGENT], "name": "by-uri",
                              "owners": [{"$ref": owner["meta"]["location"]}]})
    assert r.status_code == 201, r.text
    got = scim.get(f"/Agents/{r.json()['id']}").json()
    assert got["owners"] == [{"value": owner["id"], "type": "User",
                              "$ref": owner["meta"]["location"]}]


def test_a_read_resource_can_be_written_back_as_it_is(scim: Scim) -> None:
    owner = scim.user("echo-owner@x.test")
    app = scim.post("/AgenticApplications", {"schemas": [APP], "name": "echo-app"}).json()
    bot = scim.post("/Agents", {"schemas": [AGENT], "name": "echo",
                                "owners": [{"value": owner["id"]}],
                                "applications": [{"value": app["id"]}]}).json()
    r = scim.put(f"/Agents/{bot['id']}", {**bot, "description": "echoed"})
    assert r.status_code == 200, r.text
    assert r.json()["owners"] == bot["owners"]
    assert r.json()["applications"] == bot["applications"]


def test_a_ref_that_names_another_resource_is_refused_and_changes_nothing(
        scim: Scim) -> None:
    owner = scim.user("ref-owner@x.test")
    other = scim.user("ref-other@x.test")
    team = scim.group("ref-team")
    base = owner["meta"]["location"].rsplit("/Users/", 1)[0]
    for ref in (other["meta"]["location"], f"{base}/Groups/{owner['id']}", 7):
        refused(scim.post("/Agents", {"schemas": [AGENT], "name": "mismatch", "owners": [
            {"value": owner["id"], "$ref": ref}]}), "$ref")
    refused(scim.post("/Agents", {"schemas": [AGENT], "name": "mismatch", "owners": [
        {"$ref": f"{base}/Users/{team['id']}", "type": "User"}]}), "is a Group, not a User")
    assert scim.get("/Agents", params={"filter": 'name eq "mismatch"'}).json()[
        "totalResults"] == 0
    bot = scim.post("/Agents", {"schemas": [AGENT], "name": "kept",
                                "owners": [{"value": owner["id"]}]}).json()
    refused(scim.patch(f"/Agents/{bot['id']}", [
        {"op": "replace", "path": f'owners[value eq "{owner["id"]}"].$ref',
         "value": other["meta"]["location"]}]), "$ref")
    after = scim.get(f"/Agents/{bot['id']}").json()
    assert after["meta"]["version"] == bot["meta"]["version"]
    assert after["owners"] == bot["owners"]


def test_datetime_attributes_take_only_datetimes(scim: Scim) -> None:
    svc = scim.user("svc-dates", schemas=[USER, NHI],
                    **{NHI: {"kind": "service", "validUntil": "2030-01-01T00:00:00Z"}})
    bot = scim.post("/Agents", {"schemas": [AGENT, NHI_AGENT], "name": "dated",
                                NHI_AGENT: {"validUntil": "2030-01-01T00:00:00Z"}}).json()
    app = scim.post("/AgenticApplications", {
        "schemas": [APP], "name": "dated-app", "lastAccessed": "2030-01-01T00:00:00Z"}).json()
    for bad in ("not-a-date", "d2d246b4-066e-4500-a957-defa91e7802b", 1_700_000_000,
                "2030-13-01T00:00:00Z"):
        refused(scim.patch(f"/Users/{svc['id']}", [
            {"op": "replace", "path": f"{NHI}:validUntil", "value": bad}]), "validUntil")
        refused(scim.put(f"/Agents/{bot['id']}", {
            "schemas": [AGENT, NHI_AGENT], "name": "dated",
            NHI_AGENT: {"validUntil": bad}}), "validUntil")
        refused(scim.patch(f"/AgenticApplications/{app['id']}", [
            {"op": "add", "path": "lastAccessed", "value": bad}]), "lastAccessed")
        refused(scim.post("/AgenticApplications", {
            "schemas": [APP], "name": "undated", "lastAccessed": bad}), "lastAccessed")
    for before, path in ((svc, "/Users"), (bot, "/Agents"), (app, "/AgenticApplications")):
        after = scim.get(f"{path}/{before['id']}").json()
        assert after["meta"]["version"] == before["meta"]["version"], path
    assert scim.get(f"/Users/{svc['id']}").json()[NHI] == svc[NHI]
