"""The outbound URL policy: every spelling of an address is judged as that address."""

from __future__ import annotations

import pytest

from scimsync.errors import UsageError
from scimsync.netaddr import normalise_host
from scimsync.netpolicy import Policy, Refused, Resolver, check_url


def answers(table: dict[str, list[str]]) -> Resolver:
    """A resolver that knows only `table`."""
    return lambda host, port: list(table.get(host, []))


@pytest.mark.parametrize("host,address", [
    ("2130706433", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"), ("0x7F000001", "127.0.0.1"), ("127.0.0.1.", "127.0.0.1"),
    ("0251.0376.0251.0376", "169.254.169.254"), ("0xa9.254.43518", "169.254.169.254"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1"), ("::1", "::1"),
])
def test_numeric_hosts_are_read_as_the_address_they_spell(host: str, address: str) -> None:
    assert str(normalise_host(host)) == address


@pytest.mark.parametrize("host,name", [
    ("METADATA.Google.Internal.", "metadata.google.internal"), ("metadata.goog..", "metadata.goog"),
    ("bücher.example", "xn--bcher-kva.example"),
])
def test_names_are_lowercased_without_trailing_dots_in_idna(host: str, name: str) -> None:
    assert normalise_host(host) == name


@pytest.mark.parametrize("url", [
    "http://1.2.3.4.5/", "http://08.1.1.1/", "http://256.1.1.1/", "http://0x100000000/",
    "http://1.2.3.256/", "http://example.123/", "http://a..b/", "http://[::ffff:1.2.3]/",
])
def test_hosts_that_are_neither_name_nor_address_are_refused(url: str) -> None:
    with pytest.raises(UsageError):
        check_url(url, resolve=False)


DENIED_BY_DEFAULT = [
    # loopback, spelled every way a URL parser or a resolver accepts
    "http://127.0.0.1/", "http://2130706433/", "http://0x7f.1/", "http://0177.0.0.1/",
    "http://127.1/", "http://127.0.0.1./", "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]:8080/", "http://[::127.0.0.1]/", "http://[::1]/",
    "http://[::ffff:0:7f00:1]/", "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/",
    # cloud metadata services, by address and by name
    "http://169.254.169.254/", "http://[64:ff9b::a9fe:a9fe]/", "http://[fd00:ec2::254]/",
    "http://[::ffff:169.254.169.254]/", "http://metadata.google.internal./",
    "http://METADATA.GOOG/", "http://100.100.100.200/", "http://192.0.0.192/",
    "http://168.63.129.16/", "http://169.254.170.2/", "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",
    # private and other non-public ranges
    "http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/", "http://100.64.0.1/",
    "http://0.0.0.0/", "http://[fc00::1]/", "http://[fe80::1]/", "http://224.0.0.1/",
    "http://[64:ff9b:1::a00:1]/",
]


@pytest.mark.parametrize("url", DENIED_BY_DEFAULT)
def test_default_policy_denies_every_form(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCIMSYNC_TARGET_ALLOW")
    with pytest.raises(Refused, match="denied by the network policy"):
        check_url(url, resolve=False)


def test_public_addresses_and_names_pass() -> None:
    policy = Policy.of(resolve=answers({"scim.example.com": ["93.184.215.14", "2606:2800::1"]}))
    assert [str(a) for a in policy.admit("scim.example.com", 443)] == ["93.184.215.14",
                                                                        "2606:2800::1"]
    assert [str(a) for a in policy.admit("[2606:4700::1111]", 443)] == ["2606:4700::1111"]


def test_an_ipv4_mapped_address_is_connected_as_ipv4() -> None:
    policy = Policy.of(allow=["127.0.0.0/8"])
    assert [str(a) for a in policy.admit("::ffff:127.0.0.1", 80)] == ["127.0.0.1"]


def test_names_that_do_not_resolve_are_refused() -> None:
    with pytest.raises(Refused, match="does not resolve"):
        Policy.of(resolve=answers({})).admit("nowhere.example", 443)


def test_a_name_with_one_denied_address_among_its_answers_is_refused() -> None:
    policy = Policy.of(resolve=answers({"mixed.example": ["93.184.215.14", "10.0.0.7"]}))
    with pytest.raises(Refused, match=r"mixed.example \(10.0.0.7\) is denied"):
        policy.admit("mixed.example", 443)


def test_a_name_resolving_to_metadata_in_any_form_is_refused() -> None:
    policy = Policy.of(resolve=answers({"evil.example": ["64:ff9b::a9fe:a9fe"]}))
    with pytest.raises(Refused, match=r"169\.254\.169\.254"):
        policy.admit("evil.example", 80)


def test_allowing_a_network_leaves_the_more_specific_metadata_rule_in_force() -> None:
    policy = Policy.of(allow=["169.254.0.0/16", "fc00::/7", "10.0.0.0/8"])
    assert policy.admit("169.254.1.1", 80) and policy.admit("fd12::1", 80)
    assert policy.admit("10.20.30.40", 80)
    for metadata in ("169.254.169.254", "fd00:ec2::254"):
        with pytest.raises(Refused):
            policy.admit(metadata, 80)
    with pytest.raises(Refused):
        policy.admit("192.168.0.1", 80)  # allowing one private network opens no other
    assert Policy.of(allow=["169.254.169.254"]).admit("169.254.169.254", 80)


def test_an_allowed_host_name_is_trusted_with_its_addresses() -> None:
    resolve = answers({"scim.corp.test": ["10.1.2.3"], "app.corp.test": ["10.1.2.4"],
                       "other.test": ["10.1.2.5"]})
    policy = Policy.of(allow=["scim.corp.test", "*.corp.test"], resolve=resolve)
    assert [str(a) for a in policy.admit("SCIM.corp.test.", 443)] == ["10.1.2.3"]
    assert [str(a) for a in policy.admit("app.corp.test", 443)] == ["10.1.2.4"]
    with pytest.raises(Refused):
        policy.admit("other.test", 443)
    with pytest.raises(Refused):
        policy.admit("corp.test", 443)  # `*.` names subdomains, not the name itself


def test_operators_add_rules_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIMSYNC_TARGET_ALLOW", "10.9.0.0/16")
    monkeypatch.setenv("SCIMSYNC_TARGET_DENY", "93.184.215.0/24, *.blocked.example")
    assert check_url("http://10.9.1.1/scim", resolve=False)
    for url in ("http://127.0.0.1/", "http://10.8.1.1/", "http://93.184.215.14/", "http://a.blocked.example/",
                "http://169.254.169.254/"):
        with pytest.raises(Refused):
            check_url(url, resolve=False)


def test_a_malformed_rule_is_a_readable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIMSYNC_TARGET_ALLOW", "10.0.0.0/33")
    with pytest.raises(UsageError, match=r"SCIMSYNC_TARGET_ALLOW: '10\.0\.0\.0/33' is neither"):
        check_url("http://93.184.215.14/", resolve=False)


@pytest.mark.parametrize("url", ["ftp://93.184.215.14/", "file:///etc/passwd", "http:///x",
                                 "http://93.184.215.14:99999/"])
def test_only_http_urls_with_a_host_are_accepted(url: str) -> None:
    with pytest.raises(UsageError):
        check_url(url, resolve=False)
