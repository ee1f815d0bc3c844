"""Re-evaluating every identity of a target: by hand, or when its configuration changes.

A change of configuration is a change of desired state: changing a target's scope,
mapping, roles or profile starts a resync, bulk work in the target's lane. A pass
re-evaluates everyone; what it would deprovision is held back and judged against the
accidental-deletion guard as one batch once it has seen everyone (sync/holdback.py).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection

from scimsync.connectors import registry
from scimsync.store import holds, passes
from scimsync.sync.config import TargetConfig

# Profile settings that say how to talk to the application, not what it should hold:
# changing them changes no identity's desired state, so it starts no pass.
HOW_NOT_WHAT = ("patch", "page_size", "count", "max_members_per_patch", "rate_limit",
                "concurrency", "timeout", "max_deprovisions", "max_deprovision_percent", "verify",
                "group_members", "member_remove", "member_value", "empty_group", "find_batch",
                "patch_complex")


def effective(config: TargetConfig) -> dict[str, Any]:
    """What decides the desired state of the target's identities: the profile as it
    runs (a shipped profile's settings included, whichever way they were given)."""
    stored = config.to_json()
    profile = {k: v for k, v in asdict(config.profile).items()
               if k not in HOW_NOT_WHAT and k != "app"}
    profile["match"] = list(config.profile.match)
    return {"profile": profile, "scope": stored["scope"], "mapping": stored["mapping"],
            "roles": stored["roles"]}


def changed(old: TargetConfig, new: TargetConfig) -> bool:
    """Whether going from `old` to `new` changes any identity's desired state."""
    return effective(old) != effective(new)


def converges(kind: str) -> bool:
    """Whether targets of this kind hold state to re-evaluate (an event sink does not:
    it hears of each change once)."""
    return not registry.get(kind).sink


def start(conn: Connection, row: Any, reason: str) -> None:
    """Start a resync of the target in `conn`'s transaction.

    A configuration change (`reason` "configuration") forgets every hold: the new pass
    proposes its own batch. By hand, only what a pass had deferred is forgotten: held
    and kept accounts stay as they are.
    """
    holds.clear(conn, row.id, holds.STATES if reason == "configuration" else ("deferred",))
    passes.begin(conn, row.id, row.directory_id, "resync", reason)
