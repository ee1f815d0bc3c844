"""OAuth 2.0 client credentials (RFC 6749 §4.4) against a real token endpoint on
loopback: the client's method, the token's reuse and renewal, one retry on a 401."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest

from auth_app import AuthApp, TokenRequest, serving
from scimsync.connectors.contract import Rejected, Transient
from scimsync.connectors.scim import ScimConnector
from scimsync.sync.config import parse_config

SECRET = "s3 cr/t+ü"
GRANT = {"grant_type": ["client_credentials"]}


class Clock:
    """A clock the test moves (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def oauth(app: AuthApp, clock: Clock | None = None, **auth: Any) -> Iterator[ScimConnector]:
    """A connector to `app`, authenticated by client credentials."""
    with serving(app) as url:
        connector = connect(url, clock, **auth)
        try:
            yield connector
        finally:
            connector.close()


def connect(url: str, clock: Clock | None = None, **auth: Any) -> ScimConnector:
    config, secrets = parse_config("scim", {"url": f"{url}/scim", "auth": {
        "type": "oauth2", "token_url": f"{url}/token", "client_id": "hub:1",
        "client_secret": SECRET, **auth}})
    return ScimConnector(config.settings, config.profile, secrets, clock=clock or Clock())


def test_the_client_authenticates_by_http_basic_unless_told_otherwise() -> None:
    app = AuthApp()
    with oauth(app) as c:
        assert c.get("User", "x") is None
    # RFC 6749 §2.3.1: each part is form-encoded before it is joined and encoded.
    basic = "Basic " + base64.b64encode(b"hub%3A1:s3+cr%2Ft%2B%C3%BC").decode()
    assert app.tokens == [TokenRequest("client_secret_basic", GRANT, basic)]
    assert app.bearers() == ["Bearer tok-1"]


def test_client_secret_post_sends_the_credentials_in_the_body_only() -> None:
    app = AuthApp(method="client_secret_post")
    with oauth(app, token_endpoint_auth_method="client_secret_post") as c:
        assert c.get("User", "x") is None
    assert app.tokens == [TokenRequest("client_secret_post", {
        **GRANT, "client_id": ["hub:1"], "client_secret": [SECRET]}, "")]
    assert app.bearers() == ["Bearer tok-1"]


@pytest.mark.parametrize(("server", "configured"), [
    ("client_secret_post", "client_secret_basic"),
    ("client_secret_basic", "client_secret_post")])
def test_a_refused_method_is_named_and_no_other_is_tried(server: str, configured: str) -> None:
    app = AuthApp(method=server)
    with oauth(app, token_endpoint_auth_method=configured) as c, \
            pytest.raises(Transient) as refused:
        c.get("User", "x")
    assert str(refused.value) == (
        f"the token endpoint refused the client ({configured}): 401 invalid_client; check "
        f"client_id and client_secret, or whether the server takes {server} "
        "(auth.token_endpoint_auth_method)")
    assert refused.value.status is None  # the whole run stops, not this operation
    assert [t.method for t in app.tokens] == [configured] and app.seen == []


def test_a_token_is_reused_until_a_margin_before_it_expires_by_every_connector() -> None:
    app, clock = AuthApp(expires_in=600), Clock()
    with serving(app) as url:
        first = connect(url, clock)
        first.get("User", "a")
        clock.now += 569
        first.get("User", "b")
        first.close()
        # A connector lives for one run; the next run's connector takes the same token.
        second = connect(url, clock)
        second.get("User", "c")
        clock.now += 1  # 30 s before it expires
        second.get("User", "d")
        second.close()
    assert len(app.tokens) == 2
    assert app.bearers() == ["Bearer tok-1"] * 3 + ["Bearer tok-2"]


@pytest.mark.parametrize(("expires_in", "renewed_after"), [
    (40, 20), ("40", 20), (None, 270), (0, 270), ("soon", 270)])
def test_a_short_lived_token_is_renewed_at_half_its_life_and_a_silent_one_after_5_minutes(
        expires_in: Any, renewed_after: float) -> None:
    app, clock = AuthApp(expires_in=expires_in), Clock()
    with oauth(app, clock) as c:
        c.get("User", "a")
        clock.now += renewed_after - 0.5
        c.get("User", "b")
        clock.now += 0.5
        c.get("User", "c")
    assert app.bearers() == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_a_401_from_the_app_gets_a_new_token_and_one_more_try() -> None:
    app = AuthApp()
    with oauth(app) as c:
        c.get("User", "a")
        app.revoked.add("tok-1")  # the app stops taking it long before it expires
        assert c.get("User", "b") is None
        c.get("User", "c")
    assert len(app.tokens) == 2
    assert app.bearers() == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2", "Bearer tok-2"]


def test_an_app_that_refuses_every_token_is_tried_twice_then_the_request_is_rejected() -> None:
    app = AuthApp(accepts=lambda headers: False)
    with oauth(app) as c, pytest.raises(Rejected) as refused:
        c.get("User", "a")
    assert refused.value.status == 401 and str(refused.value) == "GET Users/a answered 401"
    assert len(app.tokens) == 2 and app.bearers() == ["Bearer tok-1", "Bearer tok-2"]


def test_concurrent_requests_wait_for_one_token_request() -> None:
    app = AuthApp()
    with oauth(app) as c, ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lambda i: c.get("User", str(i)), range(16))) == [None] * 16
    assert len(app.tokens) == 1 and app.bearers() == ["Bearer tok-1"] * 16


@pytest.mark.parametrize(("given", "sent"), [
    ({"scope": "scim:read scim:write"}, {"scope": ["scim:read scim:write"]}),
    ({"scope": ["scim:read", "scim:write"], "audience": "https://api.example.com/",
      "resource": ["https://a.example.com/scim", "urn:example:b"]},
     {"scope": ["scim:read scim:write"], "audience": ["https://api.example.com/"],
      "resource": ["https://a.example.com/scim", "urn:example:b"]}),
    ({"resource": "https://a.example.com/scim"}, {"resource": ["https://a.example.com/scim"]}),
])
def test_scope_audience_and_resource_are_sent_with_the_token_request(
        given: dict[str, Any], sent: dict[str, list[str]]) -> None:
    app = AuthApp()
    with oauth(app, **given) as c:
        c.get("User", "a")
    assert app.tokens[0].form == {**GRANT, **sent}


def test_no_secret_or_token_reaches_the_logs_or_an_error(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app = AuthApp()
    with oauth(app) as c:
        c.get("User", "a")
        app.revoked.add("tok-1")
        c.get("User", "b")
    wrong = AuthApp(client_secret="another")
    with oauth(wrong) as c, pytest.raises(Transient) as refused:
        c.get("User", "a")
    assert caplog.records  # httpx and httpcore did log, at DEBUG
    for text in (caplog.text, str(refused.value), repr(refused.value)):
        assert SECRET not in text and "tok-" not in text
        assert base64.b64encode(b"hub%3A1:s3+cr%2Ft%2B%C3%BC").decode() not in text
