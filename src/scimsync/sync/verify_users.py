"""Verifying what an application kept of a user's attributes (docs/provisioning.md:
Verification).

An application may answer 201 or 200 and keep less than it was sent: django-scim2
announces `title` in its User schema and does not store it. With `profile.verify: all`,
after a User (or an Agent, an AgenticApplication: the same path) is created, adopted,
replaced, recreated or updated, what the application holds is compared with what was
sent: from the answer when it holds every attribute sent (no extra request), else read
back (`GET`); an empty answer (204) proves nothing. The comparison is drift's
(scimsync.drift.compare, on the object as the app is sent it, so what it does not store
is not compared): its case rules, multi-valued and sub-attribute handling agree with a
drift run's. A difference is sent once more as a change set of the differing
attributes; one that outlasts the retry (or whose retry the app refuses) is an
`attribute_drift` finding (evidence: attribute, sent, held) and the delivery is
recorded `unverified`, never `ok`.

Not the default (`groups`): one read per user write would double the requests of an
initial load where the app answers POST without the object.
"""

from __future__ import annotations

from typing import Any

from scimsync.connectors.contract import ChangeSet, Rejected
from scimsync.drift.classify import severity
from scimsync.drift.compare import differences
from scimsync.drift.findings import Finding
from scimsync.sync.verify import WHOLE, Verifying
from scimsync.sync.work import Work

Doc = dict[str, Any]
# The kinds whose attributes `verify: all` checks (groups: their members, sync/verify.py).
CHECKED = ("User", "Agent", "AgenticApplication")


class VerifyingAttributes(Verifying):
    """A run's checks of the attributes its user (and agent) writes left."""

    def check_attributes(self, work: Work, verb: str, remote_id: str, body: Doc,
                         answer: Doc | None, changes: ChangeSet | None = None) -> Doc | None:
        """After a write with `verify: all`: None if the application holds what was sent
        (sent again once if not), else the object as it holds it (a finding is kept)."""
        kind = work.resource_type
        if kind not in CHECKED or self.config.profile.verify != "all":
            return None
        want, cleared = self.sent(kind, verb, body, changes)
        if not want and not cleared:
            return None  # a change set of nothing this app stores: nothing to check
        found = self.unkept(kind, remote_id, want, cleared, answer)
        if not found:
            return None
        retry = ChangeSet(body, {d["attribute"]: body[d["attribute"]] for d in found
                                 if d["attribute"] in want and d["attribute"] in body},
                          [d["attribute"] for d in found if d["attribute"] not in want])
        refused = None
        try:
            again = self.connector.update(kind, remote_id, retry)
        except Rejected as exc:
            # The write was taken; its retry was not (django-scim2 answers a PATCH of
            # `title` 501): what the app holds is as first read.
            refused, after = exc, found
        else:
            after = self.unkept(kind, remote_id, want, cleared,
                                None if again is None else again.doc)
        if not after:
            return None
        held = dict(body)
        for d in after:
            if d["actual"] is None:
                held.pop(d["attribute"], None)
            else:
                held[d["attribute"]] = d["actual"]
        self.unverified_attributes(work, remote_id, body, after, held, refused)
        return held

    def sent(self, kind: str, verb: str, body: Doc, changes: ChangeSet | None
             ) -> tuple[Doc, set[str]]:
        """What the write asked the app to hold, as it is sent it (only what it stores,
        as drift compares it), and the attributes it asked it to clear."""
        stores = self.caps.stores
        shown = stores(kind, body) if stores is not None else body
        if verb in WHOLE or changes is None:
            return shown, set()
        return {k: v for k, v in shown.items() if k in changes.set}, set(changes.clear)

    def unkept(self, kind: str, remote_id: str, want: Doc, cleared: set[str],
               answer: Doc | None) -> list[Doc]:
        """What of `want` (and `cleared`) the app does not hold: nothing if its answer
        shows all of it, else as read back."""
        if isinstance(answer, dict) and answer and not differences(kind, want, answer,
                                                                   cleared):
            return []
        got = self.connector.get(kind, remote_id)
        return differences(kind, want, {} if got is None else got.doc, cleared)

    def unverified_attributes(self, work: Work, remote_id: str, body: Doc,
                              found: list[Doc], held: Doc,
                              refused: Rejected | None = None) -> None:
        """Attributes the application did not keep after one retry: a finding."""
        name = "userName" if work.resource_type == "User" else "name"
        reason = "the application did not keep the attributes sent, after one retry"
        if refused is not None:
            reason += f" (refused: {str(refused)[:200]})"
        evidence = {name: body.get(name), "differences": [
            {"attribute": d["attribute"], "sent": d["desired"], "held": d["actual"]}
            for d in found], "reason": reason}
        self.keep_finding(Finding("attribute_drift", work.resource_id,
                                  severity(work.resource_type, found),
                                  work.resource_type, work.resource_id, remote_id,
                                  evidence, held))
