"""The connector contract: what every SCIM connector must do, run against each real
downstream (python-scim's scim2-server, and a second scimsync)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from downstream import PEER_TOKEN
from scimsync.connectors.contract import Connector, Rejected, RemoteConflict
from scimsync.connectors.scim import ScimConnector
from scimsync.store.directories import Directories
from scimsync.sync.config import parse_config

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.fixture(params=["scim2-server", "scimsync"])
def connector(request: pytest.FixtureRequest, peer_root: str,
              directories: Directories) -> Iterator[Connector]:
    if request.param == "scim2-server":
        url, token = f"{peer_root}/t{secrets.token_hex(4)}", PEER_TOKEN
    else:
        live = request.getfixturevalue("live_server")
        d = directories.create("contract")
        url, token = f"{live}{d['scim_path']}", d["token"]
    # Small pages, so that listing really pages.
    config, creds = parse_config("scim", {"url": url, "profile": {"page_size": 3},
                                          "auth": {"type": "bearer", "token": token}})
    c = ScimConnector(config, creds)
    yield c
    c.close()


def user(name: str, ext: str) -> dict[str, Any]:
    return {"schemas": [USER], "userName": name, "externalId": ext, "active": True,
            "emails": [{"value": name, "type": "work", "primary": True}]}


def test_create_get_replace_patch_delete(connector: Connector) -> None:
    created = connector.create("User", user("c1@x.test", "e1"))
    assert created.id
    got = connector.get("User", created.id)
    assert got is not None and got.doc["userName"] == "c1@x.test"
    connector.replace("User", created.id, {**user("c1@x.test", "e1"), "title": "T"})
    assert connector.get("User", created.id).doc["title"] == "T"  # type: ignore[union-attr]
    connector.patch("User", created.id, [{"op": "replace", "path": "active", "value": False}])
    assert connector.get("User", created.id).doc["active"] is False  # type: ignore[union-attr]
    connector.delete("User", created.id)
    assert connector.get("User", created.id) is None
    connector.delete("User", created.id)  # deleting what is gone is not an error


def test_find_and_find_many(connector: Connector) -> None:
    a = connector.create("User", user("f1@x.test", "fe1"))
    b = connector.create("User", user("f2@x.test", "fe2"))
    assert connector.find("User", "externalId", "fe1").id == a.id  # type: ignore[union-attr]
    assert connector.find("User", "userName", "F2@X.TEST").id == b.id  # type: ignore[union-attr]
    assert connector.find("User", "externalId", "nobody") is None
    found = connector.find_many("User", "externalId", ["fe1", "fe2", "nobody"])
    assert {k: v.id for k, v in found.items()} == {"fe1": a.id, "fe2": b.id}
    by_mail = connector.find_many("User", "email", ["f1@x.test"])
    assert by_mail["f1@x.test"].id == a.id


def test_list_pages_through_everything(connector: Connector) -> None:
    ids = [connector.create("User", user(f"l{i}@x.test", f"le{i}")).id for i in range(8)]
    listed = [r.id for r in connector.list("User")]
    assert sorted(listed) == sorted(ids)  # every one, once, over three pages
    assert list(connector.list("Group")) == []


def test_groups_and_members(connector: Connector) -> None:
    u = connector.create("User", user("g1@x.test", "ge1"))
    g = connector.create("Group", {"schemas": [GROUP], "displayName": "Contract",
                                   "externalId": "gx", "members": [{"value": u.id}]})
    got = connector.get("Group", g.id)
    assert got is not None and [m["value"] for m in got.doc["members"]] == [u.id]
    connector.patch("Group", g.id, [{"op": "remove", "path": f'members[value eq "{u.id}"]'}])
    assert not connector.get("Group", g.id).doc.get("members")  # type: ignore[union-attr]


def test_errors_are_typed(connector: Connector) -> None:
    connector.create("User", user("dup@x.test", "d1"))
    with pytest.raises(RemoteConflict):
        connector.create("User", user("dup@x.test", "d2"))
    with pytest.raises(Rejected):
        connector.create("User", {"schemas": [USER]})  # no userName


def test_capabilities(connector: Connector) -> None:
    caps = connector.capabilities()
    assert caps["patch"] is True and caps["filter"] is True


def test_listing_uses_cursor_pagination_where_advertised(
        connector: Connector, request: pytest.FixtureRequest) -> None:
    """RFC 9865: an app that advertises cursors is listed by cursor (scimsync does;
    scim2-server advertises index pagination only)."""
    caps = connector.capabilities()
    assert caps["cursor"] is (request.node.callspec.params["connector"] == "scimsync")
    for i in range(5):
        connector.create("User", user(f"k{i}@x.test", f"ke{i}"))
    assert len({r.id for r in connector.list("User")}) == 5
