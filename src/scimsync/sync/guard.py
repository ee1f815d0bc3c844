"""The accidental-deletion guard: a mass deprovisioning waits for a person (what waits,
and how, is scimsync.sync.holdback).

Users, groups, agents and agentic applications are counted apart, each kind against
those of its kind the target holds: a scope change that would delete most of a
target's forty groups is a mass deletion even if the target holds ten thousand users.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, or_, select

from scimsync.store.tables import links

L = links.c
# How a hold names what it would take out, by kind.
NOUNS = {"User": "accounts", "Group": "groups", "Agent": "agents",
         "AgenticApplication": "agentic applications"}


def provisioned(engine: Engine, target_id: str, kind: str = "User") -> int:
    """Objects of this kind the target holds: provisioned ones, and those a stopped run
    may have created before it could link them (an intent: sync/intents.py)."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(links).where(
            L.target_id == target_id, or_(L.state == "provisioned", L.intent.is_not(None)),
            L.resource_type == kind)).scalar_one())


def guard_exceeded(profile: Any, count: int, provisioned: int) -> bool:
    """The accidental-deletion guard, for one kind: more than N of them, or more than X%
    of those provisioned once over ten, needs a person's approval."""
    share = 100.0 * count / max(provisioned, 1)
    return count > profile.max_deprovisions or (
        count > 10 and share > profile.max_deprovision_percent)


def held_message(count: int, provisioned: int, kind: str = "User") -> str:
    """What a hold says to the person who must decide."""
    noun = NOUNS.get(kind, "objects")
    return (f"would deprovision {count} of {provisioned} provisioned {noun}: held for "
            "a person (scimsync targets approve, or reject)")
