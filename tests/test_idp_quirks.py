"""What real IdPs send: each payload shape below is one they are known to produce."""

from __future__ import annotations

from conftest import ENTERPRISE, PATCH, USER, Scim

# --- Microsoft Entra ID ------------------------------------------------------------


def entra_user(scim: Scim, suffix: str = "ab64") -> dict:
    body = {
        "schemas": [USER, ENTERPRISE],
        "externalId": f"0a21f0f2-8d2a-4f8e-bf98-7363c4ae{suffix}",
        "userName": f"Test_User_{suffix}@contoso.onmicrosoft.com",
        "active": True,
        "emails": [{"primary": True, "type": "work",
                    "value": f"Test_User_{suffix}@contoso.onmicrosoft.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName",
                 "givenName": "givenName"},
        "roles": [],
        ENTERPRISE: {"department": "Engineering"},
    }
    r = scim.post("/Users", body)
    assert r.status_code == 201, r.text
    return r.json()


def test_entra_lookup_by_username_filter(scim: Scim) -> None:
    u = entra_user(scim)
    r = scim.get(f'/Users?filter=userName eq "{u["userName"].upper()}"')
    assert r.json()["totalResults"] == 1


def test_entra_capitalised_ops_and_string_booleans(scim: Scim) -> None:
    u = entra_user(scim)
    r = scim.req("PATCH", f"/Users/{u['id']}", {"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": "active", "value": "False"},
    ]})
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False
    r = scim.patch(f"/Users/{u['id']}", [{"op": "Replace", "path": "active", "value": "True"}])
    assert r.json()["active"] is True


def test_entra_manager_as_bare_id_with_colon_path(scim: Scim) -> None:
    boss = entra_user(scim, "b055")
    u = entra_user(scim)
    r = scim.patch(f"/Users/{u['id']}", [
        {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": boss["id"]},
    ])
    assert r.status_code == 200, r.text
    assert r.json()[ENTERPRISE]["manager"] == {"value": boss["id"]}
    # Entra also sends {"value": id} objects, and removes the manager with a path.
    r = scim.patch(f"/Users/{u['id']}", [
        {"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": {"value": u["id"]}},
    ])
    assert r.json()[ENTERPRISE]["manager"]["value"] == u["id"]
    r = scim.patch(f"/Users/{u['id']}", [{"op": "Remove", "path": f"{ENTERPRISE}:manager"}])
    assert "manager" not in r.json()[ENTERPRISE]


def test_entra_pathless_replace_with_dotted_and_urn_keys(scim: Scim) -> None:
    u = entra_user(scim)
    r = scim.patch(f"/Users/{u['id']}", [{"op": "replace", "value": {
        "displayName": "New Name",
        "name.givenName": "Given",
        "name.familyName": "Family",
        f"{ENTERPRISE}:department": "Sales",
        "active": "False",
    }}])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["displayName"] == "New Name"
    assert body["name"]["givenName"] == "Given"
    assert body["name"]["formatted"] == "givenName familyName"
    assert body[ENTERPRISE]["department"] == "Sales"
    assert body["active"] is False


def test_entra_add_value_path_creates_the_element(scim: Scim) -> None:
    u = entra_user(scim)
    r = scim.patch(f"/Users/{u['id']}", [
        {"op": "Add", "path": 'addresses[type eq "work"].streetAddress', "value": "1 Main St"},
        {"op": "Add", "path": 'addresses[type eq "work"].locality', "value": "Springfield"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "new@contoso.test"},
        {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555"},
    ])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["addresses"] == [{"type": "work", "streetAddress": "1 Main St",
                                  "locality": "Springfield"}]
    assert body["emails"] == [{"primary": True, "type": "work", "value": "new@contoso.test"}]
    assert body["phoneNumbers"] == [{"type": "mobile", "value": "+1 555"}]


def test_entra_member_add_and_both_removal_shapes(scim: Scim) -> None:
    users = [entra_user(scim, f"m{i:03d}")["id"] for i in range(3)]
    g = scim.post("/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                              "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                              "displayName": "Group1", "meta": {"resourceType": "Group"}})
    gid = g.json()["id"]
    r = scim.patch(f"/Groups/{gid}", [{"op": "Add", "path": "members",
                                        "value": [{"value": u} for u in users]}])
    assert len(r.json()["members"]) == 3
    r = scim.patch(f"/Groups/{gid}", [{"op": "Remove", "path": "members",
                                        "value": [{"value": users[0]}]}])
    assert {m["value"] for m in r.json()["members"]} == set(users[1:])
    r = scim.patch(f"/Groups/{gid}", [{"op": "Remove",
                                        "path": f'members[value eq "{users[1]}"]'}])
    assert {m["value"] for m in r.json()["members"]} == {users[2]}


def test_entra_group_lookup_excluding_members(scim: Scim) -> None:
    u = entra_user(scim)
    scim.group("Group1", [u["id"]])
    r = scim.get('/Groups?excludedAttributes=members&filter=displayName eq "group1"')
    body = r.json()
    assert body["totalResults"] == 1
    assert "members" not in body["Resources"][0]


# --- Okta ------------------------------------------------------------------------------

OKTA_USER = {
    "schemas": [USER],
    "userName": "test.user@okta.local",
    "name": {"givenName": "Test", "familyName": "User"},
    "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
    "displayName": "Test User",
    "locale": "en-US",
    "externalId": "00ujl29u0le5T6Aj10h7",
    "groups": [],
    "password": "1mz050nq",
    "active": True,
}


def test_okta_create_with_password_and_deactivate_pathless(scim: Scim) -> None:
    r = scim.post("/Users", OKTA_USER)
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    assert "password" not in r.json()
    r = scim.patch(f"/Users/{uid}", [{"op": "replace", "value": {"active": False}}])
    assert r.status_code == 200
    assert r.json()["active"] is False


def test_okta_full_put_update(scim: Scim) -> None:
    uid = scim.post("/Users", OKTA_USER).json()["id"]
    body = {**OKTA_USER, "id": uid, "name": {"givenName": "Tess", "familyName": "User"}}
    body.pop("password")
    r = scim.put(f"/Users/{uid}", body)
    assert r.status_code == 200
    assert r.json()["name"]["givenName"] == "Tess"


def test_okta_remove_then_add_members_in_one_patch_in_order(scim: Scim) -> None:
    a = scim.user("a@okta.local")["id"]
    b = scim.user("b@okta.local")["id"]
    g = scim.group("Okta Group", [a])
    r = scim.patch(f"/Groups/{g['id']}", [
        {"op": "remove", "path": f'members[value eq "{a}"]'},
        {"op": "add", "path": "members", "value": [{"value": b, "display": "b@okta.local"}]},
        {"op": "add", "path": "members", "value": [{"value": a, "display": "a@okta.local"}]},
    ])
    assert r.status_code == 200
    assert {m["value"] for m in r.json()["members"]} == {a, b}


def test_okta_replace_whole_member_list_and_pathless_rename(scim: Scim) -> None:
    a = scim.user("c@okta.local")["id"]
    b = scim.user("d@okta.local")["id"]
    g = scim.group("Before", [a])
    r = scim.patch(f"/Groups/{g['id']}", [
        {"op": "replace", "value": {"id": g["id"], "displayName": "After"}},
        {"op": "replace", "path": "members", "value": [{"value": b}]},
    ])
    assert r.status_code == 200
    assert r.json()["displayName"] == "After"
    assert [m["value"] for m in r.json()["members"]] == [b]


# --- OneLogin and JumpCloud -----------------------------------------------------------


def test_onelogin_legacy_schema_urns(scim: Scim) -> None:
    r = scim.post("/Users", {
        "schemas": ["urn:scim:schemas:core:2.0", "urn:scim:schemas:extension:enterprise:2.0"],
        "userName": "legacy@onelogin.test",
        "name": {"givenName": "Leg", "familyName": "Acy"},
        "urn:scim:schemas:extension:enterprise:2.0": {"department": "Ops"},
    })
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["schemas"] == [USER, ENTERPRISE]
    assert body[ENTERPRISE]["department"] == "Ops"
    g = scim.post("/Groups", {"schemas": ["urn:scim:schemas:core:2.0"], "displayName": "OL"})
    assert g.status_code == 201


def test_jumpcloud_pathless_group_rename(scim: Scim) -> None:
    g = scim.group("JC Old")
    r = scim.patch(f"/Groups/{g['id']}", [{"op": "replace",
                                            "value": {"id": g["id"], "displayName": "JC New"}}])
    assert r.status_code == 200
    assert r.json()["displayName"] == "JC New"
