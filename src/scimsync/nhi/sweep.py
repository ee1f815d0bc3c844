"""The ownership policy and expiry, applied to every non-human identity.

A sweep looks at each Agent and each non-human User of a directory:

- one whose `validUntil` has passed is suspended (`nhi.expired`, `nhi.suspended`);
- one whose owners have all left (deactivated, deleted, or a Group with no active
  member left) is announced (`nhi.owner_departed`), then handed to the departed
  owner's manager or to the fallback group as the policy says (`nhi.reassigned`), or,
  failing that, suspended once the grace period has passed (`nhi.suspended`);
- one that never had an owner is announced once (`nhi.unowned`).

Suspending an identity is a change like any other: it is journaled (`deactivated`),
provisioned to the targets that hold it, and its credentials get revocation requests
(scimsync.store.nhi). Every notice is journaled against the identity, in the same
transaction as the change it explains.

Each identity is first judged on a plain read; only one that needs something done is
judged again inside a write transaction that locks its row, so two workers sweeping
at once act once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update

from scimsync.errors import NotFound
from scimsync.nhi.policy import Policy, get_policy
from scimsync.protocol.agents import AGENT, NHI_USER, Facets, facets
from scimsync.protocol.filter import parse_filter
from scimsync.protocol.record import Record
from scimsync.protocol.resources import USER
from scimsync.protocol.schema import ENTERPRISE_USER, ResourceType
from scimsync.protocol.timefmt import format_time, parse_time
from scimsync.store.journal import Entry, append
from scimsync.store.lean import LeanConnection, json_value
from scimsync.store.nhi import POLICY_ACTOR, Conn, owner_status
from scimsync.store.resources import Loads, Store
from scimsync.store.tables import directories, nhi_state

log = logging.getLogger("scimsync.nhi")
Doc = dict[str, Any]
S = nhi_state.c
PAGE = 500
STATE = select(S.managers, S.orphaned_since, S.departed, S.notified).where(
    S.resource_id == bindparam("rid"))
UPDATE_STATE = update(nhi_state).where(S.resource_id == bindparam("rid"))
INSERT_STATE = insert(nhi_state)


@dataclass
class State:
    """What the policy noticed about one identity (the nhi_state row)."""

    managers: dict[str, str] = field(default_factory=dict)  # active owner -> manager
    orphaned_since: str | None = None
    departed: list[str] = field(default_factory=list)
    # Notices sent once (notice -> when), and the last departure (kept after a
    # reassignment, for the leavers report): owner_departed, departed_owners.
    notified: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """What to do for one identity: notices to journal, a patch, the state to keep."""

    notices: list[tuple[str, Doc]] = field(default_factory=list)
    patch: list[Doc] = field(default_factory=list)
    actor: str = POLICY_ACTOR
    state: State = field(default_factory=State)
    changed_state: bool = False

    @property
    def acts(self) -> bool:
        return bool(self.notices or self.patch or self.changed_state)


def _manager(doc: Doc | None) -> str | None:
    ext = (doc or {}).get(ENTERPRISE_USER)
    manager = ext.get("manager") if isinstance(ext, dict) else None
    value = manager.get("value") if isinstance(manager, dict) else None
    return value if isinstance(value, str) else None


def decide(f: Facets, status: dict[str, Doc], state: State, policy: Policy,
           at: datetime, lookup: Any) -> Plan:
    """The policy for one identity, given its owners' status now; pure but for
    `lookup(ids)`, which returns the status of other resources (managers, the
    fallback group)."""
    plan = Plan(state=State(dict(state.managers), state.orphaned_since,
                            list(state.departed), dict(state.notified)))
    new = plan.state
    stamp = format_time(at)
    if not f.active:
        if state.orphaned_since or state.departed:
            new.orphaned_since, new.departed = None, []
            plan.changed_state = True
        return plan
    if f.valid_until is not None and parse_time(f.valid_until) <= at:
        plan.notices.append(("expired", {"validUntil": f.valid_until}))
        plan.patch = [{"op": "replace", "path": "active", "value": False}]
        plan.actor = f"{POLICY_ACTOR}:expired"
        plan.notices.append(("suspended", {"reason": "expired"}))
        return plan
    owners = [o["value"] for o in f.owners if isinstance(o.get("value"), str)]
    active = [o for o in owners if status.get(o, {}).get("active")]
    managers = {o: m for o in active if status[o]["type"] == "User"
                and (m := _manager(status[o].get("doc"))) is not None}
    if active:
        if managers != state.managers or state.orphaned_since or state.departed:
            new.managers, new.orphaned_since, new.departed = managers, None, []
            new.notified.pop("unowned", None)
            plan.changed_state = True
        return plan
    if not owners:
        if "unowned" not in state.notified:
            plan.notices.append(("unowned", {"policy": policy.unowned}))
            new.notified["unowned"] = stamp
            plan.changed_state = True
        return plan
    # Every owner has left.
    if state.orphaned_since is None:
        new.orphaned_since = stamp
        new.departed = owners
        new.notified["owner_departed"], new.notified["departed_owners"] = stamp, owners
        plan.changed_state = True
        plan.notices.append(("owner_departed", {"owners": [
            {"value": o, "status": "deactivated" if o in status else "deleted"}
            for o in owners]}))
    heir: tuple[str, str, str] | None = None
    if policy.on_owner_departure == "manager":
        for o in owners:
            manager = _manager(status.get(o, {}).get("doc")) or state.managers.get(o)
            if manager and manager not in owners:
                found = lookup([manager]).get(manager)
                if found and found["type"] == "User" and found["active"]:
                    heir = (manager, "User", "manager")
                    break
    if heir is None and policy.on_owner_departure in ("manager", "group") \
            and policy.fallback_group:
        found = lookup([policy.fallback_group]).get(policy.fallback_group)
        if found and found["type"] == "Group":
            heir = (policy.fallback_group, "Group", "fallback_group")
    if heir is not None:
        value, kind, why = heir
        plan.patch = [{"op": "replace", "path": f.owners_path,
                       "value": [{"value": value, "type": kind}]}]
        plan.notices.append(("reassigned", {"from": owners, "to": {"value": value,
                                                                  "type": kind},
                                            "reason": why}))
        new.orphaned_since, new.departed, new.managers = None, [], {}
        plan.changed_state = True
        return plan
    since = parse_time(new.orphaned_since or stamp)
    if at - since >= timedelta(seconds=policy.grace):
        plan.patch = [{"op": "replace", "path": "active", "value": False}]
        plan.actor = f"{POLICY_ACTOR}:owner_departed"
        plan.notices.append(("suspended", {"reason": "owner_departed",
                                           "orphaned_since": new.orphaned_since}))
    return plan


def identities(store: Store, did: str) -> Iterator[tuple[ResourceType, Record]]:
    """Every Agent and every non-human User of a directory, in id order, read a page
    at a time."""
    for rtype, flt in ((AGENT, None), (USER, parse_filter(f"{NHI_USER}:kind pr"))):
        after = ""
        while True:
            _, page = store.search(did, rtype, flt, None, False, 0, PAGE,
                                   Loads(False, False), after_id=after)
            for rec in page:
                yield rtype, rec
            if len(page) < PAGE:
                break
            after = page[-1].id


class Sweeper:
    """Applies the ownership policy and expiry to the non-human identities."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.store = Store(engine, group_commit=False)

    def run(self, directory_id: str | None = None, at: datetime | None = None) -> Doc:
        """One sweep of one directory, or of all; returns what it did."""
        at = at or datetime.now(UTC)
        with self.engine.connect() as conn:
            ids = [directory_id] if directory_id else list(conn.execute(
                select(directories.c.id)).scalars())
        totals: Doc = {"checked": 0, "notices": {}}
        for did in ids:
            policy = get_policy(self.engine, did)
            for rtype, rec in identities(self.store, did):
                rid = rec.id
                totals["checked"] += 1
                for op in self._one(did, policy, rtype, rid, at):
                    totals["notices"][op] = totals["notices"].get(op, 0) + 1
        return totals

    def _judge(self, conn: Conn, did: str, policy: Policy, rtype: ResourceType,
               doc: Doc, state: State, at: datetime) -> Plan | None:
        f = facets(rtype.name, doc)
        if f is None:
            return None
        status = owner_status(conn, did, f.owners)
        return decide(f, status, state, policy, at,
                      lambda ids: owner_status(conn, did, [{"value": i} for i in ids]))

    def _one(self, did: str, policy: Policy, rtype: ResourceType, rid: str,
             at: datetime) -> list[str]:
        try:
            rec = self.store.get(did, rtype, rid, Loads(False, False))
        except NotFound:
            return []
        with self.engine.connect() as conn:
            plan = self._judge(conn, did, policy, rtype, rec.doc, _load(conn, rid), at)
        if plan is None or not plan.acts:
            return []
        with self.store.write() as wconn:
            try:
                row = self.store._row(wconn, did, rtype, rid, lock=True)
            except NotFound:
                return []
            plan = self._judge(wconn, did, policy, rtype, row.doc, _load(wconn, rid), at)
            if plan is None or not plan.acts:
                return []
            version = row.version
            before = [op for op, _ in plan.notices if op != "suspended"]
            append(wconn, did, [Entry(rtype.name, rid, op, version, [], None, detail)
                                for op, detail in plan.notices if op in before], plan.actor)
            if plan.patch:
                version = self.store.patch(did, rtype, rid, plan.patch, None, plan.actor,
                                           wconn, Loads(False, False)).version
            after = [(op, d) for op, d in plan.notices if op == "suspended"]
            if after:
                append(wconn, did, [Entry(rtype.name, rid, op, version, [], None, d)
                                    for op, d in after], plan.actor)
            _save(wconn, did, rtype.name, rid, plan.state, at)
        for op, detail in plan.notices:
            log.info("nhi %s %s in directory %s: %s", rtype.name, rid, did,
                     f"{op} {detail}")
        return [op for op, _ in plan.notices]


def _load(conn: Conn, rid: str) -> State:
    row = conn.execute(STATE, {"rid": rid}).first()
    if row is None:
        return State()
    managers, since, departed, notified = (json_value(row[0]), row[1], json_value(row[2]),
                                           json_value(row[3]))
    return State(managers or {}, since, departed or [], notified or {})


def _save(conn: LeanConnection, did: str, rtype: str, rid: str, state: State,
          at: datetime) -> None:
    values = {"managers": state.managers, "orphaned_since": state.orphaned_since,
              "departed": state.departed, "notified": state.notified,
              "updated": format_time(at)}
    done = conn.execute(UPDATE_STATE, {"rid": rid, **values})
    if not done.rowcount:
        conn.execute(INSERT_STATE, {"resource_id": rid, "directory_id": did,
                                    "resource_type": rtype, **values})
