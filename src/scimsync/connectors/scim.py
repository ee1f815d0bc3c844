"""The SCIM 2.0 connector: a downstream application that speaks RFC 7644."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from scimsync import outbound
from scimsync.connectors import discovery, overrides, paging, shaping
from scimsync.connectors.auth import SECRET_FIELDS, Clock, credentials_for, parse_auth
from scimsync.connectors.contract import (
    Capabilities,
    ChangeSet,
    Doc,
    Rejected,
    Remote,
    RemoteConflict,
    RemoteNotFound,
    Transient,
    redact,
)
from scimsync.connectors.discovery import Discovered
from scimsync.connectors.http import RateLimiter, retry_after, transient_status
from scimsync.connectors.members import (
    PATCH_OP,
    MemberNames,
    patch_operations,
    quoted,
    values,
    without_members,
)
from scimsync.connectors.registry import ConnectorKind, Secrets, register
from scimsync.netpolicy import check_url
from scimsync.validation import ConfigError, Problems, at, reject_unknown

if TYPE_CHECKING:
    from scimsync.sync.config import Profile

ENDPOINT = {"User": "Users", "Group": "Groups", "Agent": "Agents",
            "AgenticApplication": "AgenticApplications"}
SETTINGS = ("url", "auth")
# One `or` filter matches this many values (a full pass matches fifty accounts at once).
FIND_BATCH = 50
SCIM_JSON = "application/scim+json"


def http_url(raw: dict[str, Any], what: str) -> str:
    """The `url` of an HTTP kind's settings, checked against the outbound policy (and
    resolved: a name that does not resolve is refused here)."""
    url = raw.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{what} needs a url", ("url",))
    at(("url",), check_url, url)
    return url


class ScimConnector:
    """Create/replace/patch/delete/get/find/list over HTTP, nothing more."""

    def __init__(self, settings: dict[str, Any], profile: Profile, secrets: Secrets,
                 transport: httpx.BaseTransport | None = None, clock: Clock = time.monotonic,
                 cache: discovery.Cache = discovery.CACHE):
        self.profile = profile
        self.base = check_url(settings["url"], resolve=False)  # connections are checked too
        self.http = outbound.client(profile.timeout, transport, headers={"Accept": SCIM_JSON})
        self.limiter = RateLimiter(profile.rate_limit)
        # scimsync.connectors.auth: what each request carries, and a 401's retry.
        self.credentials = credentials_for(settings.get("auth") or {"type": "none"}, secrets,
                                           self.http, clock)
        # A changed URL, credential or profile is discovered afresh.
        self.cache = cache
        self.key = discovery.cache_key(self.base, settings.get("auth"), secrets,
                                       asdict(profile))
        self._raw: Discovered | None = None
        self._found = Discovered()
        # Where the app names members by userName (profile.member_value).
        self.names = MemberNames(self._every_user, self._user) \
            if profile.member_value == "userName" else None

    def close(self) -> None:
        self.http.close()

    def capabilities(self) -> Capabilities:
        """What the app can do: what it announces (connectors/discovery.py) with the
        profile's overrides, narrowed by the profile. Raises Transient when discovery
        fails and no earlier one succeeded."""
        found = self.discover()
        kinds = {"User", "Group"} if self.profile.groups else {"User"}
        if found.agents:
            kinds.add("Agent")
        if found.applications:
            kinds.add("AgenticApplication")
        return Capabilities(kinds=frozenset(kinds), update=found.patch and self.profile.patch,
                            find=found.filter, cursor=found.cursor,
                            max_members_per_update=max(1, self.profile.max_members_per_patch),
                            stores=self.rendered, discovered=shaping.report(found))

    def discover(self) -> Discovered:
        """What the app announces (RFC 7643 §5-§7), kept per app and configuration for
        discovery.TTL seconds, with the profile's overrides applied."""
        raw = self.cache.get(self.base, self.key,
                             lambda: discovery.read(lambda path: _body(self._call("GET", path))))
        if raw is not self._raw:
            self._raw, self._found = raw, overrides.apply(raw, self.profile.discovery)
        return self._found

    def rendered(self, kind: str, body: Doc) -> Doc:
        """`body` as this app is sent it: what it stores, with what it requires filled."""
        return shaping.render(self.discover(), kind, body, self.base)

    # --- requests ----------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None,
                params: dict[str, str] | None = None) -> httpx.Response:
        """One request to `path` under the app's base URL, as every verb sends it (rate
        limit, credentials, one retry after a 401 where new credentials can be had),
        answered whatever its status; Transient when no answer came (the conformance
        probe, connectors/probe.py, reads the app's refusals)."""
        self.limiter.wait()
        url = f"{self.base}/{path}"
        headers = {"Content-Type": SCIM_JSON} if body is not None else {}
        try:
            return self._send(method, url, body, params, headers)
        except httpx.TransportError as exc:
            raise Transient(f"{method} {path}: {outbound.reason(exc)}",
                            request=_described(method, url, body)) from exc

    def _call(self, method: str, path: str, body: Any = None,
              params: dict[str, str] | None = None) -> httpx.Response:
        r = self.request(method, path, body, params)
        if 200 <= r.status_code < 300:
            return r
        # What went wrong is kept for the dead-letter list, secrets redacted.
        url = f"{self.base}/{path}"
        request = _described(method, url, body)
        response = _body(r)
        message = f"{method} {path} answered {r.status_code}"
        if transient_status(r.status_code):
            raise Transient(message, status=r.status_code, request=request, response=response,
                            retry_after=retry_after(r.headers.get("retry-after")))
        if r.status_code == 404:
            raise RemoteNotFound(message, status=404, request=request, response=response)
        if r.status_code == 409:
            raise RemoteConflict(message, status=409, request=request, response=response)
        raise Rejected(message, status=r.status_code, request=request, response=response)

    def _send(self, method: str, url: str, body: Any, params: dict[str, str] | None,
              headers: dict[str, str]) -> httpx.Response:
        """The request with its credentials; sent once more, with new ones, when the app
        answers 401 and new ones can be had (an OAuth token it no longer takes)."""
        sent = self.credentials.headers()
        r = self.http.request(method, url, json=body, params=params, headers={**headers, **sent})
        if r.status_code == 401 and self.credentials.refresh(sent):
            self.limiter.wait()
            r = self.http.request(method, url, json=body, params=params,
                                  headers={**headers, **self.credentials.headers()})
        return r

    def create(self, kind: str, body: Doc) -> Remote:
        if kind == "User" and not body.get("userName"):
            # RFC 7643 §4.1.1: required; some apps create one with an empty name.
            raise Rejected("a User needs a userName (RFC 7643 §4.1.1); nothing was sent",
                           request=_described("POST", f"{self.base}/Users", body))
        later = self._members_later(kind, body)
        r = self._call("POST", ENDPOINT[kind],
                       self.rendered(kind, without_members(body) if later else body))
        doc = self._held(kind, _body(r))
        made = Remote(str(doc["id"]), doc)
        return self._with_members(kind, made, body, set()) if later else made

    def replace(self, kind: str, remote_id: str, body: Doc) -> Remote:
        later = self._members_later(kind, body)
        done = self._put(kind, remote_id, without_members(body) if later else body)
        if not later:
            return done
        held = self.get(kind, remote_id)
        return self._with_members(kind, done, body,
                                  values(held.doc.get("members")) if held else set())

    def _put(self, kind: str, remote_id: str, body: Doc) -> Remote:
        """One PUT of `body` as the app is sent it; the object as it answered."""
        r = self._call("PUT", resource_path(kind, remote_id),
                       {**self.rendered(kind, body), "id": remote_id})
        doc = self._held(kind, _body(r))
        return Remote(str(doc.get("id", remote_id)), doc if isinstance(doc, dict) else {})

    def _members_later(self, kind: str, body: Doc) -> bool:
        """Whether a group's members follow its POST or PUT by PATCH: the profile says
        the app ignores them there (`group_members: patch`)."""
        return kind == "Group" and "members" in body and self.profile.group_members == "patch"

    def _with_members(self, kind: str, written: Remote, body: Doc, held: set[str]) -> Remote:
        """After a group written without its members: add those of `body` it does not
        hold, remove the others, by PATCH. The object as the app answered, or without
        `members` when no answer shows them (so that a caller reads them back)."""
        want = values(body.get("members"))
        if want == held:
            return written
        answer = self.update(kind, written.id, ChangeSet(
            body, add_members=sorted(want - held), remove_members=sorted(held - want)))
        if answer is not None:
            return answer
        return Remote(written.id, without_members(written.doc))

    def update(self, kind: str, remote_id: str, changes: ChangeSet) -> Remote | None:
        """Apply a change set: as PATCH operations (RFC 7644 §3.5.2) where the app takes
        them, in requests of at most max_members_per_patch operations; else as a PUT of
        the whole desired object (RFC 7644 §3.5.1). The object as the last answer holds
        it, or None when the app answered 204 (RFC 7644 §3.5.2: either is allowed)."""
        found = self.discover()
        if not (self.profile.patch and found.patch):
            return self.replace(kind, remote_id, changes.desired)
        if self.profile.empty_group == "put" and changes.remove_members \
                and not changes.desired.get("members"):
            # One PUT that says `members: []`, whatever group_members says: the app
            # empties the group so (Canaille), and nothing follows it.
            return self._put(kind, remote_id, {**changes.desired, "members": []})
        gone = changes.remove_members if self.names is None \
            else self.names.as_names(changes.remove_members)
        ops = patch_operations(shaping.changed(found, kind, changes, self.base),
                               lambda added: shaping.members(found, added, self.base),
                               gone, self.profile.member_remove == "value",
                               self.profile.patch_complex == "sub",
                               max(1, self.profile.max_members_per_patch))
        size = max(1, self.profile.max_members_per_patch)
        answered: Any = None
        for i in range(0, len(ops), size):
            answered = _body(self._call("PATCH", resource_path(kind, remote_id),
                                        {"schemas": [PATCH_OP], "Operations": ops[i:i + size]}))
        if isinstance(answered, dict) and str(answered.get("id", "")) == remote_id:
            return Remote(remote_id, self._held(kind, answered))
        return None

    def delete(self, kind: str, remote_id: str) -> None:
        try:
            self._call("DELETE", resource_path(kind, remote_id))
        except RemoteNotFound:
            return  # already gone: the goal is reached

    def get(self, kind: str, remote_id: str) -> Remote | None:
        try:
            r = self._call("GET", resource_path(kind, remote_id))
        except RemoteNotFound:
            return None
        doc = self._held(kind, _body(r))
        return Remote(str(doc["id"]), doc)

    def _every_user(self) -> None:
        for _ in self.list("User"):  # each user's name is kept as it goes by (_held)
            pass

    def _user(self, remote_id: str) -> Doc | None:
        found = self.get("User", remote_id)
        return None if found is None else found.doc

    def _held(self, kind: str, doc: Any) -> Any:
        """An answer as the hub reads it: where the app names members by userName, the
        users' names are kept and a group's members named by id."""
        if self.names is None or not isinstance(doc, dict):
            return doc
        if kind == "User":
            self.names.seen(doc)
            return doc
        return self.names.as_ids(doc) if kind == "Group" else doc

    def find(self, kind: str, attribute: str, values: list[str]) -> list[Remote]:
        """The remote objects whose attribute equals one of `values` (RFC 7644 §3.4.2.2),
        fifty values to an `or` filter; an app that refuses the filter is asked one value
        at a time."""
        attr = "emails.value" if attribute == "email" else attribute
        out: dict[str, Remote] = {}
        # Room for two matches a value within the count the profile allows.
        most = self.profile.find_batch or FIND_BATCH
        limit = self._limit()
        batch = most if limit is None else max(1, min(most, limit // 2))
        for i in range(0, len(values), batch):
            chunk = values[i:i + batch]
            try:
                docs = self._filtered(kind, attr, chunk)
            except Rejected:
                if len(chunk) == 1:
                    raise
                docs = [d for v in chunk for d in self._filtered(kind, attr, [v])]
            for doc in docs:
                if isinstance(doc, dict) and "id" in doc:
                    out[str(doc["id"])] = Remote(str(doc["id"]), self._held(kind, doc))
        return list(out.values())

    def _filtered(self, kind: str, attr: str, values: list[str]) -> list[Doc]:
        flt = " or ".join(f"{attr} eq {quoted(v)}" for v in values)
        r = self._call("GET", ENDPOINT[kind],
                       params=self._paged({"filter": flt}, max(len(values), 1) * 2))
        found = _body(r).get("Resources") or []
        return [d for d in found if isinstance(d, dict)]

    def list(self, kind: str) -> Iterator[Remote]:
        """Every remote object, page by page: by cursor (RFC 9865) when the app
        advertises it, else by index (RFC 7644 §3.4.2.4). Each page is checked
        (scimsync.connectors.paging): one that does not add up raises
        IncompleteListing, so a partial read is never taken for the whole."""
        pages = paging.Pages(kind)
        if self.discover().cursor:
            cursor = ""
            while True:
                page = _body(self._call("GET", ENDPOINT[kind],
                                        params=self._paged({"cursor": cursor})))
                items = paging.resources(page, kind)
                following = pages.cursor(page, items)
                for doc in items:
                    yield Remote(str(doc["id"]), self._held(kind, doc))
                if following is None:
                    return
                cursor = following
        start = 1
        while True:
            page = _body(self._call("GET", ENDPOINT[kind],
                                    params=self._paged({"startIndex": str(start)})))
            items = paging.resources(page, kind)
            last = pages.indexed(page, items, start)
            for doc in items:
                yield Remote(str(doc["id"]), self._held(kind, doc))
            if last:
                return
            start += len(items)

    def _limit(self) -> int | None:
        """The most resources one answer may hold: the profile's `count` where it is a
        number, and the `maxResults` the app announces (RFC 7643 §5), the lower."""
        limits = [n for n in (self.profile.count, self.discover().max_results)
                  if isinstance(n, int) and not isinstance(n, bool)]
        return min(limits) if limits else None

    def _paged(self, params: dict[str, str], wanted: int | None = None) -> dict[str, str]:
        """`params` with the `count` the profile and the app allow: `wanted` (else a
        page, `profile.page_size`) capped by `_limit`, or none at all where the profile
        says `omit` (an app that fails on any count)."""
        if self.profile.count == "omit":
            return params
        count = self.profile.page_size if wanted is None else wanted
        limit = self._limit()
        return {**params, "count": str(count if limit is None else min(count, limit))}


def resource_path(kind: str, remote_id: str) -> str:
    """`Users/<id>` with the id as one path segment: an app chooses its ids, and one
    holding `/`, `?`, `#` or `..` must not reach another URL (RFC 3986 §3.3)."""
    segment = quote(remote_id, safe="")
    if segment in (".", ".."):
        segment = segment.replace(".", "%2E")
    return f"{ENDPOINT[kind]}/{segment}"


def _described(method: str, url: str, body: Any) -> Doc:
    return {"method": method, "url": url, "body": redact(body)}


def _body(r: httpx.Response) -> Any:
    if not r.content:
        return {}
    try:
        return r.json()
    except ValueError:
        return {"text": r.text[:2000]}


def parse_settings(raw: dict[str, Any]) -> tuple[dict[str, Any], Secrets]:
    """A SCIM application's own settings: its base URL and how to authenticate
    (scimsync.connectors.auth); every problem of both at once."""
    reject_unknown("scim target", raw, SETTINGS)
    problems = Problems()
    url = ""
    auth: dict[str, Any] = {}
    secrets: Secrets = {}
    with problems.check():
        url = http_url(raw, "a scim target")
    with problems.check():
        auth, secrets = parse_auth(raw.get("auth"))
    problems.raise_any()
    return {"url": url.rstrip("/"), "auth": auth}, secrets


def check_profile(profile: dict[str, Any]) -> None:
    """A SCIM application's own profile settings: `count` is `omit` or a number of
    at least 1 (RFC 7644 §3.4.2.4: the most resources a page or search may ask for);
    `discovery` overrides what the app announced (connectors/overrides.py)."""
    problems = Problems()
    count = profile.get("count")
    if count not in (None, "omit") and (
            isinstance(count, bool) or not isinstance(count, int) or count < 1):
        problems.add("profile.count is omit (send no count) or a whole number of at "
                     "least 1 (the most to ask for)", "count")
    with problems.check():
        overrides.check(profile.get("discovery"))
    problems.raise_any()


def _open(settings: dict[str, Any], profile: Profile, secrets: Secrets) -> ScimConnector:
    return ScimConnector(settings, profile, secrets)


KIND = register(ConnectorKind(
    "scim", parse_settings, _open, settings=SETTINGS,
    profile=("count", "discovery", "group_members", "member_remove", "member_value",
             "empty_group", "find_batch", "patch_complex"),
    check_profile=check_profile,
    credentials=tuple(sorted({f"auth.{k}" for ks in SECRET_FIELDS.values() for k in ks}))))
