"""Webhook signing secrets are checked when a target is configured, not when it first sends."""

from __future__ import annotations

import base64
import secrets

import pytest

from scimsync.sync.config import parse_config
from scimsync.validation import ConfigError, ConfigErrors

URL = "http://127.0.0.1:9/hook"


def whsec(size: int) -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(size)).decode()


@pytest.mark.parametrize(("secret", "message"), [
    ("not-a-whsec", "secret is not a webhook signing secret (whsec_ and the base64 of 24 "
                    "to 64 random bytes)"),
    (whsec(3), "secret holds 3 bytes; a signing secret holds 24 to 64"),
    (whsec(23), "secret holds 23 bytes; a signing secret holds 24 to 64"),
    (whsec(65), "secret holds 65 bytes; a signing secret holds 24 to 64"),
    ("whsec_not*base64!", "secret: what follows whsec_ is not base64"),
    (12345, "secret is not a webhook signing secret"),
])
def test_a_bad_signing_secret_is_refused_without_repeating_it(secret: object,
                                                              message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("webhook", {"url": URL, "secret": secret})
    assert caught.value.path == ("secret",)
    assert str(caught.value).startswith(message)
    assert str(secret) not in str(caught.value)


def test_each_secret_of_a_rotation_is_checked_at_its_index() -> None:
    with pytest.raises(ConfigErrors) as caught:
        parse_config("webhook", {"url": URL, "secret": [whsec(32), "whsec_AAAA", "x"]})
    assert [e.path for e in caught.value.errors] == [("secret", 1), ("secret", 2)]
    assert caught.value.errors[0].message.startswith("secret[1] holds 3 bytes")


@pytest.mark.parametrize("size", [24, 32, 64])
def test_secrets_of_24_to_64_bytes_are_accepted(size: int) -> None:
    secret = whsec(size)
    _, kept = parse_config("webhook", {"url": URL, "secret": [secret]})
    assert kept == {"signing": [secret]}
