"""Groups and relational membership (RFC7643 §4.2; referential integrity)."""

from __future__ import annotations

from conftest import GROUP, USER, Scim


def member_ids(scim: Scim, gid: str) -> set[str]:
    body = scim.get(f"/Groups/{gid}").json()
    return {m["value"] for m in body.get("members", [])}


def test_create_group_with_members_and_user_groups_are_derived(scim: Scim) -> None:
    a, b = scim.user("a"), scim.user("b")
    g = scim.group("Engineering", [a["id"], b["id"]])
    assert {m["value"] for m in g["members"]} == {a["id"], b["id"]}
    assert all(m["type"] == "User" and m["$ref"].endswith(f"/Users/{m['value']}")
               for m in g["members"])
    got = scim.get(f"/Users/{a['id']}").json()
    assert got["groups"] == [{"value": g["id"], "display": "Engineering", "type": "direct",
                              "$ref": got["groups"][0]["$ref"]}]
    assert got["groups"][0]["$ref"].endswith(f"/Groups/{g['id']}")


def test_nested_groups_give_indirect_membership(scim: Scim) -> None:
    u = scim.user("nested")
    inner = scim.group("inner", [u["id"]])
    outer = scim.group("outer", [inner["id"]])
    assert outer["members"][0]["type"] == "Group"
    groups = {g["value"]: g["type"] for g in scim.get(f"/Users/{u['id']}").json()["groups"]}
    assert groups == {inner["id"]: "direct", outer["id"]: "indirect"}


def test_member_that_does_not_exist_is_400_and_nothing_changes(scim: Scim) -> None:
    u = scim.user("exists")
    r = scim.post("/Groups", {"schemas": [GROUP], "displayName": "bad",
                              "members": [{"value": u["id"]}, {"value": "nope"}]})
    assert r.status_code == 400
    assert r.json()["scimType"] == "invalidValue"
    assert scim.get("/Groups").json()["totalResults"] == 0
    g = scim.group("good", [u["id"]])
    r = scim.patch(f"/Groups/{g['id']}", [
        {"op": "replace", "path": "displayName", "value": "renamed"},
        {"op": "add", "path": "members", "value": [{"value": "missing-id"}]},
    ])
    assert r.status_code == 400
    after = scim.get(f"/Groups/{g['id']}").json()
    assert after["displayName"] == "good"
    assert after["meta"]["version"] == g["meta"]["version"]


def test_member_of_another_directory_is_rejected(scim: Scim, other_scim: Scim) -> None:
    foreign = other_scim.user("foreigner")
    r = scim.post("/Groups", {"schemas": [GROUP], "displayName": "g",
                              "members": [{"value": foreign["id"]}]})
    assert r.status_code == 400
    assert "do not exist" in r.json()["detail"]


def test_group_cannot_contain_itself(scim: Scim) -> None:
    g = scim.group("self")
    r = scim.patch(f"/Groups/{g['id']}", [{"op": "add", "path": "members",
                                            "value": [{"value": g["id"]}]}])
    assert r.status_code == 400


def test_wrong_member_type_is_rejected(scim: Scim) -> None:
    u = scim.user("typed")
    r = scim.post("/Groups", {"schemas": [GROUP], "displayName": "g",
                              "members": [{"value": u["id"], "type": "Group"}]})
    assert r.status_code == 400


def test_deleting_a_user_removes_it_from_groups(scim: Scim) -> None:
    a, b = scim.user("leaver"), scim.user("stayer")
    g = scim.group("team", [a["id"], b["id"]])
    assert scim.delete(f"/Users/{a['id']}").status_code == 204
    after = scim.get(f"/Groups/{g['id']}").json()
    assert {m["value"] for m in after["members"]} == {b["id"]}
    assert after["meta"]["version"] != g["meta"]["version"]


def test_deleting_a_group_removes_its_memberships(scim: Scim) -> None:
    u = scim.user("member")
    g = scim.group("doomed", [u["id"]])
    assert scim.delete(f"/Groups/{g['id']}").status_code == 204
    assert "groups" not in scim.get(f"/Users/{u['id']}").json()


def test_patch_add_and_remove_members(scim: Scim) -> None:
    users = [scim.user(f"u{i}")["id"] for i in range(4)]
    g = scim.group("g", users[:2])
    r = scim.patch(f"/Groups/{g['id']}", [
        {"op": "add", "path": "members", "value": [{"value": users[2]}, {"value": users[3]}]},
        {"op": "remove", "path": f'members[value eq "{users[0]}"]'},
    ])
    assert r.status_code == 200
    assert {m["value"] for m in r.json()["members"]} == set(users[1:])
    # Adding an existing member again is a no-op, not a duplicate.
    r = scim.patch(f"/Groups/{g['id']}", [{"op": "add", "path": "members",
                                            "value": [{"value": users[1]}]}])
    assert len(r.json()["members"]) == 3
    assert r.json()["meta"]["version"] == r.headers["etag"]


def test_replace_members_and_remove_all(scim: Scim) -> None:
    users = [scim.user(f"r{i}")["id"] for i in range(3)]
    g = scim.group("g", users[:2])
    r = scim.patch(f"/Groups/{g['id']}", [{"op": "replace", "path": "members",
                                            "value": [{"value": users[2]}]}])
    assert {m["value"] for m in r.json()["members"]} == {users[2]}
    r = scim.patch(f"/Groups/{g['id']}", [{"op": "remove", "path": "members"}])
    assert "members" not in r.json()


def test_put_replaces_members(scim: Scim) -> None:
    users = [scim.user(f"p{i}")["id"] for i in range(3)]
    g = scim.group("g", users[:2])
    r = scim.put(f"/Groups/{g['id']}", {"schemas": [GROUP], "displayName": "g2",
                                         "members": [{"value": users[1]}, {"value": users[2]}]})
    assert r.status_code == 200
    assert r.json()["displayName"] == "g2"
    assert member_ids(scim, g["id"]) == {users[1], users[2]}


def test_excluded_members_and_member_filter(scim: Scim) -> None:
    u = scim.user("x")
    g = scim.group("with-members", [u["id"]])
    scim.group("empty")
    lean = scim.get(f"/Groups/{g['id']}?excludedAttributes=members").json()
    assert "members" not in lean and lean["displayName"] == "with-members"
    found = scim.get(f'/Groups?filter=members[value eq "{u["id"]}"]').json()
    assert [r["id"] for r in found["Resources"]] == [g["id"]]
    found = scim.get(f'/Groups?filter=members.value eq "{u["id"]}"').json()
    assert found["totalResults"] == 1
    users = scim.get(f'/Users?filter=groups.value eq "{g["id"]}"').json()
    assert [r["id"] for r in users["Resources"]] == [u["id"]]


def test_groups_is_read_only_on_users(scim: Scim) -> None:
    u = scim.user("ro")
    r = scim.patch(f"/Users/{u['id']}", [{"op": "add", "path": "groups",
                                           "value": [{"value": "x"}]}])
    assert r.status_code == 400
    assert r.json()["scimType"] == "mutability"


def test_user_with_schemas_of_group_is_rejected(scim: Scim) -> None:
    r = scim.post("/Groups", {"schemas": [USER], "displayName": "x"})
    assert r.status_code == 400


def test_put_with_a_bad_member_changes_nothing(scim: Scim) -> None:
    u = scim.user("kept")
    g = scim.group("before", [u["id"]])
    r = scim.put(f"/Groups/{g['id']}", {"schemas": [GROUP], "displayName": "after",
                                         "members": [{"value": "missing"}]})
    assert r.status_code == 400
    after = scim.get(f"/Groups/{g['id']}").json()
    assert after["displayName"] == "before"
    assert [m["value"] for m in after["members"]] == [u["id"]]
    assert after["meta"]["version"] == g["meta"]["version"]
