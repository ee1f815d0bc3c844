"""Users over the SCIM API: create, read, replace, patch, delete (RFC7644 §3)."""

from __future__ import annotations

from conftest import ENTERPRISE, USER, Scim


def test_create_returns_201_with_location_etag_and_meta(scim: Scim) -> None:
    r = scim.post("/Users", {"schemas": [USER], "userName": "bjensen", "externalId": "e1",
                             "name": {"givenName": "Barbara", "familyName": "Jensen"}})
    assert r.status_code == 201
    body = r.json()
    assert r.headers["content-type"].startswith("application/scim+json")
    assert r.headers["location"].endswith(f"/Users/{body['id']}")
    assert r.headers["etag"] == body["meta"]["version"] == 'W/"1"'
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["location"] == r.headers["location"]
    assert body["userName"] == "bjensen"
    assert body["externalId"] == "e1"
    assert body["active"] is True


def test_get_by_id_and_404(scim: Scim) -> None:
    u = scim.user("alice")
    r = scim.get(f"/Users/{u['id']}")
    assert r.status_code == 200
    assert r.json()["userName"] == "alice"
    missing = scim.get("/Users/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert missing.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert missing.json()["status"] == "404"


def test_username_uniqueness_is_case_insensitive(scim: Scim) -> None:
    scim.user("Carol")
    r = scim.post("/Users", {"schemas": [USER], "userName": "carol"})
    assert r.status_code == 409
    assert r.json()["scimType"] == "uniqueness"


def test_external_id_uniqueness(scim: Scim) -> None:
    scim.user("dave", externalId="X-1")
    r = scim.post("/Users", {"schemas": [USER], "userName": "dave2", "externalId": "X-1"})
    assert r.status_code == 409
    assert r.json()["scimType"] == "uniqueness"
    # externalId is caseExact: a different case is a different value.
    assert scim.post("/Users", {"schemas": [USER], "userName": "dave3",
                                "externalId": "x-1"}).status_code == 201


def test_missing_username_is_invalid_value(scim: Scim) -> None:
    r = scim.post("/Users", {"schemas": [USER], "displayName": "x"})
    assert r.status_code == 400
    assert r.json()["scimType"] == "invalidValue"


def test_missing_schemas_is_invalid_syntax(scim: Scim) -> None:
    r = scim.post("/Users", {"schemas": ["urn:example:nope"], "userName": "x"})
    assert r.status_code == 400
    assert r.json()["scimType"] == "invalidSyntax"


def test_malformed_json_is_invalid_syntax(scim: Scim) -> None:
    r = scim.http.post(scim.base + "/Users", content=b"{not json", headers=scim.headers())
    assert r.status_code == 400
    assert r.json()["scimType"] == "invalidSyntax"


def test_wrong_types_are_invalid_value_and_change_nothing(scim: Scim) -> None:
    r = scim.post("/Users", {"schemas": [USER], "userName": "eve", "active": "maybe"})
    assert r.status_code == 400
    assert r.json()["scimType"] == "invalidValue"
    assert scim.get("/Users?filter=userName eq \"eve\"").json()["totalResults"] == 0


def test_read_only_attributes_are_ignored_on_create(scim: Scim) -> None:
    r = scim.post("/Users", {"schemas": [USER], "userName": "frank", "id": "chosen-id",
                             "meta": {"version": "W/\"99\""},
                             "groups": [{"value": "g"}]})
    assert r.status_code == 201
    assert r.json()["id"] != "chosen-id"
    assert "groups" not in r.json()


def test_enterprise_extension_round_trip(scim: Scim) -> None:
    boss = scim.user("boss")
    u = scim.user("worker", **{
        "schemas": [USER, ENTERPRISE],
        ENTERPRISE: {"department": "R&D", "employeeNumber": "42",
                     "manager": {"value": boss["id"]}},
    })
    assert ENTERPRISE in u["schemas"]
    assert u[ENTERPRISE]["department"] == "R&D"
    assert u[ENTERPRISE]["manager"]["value"] == boss["id"]


def test_replace_changes_everything_and_bumps_version(scim: Scim) -> None:
    u = scim.user("gina", title="Engineer", nickName="G")
    r = scim.put(f"/Users/{u['id']}", {"schemas": [USER], "userName": "gina",
                                        "title": "Manager"})
    assert r.status_code == 200
    body = r.json()
    assert body["title"] == "Manager"
    assert "nickName" not in body
    assert body["meta"]["version"] == 'W/"2"'


def test_replace_to_taken_username_conflicts_and_changes_nothing(scim: Scim) -> None:
    scim.user("hank")
    u = scim.user("ivy")
    r = scim.put(f"/Users/{u['id']}", {"schemas": [USER], "userName": "HANK"})
    assert r.status_code == 409
    assert scim.get(f"/Users/{u['id']}").json()["userName"] == "ivy"


def test_delete_then_404(scim: Scim) -> None:
    u = scim.user("jack")
    assert scim.delete(f"/Users/{u['id']}").status_code == 204
    assert scim.get(f"/Users/{u['id']}").status_code == 404
    assert scim.delete(f"/Users/{u['id']}").status_code == 404


def test_etags_if_match_and_if_none_match(scim: Scim) -> None:
    u = scim.user("kate")
    etag = u["meta"]["version"]
    assert scim.get(f"/Users/{u['id']}", headers={"If-None-Match": etag}).status_code == 304
    stale = scim.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "title",
                                               "value": "x"}],
                       headers={"If-Match": 'W/"7"'})
    assert stale.status_code == 412
    ok = scim.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "title", "value": "x"}],
                    headers={"If-Match": etag})
    assert ok.status_code == 200
    assert ok.headers["etag"] == 'W/"2"'
    assert scim.get(f"/Users/{u['id']}", headers={"If-None-Match": etag}).status_code == 200
    assert scim.delete(f"/Users/{u['id']}", headers={"If-Match": etag}).status_code == 412


def test_password_is_accepted_and_never_returned(scim: Scim) -> None:
    u = scim.user("leo", password="t0p-Secret!")
    assert "password" not in u
    got = scim.get(f"/Users/{u['id']}?attributes=password").json()
    assert "password" not in got
    r = scim.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "password",
                                           "value": "n3w-Secret!"}])
    assert r.status_code == 200
    assert "password" not in r.json()


def test_attributes_and_excluded_attributes(scim: Scim) -> None:
    u = scim.user("mia", title="CTO", name={"givenName": "Mia", "familyName": "M"},
                  emails=[{"value": "mia@x.test", "type": "work"}])
    only = scim.get(f"/Users/{u['id']}?attributes=userName,name.givenName").json()
    assert set(only) == {"schemas", "id", "userName", "name"}
    assert only["name"] == {"givenName": "Mia"}
    without = scim.get(f"/Users/{u['id']}?excludedAttributes=title,emails").json()
    assert "title" not in without and "emails" not in without
    assert without["userName"] == "mia" and "id" in without
    created = scim.post("/Users?attributes=userName",
                        {"schemas": [USER], "userName": "mia2", "title": "x"}).json()
    assert set(created) == {"schemas", "id", "userName"}


def test_unusual_but_valid_email_domains(scim: Scim) -> None:
    emails = [{"value": "a@corp.local", "type": "work", "primary": True},
              {"value": "b@example.test", "type": "home"},
              {"value": "c@[192.168.0.1]", "type": "other"}]
    u = scim.user("nora", emails=emails)
    assert [e["value"] for e in u["emails"]] == [e["value"] for e in emails]


def test_only_one_primary_value_survives(scim: Scim) -> None:
    u = scim.user("otto", emails=[{"value": "a@x.test", "primary": True},
                                  {"value": "b@x.test", "primary": True}])
    assert [e.get("primary") for e in u["emails"]] == [None, True]


def test_me_is_not_implemented(scim: Scim) -> None:
    r = scim.get("/Me")
    assert r.status_code == 501
