"""Tenant isolation: a token of directory A learns nothing about directory B."""

from __future__ import annotations

from conftest import GROUP, PATCH, USER, Scim


def test_every_verb_on_a_foreign_id_is_404(scim: Scim, other_scim: Scim) -> None:
    theirs = other_scim.user("secret-user")
    their_group = other_scim.group("secret-group")
    for path in (f"/Users/{theirs['id']}", f"/Groups/{their_group['id']}"):
        assert scim.get(path).status_code == 404
        body = {"schemas": [USER if "Users" in path else GROUP], "userName": "x",
                "displayName": "x"}
        assert scim.put(path, body).status_code == 404
        assert scim.patch(path, [{"op": "replace", "path": "displayName",
                                  "value": "pwned"}]).status_code == 404
        assert scim.delete(path).status_code == 404
    assert other_scim.get(f"/Users/{theirs['id']}").json()["userName"] == "secret-user"
    assert other_scim.get(f"/Groups/{their_group['id']}").json()["displayName"] == \
        "secret-group"


def test_filters_and_lists_never_cross(scim: Scim, other_scim: Scim) -> None:
    other_scim.user("only-there", externalId="shared-ext")
    assert scim.get('/Users?filter=userName eq "only-there"').json()["totalResults"] == 0
    assert scim.get("/Users").json()["totalResults"] == 0
    assert scim.post("/.search", {"schemas": [
        "urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}).json()["totalResults"] == 0
    # Uniqueness is per directory: the same userName and externalId are free here.
    scim.user("only-there", externalId="shared-ext")


def test_foreign_ids_in_members_and_filters(scim: Scim, other_scim: Scim) -> None:
    theirs = other_scim.user("them")
    their_group = other_scim.group("their-group", [theirs["id"]])
    mine = scim.group("mine")
    r = scim.patch(f"/Groups/{mine['id']}", [{"op": "add", "path": "members",
                                               "value": [{"value": theirs["id"]}]}])
    assert r.status_code == 400
    found = scim.get(f'/Groups?filter=members.value eq "{theirs["id"]}"').json()
    assert found["totalResults"] == 0
    found = scim.get(f'/Users?filter=groups.value eq "{their_group["id"]}"').json()
    assert found["totalResults"] == 0


def test_token_of_another_directory_is_unauthorized(scim: Scim, other_scim: Scim) -> None:
    r = scim.http.get(f"{other_scim.base}/Users", headers=scim.headers())
    assert r.status_code == 401
    unknown = scim.http.get("/scim/v2/00000000-0000-0000-0000-000000000000/Users",
                            headers=scim.headers())
    assert unknown.status_code == 401
    # The same answer whether or not the directory exists.
    assert r.json() == unknown.json()


def test_bulk_cannot_reach_another_directory(scim: Scim, other_scim: Scim) -> None:
    theirs = other_scim.user("bulk-target")
    r = scim.post("/Bulk", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                            "Operations": [
                                {"method": "DELETE", "path": f"/Users/{theirs['id']}"},
                                {"method": "PATCH", "path": f"/Users/{theirs['id']}", "data": {
                                    "schemas": [PATCH], "Operations": [
                                        {"op": "replace", "path": "title", "value": "x"}]}},
                            ]})
    assert [o["status"] for o in r.json()["Operations"]] == ["404", "404"]
    assert other_scim.get(f"/Users/{theirs['id']}").status_code == 200


def test_missing_or_malformed_authorization(scim: Scim) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"},
                    {"Authorization": "Bearer "}, {"Authorization": "Bearer scs_dxx_yy"},
                    {"Authorization": f"Bearer {scim.token}x"}):
        r = scim.http.get(f"{scim.base}/Users", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
