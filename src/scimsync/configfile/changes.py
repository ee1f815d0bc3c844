"""What applying a file changes, and applying it.

Each declared target is `created`, `updated` (the settings that differ, whether its
credentials change, its status) or `unchanged`. `apply -f` never removes a target the
file does not name: a file may declare some of a directory's targets while others are
managed with `targets add` or the admin API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scimsync.configfile.declared import Declared
from scimsync.connectors import registry
from scimsync.errors import UsageError
from scimsync.store.targets import Targets
from scimsync.sync.config import COMMON


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
                "note": self.note}


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
        return None, (f"{current}: apply does not release it (`targets approve` a hold; "
                      "a quarantine ends with the first run that succeeds)")
    return None, None


def apply(targets: Targets, changes: list[Change]) -> list[dict[str, Any]]:
    """Store the changes: new targets, changed settings, then a status the file asks for.

    A target the file pauses is paused before its settings change, and one it resumes
    is resumed after, so the engine never runs the new settings unasked."""
    out = []
    for c in changes:
        d = c.declared
        resync = False
        if c.result == "created":
            c.target_id = targets.add(d.directory_id, d.name, d.kind, d.settings,
                                      c.new_status or "active")["id"]
        elif c.result == "updated":
            assert c.target_id is not None
            if c.new_status == "paused":
                targets.set_status(c.target_id, "paused")
            if c.stores:  # a change of desired state starts a resync (sync/resync.py)
                resync = bool(targets.update(c.target_id, d.settings)["resync"])
            if c.new_status == "active":
                targets.set_status(c.target_id, "active")
        out.append({"name": d.name, "directory": d.directory, "result": c.result,
                    "resync": resync})
    return out
