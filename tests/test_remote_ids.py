"""Remote ids are the application's to choose: each goes into a URL path as one
percent-encoded segment (RFC 3986 §3.3), through a real HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from downstream import ThreadedServer, read_body
from scimsync.connectors.contract import ChangeSet
from scimsync.connectors.scim import ScimConnector
from scimsync.sync.config import Profile

SPC = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
       "patch": {"supported": True}, "filter": {"supported": True, "maxResults": 50}}


class Recorder:
    """A SCIM app that answers every request with a User and records what it was asked."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes, bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        doc: dict[str, Any] = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                               "id": "x", "userName": "x"}
        if scope["path"].endswith("/ServiceProviderConfig"):
            doc = SPC
        elif scope["path"].endswith(("/ResourceTypes", "/Schemas")):  # discovery
            doc = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                   "totalResults": 0, "Resources": []}
        else:
            self.seen.append((scope["method"], scope["raw_path"], scope["query_string"]))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/scim+json")]})
        await send({"type": "http.response.body", "body": json.dumps(doc).encode()})


@pytest.fixture
def app() -> Iterator[tuple[Recorder, ScimConnector]]:
    recorder = Recorder()
    with ThreadedServer(recorder) as server:
        connector = ScimConnector({"url": f"{server.url}/scim"}, Profile(), {})
        yield recorder, connector
        connector.close()


@pytest.mark.parametrize(("remote_id", "segment"), [
    ("plain-id", b"plain-id"),
    ("a/b", b"a%2Fb"),
    ("../Groups/admins", b"..%2FGroups%2Fadmins"),
    ("..", b"%2E%2E"),
    (".", b"%2E"),
    ("x?filter=all", b"x%3Ffilter%3Dall"),
    ("frag#ment", b"frag%23ment"),
    ("100%", b"100%25"),
    ("%2F", b"%252F"),
    ("sp ace", b"sp%20ace"),
    ("ünï", b"%C3%BCn%C3%AF"),
])
def test_a_remote_id_is_one_encoded_path_segment(app: tuple[Recorder, ScimConnector],
                                                 remote_id: str, segment: bytes) -> None:
    recorder, connector = app
    connector.get("User", remote_id)
    connector.replace("User", remote_id, {"userName": "x"})
    connector.update("Group", remote_id, ChangeSet(desired={"displayName": "x"},
                                                   set={"displayName": "x"}))
    connector.delete("User", remote_id)
    assert recorder.seen == [
        ("GET", b"/scim/Users/" + segment, b""),
        ("PUT", b"/scim/Users/" + segment, b""),
        ("PATCH", b"/scim/Groups/" + segment, b""),
        ("DELETE", b"/scim/Users/" + segment, b""),
    ]
