"""Bad input is refused with the right SCIM error and changes nothing (RFC7644 §3.12),
over a real HTTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import GROUP, USER, Scim
from scimsync.store.directories import Directories

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def refused(r: httpx.Response, status: int, scim_type: str | None) -> dict[str, Any]:
    """The response is a SCIM Error with this status and scimType."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/scim+json")
    body: dict[str, Any] = r.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type
    return body


def unchanged(web: Scim, directories: Directories, seq: int) -> None:
    """No resource was stored and no journal entry appended."""
    assert web.get("/Users").json()["totalResults"] == 0
    assert directories.get(web.directory_id)["journal_seq"] == seq


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_user_name_is_refused(web: Scim, directories: Directories,
                                       name: str) -> None:
    r = web.post("/Users", {"schemas": [USER], "userName": name})
    assert "userName" in refused(r, 400, "invalidValue")["detail"]
    unchanged(web, directories, 0)


def test_emptying_a_user_name_by_put_or_patch_is_refused(web: Scim,
                                                         directories: Directories) -> None:
    u = web.user("kept")
    seq = directories.get(web.directory_id)["journal_seq"]
    refused(web.put(f"/Users/{u['id']}", {"schemas": [USER], "userName": ""}), 400,
            "invalidValue")
    refused(web.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "userName",
                                             "value": ""}]), 400, "invalidValue")
    assert web.get(f"/Users/{u['id']}").json()["userName"] == "kept"
    assert directories.get(web.directory_id)["journal_seq"] == seq


def test_an_empty_group_display_name_is_refused(web: Scim, directories: Directories) -> None:
    refused(web.post("/Groups", {"schemas": [GROUP], "displayName": ""}), 400, "invalidValue")
    assert web.get("/Groups").json()["totalResults"] == 0
    assert directories.get(web.directory_id)["journal_seq"] == 0


@pytest.mark.parametrize("member", [{}, {"display": "someone"}, {"value": ""}, "an-id",
                                    {"value": 7}])
def test_a_member_without_a_value_is_refused_not_dropped(
        web: Scim, directories: Directories, member: Any) -> None:
    u = web.user("member")
    seq = directories.get(web.directory_id)["journal_seq"]
    body = {"schemas": [GROUP], "displayName": "g", "members": [{"value": u["id"]}, member]}
    detail = refused(web.post("/Groups", body), 400, "invalidValue")["detail"]
    assert "member" in detail
    assert web.get("/Groups").json()["totalResults"] == 0
    assert directories.get(web.directory_id)["journal_seq"] == seq


@pytest.mark.parametrize("op", ["add", "replace", "remove"])
def test_a_patch_member_without_a_value_is_refused(web: Scim, directories: Directories,
                                                   op: str) -> None:
    u = web.user("m")
    g = web.group("g", [u["id"]])
    seq = directories.get(web.directory_id)["journal_seq"]
    r = web.patch(f"/Groups/{g['id']}", [{"op": op, "path": "members", "value": [{}]}])
    refused(r, 400, "invalidValue")
    assert [m["value"] for m in web.get(f"/Groups/{g['id']}").json()["members"]] == [u["id"]]
    assert directories.get(web.directory_id)["journal_seq"] == seq


@pytest.mark.parametrize("schemas", [None, [], "urn:ietf:params:scim:schemas:core:2.0:User",
                                     [GROUP]])
def test_a_user_without_its_core_schema_is_refused(web: Scim, directories: Directories,
                                                   schemas: Any) -> None:
    body: dict[str, Any] = {"userName": "no-schemas"}
    if schemas is not None:
        body["schemas"] = schemas
    refused(web.post("/Users", body), 400, "invalidSyntax")
    unchanged(web, directories, 0)


def test_a_bulk_create_without_schemas_fails_alone(web: Scim, directories: Directories) -> None:
    r = web.post("/Bulk", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                           "Operations": [{"method": "POST", "path": "/Users", "bulkId": "a",
                                           "data": {"userName": "bulk-no-schemas"}}]})
    assert r.status_code == 200, r.text
    (result,) = r.json()["Operations"]
    assert result["status"] == "400"
    assert result["response"]["scimType"] == "invalidSyntax"
    unchanged(web, directories, 0)


def test_legacy_onelogin_urns_still_count_as_schemas(web: Scim) -> None:
    r = web.post("/Users", {"schemas": ["urn:scim:schemas:core:2.0"], "userName": "ol"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("path", ["/Users/%2F", "/Users/%2F%2F", "/Users/", "/Users//x",
                                  "/Users/a/b", "/Groups/%2F", "/Nope/%2F"])
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_odd_paths_get_a_scim_error_never_a_redirect(web: Scim, path: str,
                                                     method: str) -> None:
    r = web.req(method, path, {"schemas": [USER], "userName": "x"})
    assert not r.is_redirect
    assert "location" not in r.headers
    body = refused(r, r.status_code, r.json().get("scimType"))
    assert r.status_code in (400, 404, 405), body


def test_an_odd_admin_path_is_a_404_not_a_redirect(live_server: str) -> None:
    r = httpx.get(f"{live_server}/admin/directories/", timeout=10)
    assert r.status_code == 404
    assert "location" not in r.headers
