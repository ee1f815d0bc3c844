"""The accidental-deletion guard: a mass deprovisioning waits for a person (what waits,
and how, is scimsync.sync.holdback)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, or_, select

from scimsync.store.tables import links

L = links.c


def provisioned_users(engine: Engine, target_id: str) -> int:
    """Accounts the target holds for users: provisioned ones, and those a stopped run
    may have created before it could link them (an intent: sync/intents.py)."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(links).where(
            L.target_id == target_id, or_(L.state == "provisioned", L.intent.is_not(None)),
            L.resource_type == "User")).scalar_one())


def guard_exceeded(profile: Any, count: int, provisioned: int) -> bool:
    """The accidental-deletion guard: more than N accounts, or more than X% of those
    provisioned once over ten, needs a person's approval."""
    share = 100.0 * count / max(provisioned, 1)
    return count > profile.max_deprovisions or (
        count > 10 and share > profile.max_deprovision_percent)


def held_message(count: int, provisioned: int) -> str:
    """What a hold says to the person who must decide."""
    return (f"would deprovision {count} of {provisioned} provisioned accounts: held for "
            "a person (scimsync targets approve, or reject)")
