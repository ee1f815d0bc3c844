"""A conformance probe of a SCIM application: what it really does, and the profile
that says so (`scimsync targets check`, docs/provisioning.md: Checking an app).

The probe goes through the target's own connector (its credentials, outbound URL
policy, rate limit and timeout) and asks the app what the engine would ask:
discovery (RFC 7643 §5-§7), a listing with and without `count`, pages of one
(RFC 7644 §3.4.2.4, checked by connectors/paging.py), and `eq` and `or` filters
(RFC 7644 §3.4.2.2). All of that only reads. With `write`, connectors/probe_writes.py
creates one marked user and group, reads them back, changes and deletes them; it
never touches anything it did not create. Each check is a row (name, result,
evidence: the status and a short excerpt of the answer); a quirk may suggest a
profile fact, and `Report.suggested` holds those that differ from the defaults.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from scimsync.connectors import discovery, paging
from scimsync.connectors.contract import ConnectorError, IncompleteListing, Rejected, RemoteNotFound
from scimsync.connectors.discovery import Discovered
from scimsync.connectors.members import quoted
from scimsync.connectors.scim import ScimConnector

Doc = dict[str, Any]
# What a check found: as the RFC says, a quirk (the app differs), the probe could not
# do it, or it was not done.
OK, QUIRK, FAILED, SKIPPED = "ok", "quirk", "failed", "skipped"
MARK = "scimsync-check-"
EXCERPT = 120


class ProbeFailed(Exception):
    """The probe could not run: the app refused the credential, did not answer, ...
    `report` holds what it did until then (what it created and could not delete)."""

    report: Report | None = None


class Stop(Exception):
    """A write the later steps need failed: they are skipped, cleanup still runs."""


@dataclass
class Answer:
    """An app's answer: its status and body (parsed JSON, else the text)."""

    request: str
    status: int
    doc: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def evidence(self) -> str:
        """`METHOD path → status: excerpt`, for the table."""
        return f"{self.request} → {self.status}{_excerpt(self.doc)}"


def _excerpt(doc: Any) -> str:
    if isinstance(doc, dict) and ("detail" in doc or "scimType" in doc):
        text = " ".join(str(doc[k]) for k in ("scimType", "detail") if doc.get(k))
    elif isinstance(doc, dict) and isinstance(doc.get("Resources"), list):
        text = f"{len(doc['Resources'])} resources of totalResults {doc.get('totalResults')}"
    elif isinstance(doc, dict) and doc.get("id") not in (None, ""):
        text = f"id {doc['id']!r}"  # a resource: the checks say what of it matters
    elif isinstance(doc, str):
        text = doc.strip()
    else:
        text = "" if doc in (None, {}) else json.dumps(doc, ensure_ascii=False, default=str)
    if not text:
        return ""
    return ": " + (text if len(text) <= EXCERPT else text[:EXCERPT - 1] + "…")


@dataclass
class Check:
    """One row of the report."""

    name: str
    result: str
    evidence: str

    def to_json(self) -> Doc:
        return {"check": self.name, "result": self.result, "evidence": self.evidence}


@dataclass
class Report:
    """What the probe found: each check, the profile facts it suggests (only those
    that differ from the defaults) and what it created and could not delete."""

    target: str
    checks: list[Check] = field(default_factory=list)
    suggested: Doc = field(default_factory=dict)
    left_behind: list[Doc] = field(default_factory=list)
    wrote: bool = False

    def to_json(self) -> Doc:
        return {"target": self.target, "checks": [c.to_json() for c in self.checks],
                "suggested_profile": self.suggested, "shipped": self.shipped(),
                "left_behind": self.left_behind}

    def shipped(self) -> str | None:
        """The shipped profile (scimsync.profiles) that says all the suggestion says
        but which attributes the app stores (the probe sends a few; a shipped profile
        may name more), and nothing the probe did not see; None if none does."""
        from scimsync import profiles

        def facts(profile: Doc) -> Doc:
            return {k: v for k, v in profile.items() if k != "discovery"}

        def dropped(profile: Doc) -> set[str]:
            attrs = (profile.get("discovery") or {}).get("attributes") or {}
            return {f"{kind}.{name}" for kind, named in attrs.items() for name in named}

        if not self.wrote or not self.suggested:
            return None
        for name, found in profiles.shipped().items():
            if facts(found.profile) == facts(self.suggested) and \
                    dropped(self.suggested) <= dropped(found.profile):
                return name
        return None


class Session:
    """One probe: the connector, what discovery found, and the report being written."""

    def __init__(self, connector: ScimConnector, target: str):
        self.connector = connector
        self.report = Report(target)
        self.found = Discovered()
        self.omit_count = False
        self.tag = secrets.token_hex(4)

    def ask(self, method: str, path: str, body: Any = None,
            params: dict[str, str] | None = None) -> Answer:
        """One request through the connector; its answer whatever the status."""
        shown = path + ("?" + "&".join(f"{k}={v}" for k, v in params.items())
                        if params else "")
        r = self.connector.request(method, path, body, params)
        # A credential refused (or, to read, denied) can ask nothing further; a write
        # denied is that write's refusal.
        if r.status_code == 401 or (r.status_code == 403 and method == "GET"):
            raise ProbeFailed(_refusal(Rejected(f"{method} {shown} answered {r.status_code}",
                                                status=r.status_code)))
        doc: Any = None
        if r.content:
            try:
                doc = r.json()
            except ValueError:
                doc = r.text[:500]
        return Answer(f"{method} {shown}", r.status_code, doc)

    def check(self, name: str, result: str, evidence: str) -> None:
        self.report.checks.append(Check(name, result, evidence))

    def suggest(self, key: str, value: Any) -> None:
        self.report.suggested[key] = value

    def not_stored(self, kind: str, attribute: str) -> None:
        """Suggest `discovery.attributes.<kind>.<attribute>: {stored: false}`."""
        attrs = self.report.suggested.setdefault("discovery", {}).setdefault(
            "attributes", {}).setdefault(kind, {})
        attrs[attribute] = {"stored": False}

    def paged(self, params: dict[str, str], count: int) -> dict[str, str]:
        """`params` with `count`, unless the app failed on any count."""
        return params if self.omit_count else {**params, "count": str(count)}


def run(connector: ScimConnector, target: str, write: bool) -> Report:
    """Probe the app behind `connector`; raises ProbeFailed when it cannot run."""
    s = Session(connector, target)
    try:
        discover(s)
        users = listing(s)
        pages(s)
        filters(s, [str(u["userName"]) for u in users if isinstance(u.get("userName"), str)])
        if write:
            from scimsync.connectors import probe_writes

            s.report.wrote = True
            probe_writes.run(s)
        else:
            s.check("writes", SKIPPED, "not probed (read-only by default): run with "
                    "--write to create one marked user and group, read them back and "
                    "delete them")
    except ProbeFailed as exc:
        exc.report = s.report
        raise
    except ConnectorError as exc:  # no answer at all
        raise ProbeFailed(f"the app did not answer: {exc}") from exc
    return s.report


def discover(s: Session) -> None:
    """What the app announces (RFC 7643 §5-§7), read afresh; the profile's own
    overrides are not applied: the probe checks the app, and suggests them."""
    answers: list[Answer] = []

    def fetch(path: str) -> Any:
        a = s.ask("GET", path)
        answers.append(a)
        if a.status == 404:
            raise RemoteNotFound(a.evidence(), status=404)
        if not a.ok:
            raise Rejected(a.evidence(), status=a.status)
        return a.doc

    try:
        s.found = discovery.read(fetch)
    except ConnectorError as exc:
        raise ProbeFailed(_refusal(exc)) from exc
    f = s.found
    facts = ", ".join(f"{k} {v}" for k, v in f.facts().items() if v is not None)
    served = ", ".join(f"{a.request.split()[1]} {a.status}" for a in answers)
    s.check("discovery", OK, f"{served}; {facts}")


def _refusal(exc: ConnectorError) -> str:
    if exc.status == 401:
        return f"the app refused the credential (401): {exc}"
    if exc.status == 403:
        return f"the app refused access to this credential (403): {exc}"
    return f"discovery failed: {exc}"


def listing(s: Session) -> list[Doc]:
    """Users with a `count`, else without (an app that fails on any count); the
    first page's users."""
    size = s.connector.profile.page_size
    if s.found.max_results:
        size = min(size, s.found.max_results)
    counted = s.ask("GET", "Users", params={"startIndex": "1", "count": str(size)})
    if counted.ok:
        s.check("listing with count", OK, counted.evidence())
        return _users(counted.doc)
    plain = s.ask("GET", "Users", params={"startIndex": "1"})
    if not plain.ok:
        s.check("listing", FAILED, f"{counted.evidence()}; {plain.evidence()}")
        return []
    s.omit_count = True
    s.suggest("count", "omit")
    s.check("listing with count", QUIRK, f"{counted.evidence()}; without count: "
            f"{plain.evidence()} (count: omit)")
    return _users(plain.doc)


def _users(page: Any) -> list[Doc]:
    items = page.get("Resources") if isinstance(page, dict) else None
    return [d for d in items if isinstance(d, dict)] if isinstance(items, list) else []


def pages(s: Session) -> None:
    """Pages of one user (RFC 7644 §3.4.2.4), each checked by connectors/paging.py:
    the echoed startIndex, itemsPerPage, no id twice in a row, no short page."""
    if s.omit_count:
        _pages_without_count(s)
        return
    checks = paging.Pages("User")
    start, seen = 1, []
    for _ in range(3):
        a = s.ask("GET", "Users", params={"startIndex": str(start), "count": "1"})
        seen.append(a)
        if not a.ok:
            s.check("paging (count=1)", FAILED, a.evidence())
            return
        try:
            items = paging.resources(a.doc, "User")
            if len(items) > 1:
                s.check("paging (count=1)", QUIRK, f"{a.evidence()}: count=1 answered "
                        f"{len(items)} resources")
                return
            if checks.indexed(a.doc, items, start):
                break
        except IncompleteListing as exc:
            s.check("paging (count=1)", QUIRK, f"{a.evidence()}: {exc.reason}: {exc}")
            return
        start += len(items)
    if len(seen) < 2:
        s.check("paging (count=1)", SKIPPED, f"{seen[0].evidence()}: fewer than two users "
                "to page through")
        return
    s.check("paging (count=1)", OK, "; ".join(a.evidence() for a in seen))


def _pages_without_count(s: Session) -> None:
    """No count: the page from startIndex 2 must echo it and hold the first page's
    users but its first."""
    first = s.ask("GET", "Users", params={"startIndex": "1"})
    second = s.ask("GET", "Users", params={"startIndex": "2"})
    evidence = f"{first.evidence()}; {second.evidence()}"
    if not (first.ok and second.ok):
        s.check("paging (startIndex)", FAILED, evidence)
        return
    try:
        ones = [str(d["id"]) for d in paging.resources(first.doc, "User")]
        items = paging.resources(second.doc, "User")
        if len(ones) < 2:
            s.check("paging (startIndex)", SKIPPED, f"{evidence}: fewer than two users")
            return
        paging.Pages("User").indexed(second.doc, items, 2)
    except IncompleteListing as exc:
        s.check("paging (startIndex)", QUIRK, f"{evidence}: {exc.reason}: {exc}")
        return
    twos = [str(d["id"]) for d in items]
    if twos[:len(ones) - 1] != ones[1:]:
        s.check("paging (startIndex)", QUIRK, f"{evidence}: startIndex=2 did not start "
                "at the second user")
        return
    s.check("paging (startIndex)", OK, evidence)


def filters(s: Session, known: list[str]) -> None:
    """`userName eq` and an `or` of two values: refused (find_batch: 1) or ignored,
    answering users that do not match (discovery: {filter: false})."""
    absent = [f"{MARK}absent-{s.tag}-{i}@example.com" for i in (1, 2)]
    values = (known[:2] + absent)[:2]
    used = "" if s.found.filter else " (filter not announced: the connector does not search)"
    eq = _filtered(s, [values[0]], values[0] in known)
    either = _filtered(s, values, bool(known))
    for name, (result, evidence, ignored) in (("filter userName eq", eq),
                                              ("filter with or", either)):
        s.check(name, result, evidence + (used if result != OK else ""))
        if ignored and s.found.filter:
            s.suggest("discovery", {**s.report.suggested.get("discovery", {}),
                                    "filter": False})
    if either[0] == QUIRK and not either[2] and eq[0] == OK and s.found.filter:
        s.suggest("find_batch", 1)


def _filtered(s: Session, values: list[str], exists: bool) -> tuple[str, str, bool]:
    """(result, evidence, whether the filter was ignored or refused outright)."""
    flt = " or ".join(f"userName eq {quoted(v)}" for v in values)
    a = s.ask("GET", "Users", params=s.paged({"filter": flt}, 10))
    if not a.ok:
        refused = f"{a.evidence()}: refused"
        return QUIRK, refused, len(values) == 1
    users = _users(a.doc)
    wanted = {v.lower() for v in values}
    other = [u.get("userName") for u in users if str(u.get("userName", "")).lower() not in wanted]
    if other:
        return QUIRK, f"{a.evidence()}: ignored, answered {other[0]!r}", True
    if exists and not users:
        return QUIRK, f"{a.evidence()}: found nothing for a user that exists", True
    return OK, a.evidence(), False
