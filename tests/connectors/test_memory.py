"""The connector contract against the in-memory reference connector."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from scimsync.connectors import memory
from scimsync.connectors.contract import Connector
from scimsync.connectors.registry import open_connector
from scimsync.connectors.testing import ConnectorContract
from scimsync.errors import UsageError
from scimsync.sync.config import parse_config


@pytest.fixture
def connector() -> Iterator[Connector]:
    name = secrets.token_hex(4)
    config, creds = parse_config("memory", {"store": name})
    c = open_connector("memory", config.settings, config.profile, creds)
    assert isinstance(c, Connector)
    yield c
    memory.drop(name)


class TestMemoryConnector(ConnectorContract):
    pass


def test_each_kind_checks_its_own_settings() -> None:
    with pytest.raises(UsageError, match="unknown memory target setting `url`"):
        parse_config("memory", {"store": "s", "url": "http://x.test"})
    with pytest.raises(UsageError, match="unknown webhook target setting `auth`"):
        parse_config("webhook", {"url": "http://x.test", "secret": "whsec_" + "A" * 32,
                                 "auth": {"type": "none"}})
    with pytest.raises(UsageError, match="a scim target needs a url"):
        parse_config("scim", {})
    with pytest.raises(UsageError, match="unknown target kind 'ldapp'; known: memory, scim"):
        parse_config("ldapp", {})
