"""Indexed column values of stored documents (DESIGN.md: Storage and scale)."""

from __future__ import annotations

from typing import Any

from scimsync.protocol.values import Doc


def indexed_columns(rtype_name: str, doc: Doc) -> dict[str, Any]:
    """The indexed columns of a document (DESIGN.md: Storage and scale)."""
    display = doc.get("displayName")
    cols: dict[str, Any] = {
        "external_id": doc.get("externalId"),
        "display_name_ci": display.lower() if isinstance(display, str) else None,
        "user_name": None,
        "user_name_ci": None,
        "email_ci": None,
        "active": None,
    }
    if rtype_name == "User":
        user_name = doc.get("userName")
        cols["user_name"] = user_name
        cols["user_name_ci"] = user_name.lower() if isinstance(user_name, str) else None
        cols["active"] = doc.get("active", True) if isinstance(doc.get("active", True), bool) \
            else True
        cols["email_ci"] = primary_email(doc)
    return cols


def primary_email(doc: Doc) -> str | None:
    """The primary email, else the first one, lower-cased."""
    emails = doc.get("emails") or []
    chosen = next((e for e in emails if isinstance(e, dict) and e.get("primary") is True), None)
    if chosen is None and emails:
        chosen = emails[0]
    value = chosen.get("value") if isinstance(chosen, dict) else None
    return value.lower() if isinstance(value, str) else None
