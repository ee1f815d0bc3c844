"""The steps of a run: bring each resource to its desired state, in an order that
keeps the invariants at any concurrency (docs/architecture.md: Lanes).

Users that should exist come before the groups that list them; with deactivation,
leavers come first; with deletion, a leaver's memberships are removed before the
user is deleted; agents after people and groups, agentic applications after the
agents they list. An unlinked object is first matched to an existing remote one.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import orjson
from sqlalchemy import select

from scimsync.connectors.contract import (
    ChangeSet,
    Rejected,
    Remote,
    RemoteConflict,
    RemoteNotFound,
)
from scimsync.protocol.filter import parse_filter
from scimsync.protocol.record import Record
from scimsync.protocol.resources import USER
from scimsync.protocol.schema import ENTERPRISE_USER
from scimsync.store.resources import Loads
from scimsync.store.tables import links
from scimsync.sync import mapping
from scimsync.sync.context import MEMBER_CHUNK
from scimsync.sync.events import (
    HUB_RESOURCE,
    announce,
    build_event,
    resource_doc,
)
from scimsync.sync.holdback import Holdback
from scimsync.sync.intents import resolve, sends_deprovision, sends_put, sends_sync
from scimsync.sync.lookups import Lookups
from scimsync.sync.plan import Action, candidates_for, decide
from scimsync.sync.stepping import Stepping
from scimsync.sync.verify_users import VerifyingAttributes
from scimsync.sync.work import Link, Work

L = links.c
Doc = dict[str, Any]


class Run(Holdback, Lookups, Stepping, VerifyingAttributes):
    """A run: the steps, on top of the run's state, its lookups, its part in the guard
    and the checks of what the application kept."""

    def reconcile(self, items: list[Work]) -> None:
        """Bring these resources to their desired state, in an order that keeps the
        invariants: with deactivation, leavers go first (nothing refers to an inactive
        account); users that should exist before the groups that list them; with
        deletion, a leaver's memberships are removed before the user is deleted.
        Within each step up to profile.concurrency requests are in flight."""
        users = [w for w in items if w.resource_type == "User"]
        groups = {w.resource_id: w for w in items if w.resource_type == "Group"}
        leaving: list[tuple[Work, Record | None]] = []
        self.prefetch_holds([w.resource_id for w in users])
        resolve(self, items)  # links that may be stale are compared with the app first
        self.prefetch_records(users)
        if len(users) > 1:
            self.prefetch_matches(users)
        first_wave = True
        queue = list(users)
        while queue:
            wave, queue = queue, []
            resolve(self, wave)
            upserts: list[tuple[Work, Record, Doc, bool]] = []
            for w in wave:
                self.desire(w, queue, upserts, leaving)
            if first_wave:
                first_wave = False
                for w, rec in leaving:
                    if self.remote_id(w.resource_id) is not None and rec is not None:
                        self.add_groups_of(rec, groups, w)
                self.check_guard(leaving)
                if self.config.profile.deprovision == "deactivate":
                    self.each([w for w, _ in leaving], self.deprovision,
                              sends_deprovision(self))
                    leaving = []
            bodies = {w.resource_id: d for w, _, d, _ in upserts}
            self.each([w for w, _, _, _ in upserts],
                      lambda w, b=bodies: self.put_user(w, b[w.resource_id]),
                      sends_put(self, bodies))
            for w, rec, _, linked_before in upserts:
                if linked_before or self.remote_id(w.resource_id) is None:
                    continue
                if self.incremental:
                    # Its groups can now list it (a full pass syncs every group after
                    # all users: doing it here too would rewrite each group per batch).
                    self.add_groups_of(rec, groups, w)
                # Users who referred to it (their manager) can now resolve the reference;
                # a user is newly linked at most once per run, so this terminates.
                queue += self._waiting.pop(w.resource_id, [])
                if self.incremental:
                    queue += [Work("User", rid, w.seq, w.changed_at, "mover")
                              for rid in self.reports_of(w.resource_id)]
        for w, rec in leaving:
            if self.remote_id(w.resource_id) is not None and rec is not None:
                self.add_groups_of(rec, groups, w)
        self.check_guard(leaving)
        synced = self.unheld(list(groups.values()))  # groups that leave may be held
        if self.config.profile.groups:
            resolve(self, synced)
            self.each(synced, self.sync_group, sends_sync)
        self.each([w for w, _ in leaving], self.deprovision, sends_deprovision(self))
        # After people and groups (their owners are linked by now); agents before the
        # applications that list them.
        nhis = 0
        for kind, takes in (("Agent", self.takes_agents),
                            ("AgenticApplication", self.takes_applications)):
            batch = [w for w in items if w.resource_type == kind]
            going = self.unheld(batch)
            if takes:
                self.each(going, self.sync_nhi, sends_sync)
                nhis += len(batch)
        self.settle_holds()
        self.count(processed=len(users) + len(groups) + nhis)

    def desire(self, w: Work, queue: list[Work], upserts: list[tuple[Work, Record, Doc, bool]],
               leaving: list[tuple[Work, Record | None]]) -> None:
        """Sort one user into those to create or update and those that should go."""
        rec = self.load(w)
        if rec is None and w.lifecycle == "mover":
            # A nested group joined or left a group: its users are the work.
            nested = self.load(Work("Group", w.resource_id))
            if nested is not None:
                queue += [Work("User", u, w.seq, w.changed_at, "mover")
                          for u in self.member_users(nested)]
                return
        unresolved: list[str] = []

        def remote(hub_id: str) -> str | None:
            found = self.remote_id(hub_id)
            if found is None:
                unresolved.append(hub_id)
            return found

        desired = None if rec is None else mapping.desired_user(self.config, rec, remote)
        if desired is None or rec is None:
            if not self.held_back(w, rec):
                leaving.append((w, rec))
            return
        for hub_id in unresolved:  # e.g. a manager not provisioned yet
            self._waiting.setdefault(hub_id, []).append(w)
        upserts.append((w, rec, desired, self.remote_id(w.resource_id) is not None))

    def sync_nhi(self, work: Work) -> None:
        """Create or update an Agent or an AgenticApplication (a suspended one is sent
        `active: false`); delete it when it is gone from the directory."""
        rec = self.load(work)
        if rec is not None:
            self.put(work, work.resource_type, mapping.desired_nhi(rec, self.remote_id))
            return
        link = self.link(work.resource_id)
        if link is None or not link.remote_id:
            return
        if not self.dry_run:
            with contextlib.suppress(RemoteNotFound):  # gone already: as wanted
                self.connector.delete(work.resource_type, link.remote_id)
            self.drop_link(work.resource_id)
        self.count(applied=1)
        self.record(work, "delete")

    def deliver(self, entry: dict[str, Any]) -> None:
        """Send one journal entry's event if its resource is in scope (webhooks)."""
        work = Work(entry["resource_type"], entry["resource_id"], entry["seq"], entry["at"],
                    entry["lifecycle"])
        if work.resource_type == HUB_RESOURCE:
            self.result.processed += 1
            self.send(work, build_event(self.r.store, entry, self.row.id))
            return
        rec = self.load(work)
        if rec is None:
            # Gone since: in scope if delivered before, or if the target takes everything.
            scope = self.config.scope
            everything = not scope.groups and not scope.filter and (
                work.resource_type == "User" or self.config.profile.groups)
            in_scope = everything or self.link(work.resource_id) is not None
        elif rec.type == "User":
            in_scope = mapping.user_in_scope(self.config, rec)
        elif rec.type == "Group":
            in_scope = mapping.group_in_scope(self.config, rec)
        else:
            in_scope = True  # agents and agentic applications: every webhook hears of them
        self.result.processed += 1
        if not in_scope:
            return
        # The record is already loaded: build_event must not read it again.
        event = build_event(self.r.store, entry, self.row.id,
                            resource_doc(rec, self.row.directory_id, work.resource_id))
        if not self.send(work, event):
            return
        if rec is None:
            self.drop_link(work.resource_id)
        elif self.link(work.resource_id) is None:
            self.save_link(Link(work.resource_id, work.resource_type, None, None, None,
                                "provisioned"))
        self.count(applied=1)
        self.record(work, event["type"])
        self.progress()

    def send(self, work: Work, event: Doc) -> bool:
        """Sign and send one event; False if it was not sent (dry run, refused)."""
        if self.dry_run:
            self.record(work, event["type"])
            return False
        assert self.sender is not None
        try:
            self.sender.send(event)
        except Rejected as exc:
            self.dead_letter(work, event["type"], exc)
            return False
        if work.resource_type == HUB_RESOURCE:
            self.count(applied=1)
            self.record(work, event["type"])
        return True

    def reports_of(self, user_id: str) -> list[str]:
        """Users whose enterprise manager is this user."""
        flt = parse_filter(f"{ENTERPRISE_USER}:manager.value eq {json.dumps(user_id)}")
        _, found = self.r.store.search(self.row.directory_id, USER, flt, None, False, 0,
                                       1000, Loads(members=False, groups=False))
        return [r.id for r in found]

    def add_groups_of(self, rec: Record, groups: dict[str, Work], w: Work) -> None:
        for g in rec.groups or []:
            groups.setdefault(g.value, Work("Group", g.value, w.seq, w.changed_at, "mover"))

    def put_user(self, work: Work, body: Doc) -> None:
        self.put(work, "User", body)

    def put(self, work: Work, kind: str, body: Doc) -> Remote | None:
        """Plan this object (sync.plan) and apply exactly that plan."""
        h = mapping.digest(body)
        link = self.link(work.resource_id)
        found: list[Remote] = []
        if link is None or not link.remote_id:
            found = self.candidates(kind, work.resource_id, body)
        action = decide(kind, work.resource_id, body, link, found,
                        self.claims(work.resource_id, found), self.rules, h)
        if action is None:
            return None
        if self.dry_run:
            self.planned(work, action)
            return None
        return self.apply(work, action, h)

    def apply(self, work: Work, action: Action, digest: str) -> Remote | None:
        """Execute one planned action; a create that meets an existing object (409) is
        planned again with that object in view."""
        kind, body = action.kind, action.body or {}
        if action.verb == "conflict":
            self.conflict(work, action)
            return None
        verb, answer = action.verb, None
        if verb == "create":
            try:
                remote = self.connector.create(kind, self.outgoing(kind, verb, body))
            except RemoteConflict as exc:
                found = candidates_for(kind, work.resource_id, body,
                                       self.conflict_lookup(kind, work.resource_id, body),
                                       self.rules)
                again = decide(kind, work.resource_id, body, None, found,
                               self.claims(work.resource_id, found), self.rules, digest)
                if again is None or again.verb == "create":
                    raise exc
                return self.apply(work, again, digest)
        elif verb == "adopt":
            assert action.remote_id is not None
            remote = self.connector.replace(kind, action.remote_id,
                                            self.outgoing(kind, verb, body))
            announce(self.r.engine, self.row.directory_id, self.row.id, "adopted", {
                "target": self.row.name, "resource_type": kind,
                "resource_id": work.resource_id, "remote_id": action.remote_id,
                "reason": action.reason})
        else:
            assert action.remote_id is not None
            try:
                if verb == "update" and action.changes is not None:
                    answered = self.connector.update(kind, action.remote_id, action.changes)
                    answer = None if answered is None else answered.doc
                    remote = Remote(action.remote_id, body)
                else:
                    remote = self.connector.replace(kind, action.remote_id,
                                                    self.outgoing(kind, verb, body))
            except RemoteNotFound:
                verb = "recreate"
                remote = self.connector.create(kind, self.outgoing(kind, verb, body))
        if verb != "update":
            answer = remote.doc
        held = self.check_members(work, verb, remote.id, body, answer, action.changes)
        if held is None:
            held = self.check_attributes(work, verb, remote.id, body, answer, action.changes)
        if held is not None:  # the app kept less than it was sent: no silent success
            self.save_link(Link(work.resource_id, kind, remote.id, mapping.digest(held), held,
                                "provisioned"))
            self.record(work, verb, "unverified", detail=_detail(action))
            return remote
        self.save_link(Link(work.resource_id, kind, remote.id, digest, body, "provisioned"))
        self.count(applied=1)
        self.record(work, verb, detail=_detail(action))
        return remote

    def conflict(self, work: Work, action: Action) -> None:
        """A remote object that may not be adopted: nothing is overwritten; a person
        decides (the dead letter names the object and why)."""
        exc = Rejected(f"conflict: {action.reason}", status=409,
                       request={"action": "adopt", "remote_id": action.remote_id})
        self.dead_letter(work, "conflict", exc)

    def planned(self, work: Work, action: Action) -> None:
        """A dry run's record of one action, with what a person needs to judge it."""
        self.record(work, action.verb, detail=_detail(action), name=action.name,
                    remote_id=action.remote_id, changes=action.describe())

    def sync_group(self, work: Work) -> None:
        rec = self.load(work)
        body = None
        if rec is not None:
            remote = self.member_remote_ids(self.member_users(rec))
            body = mapping.desired_group(self.config, rec, list(remote), remote.get)
        if body is None:
            link = self.link(work.resource_id)
            if link is not None and link.remote_id:
                if not self.dry_run:
                    self.connector.delete("Group", link.remote_id)
                    self.drop_link(work.resource_id)
                self.record(work, "delete")
            return
        self.put(work, "Group", body)

    def member_remote_ids(self, members: list[str]) -> dict[str, str]:
        """The remote ids of the provisioned ones among `members`.

        Read as bare (resource, remote id) pairs and not cached as links: a group's
        members are many, and caching their whole links made a run's memory grow
        with the directory.
        """
        out: dict[str, str] = {}
        missing: list[str] = []
        for m in members:
            if m in self._links:  # seen in this run, perhaps not written yet
                link = self._links[m]
                if link is not None and link.remote_id and link.state == "provisioned":
                    out[m] = link.remote_id
            else:
                missing.append(m)
        with self.r.engine.connect() as conn:
            for i in range(0, len(missing), MEMBER_CHUNK):
                # No condition on remote_id here: SQLite would then walk the target's
                # whole (target_id, remote_id) index instead of looking the members up
                # by primary key, a scan of every link per group.
                for rid, remote_id in conn.execute(select(L.resource_id, L.remote_id).where(
                        L.target_id == self.row.id, L.state == "provisioned",
                        L.resource_id.in_(missing[i:i + MEMBER_CHUNK]))):
                    if remote_id:
                        out[rid] = remote_id
        return out

    def member_users(self, rec: Record) -> list[str]:
        """User members, with nested groups flattened (targets need not nest)."""
        return mapping.member_users(rec, lambda gid: self.load(Work("Group", gid)))

    def deprovision(self, work: Work) -> None:
        """Take a user that should not be in the target out, as the profile says."""
        link = self.link(work.resource_id)
        action = decide("User", work.resource_id, None, link, [], {}, self.rules)
        if action is None:
            return
        if self.dry_run:
            self.planned(work, action)
            return
        assert link is not None and action.remote_id is not None
        if action.verb == "delete":
            self.connector.delete("User", action.remote_id)
            self.drop_link(work.resource_id)
            self.count(applied=1)
            self.record(work, "delete")
            return
        body = dict(link.applied or self.observed_doc(work.resource_id) or {})
        body["active"] = False
        try:
            self.connector.update("User", action.remote_id,
                                  ChangeSet(body, set={"active": False}))
        except RemoteNotFound:
            self.drop_link(work.resource_id)
            self.record(work, "deactivate", detail="already gone")
            return
        self.save_link(Link(work.resource_id, "User", action.remote_id,
                            mapping.digest(body), body, "deprovisioned"))
        self.count(applied=1)
        self.record(work, "deactivate")

def _detail(action: Action) -> str | None:
    described = action.describe()
    return orjson.dumps(described).decode() if described else None
