"""Indexed column values of stored documents (docs/architecture.md: Storage and scale)."""

from __future__ import annotations

from typing import Any

from scimsync.protocol.resources import ACTIVE_TYPES, NAME_ATTRIBUTE
from scimsync.protocol.values import Doc


def indexed_columns(rtype_name: str, doc: Doc) -> dict[str, Any]:
    """The indexed columns of a document (docs/architecture.md: Storage and scale)."""
    display = doc.get("displayName")
    cols: dict[str, Any] = {
        "external_id": doc.get("externalId"),
        "display_name_ci": display.lower() if isinstance(display, str) else None,
        "user_name": None,
        "user_name_ci": None,
        "email_ci": None,
        "active": None,
    }
    name_attr = NAME_ATTRIBUTE.get(rtype_name)
    if name_attr is not None:  # userName of a User, name of an Agent or application
        name = doc.get(name_attr)
        cols["user_name"] = name
        cols["user_name_ci"] = name.lower() if isinstance(name, str) else None
    if rtype_name in ACTIVE_TYPES:
        cols["active"] = doc.get("active", True) if isinstance(doc.get("active", True), bool) \
            else True
    if rtype_name == "User":
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
