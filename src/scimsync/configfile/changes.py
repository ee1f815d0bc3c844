"""What applying a file changes, what that change would make the engine do, and applying it.

Each declared target is `created`, `updated` (the settings that differ, whether its
credentials change, its status) or `unchanged`. `apply -f` never removes a target the
file does not name: a file may declare some of a directory's targets while others are
managed with `targets add` or the admin API.

A dry run plans each change without storing it: an existing target is planned by the
engine's own planner (Reconciler.plan) under the settings the file declares, read
through ProposedTargets; a new one is summed up as the initial load it would start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from scimsync.configfile.declared import Declared
from scimsync.connectors import registry
from scimsync.errors import UsageError
from scimsync.protocol.resources import RESOURCE_TYPES
from scimsync.store.resources import Loads, Store
from scimsync.store.targets import Targets
from scimsync.sync import mapping, resync
from scimsync.sync.config import COMMON, load_config

PAGE = 500


@dataclass
class Change:
    """One declared target against what is stored."""

    declared: Declared
    result: str  # created, updated, unchanged
    target_id: str | None = None
    status: str | None = None  # as stored
    new_status: str | None = None  # what applying sets, if anything
    settings: list[dict[str, Any]] = field(default_factory=list)  # setting, before, after
    credentials: bool = False  # they change (never shown)
    resync: bool = False  # storing the change starts a resync (sync/resync.py)
    note: str | None = None

    @property
    def stores(self) -> bool:
        """Whether applying stores settings (not only a status)."""
        return self.result == "created" or bool(self.settings) or self.credentials

    def to_json(self) -> dict[str, Any]:
        d = self.declared
        return {"directory": d.directory, "directory_id": d.directory_id, "name": d.name,
                "kind": d.kind, "result": self.result, "target_id": self.target_id,
                "status": self.status, "new_status": self.new_status,
                "settings": self.settings, "credentials_change": self.credentials,
                "resync": self.resync, "note": self.note}


def compare(targets: Targets, declared: list[Declared]) -> list[Change]:
    """Each declared target against the stored one of the same directory and name."""
    out = []
    for d in declared:
        found = [t for t in targets.list(d.directory_id) if t["name"] == d.name]
        if not found:
            out.append(Change(d, "created", new_status="paused" if d.paused else "active"))
            continue
        t = found[0]
        change = Change(d, "unchanged", t["id"], t["status"])
        change.settings = setting_changes(d.kind, t["config"], d.config.to_json())
        change.credentials = _credentials_differ(targets, t["id"], d.secrets)
        change.resync = resync.converges(d.kind) and resync.changed(
            load_config(d.kind, t["config"]), d.config)
        change.new_status, change.note = _status(t["status"], d.paused)
        if change.stores or change.new_status:
            change.result = "updated"
        out.append(change)
    return out


def setting_changes(kind: str, before: dict[str, Any], after: dict[str, Any]
                    ) -> list[dict[str, Any]]:
    """The settings that differ, a section's keys one by one (`profile.concurrency`).

    Only the kind's settings and the common sections count: the engine keeps its
    own state (a guard hold, an approval) beside them."""
    out = []
    for key in (*registry.get(kind).settings, *COMMON):
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            for sub in sorted(set(old) | set(new)):
                if old.get(sub) != new.get(sub):
                    out.append({"setting": f"{key}.{sub}", "before": old.get(sub),
                                "after": new.get(sub)})
        elif old != new:
            out.append({"setting": key, "before": old, "after": new})
    return out


def _credentials_differ(targets: Targets, target_id: str, secrets: dict[str, Any]) -> bool:
    try:
        return bool(targets.runtime(target_id)[2] != secrets)
    except UsageError:
        return True  # stored ones that cannot be read are replaced by the file's


def _status(current: str, paused: bool | None) -> tuple[str | None, str | None]:
    """The status applying sets, and why it leaves one alone."""
    if paused is True and current != "paused":
        return "paused", None
    if paused is False and current == "paused":
        return "active", None
    if paused is False and current in ("held", "quarantined"):
        return None, (f"{current}: apply does not release it (`targets approve` or "
                      "`reject` decide a hold; a quarantine ends with the first run that "
                      "succeeds)")
    return None, None


def apply(targets: Targets, changes: list[Change]) -> list[dict[str, Any]]:
    """Store the changes: new targets, changed settings, then a status the file asks for.

    A target the file pauses is paused before its settings change, and one it resumes
    is resumed after, so the engine never runs the new settings unasked."""
    out = []
    for c in changes:
        d = c.declared
        started = False
        if c.result == "created":
            c.target_id = targets.add(d.directory_id, d.name, d.kind, d.settings,
                                      c.new_status or "active")["id"]
        elif c.result == "updated":
            assert c.target_id is not None
            if c.new_status == "paused":
                targets.set_status(c.target_id, "paused")
            if c.stores:  # a change of desired state starts a resync (sync/resync.py)
                started = bool(targets.update(c.target_id, d.settings)["resync"])
            if c.new_status == "active":
                targets.set_status(c.target_id, "active")
        out.append({"name": d.name, "directory": d.directory, "result": c.result,
                    "resync": started})
    return out


class ProposedTargets(Targets):
    """The stored targets, but one of them read with the settings a file declares."""

    def __init__(self, engine: Engine, target_id: str, declared: Declared):
        super().__init__(engine)
        self.target_id = target_id
        self.declared = declared

    def runtime(self, target_id: str) -> tuple[Any, Any, dict[str, Any]]:
        row, config, secrets = super().runtime(target_id)
        if target_id == self.target_id:
            return row, self.declared.config, self.declared.secrets
        return row, config, secrets


def plan(engine: Engine, change: Change) -> dict[str, Any] | None:
    """What the change would make the engine do, changing nothing; None if nothing."""
    from scimsync.sync.engine import Reconciler

    d = change.declared
    sink = registry.get(d.kind).sink
    if change.result == "created":
        users, groups = in_scope(engine, d)
        who = f"{_count(users, 'user')} and {_count(groups, 'group')} in scope"
        return {"initial": None if sink else {"users": users, "groups": groups},
                "in_scope": {"users": users, "groups": groups},
                "summary": f"events from now on for {who} (no initial load)" if sink
                else f"initial load of {who}" + _held(change)}
    if not change.stores or change.target_id is None:
        return None
    if sink:
        return {"summary": "events from now on follow the new settings (nothing is resent)"}
    rec = Reconciler(engine)
    rec.targets = ProposedTargets(engine, change.target_id, d)
    try:
        result = rec.plan(change.target_id)
    except Exception as exc:  # an application that cannot be reached: the plan says so
        return {"actions": [], "error": f"{type(exc).__name__}: {exc}",
                "summary": "no plan: the application could not be read"}
    counts: dict[str, int] = {}
    for a in result.actions:
        counts[a["action"]] = counts.get(a["action"], 0) + 1
    summary = ", ".join(_count(n, k) for k, n in sorted(counts.items())) or \
        "nothing to change"
    if change.resync:
        summary += ", by a resync"
    return {"actions": result.actions, "error": result.error,
            "summary": summary + _held(change)}


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _held(change: Change) -> str:
    return " once resumed (the file pauses it)" if change.new_status == "paused" else ""


def in_scope(engine: Engine, d: Declared) -> tuple[int, int]:
    """How many of the directory's users and groups the declared target would receive."""
    store = Store(engine, group_commit=False)
    counted = []
    for rtype, test in (("User", mapping.user_in_scope), ("Group", mapping.group_in_scope)):
        n, after = 0, ""
        while True:
            _total, page = store.search(d.directory_id, RESOURCE_TYPES[rtype], None, None,
                                        False, 0, PAGE, Loads(groups=rtype == "User"),
                                        after_id=after)
            n += sum(1 for rec in page if test(d.config, rec))
            if len(page) < PAGE:
                break
            after = page[-1].id
        counted.append(n)
    return counted[0], counted[1]
