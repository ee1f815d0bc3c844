"""A directory's ownership policy for non-human identities.

Stored in the directory's settings (`settings.nhi`):

- `unowned`: `flag` (default) reports an active non-human identity without an active
  owner and announces it (`nhi.unowned`); `reject` refuses such a write (400).
- `on_owner_departure`: when every owner has left (deactivated or deleted), `manager`
  (default) hands the identity to the departed owner's manager (enterprise
  `manager`, if active), else to `fallback_group`; `group` hands it to
  `fallback_group`; `suspend` hands it to no one. Whatever cannot be handed over is
  suspended once `grace` has passed since the owner left.
- `fallback_group`: a Group of the directory that takes over identities nobody else can.
- `grace`: how long an identity may stay without an active owner before it is
  suspended (a duration, default 7d; 0 suspends at once).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, select, update

from scimsync.durations import seconds
from scimsync.errors import UsageError
from scimsync.store.nhi import policy_settings
from scimsync.store.tables import directories, resources

UNOWNED = ("flag", "reject")
DEPARTURE = ("manager", "group", "suspend")
KEYS = ("unowned", "on_owner_departure", "fallback_group", "grace")


@dataclass(frozen=True)
class Policy:
    unowned: str = "flag"
    on_owner_departure: str = "manager"
    fallback_group: str | None = None
    grace: float = 7 * 86400.0  # seconds

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_policy(raw: Any) -> Policy:
    """A policy from settings; UsageError naming what is wrong."""
    if not isinstance(raw, dict):
        raise UsageError("the ownership policy is an object")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise UsageError(f"unknown ownership policy settings: {', '.join(unknown)}")
    unowned = raw.get("unowned", "flag")
    if unowned not in UNOWNED:
        raise UsageError(f"unowned is one of {', '.join(UNOWNED)}")
    departure = raw.get("on_owner_departure", "manager")
    if departure not in DEPARTURE:
        raise UsageError(f"on_owner_departure is one of {', '.join(DEPARTURE)}")
    group = raw.get("fallback_group")
    if group is not None and (not isinstance(group, str) or not group):
        raise UsageError("fallback_group is the id of a Group of the directory")
    if departure == "group" and group is None:
        raise UsageError("on_owner_departure: group needs a fallback_group")
    return Policy(unowned, departure, group, seconds(raw.get("grace", "7d"), "grace"))


def get_policy(engine: Engine, directory_id: str) -> Policy:
    with engine.connect() as conn:
        return parse_policy(policy_settings(conn, directory_id))


def set_policy(engine: Engine, directory_id: str, raw: Any) -> Policy:
    """Validate and store a directory's policy (the fallback group must exist in it)."""
    policy = parse_policy(raw)
    with engine.begin() as conn:
        row = conn.execute(select(directories.c.settings).where(
            directories.c.id == directory_id)).first()
        if row is None:
            raise UsageError(f"no directory {directory_id}")
        if policy.fallback_group is not None:
            found = conn.execute(select(resources.c.type).where(
                resources.c.directory_id == directory_id,
                resources.c.id == policy.fallback_group)).scalar()
            if found != "Group":
                raise UsageError(f"fallback_group: no Group {policy.fallback_group!r} "
                                 "in this directory")
        settings = dict(row[0] or {})
        settings["nhi"] = {k: v for k, v in raw.items() if k in KEYS}
        conn.execute(update(directories).where(directories.c.id == directory_id)
                     .values(settings=settings))
    return policy
