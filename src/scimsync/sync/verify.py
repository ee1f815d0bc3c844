"""Verifying what an application did with a write (docs/provisioning.md: Verification).

An application may answer 201 or 200 and keep less than it was sent: django-scim2
ignores `members` on POST and PUT of a Group (docs/apps.md). So after a create, a
replace, or a change of its members, a group's members as the application holds them
are compared with those sent: from the answer when it shows them, else read back
(`profile.verify: groups`, the default; `none` reads nothing). A difference is sent
once more as a change set (PATCH add and remove). An application found to drop the
members of a POST or PUT and take them by PATCH is *learned*: the target's
`learned.group_members` becomes `patch` (journaled as `target.learned`), and from then
on a group is created or replaced without members, which follow by change set. A
difference that outlasts the retry is a `membership_drift` finding and the delivery is
recorded `unverified`: never a silent success. Users' (and agents') attributes are
checked with `profile.verify: all` (scimsync.sync.verify_users).
"""

from __future__ import annotations

import uuid
from typing import Any

from scimsync.connectors.contract import ChangeSet, Remote
from scimsync.drift.compare import value_set
from scimsync.drift.findings import Finding, FindingsWriter
from scimsync.store import targets as target_store
from scimsync.sync.context import RunContext
from scimsync.sync.events import announce
from scimsync.sync.work import Work

Doc = dict[str, Any]
# The learned fact, and the verbs whose request carries the whole object (POST, PUT).
MEMBERS_FACT = "group_members"
WHOLE = ("create", "adopt", "replace", "recreate")


class Verifying(RunContext):
    """A run's checks of its group writes, and what it learns from them."""

    _learned_now = False  # learned during this run (the row read at its start is older)
    _sync_run: str | None = None  # the findings' run id, one per run that has any

    def members_by_patch(self) -> bool:
        """Whether this target's groups get their members by change set only: its
        profile says so, or the engine learned it."""
        if self._learned_now or self.config.profile.group_members == "patch":
            return True
        fact = (getattr(self.row, "learned", None) or {}).get(MEMBERS_FACT) or {}
        return bool(fact.get("value") == "patch")

    def outgoing(self, kind: str, verb: str, body: Doc) -> Doc:
        """What a write sends: a group without its members where they go by PATCH."""
        if kind == "Group" and verb in WHOLE and self.members_by_patch():
            return {k: v for k, v in body.items() if k != "members"}
        return body

    def check_members(self, work: Work, verb: str, remote_id: str, body: Doc,
                      answer: Doc | None, changes: ChangeSet | None = None) -> Doc | None:
        """After a group write: None if the application holds the members of `body`
        (sent again once if not), else the group as it holds them (a finding is kept)."""
        if work.resource_type != "Group" or "members" not in body:
            return None
        if verb == "update" and (changes is None or not (
                changes.add_members or changes.remove_members)):
            return None  # no membership change: nothing to check
        want = value_set(body["members"])
        inline = verb in WHOLE and not self.members_by_patch()
        if self.config.profile.verify == "none":
            if verb in WHOLE and not inline and want:
                self.connector.update("Group", remote_id,
                                      ChangeSet(body, add_members=sorted(want)))
            return None
        have = self.members_held(remote_id, answer)
        if have == want:
            return None
        again = self.connector.update("Group", remote_id, ChangeSet(
            body, add_members=sorted(want - have), remove_members=sorted(have - want)))
        after = self.members_held(remote_id, None if again is None else again.doc)
        if after == want:
            if inline and want - have:
                self.learn_members_by_patch(verb, len(want - have))
            return None
        held = {**body, "members": [{"value": v} for v in sorted(after)]}
        self.unverified_members(work, remote_id, body, after, want)
        return held

    def members_held(self, remote_id: str, answer: Doc | None) -> set[str]:
        """The group's members from an answer that shows them, else as read back."""
        if isinstance(answer, dict) and isinstance(answer.get("members"), list):
            return value_set(answer["members"])
        got: Remote | None = self.connector.get("Group", remote_id)
        return set() if got is None else value_set(got.doc.get("members"))

    def learn_members_by_patch(self, verb: str, dropped: int) -> None:
        """Keep, journal and use from now on: this app takes members by PATCH only."""
        with self.lock:
            if self._learned_now:
                return
            self._learned_now = True
        request = "POST" if verb in ("create", "recreate") else "PUT"
        evidence = (f"a {request} of a Group kept none of {dropped} members sent; a PATCH "
                    "add of the same members was kept")
        with self.begin() as conn:
            new = target_store.learn(conn, self.row.id, MEMBERS_FACT, "patch", evidence)
        if new:
            announce(self.r.engine, self.row.directory_id, self.row.id, "learned", {
                "target": self.row.name, "fact": MEMBERS_FACT, "value": "patch",
                "evidence": evidence})

    def unverified_members(self, work: Work, remote_id: str, body: Doc, held: set[str],
                           want: set[str]) -> None:
        """A membership the application did not keep after one retry: a finding."""
        extra, missing = sorted(held - want), sorted(want - held)
        evidence = {"displayName": body.get("displayName"), "extra_members": extra[:100],
                    "missing_members": missing[:100], "extra": len(extra),
                    "missing": len(missing),
                    "reason": "the application did not keep the members sent, after one "
                              "retry by PATCH"}
        self.keep_finding(Finding("membership_drift", work.resource_id,
                                  "high" if extra else "medium", "Group", work.resource_id,
                                  remote_id, evidence,
                                  {k: v for k, v in body.items() if k != "members"}))

    def keep_finding(self, finding: Finding) -> None:
        """Write one finding of this run's verification (one run id for all of them)."""
        with self.lock:
            self._sync_run = self._sync_run or str(uuid.uuid4())
        writer = FindingsWriter(self.r.engine, self.row, self._sync_run, self.lease)
        writer.add(finding)
        writer.flush()
