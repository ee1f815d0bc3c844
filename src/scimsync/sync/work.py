"""What a run works on: one piece of work per resource, links, results, change sets.

Many journal entries about one resource between two runs are one piece of work,
timed from the oldest change not yet applied (the lag an auditor reads).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scimsync.connectors.contract import ChangeSet
from scimsync.store import retries as retry_store
from scimsync.sync.events import NHI_EVENTS

Doc = dict[str, Any]


@dataclass
class Link:
    resource_id: str
    resource_type: str
    remote_id: str | None
    applied_hash: str | None
    applied: Doc | None
    state: str
    # What a run was about to send when this link was last written (sync/intents.py):
    # while set, the link may be stale.
    intent: str | None = None


# The phases lag is reported under (docs/provisioning.md: Lag), by a delivery's
# lifecycle: bulk passes; drift fixes and deprovisionings released from a guard hold,
# whose wait is a decision's; everything else is a journal change (joiner, mover,
# leaver, a group's change, an event).
PHASES = ("initial", "incremental", "remediation")
PASS_LIFECYCLES = ("initial", "resync")
REMEDIATION_LIFECYCLES = ("remediation", "approved")


def phase_of(lifecycle: str | None) -> str:
    """The lag phase of a delivery with this lifecycle."""
    if lifecycle in PASS_LIFECYCLES:
        return "initial"
    if lifecycle in REMEDIATION_LIFECYCLES:
        return "remediation"
    return "incremental"


@dataclass
class Work:
    """One resource to reconcile, with when and why it last changed."""

    resource_type: str
    resource_id: str
    seq: int = 0
    changed_at: str | None = None
    lifecycle: str | None = None


@dataclass
class RunResult:
    processed: int = 0
    applied: int = 0
    dead: int = 0
    error: str | None = None
    done: bool = True
    actions: list[dict[str, Any]] = field(default_factory=list)


def change_set(body: Doc, applied: Doc) -> ChangeSet:
    """What differs between the state last applied and the desired body."""
    changes = ChangeSet(body)
    for key in sorted(set(body) | set(applied)):
        if key in ("schemas", "members") or body.get(key) == applied.get(key):
            continue
        if key in body:
            changes.set[key] = body[key]
        else:
            changes.clear.append(key)
    if "members" in body or "members" in applied:
        want = {m["value"] for m in body.get("members", [])}
        have = {m["value"] for m in applied.get("members", [])}
        changes.remove_members = sorted(have - want)
        changes.add_members = sorted(want - have)
    return changes


def with_retries(work: list[Work], due: list[retry_store.Retry]) -> list[Work]:
    """Journal work plus the resources due for a retry (timed from their first change)."""
    by_id = {w.resource_id: w for w in work}
    for r in due:
        w = by_id.get(r.resource_id)
        if w is None:
            work.append(Work(r.resource_type, r.resource_id, r.seq, r.changed_at, r.lifecycle))
        elif r.changed_at and (w.changed_at is None or r.changed_at < w.changed_at):
            w.changed_at = r.changed_at
    return work


def coalesce(entries: list[dict[str, Any]]) -> list[Work]:
    """Many changes to one resource between runs become one piece of work."""
    work: dict[str, Work] = {}
    for e in entries:
        if e["op"] in NHI_EVENTS:
            continue  # a notice for webhooks and the events API: nothing to apply
        w = work.pop(e["resource_id"], None) or Work(e["resource_type"], e["resource_id"])
        # Lag counts from the oldest change not yet applied, not from the newest.
        w.seq, w.changed_at = e["seq"], w.changed_at or e["at"]
        w.lifecycle = e["lifecycle"] if e["lifecycle"] == "leaver" else (
            w.lifecycle or e["lifecycle"])
        work[e["resource_id"]] = w
        if e["op"] in ("member_added", "member_removed") and e.get("detail"):
            # Memberships change what the group's members look like in the target
            # (group scoping): the users are work too.
            for uid in (e["detail"].get("added") or []) + (e["detail"].get("removed") or []):
                if uid not in work:
                    work[uid] = Work("User", uid, e["seq"], e["at"], "mover")
    return list(work.values())
