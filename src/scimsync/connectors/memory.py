"""The in-memory reference connector: the contract at its plainest.

It holds objects in a process-wide store named by the target's `store` setting, so
that the engine, drift and the contract suite can run against a system whose every
state is visible. It behaves like a careful application: userName (users),
displayName (groups) and name (agents) are unique without regard to case, a change
set is applied exactly, and unknown ids are RemoteNotFound. `fail` injects faults
for tests: a mapping from an operation (`create`, `update`, ...) to an exception
raised on the next calls.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scimsync.connectors.contract import (
    Capabilities,
    ChangeSet,
    ConnectorError,
    Doc,
    Rejected,
    Remote,
    RemoteConflict,
    RemoteNotFound,
)
from scimsync.connectors.registry import ConnectorKind, Secrets, register
from scimsync.errors import UsageError
from scimsync.validation import reject_unknown

if TYPE_CHECKING:
    from scimsync.sync.config import Profile

UNIQUE = {"User": "userName", "Group": "displayName", "Agent": "name",
          "AgenticApplication": "name"}
SETTINGS = ("store", "kinds", "update", "find")


@dataclass
class MemoryStore:
    """Objects by kind and id, with a lock: several requests may be in flight."""

    objects: dict[str, dict[str, Doc]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (op, kind, id)
    fail: dict[str, list[ConnectorError]] = field(default_factory=dict)

    def of(self, kind: str) -> dict[str, Doc]:
        return self.objects.setdefault(kind, {})


_STORES: dict[str, MemoryStore] = {}
_STORES_LOCK = threading.Lock()


def store(name: str) -> MemoryStore:
    """The process-wide store called `name` (created empty on first use)."""
    with _STORES_LOCK:
        return _STORES.setdefault(name, MemoryStore())


def drop(name: str) -> None:
    """Forget a store (tests start from an empty one)."""
    with _STORES_LOCK:
        _STORES.pop(name, None)


class MemoryConnector:
    """A Connector over a MemoryStore."""

    def __init__(self, data: MemoryStore, capabilities: Capabilities):
        self.data = data
        self.caps = capabilities

    def capabilities(self) -> Capabilities:
        return self.caps

    def _check(self, op: str, kind: str, rid: str = "") -> None:
        self.data.requests.append((op, kind, rid))
        queued = self.data.fail.get(op)
        if queued:
            raise queued.pop(0)
        if kind not in self.caps.kinds:
            raise Rejected(f"this store holds no {kind}", status=400)

    def _members_exist(self, attrs: Doc) -> None:
        # Like a careful application: a membership must name an object that exists, so
        # the engine's ordering (users before the groups that list them) is checked.
        held = {i for objects in self.data.objects.values() for i in objects}
        missing = [m.get("value") for m in attrs.get("members") or []
                   if m.get("value") not in held]
        if missing:
            raise Rejected(f"members do not exist: {', '.join(map(str, missing[:5]))}",
                           status=400)

    def _unique(self, kind: str, attrs: Doc, rid: str | None) -> None:
        self._members_exist(attrs)
        key = UNIQUE[kind]
        value = attrs.get(key)
        if not isinstance(value, str) or not value:
            raise Rejected(f"{kind} needs {key}", status=400)
        for other_id, doc in self.data.of(kind).items():
            if other_id != rid and str(doc.get(key, "")).lower() == value.lower():
                raise RemoteConflict(f"{key} {value!r} exists", status=409)

    def create(self, kind: str, attrs: Doc) -> Remote:
        with self.data.lock:
            self._check("create", kind)
            self._unique(kind, attrs, None)
            rid = f"m{next(self.data.ids)}"
            doc = {**copy.deepcopy(attrs), "id": rid}
            self.data.of(kind)[rid] = doc
            return Remote(rid, copy.deepcopy(doc))

    def replace(self, kind: str, remote_id: str, attrs: Doc) -> Remote:
        with self.data.lock:
            self._check("replace", kind, remote_id)
            if remote_id not in self.data.of(kind):
                raise RemoteNotFound(f"no {kind} {remote_id}", status=404)
            self._unique(kind, attrs, remote_id)
            doc = {**copy.deepcopy(attrs), "id": remote_id}
            self.data.of(kind)[remote_id] = doc
            return Remote(remote_id, copy.deepcopy(doc))

    def update(self, kind: str, remote_id: str, changes: ChangeSet) -> Remote:
        with self.data.lock:
            self._check("update", kind, remote_id)
            doc = self.data.of(kind).get(remote_id)
            if doc is None:
                raise RemoteNotFound(f"no {kind} {remote_id}", status=404)
            after = copy.deepcopy(doc)
            after.update(copy.deepcopy(changes.set))
            for key in changes.clear:
                after.pop(key, None)
            if changes.add_members or changes.remove_members:
                gone = set(changes.remove_members)
                members = [m for m in after.get("members") or [] if m.get("value") not in gone]
                have = {m.get("value") for m in members}
                members += [{"value": v} for v in changes.add_members if v not in have]
                after["members"] = members
            self._unique(kind, after, remote_id)
            self.data.of(kind)[remote_id] = after
            return Remote(remote_id, copy.deepcopy(after))

    def delete(self, kind: str, remote_id: str) -> None:
        with self.data.lock:
            self._check("delete", kind, remote_id)
            self.data.of(kind).pop(remote_id, None)

    def get(self, kind: str, remote_id: str) -> Remote | None:
        with self.data.lock:
            self._check("get", kind, remote_id)
            doc = self.data.of(kind).get(remote_id)
            return None if doc is None else Remote(remote_id, copy.deepcopy(doc))

    def find(self, kind: str, attribute: str, values: list[str]) -> list[Remote]:
        if not self.caps.find:
            raise Rejected("this store cannot be searched", status=400)
        with self.data.lock:
            self._check("find", kind)
            # externalId is case-exact (RFC 7643 §3.1); names and emails are not.
            exact = attribute == "externalId"
            wanted = set(values) if exact else {v.lower() for v in values}
            out = []
            for rid, doc in self.data.of(kind).items():
                if attribute == "email":
                    candidates = [e.get("value") for e in doc.get("emails") or []]
                else:
                    candidates = [doc.get(attribute)]
                if any(isinstance(c, str) and (c if exact else c.lower()) in wanted
                       for c in candidates):
                    out.append(Remote(rid, copy.deepcopy(doc)))
            return out

    def list(self, kind: str) -> Iterator[Remote]:
        with self.data.lock:
            self._check("list", kind)
            docs = [Remote(rid, copy.deepcopy(doc)) for rid, doc in self.data.of(kind).items()]
        yield from docs

    def close(self) -> None:
        return None


def _parse(raw: dict[str, Any]) -> tuple[dict[str, Any], Secrets]:
    reject_unknown("memory target", raw, SETTINGS)
    name = raw.get("store")
    if not isinstance(name, str) or not name:
        raise UsageError("a memory target needs a store name")
    kinds = raw.get("kinds", ["User", "Group"])
    if not isinstance(kinds, list) or not set(kinds) <= set(UNIQUE):
        raise UsageError(f"memory kinds are some of {', '.join(UNIQUE)}")
    out = {"store": name, "kinds": list(kinds), "update": bool(raw.get("update", True)),
           "find": bool(raw.get("find", True))}
    return out, {}


def _open(settings: dict[str, Any], profile: Profile, secrets: Secrets) -> MemoryConnector:
    caps = Capabilities(kinds=frozenset(settings["kinds"]), update=settings["update"],
                        find=settings["find"],
                        max_members_per_update=profile.max_members_per_patch)
    return MemoryConnector(store(settings["store"]), caps)


KIND = register(ConnectorKind("memory", _parse, _open, settings=SETTINGS,
                              system=lambda settings: str(settings["store"])))
