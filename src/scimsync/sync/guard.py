"""The accidental-deletion guard: a mass deprovisioning waits for a person."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from scimsync.store.tables import links

L = links.c


class GuardHeld(Exception):
    """The run would deprovision more than the target's guard allows."""

    def __init__(self, count: int, provisioned: int):
        super().__init__(f"would deprovision {count} of {provisioned} provisioned accounts: "
                         "waiting for approval (scimsync targets approve)")
        self.count = count


def provisioned_users(engine: Engine, target_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(links).where(
            L.target_id == target_id, L.state == "provisioned",
            L.resource_type == "User")).scalar_one())


def guard_exceeded(profile: Any, count: int, provisioned: int) -> bool:
    """The accidental-deletion guard: more than N accounts, or more than X% of those
    provisioned once over ten, needs a person's approval."""
    share = 100.0 * count / max(provisioned, 1)
    return count > profile.max_deprovisions or (
        count > 10 and share > profile.max_deprovision_percent)
