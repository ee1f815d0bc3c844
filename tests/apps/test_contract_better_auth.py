"""Better Auth 1.7.5's SCIM plugin against the connector contract and the current SCIM
connector; what it does on the wire (docs/apps.md: Better Auth)."""

from __future__ import annotations

import secrets

import pytest

from apps.probe import ENTERPRISE, GROUP, USER, Wire, connected
from apps.servers import App
from lying import in_front
from scimsync.connectors.testing import ConnectorContract


@pytest.fixture
def app(better_auth: App) -> App:
    return better_auth


class TestBetterAuth(ConnectorContract):
    """The whole contract passes as it is."""


def test_what_a_user_keeps(wire: Wire) -> None:
    """Everything the hub sends is stored: locale, employeeNumber, emails[].type."""
    name = f"{secrets.token_hex(4)}@example.com"
    body = {"schemas": [USER, ENTERPRISE], "userName": name, "externalId": "hub-1",
            "active": True, "title": "Engineer", "locale": "fr-FR",
            "emails": [{"value": name, "type": "work", "primary": True}],
            ENTERPRISE: {"employeeNumber": "42"}}
    created = wire("POST", "Users", body).json()
    got = wire("GET", f"Users/{created['id']}").json()
    assert (got["externalId"], got["title"], got["locale"]) == ("hub-1", "Engineer", "fr-FR")
    assert got["emails"] == [{"value": name, "type": "work", "primary": True}]
    assert got[ENTERPRISE]["employeeNumber"] == "42"


def test_a_user_needs_an_email_of_its_own(wire: Wire) -> None:
    tag = secrets.token_hex(4)
    r = wire("POST", "Users", {"schemas": [USER], "userName": f"{tag}-plain"})
    assert r.status_code == 400 and "email" in r.json()["detail"]
    shared = [{"value": f"{tag}@example.com"}]
    assert wire("POST", "Users", {"schemas": [USER], "userName": f"{tag}a",
                                  "emails": shared}).status_code == 201
    r = wire("POST", "Users", {"schemas": [USER], "userName": f"{tag}b", "emails": shared})
    assert r.status_code == 409 and r.json()["scimType"] == "uniqueness"


def test_or_filters_are_refused(wire: Wire) -> None:
    """The connector's batched lookup (`a or b`) is refused; it then asks one value at a
    time, which works (the contract's find check passes)."""
    name = f"{secrets.token_hex(4)}@example.com"
    wire("POST", "Users", {"schemas": [USER], "userName": name})
    one = wire("GET", "Users", filter=f'userName eq "{name}"')
    assert one.status_code == 200 and one.json()["totalResults"] == 1
    both = wire("GET", "Users", filter=f'userName eq "x@example.com" or userName eq "{name}"')
    assert both.status_code == 400 and both.json()["scimType"] == "invalidFilter"


def test_groups_keep_members_given_on_post(wire: Wire) -> None:
    name = f"{secrets.token_hex(4)}@example.com"
    uid = wire("POST", "Users", {"schemas": [USER], "userName": name}).json()["id"]
    g = wire("POST", "Groups", {"schemas": [GROUP], "displayName": f"{name} team",
                                "members": [{"value": uid}]}).json()
    assert [(m["value"], m["type"]) for m in g["members"]] == [(uid, "User")]


def test_its_profile_looks_up_one_value_at_a_time_without_a_refused_request(
        app: App, wire: Wire) -> None:
    """Without a profile the first lookup is an `or` filter, refused (400), then one
    request per value; with `find_batch: 1` (shipped) only the latter are sent."""
    names = [f"{secrets.token_hex(4)}@example.com" for _ in range(2)]
    ids = sorted(wire("POST", "Users", {"schemas": [USER], "userName": n,
                                        "emails": [{"value": n}]}).json()["id"]
                 for n in names)
    for profile, refused in (({}, 1), ({"app": "better-auth"}, 0)):
        with in_front(app.url) as (seen, url), \
                connected(App(app.name, url, app.auth), **profile) as connector:
            found = sorted(r.id for r in connector.find("User", "userName", names))
            filters = [q["filter"] for q in seen.searched]
        assert found == ids
        assert sum(" or " in f for f in filters) == refused
        assert len(filters) == refused + 2
