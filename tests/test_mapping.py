"""Attribute mapping, the expression language, and group -> role mapping."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from conftest import ENTERPRISE, USER, Scim
from downstream import Peer, converge
from scimsync.errors import UsageError
from scimsync.sync.expressions import evaluate, parse
from test_provisioning import add_target

DOC = {
    "schemas": [USER, ENTERPRISE], "id": "u1", "userName": "Ada.Lovelace@corp.test",
    "name": {"givenName": "Ada", "familyName": "Lovelace"},
    "emails": [{"value": "ada@corp.test", "type": "work"}, {"value": "a@home.test"}],
    "title": "Engineer", "active": True,
    ENTERPRISE: {"department": "R&D", "employeeNumber": "42"},
}


@pytest.mark.parametrize("text,value", [
    ('"constant"', "constant"),
    ("userName", "Ada.Lovelace@corp.test"),
    ("lower(userName)", "ada.lovelace@corp.test"),
    ('concat(name.givenName, " ", upper(name.familyName))', "Ada LOVELACE"),
    ("emails", ["ada@corp.test", "a@home.test"]),
    ('join(";", emails.value)', "ada@corp.test;a@home.test"),
    ('split(userName, "@")', ["Ada.Lovelace", "corp.test"]),
    ('replace(userName, "corp.test", "example.com")', "Ada.Lovelace@example.com"),
    ("coalesce(nickName, displayName, name.givenName)", "Ada"),
    ('default(nickName, "none")', "none"),
    (f"{ENTERPRISE}:department", "R&D"),
    ('if("title eq \\"Engineer\\"", "eng", "other")', "eng"),
    (f'if("{ENTERPRISE}:department eq \\"Sales\\"", "sales", lower(title))', "engineer"),
    ("upper(nickName)", None),
])
def test_expressions(text: str, value: object) -> None:
    assert evaluate(parse(text), DOC) == value


@pytest.mark.parametrize("text", [
    "nosuch", "lower(", "lower(a, b)", "eval(userName)", '__import__("os")',
    'if("userName eq", "a", "b")', "(" * 40, '"x" "y"', "userName;",
])
def test_bad_expressions_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse(text)


def test_mapping_and_roles_reach_the_app(engine: Engine, scim: Scim, peer: Peer) -> None:
    admin = scim.user("grace@x.test", name={"givenName": "Grace", "familyName": "Hopper"},
                      **{"schemas": [USER, ENTERPRISE], ENTERPRISE: {"department": "Navy"}})
    plain = scim.user("plain@x.test", name={"givenName": "Pl", "familyName": "Ain"})
    admins = scim.group("Admins")
    ops = scim.group("Ops", [admin["id"]])
    scim.patch(f"/Groups/{admins['id']}", [{"op": "add", "path": "members",
                                             "value": [{"value": ops["id"]}]}])
    tid = add_target(engine, scim, peer, mapping=[
        {"target": "displayName",
         "expression": 'concat(name.givenName, " ", upper(name.familyName))'},
        {"target": "userType", "value": "Employee"},
        {"target": "title", "source": f"{ENTERPRISE}:department"},
    ], roles=[{"group": "Admins", "value": "admin"}, {"group": "Ops", "value": "operator"}])
    converge(engine, tid)
    remote = peer.users()
    assert remote[admin["id"]]["displayName"] == "Grace HOPPER"
    assert remote[admin["id"]]["userType"] == "Employee"
    assert remote[admin["id"]]["title"] == "Navy"
    # Admins holds Ops, which holds Grace: nested membership grants both roles.
    assert sorted(r["value"] for r in remote[admin["id"]]["roles"]) == ["admin", "operator"]
    assert "roles" not in remote[plain["id"]] and "title" not in remote[plain["id"]]
    # Losing the membership takes the role away.
    scim.patch(f"/Groups/{ops['id']}", [{"op": "remove", "path": "members"}])
    converge(engine, tid)
    assert "roles" not in peer.users()[admin["id"]]


def test_bad_mapping_is_refused(engine: Engine, scim: Scim, peer: Peer) -> None:
    with pytest.raises(UsageError):
        add_target(engine, scim, peer, mapping=[{"target": "groups", "value": "x"}])
    with pytest.raises(UsageError):
        add_target(engine, scim, peer, mapping=[{"target": "title", "expression": "nosuch"}])
    with pytest.raises(UsageError):
        add_target(engine, scim, peer, roles=[{"group": "Admins"}])


def test_nested_group_leaving_takes_roles_away(engine: Engine, scim: Scim, peer: Peer) -> None:
    u = scim.user("nested@x.test")
    admins = scim.group("Admins")
    ops = scim.group("Ops", [u["id"]])
    scim.patch(f"/Groups/{admins['id']}", [{"op": "add", "path": "members",
                                             "value": [{"value": ops["id"]}]}])
    tid = add_target(engine, scim, peer, roles=[{"group": "Admins", "value": "admin"}])
    converge(engine, tid)
    assert peer.users()[u["id"]]["roles"] == [{"value": "admin"}]
    scim.patch(f"/Groups/{admins['id']}", [{"op": "remove", "path": "members"}])
    converge(engine, tid)
    assert "roles" not in peer.users()[u["id"]]
