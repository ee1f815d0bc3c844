"""The planner: what to do with one object of a target, decided without I/O.

Inputs are the desired object (None when it should not be in the target), the link
(what the hub last applied there), the remote objects that could be it (found by the
identity's id in `externalId` and by the profile's match attributes), which of those
the hub already links elsewhere, and the profile's rules. The output is one typed
action. Applying executes exactly that action; a dry run is the plan, not applied.

Safe adoption (docs/provisioning.md: Adoption): a remote object is adopted only if
its `externalId` is this identity's id, or, where the profile allows adoption by
match (`adopt: match`), if it has no `externalId` at all. An object whose
`externalId` names another identity, or that the hub links for another identity or
from another target on the same system, is a conflict: shown, never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scimsync.connectors.contract import ChangeSet, Remote
from scimsync.sync.matching import folded, match_value
from scimsync.sync.work import Link, change_set

Doc = dict[str, Any]
ADOPT_RULES = ("externalId", "match")


@dataclass(frozen=True)
class Action:
    """One thing to do to one object: `verb` is create, adopt, update, replace,
    deactivate, delete or conflict."""

    verb: str
    kind: str
    resource_id: str
    name: str | None = None
    remote_id: str | None = None
    body: Doc | None = field(default=None, compare=False)
    changes: ChangeSet | None = field(default=None, compare=False)
    reason: str | None = None

    def describe(self) -> Doc:
        """What a person reads in a plan: the attribute changes, or why."""
        out: Doc = {}
        if self.changes is not None:
            out.update(self.changes.describe())
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Rules:
    """The parts of a target's profile the planner applies."""

    match: tuple[str, ...] = ("externalId", "userName")
    adopt: str = "externalId"  # or "match": adopt objects without externalId found by match
    deprovision: str = "deactivate"  # or "delete"


def display_name(kind: str, body: Doc | None, link: Link | None = None) -> str | None:
    """userName for users, displayName for groups, name for agents."""
    for doc in (body, link.applied if link is not None else None):
        if doc:
            value = doc.get("userName") if kind == "User" else (
                doc.get("displayName") if kind == "Group" else doc.get("name"))
            if isinstance(value, str):
                return value
    return None


def candidates_for(kind: str, resource_id: str, body: Doc, found: list[Remote],
                   rules: Rules) -> list[Remote]:
    """Of `found`, the remote objects that could be this identity's: those that carry
    its id in externalId, and those equal to it on a match attribute."""
    out: dict[str, Remote] = {}
    for remote in found:
        if remote.doc.get("externalId") == resource_id:
            out[remote.id] = remote
    for attr in rules.match:
        if attr == "externalId":
            continue
        mine = match_value(body, kind, attr)
        if mine is None:
            continue
        for remote in found:
            theirs = _values(remote.doc, kind, attr)
            if folded(attr, mine) in {folded(attr, v) for v in theirs}:
                out.setdefault(remote.id, remote)
    return list(out.values())


def _values(doc: Doc, kind: str, attr: str) -> list[str]:
    if attr == "email":
        return [e["value"] for e in doc.get("emails") or []
                if isinstance(e, dict) and isinstance(e.get("value"), str)]
    value = match_value(doc, kind, attr)
    return [value] if value is not None else []


def decide(kind: str, resource_id: str, desired: Doc | None, link: Link | None,
           candidates: list[Remote], claimed: dict[str, str], rules: Rules,
           digest: str | None = None) -> Action | None:
    """The one action that brings this object to its desired state, or None.

    `claimed` maps remote ids the hub links already (for another identity of this
    target, or from another target on the same system) to who links them. `digest`
    is the desired body's hash, compared with the link's.
    """
    name = display_name(kind, desired, link)
    has_remote = link is not None and bool(link.remote_id)
    provisioned = has_remote and link is not None and link.state == "provisioned"
    if desired is None:
        if not provisioned:
            return None
        assert link is not None and link.remote_id is not None
        verb = "delete" if kind != "User" or rules.deprovision == "delete" else "deactivate"
        return Action(verb, kind, resource_id, name, link.remote_id)
    if has_remote:
        assert link is not None and link.remote_id is not None
        if provisioned and digest is not None and link.applied_hash == digest:
            return None
        if link.applied is None:
            return Action("replace", kind, resource_id, name, link.remote_id, body=desired)
        changes = change_set(desired, link.applied)
        if not changes and provisioned:
            return None
        return Action("update", kind, resource_id, name, link.remote_id, body=desired,
                      changes=changes)
    return _create_or_adopt(kind, resource_id, name, desired, candidates, claimed, rules)


def _create_or_adopt(kind: str, resource_id: str, name: str | None, desired: Doc,
                     candidates: list[Remote], claimed: dict[str, str],
                     rules: Rules) -> Action:
    if not candidates:
        return Action("create", kind, resource_id, name, body=desired)
    if len(candidates) > 1:
        ids = ", ".join(sorted(c.id for c in candidates))
        return Action("conflict", kind, resource_id, name, body=desired,
                      reason=f"{len(candidates)} remote objects could be this one ({ids}): "
                             "link one by hand")
    remote = candidates[0]
    owner = claimed.get(remote.id)
    if owner is not None:
        return Action("conflict", kind, resource_id, name, remote.id, body=desired,
                      reason=f"remote object {remote.id} is already linked to {owner}")
    theirs = remote.doc.get("externalId")
    if theirs == resource_id:
        return Action("adopt", kind, resource_id, name, remote.id, body=desired,
                      reason="its externalId is this identity's id")
    if theirs:
        return Action("conflict", kind, resource_id, name, remote.id, body=desired,
                      reason=f"remote object {remote.id} has externalId {theirs!r}: "
                             "another identity's")
    if rules.adopt == "match":
        return Action("adopt", kind, resource_id, name, remote.id, body=desired,
                      reason="matched without externalId (profile adopt: match)")
    return Action("conflict", kind, resource_id, name, remote.id, body=desired,
                  reason=f"remote object {remote.id} exists without an externalId; the "
                         "profile adopts only by externalId (adopt: match allows it)")
