"""Host names and addresses in one canonical form, so a policy compares like with like.

A URL can name one machine in many spellings: `127.0.0.1`, `2130706433`, `0x7f.1`,
`0177.0.0.1`, `[::ffff:127.0.0.1]`, `[64:ff9b::7f00:1]` (NAT64), `localhost.`. The
policy (scimsync.netpolicy) matches the canonical address and every IPv4 address that
an IPv6 one carries, and a name without its trailing dots, lowercased and IDNA-encoded.
"""

from __future__ import annotations

import ipaddress
import re

from scimsync.errors import UsageError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# RFC 6052 §2.1: the well-known NAT64 prefix, whose last 32 bits are the IPv4 address.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# RFC 6145 (SIIT): IPv4-translated addresses, ::ffff:0:a.b.c.d.
TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_NUMBER = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)\Z")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\Z")


class BadHost(UsageError):
    """A host that is neither a valid name nor a valid address."""


def _ipv4_part(text: str) -> int:
    """One part of an IPv4 address as inet_aton(3) reads it: decimal, 0-octal or 0x-hex."""
    if text[:2].lower() == "0x":
        return int(text[2:] or "0", 16)
    if len(text) > 1 and text.startswith("0"):
        if not all(c in "01234567" for c in text):
            raise BadHost(f"{text!r} is not an octal number")
        return int(text, 8)
    return int(text)


def _ipv4_number(host: str) -> ipaddress.IPv4Address | None:
    """The address a numeric host spells (WHATWG URL §3.5 "ends in a number"), else None."""
    labels = host.split(".")
    if not _NUMBER.match(labels[-1]):
        return None
    if len(labels) > 4 or not all(_NUMBER.match(x) for x in labels):
        raise BadHost(f"{host!r} is neither a host name nor an IPv4 address")
    values = [_ipv4_part(x) for x in labels]
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        raise BadHost(f"{host!r} is out of the IPv4 range")
    number = 0
    for v in head:
        number = number * 256 + v
    return ipaddress.IPv4Address(number * 256 ** (4 - len(head)) + last)


def normalise_host(host: str) -> IPAddress | str:
    """The address a host spells, or its name lowercased, without trailing dots, in IDNA."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            raise BadHost(f"{host!r} is not a valid IPv6 address") from None
    text = text.rstrip(".").lower()
    if not text:
        raise BadHost(f"{host!r} is not a host name")
    number = _ipv4_number(text)
    if number is not None:
        return number
    try:
        name = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise BadHost(f"{host!r} is not a valid host name") from None
    if not all(_LABEL.match(label) for label in name.split(".")):
        raise BadHost(f"{host!r} is not a valid host name")
    return name


def canonical(address: IPAddress) -> IPAddress:
    """The address to connect to: an IPv4-mapped IPv6 address is the IPv4 one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forms(address: IPAddress) -> list[IPAddress]:
    """The address and every IPv4 address it carries (mapped, compatible, translated,
    NAT64, 6to4, Teredo): a rule denies the machine whichever spelling reaches it."""
    out: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv4Address):
        return out
    low = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.ipv4_mapped is not None:
        out.append(address.ipv4_mapped)
    if 1 < int(address) < 2**32:  # RFC 4291 §2.5.5.1, IPv4-compatible (:: and ::1 are not)
        out.append(low)
    if address in TRANSLATED or address in NAT64:
        out.append(low)
    if address.sixtofour is not None:
        out.append(address.sixtofour)
    if address.teredo is not None:
        out.extend(address.teredo)
    return list(dict.fromkeys(out))
