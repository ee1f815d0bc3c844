"""A token endpoint (RFC 6749 §4.4) and a SCIM application behind it, on loopback.

The token endpoint takes its client by one method only, counts what it is asked
and issues `tok-1`, `tok-2`, ... (or what `issue` says); the application takes the
tokens it issued and did not revoke (or whatever `accepts` says), and answers 404 to
a request it lets in.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import orjson

from downstream import ThreadedServer, read_body

Headers = dict[str, str]


@dataclass
class TokenRequest:
    """One request to the token endpoint: how the client authenticated, and its form."""

    method: str  # client_secret_basic, client_secret_post, or none
    form: dict[str, list[str]]
    authorization: str = ""


@dataclass
class AuthApp:
    client_id: str = "hub:1"
    client_secret: str = "s3 cr/t+ü"
    method: str = "client_secret_basic"
    expires_in: Any = 600
    accepts: Callable[[Headers], bool] | None = None
    issue: Callable[[int], str] = "tok-{}".format  # the n-th token
    tokens: list[TokenRequest] = field(default_factory=list)
    seen: list[Headers] = field(default_factory=list)  # the application's requests
    issued: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)  # issued, then no longer taken

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        body = await read_body(receive)
        if scope["path"] == "/token":
            status, answer = self._token(headers, parse_qs(body.decode()))
        else:
            self.seen.append(headers)
            accepts = self.accepts or self._bearer
            status, answer = (404, {"status": "404"}) if accepts(headers) else \
                (401, {"status": "401", "detail": "who are you?"})
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": orjson.dumps(answer)})

    def _token(self, headers: Headers, form: dict[str, list[str]]) -> tuple[int, Any]:
        authorization = headers.get("authorization", "")
        if authorization.startswith("Basic "):
            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            method, given = "client_secret_basic", (unquote_plus(user), unquote_plus(password))
        elif "client_secret" in form:
            method = "client_secret_post"
            given = (form.get("client_id", [""])[0], form["client_secret"][0])
        else:
            method, given = "none", ("", "")
        self.tokens.append(TokenRequest(method, form, authorization))
        if method != self.method or given != (self.client_id, self.client_secret):
            return 401, {"error": "invalid_client",
                         "error_description": f"the client cannot authenticate by {method}"}
        if form.get("grant_type") != ["client_credentials"]:
            return 400, {"error": "unsupported_grant_type"}
        token = self.issue(len(self.issued) + 1)
        self.issued.append(token)
        answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return 200, answer

    def _bearer(self, headers: Headers) -> bool:
        kind, _, token = headers.get("authorization", "").partition(" ")
        return kind == "Bearer" and token in self.issued and token not in self.revoked

    def bearers(self) -> list[str]:
        """The Authorization header of each of the application's requests."""
        return [h.get("authorization", "") for h in self.seen]


@contextmanager
def serving(app: AuthApp) -> Iterator[str]:
    """The app on a free loopback port; its base URL."""
    with ThreadedServer(app) as server:
        yield server.url
