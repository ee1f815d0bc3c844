"""Location and meta.location come from the configured public URL or trusted proxies,
never from a client's Host header (RFC7644 §3.1), over a real HTTP server."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from conftest import USER
from downstream import ThreadedServer
from scimsync.api.app import create_app
from scimsync.api.settings import Settings, networks
from scimsync.store.directories import Directories


class Service:
    def __init__(self, engine: Engine, directories: Directories, **settings: Any):
        self.app = create_app(engine=engine, settings=Settings(**settings))
        self.server = ThreadedServer(self.app)
        d = directories.create(f"origin-{secrets.token_hex(3)}")
        self.did, self.token = d["id"], d["token"]
        self.admin = directories.create_token(None, "origin")["token"]

    def create(self, **headers: str) -> httpx.Response:
        r = httpx.post(f"{self.server.url}/scim/v2/{self.did}/Users", timeout=10,
                       json={"schemas": [USER], "userName": secrets.token_hex(4)},
                       headers={"Authorization": f"Bearer {self.token}", **headers})
        assert r.status_code == 201, r.text
        return r


@pytest.fixture
def service(engine: Engine, directories: Directories,
            request: pytest.FixtureRequest) -> Iterator[Service]:
    s = Service(engine, directories, **getattr(request, "param", {}))
    with s.server:
        yield s


def _where(r: httpx.Response) -> tuple[str, str]:
    return r.headers["location"], r.json()["meta"]["location"]


def test_without_configuration_the_servers_own_address_not_the_host_header(
        service: Service) -> None:
    r = service.create(Host="evil.example", **{"X-Forwarded-Host": "evil.example"})
    location, meta = _where(r)
    own = f"http://127.0.0.1:{service.server.port}/scim/v2/{service.did}/Users/{r.json()['id']}"
    assert location == meta == own


PUBLIC = {"public_url": "https://scim.example.com/idm"}


@pytest.mark.parametrize("service", [PUBLIC], indirect=True)
def test_the_configured_public_url_is_used_everywhere(service: Service) -> None:
    r = service.create(Host="evil.example", **{"X-Forwarded-Host": "evil.example",
                                               "X-Forwarded-Proto": "http"})
    base = f"https://scim.example.com/idm/scim/v2/{service.did}"
    assert _where(r) == (f"{base}/Users/{r.json()['id']}",) * 2
    spc = httpx.get(f"{service.server.url}/scim/v2/{service.did}/ServiceProviderConfig",
                    headers={"Authorization": f"Bearer {service.token}", "Host": "evil"},
                    timeout=10).json()
    assert spc["meta"]["location"].startswith(base)
    created = httpx.post(f"{service.server.url}/admin/directories", json={"name": "x"},
                         headers={"Authorization": f"Bearer {service.admin}",
                                  "Host": "evil.example"}, timeout=10).json()
    assert created["scim_url"] == f"https://scim.example.com/idm/scim/v2/{created['id']}"


PROXIED = {**PUBLIC, "trusted_proxies": networks("127.0.0.1, ::1")}


@pytest.mark.parametrize("service", [PROXIED], indirect=True)
def test_a_trusted_proxy_forwarded_origin_is_honoured(service: Service) -> None:
    r = service.create(**{"X-Forwarded-Host": "idp-facing.example:8443",
                          "X-Forwarded-Proto": "https", "X-Forwarded-Prefix": "/sync"})
    assert _where(r)[0] == (f"https://idp-facing.example:8443/sync/scim/v2/{service.did}"
                            f"/Users/{r.json()['id']}")


@pytest.mark.parametrize("service", [PROXIED], indirect=True)
@pytest.mark.parametrize("headers", [
    {"X-Forwarded-Host": "evil.example/phish"},
    {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "javascript"},
    {"X-Forwarded-Host": "evil.example", "X-Forwarded-Prefix": "//evil"},
    {"X-Forwarded-Host": "a@evil.example"},
])
def test_malformed_forwarded_headers_fall_back_to_the_public_url(
        service: Service, headers: dict[str, str]) -> None:
    r = service.create(**headers)
    assert _where(r)[0].startswith(f"https://scim.example.com/idm/scim/v2/{service.did}/")


@pytest.mark.parametrize("service", [{**PUBLIC, "trusted_proxies": networks("10.9.9.9")}],
                         indirect=True)
def test_forwarded_headers_from_an_untrusted_peer_are_ignored(service: Service) -> None:
    r = service.create(**{"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"})
    assert _where(r)[0].startswith("https://scim.example.com/idm/")
