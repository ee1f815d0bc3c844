"""Canaille 0.3.6 (yaal-coop) against the connector contract and the current SCIM
connector; each quirk shown on the wire (docs/apps.md: Canaille)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx2
import pytest

from apps.probe import ENTERPRISE, GROUP, USER, Wire, connected, failing, quirk
from apps.servers import App
from scimsync.connectors.contract import ChangeSet, Connector, Transient
from scimsync.connectors.testing import ConnectorContract


@pytest.fixture
def app(canaille: App) -> App:
    return canaille


def shaped(name: str, **extra: Any) -> dict[str, Any]:
    """A user as Canaille takes it: a name, bare email values, `active`."""
    return {"schemas": [USER], "userName": name, "active": True,
            "name": {"formatted": name, "familyName": name.split("@")[0]},
            "emails": [{"value": name}], **extra}


class TestCanaille(ConnectorContract):
    """The contract with the profile scimsync ships for Canaille (`app: canaille`)."""

    test_errors_are_typed = failing(ConnectorContract.test_errors_are_typed, quirk(
        "canaille", "creates a second user with the same userName (no uniqueness): no "
                    "profile can make it refuse one"))

    def test_filters_are_not_announced(self, connector: Connector) -> None:
        """Its ServiceProviderConfig says filter.supported false: find is off."""
        assert connector.capabilities().find is False


def test_the_token_endpoint_takes_client_credentials_only_by_http_basic(
        canaille: App) -> None:
    """RFC 6749 §2.3.1: the body is refused, Basic (which every server must take) works;
    the connector asks by Basic first."""
    token_url, cid, secret = (canaille.extra[k] for k in ("token_url", "client_id",
                                                          "client_secret"))
    r = httpx2.post(token_url, data={"grant_type": "client_credentials", "client_id": cid,
                                     "client_secret": secret}, timeout=30)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    oauth = App(canaille.name, canaille.url, {"type": "oauth2", "token_url": token_url,
                                              "client_id": cid, "client_secret": secret})
    with connected(oauth) as c:
        assert c.get("User", "nobody-" + secrets.token_hex(4)) is None


def test_emails_type_and_primary_are_refused(wire: Wire) -> None:
    name = f"{secrets.token_hex(4)}@example.com"
    r = wire("POST", "Users", shaped(name, emails=[{"value": name, "type": "work",
                                                    "primary": True}]))
    assert r.status_code == 400 and r.json()["scimType"] == "invalidSyntax"
    assert "emails" in r.json()["detail"]
    assert wire("POST", "Users", shaped(name)).status_code == 201


def test_name_and_active_are_required(wire: Wire) -> None:
    name = f"{secrets.token_hex(4)}@example.com"
    for missing in ("name", "active"):
        body = {k: v for k, v in shaped(name).items() if k != missing}
        r = wire("POST", "Users", body)
        assert r.status_code == 400 and missing in r.json()["detail"], r.text


def test_locale_is_refused_and_special_use_domains_too(wire: Wire) -> None:
    tag = secrets.token_hex(4)
    r = wire("POST", "Users", shaped(f"{tag}@example.com", locale="fr-FR"))
    assert r.status_code == 400 and "locale" in r.json()["detail"]
    # email-validator refuses special-use names (RFC 6761) such as .test.
    r = wire("POST", "Users", shaped(f"{tag}@x.test"))
    assert r.status_code == 400 and "special-use" in r.json()["detail"]


def test_what_a_user_keeps(wire: Wire) -> None:
    """externalId is dropped; title, preferredLanguage and employeeNumber are kept."""
    name = f"{secrets.token_hex(4)}@example.com"
    body = shaped(name, externalId="hub-1", title="Engineer", preferredLanguage="fr",
                  schemas=[USER, ENTERPRISE], **{ENTERPRISE: {"employeeNumber": "42"}})
    created = wire("POST", "Users", body).json()
    got = wire("GET", f"Users/{created['id']}").json()
    assert "externalId" not in got
    assert (got["title"], got["preferredLanguage"]) == ("Engineer", "fr")
    assert got[ENTERPRISE]["employeeNumber"] == "42"


def test_duplicate_user_names_are_accepted(wire: Wire) -> None:
    name = f"{secrets.token_hex(4)}@example.com"
    first, second = (wire("POST", "Users", shaped(name)) for _ in range(2))
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]


def test_group_members_need_ref_and_come_back_as_user_names(canaille: App,
                                                            wire: Wire) -> None:
    tag = secrets.token_hex(4)
    user = wire("POST", "Users", shaped(f"{tag}@example.com")).json()
    r = wire("POST", "Groups", {"schemas": [GROUP], "displayName": f"{tag} team",
                                "members": [{"value": user["id"]}]})
    assert r.status_code == 400 and "$ref" in r.json()["detail"]
    r = wire("POST", "Groups", {"schemas": [GROUP], "displayName": f"{tag} empty"})
    assert r.status_code == 400 and "members" in r.json()["detail"]
    ref = f"{canaille.url}/Users/{user['id']}"
    r = wire("POST", "Groups", {"schemas": [GROUP], "displayName": f"{tag} team",
                                "members": [{"value": user["id"], "$ref": ref}]})
    assert r.status_code == 201, r.text
    # A member is named by its userName there, not by the id the app gave it.
    assert [m["value"] for m in r.json()["members"]] == [user["userName"]]


def test_any_count_parameter_is_a_server_error(wire: Wire) -> None:
    assert wire("GET", "Users").status_code == 200
    assert wire("GET", "Users", count="10").status_code == 500
    assert wire("GET", "Users", startIndex="1", count="100").status_code == 500


def test_the_connector_lists_every_user_when_the_profile_omits_count(
        app: App, wire: Wire) -> None:
    created = {wire("POST", "Users", shaped(f"{secrets.token_hex(4)}@example.com")).json()["id"]
               for _ in range(3)}
    with connected(app, count="omit") as connector:
        listed = [r.id for r in connector.list("User")]
    assert created <= set(listed)
    assert len(listed) == len(set(listed))


def test_filters_are_ignored(wire: Wire) -> None:
    tag = secrets.token_hex(4)
    for n in "ab":
        wire("POST", "Users", shaped(f"{tag}{n}@example.com"))
    found = wire("GET", "Users", filter=f'userName eq "{tag}a@example.com"').json()
    assert {f"{tag}a@example.com", f"{tag}b@example.com"} <= {
        u["userName"] for u in found["Resources"]}


def test_without_its_profile_the_connector_cannot_list(app: App, wire: Wire) -> None:
    """Index paging sends `count`, which Canaille answers 500: `count: omit` (in the
    shipped profile) is what lets drift read it."""
    wire("POST", "Users", shaped(f"{secrets.token_hex(4)}@example.com"))
    with connected(app) as connector, pytest.raises(Transient, match="answered 500"):
        list(connector.list("User"))


def test_members_named_by_user_name_are_read_and_removed_by_id(app: App, wire: Wire) -> None:
    """Canaille answers members by userName and matches a removal filter against it:
    a removal naming the id is answered 200 and removes nothing. With `member_value:
    userName` the connector reads them as ids and removes by name."""
    a, b = (wire("POST", "Users", shaped(f"{secrets.token_hex(4)}@example.com")).json()
            for _ in range(2))
    group = {"schemas": [GROUP], "displayName": f"{secrets.token_hex(4)} team",
             "members": [{"value": a["id"]}, {"value": b["id"]}]}
    with connected(app) as plain:
        g = plain.create("Group", group)
        assert sorted(m["value"] for m in g.doc["members"]) == sorted(
            [a["userName"], b["userName"]])
        plain.update("Group", g.id, ChangeSet(group, remove_members=[a["id"]]))
        assert len(wire("GET", f"Groups/{g.id}").json()["members"]) == 2  # nothing removed
    with connected(app, app="canaille") as profiled:
        got = profiled.get("Group", g.id)
        assert got is not None
        assert sorted(m["value"] for m in got.doc["members"]) == sorted([a["id"], b["id"]])
        profiled.update("Group", g.id, ChangeSet(group, remove_members=[a["id"]]))
        assert [m["value"] for m in wire("GET", f"Groups/{g.id}").json()["members"]] == \
            [b["userName"]]


def test_the_last_member_leaves_by_put(app: App, wire: Wire) -> None:
    """A PATCH that removes a group's last member is a server error there; the shipped
    profile empties a group by PUT (`empty_group: put`)."""
    a = wire("POST", "Users", shaped(f"{secrets.token_hex(4)}@example.com")).json()
    group = {"schemas": [GROUP], "displayName": f"{secrets.token_hex(4)} team",
             "members": [{"value": a["id"]}]}
    with connected(app, member_value="userName", count="omit") as by_patch:
        g = by_patch.create("Group", group)
        with pytest.raises(Transient, match="answered 500"):
            by_patch.update("Group", g.id, ChangeSet({**group, "members": []},
                                                     remove_members=[a["id"]]))
    with connected(app, app="canaille") as profiled:
        profiled.update("Group", g.id, ChangeSet({**group, "members": []},
                                                 remove_members=[a["id"]]))
    assert not wire("GET", f"Groups/{g.id}").json().get("members")
