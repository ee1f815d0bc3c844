"""Timestamps as fixed-width UTC strings, so string order is time order (RFC7643 §2.3.5)."""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(dt: datetime) -> str:
    """`2026-11-28T14:21:10.123Z`: millisecond precision, always UTC."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def now() -> str:
    """The current time in the stored format."""
    return format_time(datetime.now(UTC))


def parse_time(value: str) -> datetime:
    """Parse an xsd:dateTime; a value without a zone is taken as UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


def normalise_time(value: str) -> str:
    """Any valid dateTime in the stored, comparable format; ValueError if invalid."""
    return format_time(parse_time(value))
