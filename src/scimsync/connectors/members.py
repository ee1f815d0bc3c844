"""Group members as an app takes and names them (docs/apps.md), and PATCH operations.

RFC 7643 §4.2 makes a member's `value` the member's `id`. Canaille stores and answers
it as the member's `userName` and matches a removal filter against that name (one
naming the id is answered 200 and removes nothing). For such an app the connector
keeps the names of the users it sees, turns the names in every group it reads back
into ids, so that verification and drift compare ids with ids, and names a member by
its userName where a filter must find it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from scimsync.connectors.contract import ChangeSet

Doc = dict[str, Any]
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
# A name no user seen has is looked for again (a listing of the app's users) at most
# this often: a group naming a user the hub does not know costs one listing, not one
# per read.
RELIST_SECONDS = 60.0


class MemberNames:
    """userName <-> id of the users an app holds, as far as the connector has seen them.

    `relist` reads every user of the app (each passes through `seen`); `lookup` reads
    one by id. Both go through the connector, so every check of its requests holds."""

    def __init__(self, relist: Callable[[], None],
                 lookup: Callable[[str], Doc | None]) -> None:
        self.ids: dict[str, str] = {}  # lower-cased userName -> id
        self.names: dict[str, str] = {}  # id -> userName
        self.relist, self.lookup = relist, lookup
        self.listed = float("-inf")  # when the last complete listing ended
        self.lock = threading.Lock()  # the two maps
        self.relisting = threading.Lock()

    def seen(self, doc: Any) -> None:
        """Remember a user's name and id from a document the app answered."""
        if isinstance(doc, dict) and isinstance(doc.get("userName"), str) and "id" in doc:
            rid = str(doc["id"])
            with self.lock:
                self.ids[doc["userName"].lower()] = rid
                self.names[rid] = doc["userName"]

    def as_ids(self, group: Doc) -> Doc:
        """`group` with each member named by id; a name no user of the app has is kept
        as it is (drift and verification then see a member the hub does not know)."""
        members = group.get("members")
        if not isinstance(members, list):
            return group
        values = [str(m["value"]) for m in members if isinstance(m, dict) and "value" in m]
        if any(v.lower() not in self.ids for v in values):
            self._relist()
        out = []
        for m in members:
            if isinstance(m, dict) and "value" in m:
                found = self.ids.get(str(m["value"]).lower())
                m = {**m, "value": found} if found is not None else m
            out.append(m)
        return {**group, "members": out}

    def as_names(self, ids: Iterable[str]) -> list[str]:
        """The userName of each member id, looked up where not yet seen; an id the app
        does not know stays (a filter on it matches nothing, as it should)."""
        out = []
        for rid in ids:
            if rid not in self.names:
                self.seen(self.lookup(rid))
            out.append(self.names.get(rid, rid))
        return out

    def _relist(self) -> None:
        """One listing at a time: a caller that comes while one is under way waits
        for it, then maps with every name it read (not with the part read so far)."""
        with self.relisting:
            if time.monotonic() - self.listed < RELIST_SECONDS:
                return
            self.relist()
            self.listed = time.monotonic()


def patch_operations(changes: ChangeSet,
                     members: Callable[[list[str]], list[Doc]] | None = None,
                     gone: list[str] | None = None, by_value: bool = False,
                     by_sub: bool = False, chunk: int | None = None) -> list[Doc]:
    """A change set as SCIM PATCH operations (RFC 7644 §3.5.2): replace or remove each
    changed attribute (a complex one, with `by_sub`, as one replace per sub-attribute
    it holds: `name.givenName`; one it no longer holds is left, as an app that wants
    this refuses removing one), add new members, then remove each gone member (named
    as in `gone`, the app's names for the change set's removed members) by a value
    filter, or all in one operation's value where the app takes removals so
    (`by_value`), `chunk` members to an operation: a request's operations are bounded
    by max_members_per_patch, so their values are too.

    Members are added before others are removed, so that a group whose members are
    all replaced is never empty in between (Canaille fails on a group left empty)."""
    ops: list[Doc] = []
    for k, v in sorted(changes.set.items()):
        if by_sub and isinstance(v, dict) and not k.lower().startswith("urn:"):
            ops += [{"op": "replace", "path": f"{k}.{sub}", "value": value}
                    for sub, value in sorted(v.items())]
        else:
            ops.append({"op": "replace", "path": k, "value": v})
    ops += [{"op": "remove", "path": k} for k in sorted(changes.clear)]
    if changes.add_members:
        added = sorted(changes.add_members)
        ops.append({"op": "add", "path": "members",
                    "value": members(added) if members else [{"value": m} for m in added]})
    removed = sorted(changes.remove_members if gone is None else gone)
    if by_value and removed:
        size = chunk or len(removed)  # members per operation, as a request's operations
        ops += [{"op": "remove", "path": "members",
                 "value": [{"value": m} for m in removed[i:i + size]]}
                for i in range(0, len(removed), size)]
    elif not by_value:
        ops += [{"op": "remove", "path": f"members[value eq {quoted(m)}]"}
                for m in removed]
    return ops


def without_members(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if k != "members"}


def values(members: Any) -> set[str]:
    """The member ids of a `members` list."""
    if not isinstance(members, list):
        return set()
    return {str(m["value"]) for m in members if isinstance(m, dict) and "value" in m}


def quoted(value: str) -> str:
    """A filter's string literal, quotes included (RFC 7644 §3.4.2.2: a JSON string)."""
    return json.dumps(value, ensure_ascii=False)
