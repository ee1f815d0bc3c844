"""A target's rules that name groups (scope, roles) must name groups that exist.

A scope naming a group that does not exist (a typo) would take every user out of the
target; it is refused when the target is configured, with nothing stored.
"""

from __future__ import annotations

from sqlalchemy import Connection

from scimsync.errors import UsageError
from scimsync.store import group_names
from scimsync.sync.config import TargetConfig


def named_groups(config: TargetConfig) -> list[tuple[str, str]]:
    """(rule, group) for every rule of the configuration that names a group."""
    out = [(f"scope.groups[{i}]", g) for i, g in enumerate(config.scope.groups)]
    out += [(f"roles[{i}]", str(r["group"])) for i, r in enumerate(config.roles)]
    return out


def check(conn: Connection, directory_id: str, config: TargetConfig) -> None:
    """Refuse a configuration whose scope or role rules name a group the directory
    does not have (by displayName or id)."""
    named = named_groups(config)
    if not named:
        return
    found = group_names.existing(conn, directory_id, [g for _, g in named])
    missing = [f"{rule}: no group {group!r} in the directory" for rule, group in named
               if group.lower() not in found]
    if missing:
        raise UsageError("; ".join(missing) + " (rules name a group by displayName or id; "
                         "create the group first)")
