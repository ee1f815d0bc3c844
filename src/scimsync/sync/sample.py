"""Mapping rules tried on a sample user when they are configured, not first in a run.

A rule that parses can still fail when evaluated: a value over the expression caps
(scimsync.sync.expressions), a condition that cannot be compared. Each rule is
evaluated against the full user of RFC 7643 §8.2, every sub-expression on its own (so
both branches of an `if` are tried), and its value set on a User body, so a broken
rule is refused with its index and target instead of stopping every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scimsync.errors import UsageError
from scimsync.protocol.schema import CORE_USER, ENTERPRISE_USER
from scimsync.sync import expressions
from scimsync.sync.expressions import Call, Expr

Doc = dict[str, Any]

# RFC 7643 §8.2, "Full User Representation", as the hub renders it.
SAMPLE_USER: Doc = {
    "schemas": [CORE_USER, ENTERPRISE_USER],
    "id": "2819c223-7f76-453a-919d-413861904646",
    "externalId": "701984",
    "userName": "bjensen@example.com",
    "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen",
             "givenName": "Barbara", "middleName": "Jane", "honorificPrefix": "Ms.",
             "honorificSuffix": "III"},
    "displayName": "Babs Jensen",
    "nickName": "Babs",
    "profileUrl": "https://login.example.com/bjensen",
    "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True},
               {"value": "babs@jensen.org", "type": "home"}],
    "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza",
                   "locality": "Hollywood", "region": "CA", "postalCode": "91608",
                   "country": "USA", "primary": True,
                   "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA"}],
    "phoneNumbers": [{"value": "555-555-5555", "type": "work"},
                     {"value": "555-555-4444", "type": "mobile"}],
    "ims": [{"value": "someaimhandle", "type": "aim"}],
    "photos": [{"value": "https://photos.example.com/profilephoto/72930000000Ccne/F",
                "type": "photo"}],
    "userType": "Employee",
    "title": "Tour Guide",
    "preferredLanguage": "en-US",
    "locale": "en-US",
    "timezone": "America/Los_Angeles",
    "active": True,
    "groups": [{"value": "e9e30dba-f08f-4109-8486-d5c6a331660a", "display": "Tour Guides"},
               {"value": "fc348aa8-3835-40eb-a20b-c726e15c55b5", "display": "Employees"}],
    "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UE"}],
    ENTERPRISE_USER: {"employeeNumber": "701984", "costCenter": "4130",
                      "organization": "Universal Studios", "division": "Theme Park",
                      "department": "Tour Operations",
                      "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d",
                                  "displayName": "John Smith"}},
    "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z",
             "lastModified": "2011-05-13T04:42:34Z", "version": 'W/"3694e05e9dff591"'},
}


def _inner(expr: Expr) -> Iterator[Expr]:
    """Every sub-expression, at any depth."""
    if isinstance(expr, Call):
        for arg in expr.args:
            yield arg
            yield from _inner(arg)


def check_rule(index: int, rule: Doc) -> None:
    """Parse and evaluate one mapping rule on the sample user; a UsageError naming the
    rule if it fails."""
    from scimsync.sync.mapping import set_path  # mapping needs config, which needs this

    where = f"mapping[{index}] ({rule['target']})"
    text = rule["source"] if "source" in rule else rule.get("expression")
    try:
        value = rule.get("value")
        if text is not None:
            expr = expressions.parse(str(text))
            value = expressions.evaluate(expr, SAMPLE_USER)
            for inner in _inner(expr):  # the branch of an `if` not taken, too
                expressions.evaluate(inner, SAMPLE_USER)
        set_path({"schemas": [CORE_USER]}, str(rule["target"]), value)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from exc
    except Exception as exc:  # whatever it is, it would stop every run of the target
        raise UsageError(f"{where}: fails on a sample user: {type(exc).__name__}: "
                         f"{exc}") from exc
