"""POST /Bulk (RFC7644 §3.7): bulkId references, failOnErrors atomicity, limits."""

from __future__ import annotations

from typing import Any

from conftest import GROUP, USER, Scim

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def bulk(scim: Scim, ops: list[dict[str, Any]], **extra: Any) -> Any:
    return scim.post("/Bulk", {"schemas": [BULK], "Operations": ops, **extra})


def test_create_user_and_group_referencing_it_by_bulk_id(scim: Scim) -> None:
    r = bulk(scim, [
        {"method": "POST", "path": "/Groups", "bulkId": "g1",
         "data": {"schemas": [GROUP], "displayName": "Tour Guides",
                  "members": [{"type": "User", "value": "bulkId:u1"}]}},
        {"method": "POST", "path": "/Users", "bulkId": "u1",
         "data": {"schemas": [USER], "userName": "alice"}},
    ])
    assert r.status_code == 200
    body = r.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"]
    ops = body["Operations"]
    assert [o["status"] for o in ops] == ["201", "201"]
    gid = ops[0]["location"].rsplit("/", 1)[1]
    uid = ops[1]["location"].rsplit("/", 1)[1]
    assert [m["value"] for m in scim.get(f"/Groups/{gid}").json()["members"]] == [uid]


def test_patch_and_delete_by_bulk_id_path(scim: Scim) -> None:
    r = bulk(scim, [
        {"method": "POST", "path": "/Users", "bulkId": "u", "data": {
            "schemas": [USER], "userName": "bob"}},
        {"method": "PATCH", "path": "/Users/bulkId:u", "data": {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "title", "value": "Boss"}]}},
    ])
    ops = r.json()["Operations"]
    assert [o["status"] for o in ops] == ["201", "200"]
    uid = ops[0]["location"].rsplit("/", 1)[1]
    assert scim.get(f"/Users/{uid}").json()["title"] == "Boss"
    r = bulk(scim, [{"method": "DELETE", "path": f"/Users/{uid}"}])
    assert r.json()["Operations"][0]["status"] == "204"
    assert scim.get(f"/Users/{uid}").status_code == 404


def test_without_fail_on_errors_good_operations_apply(scim: Scim) -> None:
    scim.user("taken")
    r = bulk(scim, [
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": {
            "schemas": [USER], "userName": "fresh"}},
        {"method": "POST", "path": "/Users", "bulkId": "b", "data": {
            "schemas": [USER], "userName": "taken"}},
    ])
    ops = r.json()["Operations"]
    assert [o["status"] for o in ops] == ["201", "409"]
    assert ops[1]["response"]["scimType"] == "uniqueness"
    assert scim.get('/Users?filter=userName eq "fresh"').json()["totalResults"] == 1


def test_fail_on_errors_is_all_or_nothing(scim: Scim) -> None:
    scim.user("taken")
    r = bulk(scim, [
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": {
            "schemas": [USER], "userName": "would-be"}},
        {"method": "POST", "path": "/Users", "bulkId": "b", "data": {
            "schemas": [USER], "userName": "taken"}},
        {"method": "POST", "path": "/Users", "bulkId": "c", "data": {
            "schemas": [USER], "userName": "never-reached"}},
    ], failOnErrors=1)
    ops = r.json()["Operations"]
    assert len(ops) == 2
    assert ops[1]["status"] == "409"
    assert ops[0]["status"] == "409" and "rolled back" in ops[0]["response"]["detail"]
    assert scim.get("/Users").json()["totalResults"] == 1


def test_unresolvable_bulk_id(scim: Scim) -> None:
    r = bulk(scim, [{"method": "POST", "path": "/Groups", "bulkId": "g", "data": {
        "schemas": [GROUP], "displayName": "g", "members": [{"value": "bulkId:ghost"}]}}])
    assert r.json()["Operations"][0]["status"] == "409"


def test_limits_are_enforced_with_413(scim: Scim) -> None:
    spc = scim.get("/ServiceProviderConfig").json()["bulk"]
    too_many = [{"method": "DELETE", "path": "/Users/x"}] * (spc["maxOperations"] + 1)
    assert bulk(scim, too_many).status_code == 413
    big = "x" * (spc["maxPayloadSize"] + 10)
    r = bulk(scim, [{"method": "POST", "path": "/Users", "bulkId": "a",
                     "data": {"schemas": [USER], "userName": big}}])
    assert r.status_code == 413
    assert r.json()["status"] == "413"


def test_malformed_bulk(scim: Scim) -> None:
    assert scim.post("/Bulk", {"Operations": []}).json()["scimType"] == "invalidSyntax"
    r = bulk(scim, [{"method": "GET", "path": "/Users"}])
    assert r.status_code == 400
    r = bulk(scim, [{"method": "POST", "path": "/Users", "data": {
        "schemas": [USER], "userName": "nobulkid"}}])
    assert r.json()["Operations"][0]["status"] == "400"
