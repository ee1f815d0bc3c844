"""Which hosts scimsync may call: the outbound URL policy (server-side request forgery guard).

Every outbound connection (SCIM targets, webhooks, OAuth token requests) goes through
`Policy.admit`, in scimsync.outbound's transport: the host is normalised
(scimsync.netaddr), a name is resolved once, every address it resolves to is checked,
and the connection goes to those checked addresses. A name that does not resolve is
refused.

Rules are networks (`10.0.0.0/8`, `::1`) or host names (`scim.corp.example`, or
`*.corp.example` for its subdomains). For an address, the most specific matching rule
decides (longest prefix; allow wins a tie); an address that no rule matches is allowed.
So allowing `169.254.0.0/16` still leaves `169.254.169.254/32` denied. An address is
refused if any of its forms (an IPv6 address and the IPv4 address it carries) is. A
host name that an allow rule names is trusted with whatever it resolves to.

SCIMSYNC_TARGET_ALLOW and SCIMSYNC_TARGET_DENY add comma-separated rules to the
defaults below (deny); nothing is allowed by default.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from scimsync.errors import UsageError
from scimsync.netaddr import IPAddress, canonical, forms, normalise_host

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

# Cloud metadata services, by address and by name. Listed on their own (as /32 and
# /128) so that allowing the wider range they sit in does not open them.
METADATA = (
    "169.254.169.254",  # AWS, Azure, GCP, OpenStack, Oracle, DigitalOcean, Hetzner
    "169.254.170.2", "169.254.170.23",  # AWS ECS task and EKS pod identity credentials
    "fd00:ec2::254", "fd00:ec2::23",  # AWS IMDS and EKS pod identity over IPv6
    "168.63.129.16",  # Azure WireServer
    "100.100.100.200",  # Alibaba Cloud
    "192.0.0.192",  # Oracle Cloud (classic)
    "169.254.0.23",  # Tencent Cloud
    "metadata.google.internal", "metadata.goog", "metadata.azure.internal",
    "metadata.tencentyun.com", "instance-data", "instance-data.ec2.internal",
)
# Addresses that are not on the public internet (RFC 6890 and its successors).
NON_PUBLIC = (
    "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16",  # this network, loopback, link-local
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
    "100.64.0.0/10",  # RFC 6598 shared address space (CGNAT)
    "192.0.0.0/24", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # IETF, TEST-NETs
    "192.88.99.0/24", "198.18.0.0/15",  # 6to4 relay anycast, benchmarking
    "224.0.0.0/4", "240.0.0.0/4",  # multicast, reserved and broadcast
    "::/128", "::1/128", "fe80::/10", "fec0::/10",  # unspecified, loopback, link/site-local
    "fc00::/7", "ff00::/8",  # unique local, multicast
    "64:ff9b:1::/48",  # RFC 8215 local-use NAT64: the IPv4 inside cannot be read back
    "100::/64", "2001:db8::/32",  # discard-only, documentation
)
DEFAULT_DENY = METADATA + NON_PUBLIC


class Refused(UsageError):
    """The policy refuses this host or address."""


@dataclass(frozen=True)
class Rule:
    """One allow or deny rule: a network, or a host name (`*.` for its subdomains)."""

    text: str
    allow: bool
    network: Network | None = None
    name: str | None = None
    wildcard: bool = False

    @property
    def weight(self) -> int:
        """How specific the rule is: a longer prefix or suffix is more specific."""
        if self.network is not None:
            return self.network.prefixlen
        return len(self.name or "") + (0 if self.wildcard else 1000)

    def matches_name(self, name: str) -> bool:
        if self.name is None:
            return False
        if self.wildcard:
            return name.endswith("." + self.name)
        return name == self.name


def parse_rule(text: str, allow: bool, where: str = "rule") -> Rule:
    """A rule from its text; a readable UsageError if it is neither network nor name."""
    raw = text.strip()
    try:
        return Rule(raw, allow, network=ipaddress.ip_network(raw, strict=False))
    except ValueError:
        pass
    wildcard = raw.startswith("*.")
    try:
        name = normalise_host(raw[2:] if wildcard else raw)
    except UsageError:
        name = None
    if not isinstance(name, str):
        raise UsageError(f"{where}: {text!r} is neither a network nor a host name")
    return Rule(raw, allow, name=name, wildcard=wildcard)


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for a name, in its order ([] if none)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# The seam tests replace to answer as a hostile DNS server would.
resolver: Resolver = system_resolver


def _env_rules(name: str, raw: str, allow: bool) -> list[Rule]:
    return [parse_rule(x, allow, name) for x in raw.split(",") if x.strip()]


@dataclass(frozen=True)
class Policy:
    """Allow and deny rules, and the resolver that turns names into addresses."""

    rules: tuple[Rule, ...]
    resolve: Resolver = field(default=lambda host, port: resolver(host, port))

    @classmethod
    def of(cls, allow: Iterable[str] = (), deny: Iterable[str] = DEFAULT_DENY,
           resolve: Resolver | None = None) -> Policy:
        """A policy from rule texts (the defaults deny, nothing allowed)."""
        rules = [parse_rule(x, False) for x in deny] + [parse_rule(x, True) for x in allow]
        return cls(tuple(rules)) if resolve is None else cls(tuple(rules), resolve)

    @classmethod
    def from_env(cls) -> Policy:
        """The defaults plus SCIMSYNC_TARGET_DENY and SCIMSYNC_TARGET_ALLOW (parsed once
        for each value of the two variables: every run of a lane asks for it)."""
        return _policy_of(os.environ.get("SCIMSYNC_TARGET_DENY", ""),
                          os.environ.get("SCIMSYNC_TARGET_ALLOW", ""))

    def _decide(self, candidates: list[Rule]) -> Rule | None:
        # Most specific first; at equal weight an allow rule wins.
        return max(candidates, key=lambda r: (r.weight, r.allow), default=None)

    def check_address(self, address: IPAddress, host: str) -> None:
        """Refuse an address that any of its forms makes denied."""
        for form in forms(address):
            rule = self._decide([r for r in self.rules if r.network is not None
                                 and r.network.version == form.version
                                 and form in r.network])
            if rule is not None and not rule.allow:
                shown = host if str(form) == host else f"{host} ({form})"
                raise Refused(f"{shown} is denied by the network policy ({rule.text}); "
                              "see docs/security.md to allow it")

    def check_name(self, name: str, host: str) -> bool:
        """Refuse a name a deny rule names; True if an allow rule trusts it."""
        rule = self._decide([r for r in self.rules if r.matches_name(name)])
        if rule is not None and not rule.allow:
            raise Refused(f"{host} is denied by the network policy ({rule.text})")
        return rule is not None

    def admit(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to connect to for host:port, each checked; Refused if any is
        denied or the name does not resolve."""
        target = normalise_host(host)
        if not isinstance(target, str):
            self.check_address(target, host)
            return [canonical(target)]
        trusted = self.check_name(target, host)
        found: list[IPAddress] = []
        for text in self.resolve(target, port):
            try:
                found.append(ipaddress.ip_address(text))
            except ValueError:
                raise Refused(f"{host} resolved to {text!r}, which is not an address") from None
        if not found:
            raise Refused(f"{host} does not resolve; the network policy refuses names "
                          "without an address")
        if not trusted:
            for address in found:
                self.check_address(address, host)
        return list(dict.fromkeys(canonical(a) for a in found))


def check_url(url: str, resolve: bool = True) -> str:
    """Return `url` if the policy allows calling it; a readable UsageError if not.

    With resolve=False only the form, an address literal and the name's own rules are
    checked; the connection itself is always checked (scimsync.outbound).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UsageError(f"target URL is not a valid URL: {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"target URL must be http(s)://host/...: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UsageError(f"target URL has an invalid port: {url!r}") from None
    policy = Policy.from_env()
    if resolve:
        policy.admit(parts.hostname, port)
        return url
    target = normalise_host(parts.hostname)
    if isinstance(target, str):
        policy.check_name(target, parts.hostname)
    else:
        policy.check_address(target, parts.hostname)
    return url


@functools.lru_cache(maxsize=8)
def _policy_of(deny: str, allow: str) -> Policy:
    rules = [parse_rule(x, False) for x in DEFAULT_DENY]
    rules += _env_rules("SCIMSYNC_TARGET_DENY", deny, False)
    rules += _env_rules("SCIMSYNC_TARGET_ALLOW", allow, True)
    return Policy(tuple(rules))
