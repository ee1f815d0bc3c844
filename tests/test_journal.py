"""The change journal: one ordered entry per changed resource, in the same transaction."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import ENTERPRISE, GROUP, USER, Scim
from scimsync.store.directories import Directories


@pytest.fixture
def admin(directories: Directories) -> dict[str, str]:
    token = directories.create_token(None, "journal-test")["token"]
    return {"Authorization": f"Bearer {token}"}


def entries(scim: Scim, admin: dict[str, str], after: int = 0) -> list[dict[str, Any]]:
    r = scim.http.get(f"/admin/directories/{scim.directory_id}/journal?after={after}&limit=1000",
                      headers=admin)
    assert r.status_code == 200, r.text
    return r.json()["entries"]  # type: ignore[no-any-return]


def test_lifecycle_of_a_user(scim: Scim, admin: dict[str, str]) -> None:
    boss = scim.user("boss")
    u = scim.user("joiner", title="Engineer")
    scim.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "nickName", "value": "J"}])
    scim.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "title", "value": "Lead"}])
    scim.patch(f"/Users/{u['id']}", [{"op": "add", "path": f"{ENTERPRISE}:manager",
                                       "value": boss["id"]}])
    scim.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "active", "value": False}])
    scim.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "active", "value": True}])
    scim.delete(f"/Users/{u['id']}")
    mine = [e for e in entries(scim, admin) if e["resource_id"] == u["id"]]
    assert [(e["op"], e["lifecycle"]) for e in mine] == [
        ("created", "joiner"), ("updated", None), ("updated", "mover"), ("updated", "mover"),
        ("deactivated", "leaver"), ("reactivated", "joiner"), ("deleted", "leaver"),
    ]
    assert [e["version"] for e in mine] == [1, 2, 3, 4, 5, 6, 7]
    assert mine[1]["changed"] == ["nickName"]
    assert mine[3]["changed"] == [f"{ENTERPRISE}:manager"]
    assert all(e["actor"] == scim.token_id for e in mine)
    seqs = [e["seq"] for e in entries(scim, admin)]
    assert seqs == list(range(1, len(seqs) + 1))


def test_created_inactive_is_not_a_joiner(scim: Scim, admin: dict[str, str]) -> None:
    u = scim.user("dormant", active=False)
    (e,) = [e for e in entries(scim, admin) if e["resource_id"] == u["id"]]
    assert (e["op"], e["lifecycle"]) == ("created", None)


def test_membership_changes_are_journaled_with_members(scim: Scim,
                                                       admin: dict[str, str]) -> None:
    a, b = scim.user("a")["id"], scim.user("b")["id"]
    g = scim.group("team", [a])
    start = entries(scim, admin)[-1]["seq"]
    scim.patch(f"/Groups/{g['id']}", [
        {"op": "remove", "path": f'members[value eq "{a}"]'},
        {"op": "add", "path": "members", "value": [{"value": b}]},
        {"op": "replace", "path": "displayName", "value": "team2"},
    ])
    new = entries(scim, admin, start)
    assert [(e["op"], e["detail"]) for e in new] == [
        ("updated", None), ("member_removed", {"removed": [a]}),
        ("member_added", {"added": [b]}),
    ]
    assert {e["version"] for e in new} == {2}
    assert new[1]["lifecycle"] == "mover"


def test_removing_then_re_adding_in_one_patch_is_no_change(scim: Scim,
                                                           admin: dict[str, str]) -> None:
    a = scim.user("a")["id"]
    g = scim.group("team", [a])
    start = entries(scim, admin)[-1]["seq"]
    r = scim.patch(f"/Groups/{g['id']}", [
        {"op": "remove", "path": "members", "value": [{"value": a}]},
        {"op": "add", "path": "members", "value": [{"value": a}]},
    ])
    assert r.json()["meta"]["version"] == g["meta"]["version"]
    assert entries(scim, admin, start) == []


def test_deleting_a_member_journals_each_group(scim: Scim, admin: dict[str, str]) -> None:
    u = scim.user("gone")["id"]
    g1, g2 = scim.group("g1", [u]), scim.group("g2", [u])
    start = entries(scim, admin)[-1]["seq"]
    scim.delete(f"/Users/{u}")
    new = entries(scim, admin, start)
    assert new[0]["op"] == "deleted" and new[0]["resource_id"] == u
    assert {(e["resource_id"], e["op"]) for e in new[1:]} == {
        (g1["id"], "member_removed"), (g2["id"], "member_removed")}


def test_failed_requests_write_no_journal(scim: Scim, admin: dict[str, str]) -> None:
    scim.user("taken")
    start = entries(scim, admin)[-1]["seq"]
    assert scim.post("/Users", {"schemas": [USER], "userName": "TAKEN"}).status_code == 409
    assert scim.post("/Groups", {"schemas": [GROUP], "displayName": "x",
                                 "members": [{"value": "nope"}]}).status_code == 400
    assert entries(scim, admin, start) == []


def test_password_never_reaches_the_journal(scim: Scim, admin: dict[str, str]) -> None:
    u = scim.user("pw", password="Hunter2-secret")
    scim.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "password",
                                       "value": "Other-secret"}])
    text = str(entries(scim, admin))
    assert "Hunter2-secret" not in text and "Other-secret" not in text
    assert "password" not in text


def test_journal_paging_with_after_and_limit(scim: Scim, admin: dict[str, str]) -> None:
    for i in range(5):
        scim.user(f"p{i}")
    r = scim.http.get(f"/admin/directories/{scim.directory_id}/journal?after=2&limit=2",
                      headers=admin).json()
    assert [e["seq"] for e in r["entries"]] == [3, 4]
    assert r["next_after"] == 4


def test_journal_is_per_directory(scim: Scim, other_scim: Scim, admin: dict[str, str]) -> None:
    scim.user("mine")
    other_scim.user("theirs")
    assert {e["directory_id"] for e in entries(scim, admin)} == {scim.directory_id}
