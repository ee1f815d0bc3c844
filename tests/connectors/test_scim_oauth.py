"""OAuth 2.0 client credentials (RFC 6749 §4.4): HTTP Basic first, the body if refused."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest

from downstream import ThreadedServer, read_body
from scimsync.connectors.scim import ScimConnector
from scimsync.sync.config import parse_config


class TokenServer:
    """A token endpoint that takes the client only in the body, and a SCIM endpoint
    that answers 404 to anything bearing its token."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, dict[str, list[str]]]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        form = parse_qs((await read_body(receive)).decode())
        self.seen.append((scope["path"], headers.get("authorization"), form))
        if scope["path"] != "/token":
            status, body = 404, {"status": "404"}
        elif form.get("client_secret") == ["s3 cr/t"]:
            status, body = 200, {"access_token": "tok", "expires_in": 600}
        else:
            status, body = 401, {"error": "invalid_client"}
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": orjson.dumps(body)})


@pytest.fixture
def token_server() -> Iterator[tuple[TokenServer, str]]:
    app = TokenServer()
    with ThreadedServer(app) as server:
        yield app, server.url


def test_the_client_authenticates_by_basic_then_by_body_once(
        token_server: tuple[TokenServer, str]) -> None:
    app, url = token_server
    config, secrets = parse_config("scim", {"url": f"{url}/scim", "auth": {
        "type": "oauth2", "token_url": f"{url}/token", "client_id": "hub:1",
        "client_secret": "s3 cr/t"}})
    connector = ScimConnector(config.settings, config.profile, secrets)
    assert connector.get("User", "x") is None
    connector.close()
    (path1, basic, form1), (path2, none, form2), (path3, bearer, _) = app.seen
    # RFC 6749 §2.3.1: each part is form-encoded before it is joined and encoded.
    assert path1 == "/token" and basic == "Basic " + base64.b64encode(b"hub%3A1:s3+cr%2Ft").decode()
    assert "client_secret" not in form1
    assert path2 == "/token" and none is None and form2["client_id"] == ["hub:1"]
    assert (path3, bearer) == ("/scim/Users/x", "Bearer tok")
