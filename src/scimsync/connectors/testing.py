"""The connector contract suite: subclass it, give a `connector` fixture, and every
check runs against your connector (docs/architecture.md: Connectors).

Checks for what a connector's capabilities do not announce are skipped, never
passed. Objects are named with a per-test prefix, so the suite can run against a
system that other tests share. Requires pytest (a test dependency only).
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from scimsync.connectors.contract import (
    Capabilities,
    ChangeSet,
    Connector,
    Rejected,
    Remote,
    RemoteConflict,
    RemoteNotFound,
)

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


# Addresses on a domain reserved for examples (RFC 2606) that is still a domain name:
# apps that validate addresses refuse special-use names such as `.test` (RFC 6761).
DOMAIN = "example.com"


def _user(name: str, ext: str, **extra: Any) -> dict[str, Any]:
    """A user as a directory has one: a name, a work address, active."""
    local = name.split("@")[0]
    return {"schemas": [USER], "userName": name, "externalId": ext, "active": True,
            "name": {"givenName": "Contract", "familyName": local},
            "emails": [{"value": name, "type": "work", "primary": True}], **extra}


def _kept(connector: Connector, kind: str, body: dict[str, Any], attribute: str) -> bool:
    """Whether the connector sends `attribute` of `body` to its system: what a system
    does not store (as its connector knows it) is not checked there."""
    stores = connector.capabilities().stores
    return stores is None or attribute in stores(kind, body)


class ConnectorContract:
    """What every connector must do. Subclasses provide the `connector` fixture."""

    @pytest.fixture
    def tag(self) -> str:
        """A prefix unique to the test, for names and externalIds."""
        return "c" + secrets.token_hex(4)

    def need(self, connector: Connector, what: str) -> Capabilities:
        """Skip unless the connector announces `what` (a capability or an object kind)."""
        caps = connector.capabilities()
        flags = {"find": caps.find, "list": caps.list, "update": caps.update,
                 "members": caps.members}
        if not flags.get(what, what in caps.kinds):
            pytest.skip(f"the connector does not announce {what}")
        return caps

    def test_capabilities_are_typed(self, connector: Connector) -> None:
        caps = connector.capabilities()
        assert isinstance(caps, Capabilities)
        assert "User" in caps.kinds
        assert caps.max_members_per_update >= 1

    def test_create_get_replace_delete(self, connector: Connector, tag: str) -> None:
        created = connector.create("User", _user(f"{tag}@{DOMAIN}", f"{tag}-1"))
        assert created.id
        got = connector.get("User", created.id)
        assert got is not None and got.doc["userName"].lower() == f"{tag}@{DOMAIN}"
        body = _user(f"{tag}@{DOMAIN}", f"{tag}-1", title="Engineer")
        replaced = connector.replace("User", created.id, body)
        assert replaced.id == created.id
        got = connector.get("User", created.id)
        assert got is not None and got.doc["active"] is True
        if _kept(connector, "User", body, "title"):
            assert got.doc["title"] == "Engineer"
        connector.delete("User", created.id)
        assert connector.get("User", created.id) is None
        connector.delete("User", created.id)  # deleting what is gone reaches the goal

    def test_update_sets_and_clears_attributes(self, connector: Connector, tag: str) -> None:
        body = _user(f"{tag}@{DOMAIN}", f"{tag}-1", title="Engineer")
        created = connector.create("User", body)
        after = {k: v for k, v in body.items() if k != "title"} | {"active": False}
        connector.update("User", created.id,
                         ChangeSet(after, set={"active": False}, clear=["title"]))
        got = connector.get("User", created.id)
        assert got is not None
        assert got.doc["active"] is False
        assert "title" not in got.doc

    def test_an_update_answers_with_the_object_after_it_or_nothing(
            self, connector: Connector, tag: str) -> None:
        """The engine verifies by an update's answer when there is one: it must be the
        object after the change, never the one before."""
        body = _user(f"{tag}@{DOMAIN}", f"{tag}-1")
        created = connector.create("User", body)
        answer = connector.update("User", created.id,
                                  ChangeSet({**body, "active": False}, set={"active": False}))
        if answer is not None:
            assert answer.id == created.id
            assert answer.doc.get("active", False) is False

    def test_unknown_ids_are_not_found(self, connector: Connector, tag: str) -> None:
        missing = f"{tag}-missing"
        assert connector.get("User", missing) is None
        with pytest.raises(RemoteNotFound):
            connector.replace("User", missing, _user(f"{tag}@{DOMAIN}", tag))
        with pytest.raises(RemoteNotFound):
            connector.update("User", missing, ChangeSet(_user(f"{tag}@{DOMAIN}", tag),
                                                        set={"active": False}))

    def test_find_by_each_match_attribute(self, connector: Connector, tag: str) -> None:
        self.need(connector, "find")
        a = connector.create("User", _user(f"{tag}a@{DOMAIN}", f"{tag}-a"))
        b = connector.create("User", _user(f"{tag}b@{DOMAIN}", f"{tag}-b"))
        assert self.ids(connector.find("User", "externalId", [f"{tag}-a", f"{tag}-b", "nobody"])) \
            == sorted([a.id, b.id])
        upper = f"{tag}b@{DOMAIN}".upper()
        assert self.ids(connector.find("User", "userName", [upper])) == [b.id]
        assert self.ids(connector.find("User", "email", [f"{tag}a@{DOMAIN}"])) == [a.id]
        assert connector.find("User", "externalId", [f"{tag}-nobody"]) == []
        # externalId is case-exact (RFC 7643 §3.1): another case is another identity.
        assert connector.find("User", "externalId", [f"{tag}-A"]) == []

    @staticmethod
    def ids(found: list[Remote]) -> list[str]:
        return sorted(r.id for r in found)

    def test_list_reads_everything_once(self, connector: Connector, tag: str) -> None:
        self.need(connector, "list")
        ids = {connector.create("User", _user(f"{tag}{i}@{DOMAIN}", f"{tag}-{i}")).id
               for i in range(7)}
        listed = [r.id for r in connector.list("User")]
        assert ids <= set(listed)
        assert len(listed) == len(set(listed))  # nothing twice

    def test_group_members_change_by_change_set(self, connector: Connector, tag: str) -> None:
        self.need(connector, "Group")
        u1 = connector.create("User", _user(f"{tag}1@{DOMAIN}", f"{tag}-1"))
        u2 = connector.create("User", _user(f"{tag}2@{DOMAIN}", f"{tag}-2"))
        group = {"schemas": [GROUP], "displayName": f"{tag} team", "externalId": f"{tag}-g",
                 "members": [{"value": u1.id}]}
        g = connector.create("Group", group)
        assert self.members(connector, g) == [u1.id]
        connector.update("Group", g.id, ChangeSet({**group, "members": [{"value": u2.id}]},
                                                  add_members=[u2.id], remove_members=[u1.id]))
        assert self.members(connector, g) == [u2.id]

    @staticmethod
    def members(connector: Connector, group: Remote) -> list[str]:
        got = connector.get("Group", group.id)
        assert got is not None
        return sorted(m["value"] for m in got.doc.get("members") or [])

    def test_errors_are_typed(self, connector: Connector, tag: str) -> None:
        connector.create("User", _user(f"{tag}@{DOMAIN}", f"{tag}-1"))
        with pytest.raises(RemoteConflict):
            connector.create("User", _user(f"{tag}@{DOMAIN}", f"{tag}-2"))
        with pytest.raises(Rejected):
            connector.create("User", {"schemas": [USER], "externalId": f"{tag}-3"})
