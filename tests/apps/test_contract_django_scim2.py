"""django-scim2 0.23.0 (15five) against the connector contract and the current SCIM
connector; each quirk shown on the wire (docs/apps.md: django-scim2)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from apps.probe import ENTERPRISE, GROUP, USER, Wire, connected
from apps.servers import App
from lying import in_front
from scimsync.connectors.contract import ChangeSet, Connector, Rejected
from scimsync.connectors.testing import ConnectorContract

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture
def app(django_scim2: App) -> App:
    return django_scim2


def user(wire: Wire, **extra: Any) -> dict[str, Any]:
    name = f"{secrets.token_hex(4)}@example.com"
    r = wire("POST", "Users", {"schemas": [USER], "userName": name, "active": True,
                               "emails": [{"value": name}], **extra})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def patch(wire: Wire, path: str, *ops: dict[str, Any]) -> Any:
    return wire("PATCH", path, {"schemas": [PATCH], "Operations": list(ops)})


class TestDjangoScim2(ConnectorContract):
    """The contract with the profile scimsync ships for django-scim2 (`app:
    django-scim2`): what it does not store is not sent nor checked, groups get their
    members by PATCH, members leave by value list, and a User without userName is
    refused before it is sent."""

    def test_filters_are_not_announced(self, connector: Connector) -> None:
        """Its ServiceProviderConfig says filter.supported false: find is off."""
        assert connector.capabilities().find is False


def test_what_a_user_keeps(wire: Wire) -> None:
    got = user(wire, externalId="hub-1", title="Engineer", locale="fr-FR",
               displayName="Ann A", name={"givenName": "Ann", "familyName": "A",
                                          "formatted": "Dr Ann A"},
               schemas=[USER, ENTERPRISE], **{ENTERPRISE: {"employeeNumber": "42"}})
    got = wire("GET", f"Users/{got['id']}").json()
    assert got["externalId"] == "hub-1"
    for dropped in ("title", "locale", ENTERPRISE):
        assert dropped not in got
    # displayName and name.formatted are made from givenName and familyName.
    assert got["displayName"] == got["name"]["formatted"] == "Ann A"
    assert got["emails"] == [{"value": got["userName"], "primary": True}]


def test_group_members_are_ignored_on_post_and_put(wire: Wire) -> None:
    member = user(wire)
    body = {"schemas": [GROUP], "displayName": f"{secrets.token_hex(4)} team",
            "members": [{"value": member["id"]}]}
    created = wire("POST", "Groups", body)
    assert created.status_code == 201 and created.json()["members"] == []
    gid = created.json()["id"]
    replaced = wire("PUT", f"Groups/{gid}", body)
    assert replaced.status_code == 200 and replaced.json()["members"] == []
    added = patch(wire, f"Groups/{gid}", {"op": "add", "path": "members",
                                          "value": [{"value": member["id"]}]})
    assert [m["value"] for m in added.json()["members"]] == [member["id"]]


def test_members_are_removed_by_value_list_not_by_filter(wire: Wire) -> None:
    member = user(wire)
    gid = wire("POST", "Groups", {"schemas": [GROUP],
                                  "displayName": f"{secrets.token_hex(4)} team"}).json()["id"]
    patch(wire, f"Groups/{gid}", {"op": "add", "path": "members",
                                  "value": [{"value": member["id"]}]})
    by_filter = patch(wire, f"Groups/{gid}",
                      {"op": "remove", "path": f'members[value eq "{member["id"]}"]'})
    assert by_filter.status_code == 501
    by_value = patch(wire, f"Groups/{gid}", {"op": "remove", "path": "members",
                                             "value": [{"value": member["id"]}]})
    assert by_value.status_code == 200 and by_value.json()["members"] == []


def test_patch_changes_only_mapped_attributes(wire: Wire) -> None:
    uid = user(wire)["id"]
    assert patch(wire, f"Users/{uid}", {"op": "replace", "path": "active",
                                        "value": False}).json()["active"] is False
    assert patch(wire, f"Users/{uid}", {"op": "replace", "path": "title",
                                        "value": "X"}).status_code == 501


def test_filters_work_on_user_name_but_not_external_id(wire: Wire) -> None:
    """Filtering is not advertised; userName works, externalId finds nothing."""
    made = user(wire, externalId="hub-2")
    by_name = wire("GET", "Users", filter=f'userName eq "{made["userName"]}"').json()
    assert [u["id"] for u in by_name["Resources"]] == [made["id"]]
    by_ext = wire("GET", "Users", filter='externalId eq "hub-2"').json()
    assert by_ext["totalResults"] == 0


def test_the_host_projects_own_accounts_are_listed(connector: Connector) -> None:
    """The service account the project authenticates as is a SCIM User too: a drift
    run sees it as an account scimsync does not manage."""
    assert "scim-service" in {r.doc["userName"] for r in connector.list("User")}


def test_the_connector_changes_members_as_the_app_takes_them(
        app: App, wire: Wire) -> None:
    """Adding by PATCH works; removal by filter is refused (501), so without a profile a
    mover's old group keeps them; the shipped profile removes by value list."""
    a, b = user(wire)["id"], user(wire)["id"]
    group = {"schemas": [GROUP], "displayName": f"{secrets.token_hex(4)} team"}
    moved = ChangeSet({**group, "members": [{"value": b}]}, add_members=[b],
                      remove_members=[a])
    with connected(app) as plain:
        g = plain.create("Group", group)
        plain.update("Group", g.id, ChangeSet({**group, "members": [{"value": a}]},
                                              add_members=[a]))
        assert [m["value"] for m in wire("GET", f"Groups/{g.id}").json()["members"]] == [a]
        with pytest.raises(Rejected, match="answered 501"):
            plain.update("Group", g.id, moved)
    with connected(app, app="django-scim2") as profiled:
        profiled.update("Group", g.id, moved)
    assert [m["value"] for m in wire("GET", f"Groups/{g.id}").json()["members"]] == [b]


def test_emptying_by_put_where_members_go_by_patch_is_one_put(app: App, wire: Wire) -> None:
    """`empty_group: put` with `group_members: patch` (django-scim2 ignores members on
    PUT): the PUT that empties a group is sent once, as it is, and nothing follows it
    (it used to be stripped of its members and retried by PATCH, again and again)."""
    a = user(wire)["id"]
    group = {"schemas": [GROUP], "displayName": f"{secrets.token_hex(4)} team",
             "members": [{"value": a}]}
    with in_front(app.url) as (seen, url), \
            connected(App(app.name, url, app.auth), app="django-scim2",
                      empty_group="put") as connector:
        g = connector.create("Group", group)
        before = len(seen.seen)
        connector.update("Group", g.id, ChangeSet({**group, "members": []},
                                                  remove_members=[a]))
        assert [m for m, _, _ in seen.seen[before:]] == ["PUT"]
