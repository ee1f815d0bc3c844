"""The connector contract against the SCIM connector, over real downstream servers
(python-scim's scim2-server, and a second scimsync)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from downstream import PEER_TOKEN
from scimsync.connectors.contract import ChangeSet, Connector
from scimsync.connectors.members import patch_operations
from scimsync.connectors.scim import ScimConnector
from scimsync.connectors.testing import ConnectorContract
from scimsync.store.directories import Directories
from scimsync.sync.config import parse_config


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
    c = ScimConnector(config.settings, config.profile, creds)
    yield c
    c.close()


class TestScimConnector(ConnectorContract):
    def test_listing_uses_cursor_pagination_where_advertised(
            self, connector: Connector, request: pytest.FixtureRequest, tag: str) -> None:
        """RFC 9865: an app that advertises cursors is listed by cursor (scimsync does;
        scim2-server advertises index pagination only)."""
        caps = connector.capabilities()
        assert caps.cursor is (request.node.callspec.params["connector"] == "scimsync")


def test_a_change_set_is_rendered_as_patch_operations() -> None:
    changes = ChangeSet({}, set={"title": "T", "active": False}, clear=["nickName"],
                        add_members=["b", "a"], remove_members=["c"])
    assert patch_operations(changes) == [
        {"op": "replace", "path": "active", "value": False},
        {"op": "replace", "path": "title", "value": "T"},
        {"op": "remove", "path": "nickName"},
        {"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b"}]},
        {"op": "remove", "path": 'members[value eq "c"]'},
    ]
    # An app that takes removals as a value list, and names members otherwise.
    assert patch_operations(changes, gone=["carol"], by_value=True)[-1] == \
        {"op": "remove", "path": "members", "value": [{"value": "carol"}]}
    # A complex attribute by its sub-attributes, for an app that wants them so.
    named = ChangeSet({}, set={"name": {"givenName": "A", "familyName": "B"},
                               "urn:x:ext": {"k": "v"}})
    assert patch_operations(named, by_sub=True) == [
        {"op": "replace", "path": "name.familyName", "value": "B"},
        {"op": "replace", "path": "name.givenName", "value": "A"},
        {"op": "replace", "path": "urn:x:ext", "value": {"k": "v"}}]
    # A value is quoted as a JSON string inside the filter.
    assert patch_operations(ChangeSet({}, remove_members=['a"b']))[-1] == \
        {"op": "remove", "path": 'members[value eq "a\\"b"]'}


def test_removals_by_value_list_are_bounded_like_operations() -> None:
    changes = ChangeSet({}, remove_members=["a", "b", "c"])
    assert patch_operations(changes, by_value=True, chunk=2) == [
        {"op": "remove", "path": "members", "value": [{"value": "a"}, {"value": "b"}]},
        {"op": "remove", "path": "members", "value": [{"value": "c"}]}]
