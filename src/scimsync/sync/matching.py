"""Matching a desired object with remote ones: which attribute, which case rules.

One module, shared by provisioning (sync/) and drift (drift/): externalId is
case-exact (RFC 7643 §3.1), userName and email values are not; a group matches on
displayName and an agent on name where a user matches on userName.
"""

from __future__ import annotations

from typing import Any

Doc = dict[str, Any]


# What stands for userName when matching other kinds.
NAMED_BY = {"Group": "displayName", "Agent": "name", "AgenticApplication": "name"}


def match_value(body: Doc, kind: str, attr: str) -> str | None:
    """The value of a match attribute in a body (a group matches on displayName)."""
    value: Any
    if attr == "email":
        # The primary email, else the first one.
        emails = [e for e in body.get("emails") or [] if isinstance(e, dict)]
        value = next((e.get("value") for e in emails if e.get("primary") is True), None) or (
            emails[0].get("value") if emails else None)
    elif attr == "userName" and kind in NAMED_BY:
        value = body.get(NAMED_BY[kind])
    else:
        value = body.get(attr)
    return value if isinstance(value, str) and value else None


def folded(attr: str, value: str) -> str:
    # externalId is case-exact (RFC 7643 §3.1); userName and email values are not.
    return value if attr == "externalId" else value.lower()
