"""Outbound connections go only to addresses the policy checked, over real sockets.

Two listeners share a port: 127.0.0.1 stands for an allowed address, 127.0.0.2 for a
denied one (the policies here allow 127.0.0.1/32 only), so every connection these tests
could make, right or wrong, stays on loopback.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine

from conftest import Scim
from scimsync import netpolicy
from scimsync.connectors.contract import Transient
from scimsync.connectors.scim import ScimConnector
from scimsync.errors import UsageError
from scimsync.netpolicy import Policy, Resolver
from scimsync.outbound import GuardedTransport
from scimsync.store.targets import Targets
from scimsync.sync.config import parse_config
from scimsync.sync.engine import Reconciler
from test_webhooks import new_secret

ONLY_FIRST = ["127.0.0.1/32"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a second request may reuse the socket

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        server: Listener = self.server  # type: ignore[assignment]
        server.seen.append((self.command, self.path, self.headers.get("authorization")))
        body = (b'{"access_token": "tok-1", "expires_in": 300}' if self.path.endswith("/token")
                else b'{"id": "x"}')
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        return


class Listener(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]):
        super().__init__(address, Handler)
        self.seen: list[tuple[str, str, str | None]] = []


@dataclass
class Pair:
    """The allowed listener (127.0.0.1) and the denied one (127.0.0.2), on one port."""

    allowed: Listener
    denied: Listener
    port: int
    threads: list[threading.Thread] = field(default_factory=list)

    def url(self, host: str, path: str = "/") -> str:
        return f"http://{host}:{self.port}{path}"


def _serve(server: Listener) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return thread


@pytest.fixture
def pair() -> Iterator[Pair]:
    for _ in range(20):
        allowed = Listener(("127.0.0.1", 0))
        try:
            denied = Listener(("127.0.0.2", allowed.server_port))
            break
        except OSError:
            allowed.server_close()
    else:
        raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")
    p = Pair(allowed, denied, allowed.server_port)
    p.threads = [_serve(allowed), _serve(denied)]
    yield p
    for server in (allowed, denied):
        server.shutdown()
        server.server_close()


def rebinding(name: str, first: str, then: str) -> tuple[Resolver, list[str]]:
    """A hostile resolver: `first` for the first question about `name`, `then` after."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        if host != name:
            return []
        asked.append(host)
        return [first] if len(asked) == 1 else [then]

    return resolve, asked


def guarded(policy: Policy, **kw: Any) -> httpx.Client:
    return httpx.Client(transport=GuardedTransport(policy, **kw), timeout=5)


def test_a_rebinding_name_is_resolved_once_and_connected_where_checked(pair: Pair) -> None:
    resolve, asked = rebinding("rebind.test", "127.0.0.1", "127.0.0.2")
    policy = Policy.of(allow=ONLY_FIRST, resolve=resolve)
    with guarded(policy) as http:
        assert http.get(pair.url("rebind.test", "/one")).status_code == 200
        assert http.get(pair.url("rebind.test", "/two")).status_code == 200
    assert [p for _, p, _ in pair.allowed.seen] == ["/one", "/two"] and asked == ["rebind.test"]
    with guarded(policy) as http, pytest.raises(httpx.ConnectError,
                                                match=r"rebind.test \(127.0.0.2\) is denied"):
        http.get(pair.url("rebind.test", "/three"))
    assert pair.denied.seen == []


# (httpx itself refuses a dotted quad with leading zeros such as 0177.0.0.1.)
LOOPBACK_FORMS = ["[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "2130706433", "0x7f.1", "127.1",
                  "0x7f000001", "127.0.0.1.", "localhost"]


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
def test_no_spelling_of_a_denied_address_reaches_it(pair: Pair, host: str) -> None:
    with guarded(Policy.of()) as http, pytest.raises(httpx.ConnectError, match="denied"):
        http.get(pair.url(host))
    assert pair.allowed.seen == []


@pytest.mark.parametrize("host", LOOPBACK_FORMS[:-1])
def test_every_spelling_connects_to_the_address_it_names(pair: Pair, host: str) -> None:
    with guarded(Policy.of(allow=ONLY_FIRST)) as http:
        assert http.get(pair.url(host, "/here")).status_code == 200
    assert [p for _, p, _ in pair.allowed.seen] == ["/here"] and pair.denied.seen == []


def test_a_denied_address_in_the_url_is_refused_at_configuration(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCIMSYNC_TARGET_ALLOW")
    with pytest.raises(UsageError, match="denied by the network policy"):
        parse_config("webhook", {"url": pair.url("[::ffff:127.0.0.1]", "/hook"),
                                 "secret": new_secret()})


def test_a_webhook_whose_name_rebinds_delivers_nothing(
        engine: Engine, scim: Scim, pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIMSYNC_TARGET_ALLOW", "127.0.0.1/32")
    resolve, asked = rebinding("hook.test", "127.0.0.1", "127.0.0.2")
    monkeypatch.setattr(netpolicy, "resolver", resolve)
    # Configuring the target checks the name (its first answer is allowed) ...
    t = Targets(engine).add(scim.directory_id, "rebound", "webhook",
                            {"url": pair.url("hook.test", "/hook"), "secret": new_secret()})
    Reconciler(engine).run(t["id"])  # a new webhook starts at the end of the journal
    scim.user("rebound@x.test")
    result = Reconciler(engine).run(t["id"])
    # ... and the delivery resolves it again, to a denied address: refused, not sent.
    assert result.error is not None and "hook.test (127.0.0.2) is denied" in result.error
    assert pair.denied.seen == [] and pair.allowed.seen == [] and len(asked) == 2


def _oauth_target(pair: Pair) -> tuple[Any, dict[str, Any]]:
    return parse_config("scim", {"url": pair.url("app.test", "/scim"), "auth": {
        "type": "oauth2", "token_url": pair.url("token.test", "/token"), "client_id": "hub",
        "client_secret": "s3cret"}})


def test_oauth_token_requests_follow_the_policy(pair: Pair,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIMSYNC_TARGET_ALLOW", "127.0.0.1/32")
    token, _ = rebinding("token.test", "127.0.0.1", "127.0.0.2")
    monkeypatch.setattr(netpolicy, "resolver", lambda host, port: (
        ["127.0.0.1"] if host == "app.test" else token(host, port)))
    config, secrets = _oauth_target(pair)  # token.test's first answer is allowed
    connector = ScimConnector(config.settings, config.profile, secrets)
    with pytest.raises(Transient, match=r"token endpoint unreachable: .*token.test "
                                        r"\(127.0.0.2\) is denied"):
        connector.get("User", "x")
    connector.close()
    assert pair.denied.seen == [] and pair.allowed.seen == []
    # A token URL that stays on an allowed address is used, and its token sent.
    monkeypatch.setattr(netpolicy, "resolver", lambda host, port: ["127.0.0.1"])
    connector = ScimConnector(config.settings, config.profile, secrets)
    assert connector.get("User", "x") is not None
    connector.close()
    # The client authenticates by HTTP Basic (RFC 6749 §2.3.1), hub:s3cret.
    assert pair.allowed.seen == [("POST", "/token", "Basic aHViOnMzY3JldA=="),
                                 ("GET", "/scim/Users/x", "Bearer tok-1")]


def test_an_oauth_token_url_is_checked_when_configured(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIMSYNC_TARGET_ALLOW", "127.0.0.1/32")
    monkeypatch.setattr(netpolicy, "resolver", lambda host, port: (
        ["127.0.0.1"] if host == "app.test" else ["127.0.0.2"] if host == "token.test" else []))
    with pytest.raises(UsageError, match=r"token.test \(127.0.0.2\) is denied"):
        _oauth_target(pair)
    with pytest.raises(UsageError, match="does not resolve"):
        parse_config("scim", {"url": pair.url("nowhere.test", "/scim")})
    with pytest.raises(UsageError, match="needs token_url"):
        parse_config("scim", {"url": pair.url("app.test"), "auth": {
            "type": "oauth2", "client_secret": "s"}})
    assert pair.denied.seen == [] and pair.allowed.seen == []


def _certificate(name: str, directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for `name`, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_verifies_the_name_and_sends_it_as_sni(pair: Pair, tmp_path: Path) -> None:
    cert, key = _certificate("app.test", tmp_path)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_side.sni_callback = lambda _sock, name, _ctx: names.append(name)  # type: ignore[assignment,func-returns-value]
    tls = Listener(("127.0.0.1", 0))
    tls.socket = server_side.wrap_socket(tls.socket, server_side=True)
    thread = _serve(tls)
    url = f"https://app.test:{tls.server_port}/secure"
    policy = Policy.of(allow=ONLY_FIRST, resolve=lambda host, port: ["127.0.0.1"])
    try:
        with guarded(policy, verify=ssl.create_default_context(cafile=str(cert))) as http:
            assert http.get(url).status_code == 200
        assert names == ["app.test"] and [p for _, p, _ in tls.seen] == ["/secure"]
        other, _ = _certificate("other.test", tmp_path)  # trusted, but for another name
        with guarded(policy, verify=ssl.create_default_context(cafile=str(other))) as http, \
                pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            http.get(url)
    finally:
        tls.shutdown()
        tls.server_close()
        thread.join(timeout=5)
