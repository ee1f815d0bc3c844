"""The SCIM 2.0 connector: a downstream application that speaks RFC 7644."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
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
from scimsync.connectors.http import retry_after, transient_status
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
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"


def http_url(raw: dict[str, Any], what: str) -> str:
    """The `url` of an HTTP kind's settings, checked against the outbound policy (and
    resolved: a name that does not resolve is refused here)."""
    url = raw.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{what} needs a url", ("url",))
    at(("url",), check_url, url)
    return url


class RateLimiter:
    """A token bucket: at most `rate` requests per second (0 means no limit)."""

    def __init__(self, rate: float):
        self.rate = rate
        self.allowance = rate
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        if self.rate <= 0:
            return
        with self.lock:
            now = time.monotonic()
            self.allowance = min(self.rate, self.allowance + (now - self.last) * self.rate)
            self.last = now
            if self.allowance < 1:
                time.sleep((1 - self.allowance) / self.rate)
                self.allowance = 0
                self.last = time.monotonic()
            else:
                self.allowance -= 1


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

    def _call(self, method: str, path: str, body: Any = None,
              params: dict[str, str] | None = None) -> httpx.Response:
        self.limiter.wait()
        url = f"{self.base}/{path}"
        headers = {"Content-Type": SCIM_JSON} if body is not None else {}
        try:
            r = self._send(method, url, body, params, headers)
        except httpx.TransportError as exc:
            raise Transient(f"{method} {path}: {outbound.reason(exc)}",
                            request=_described(method, url, body)) from exc
        if 200 <= r.status_code < 300:
            return r
        # What went wrong is kept for the dead-letter list, secrets redacted.
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
        r = self._call("POST", ENDPOINT[kind], self.rendered(kind, body))
        doc = _body(r)
        return Remote(str(doc["id"]), doc)

    def replace(self, kind: str, remote_id: str, body: Doc) -> Remote:
        r = self._call("PUT", _resource_path(kind, remote_id),
                       {**self.rendered(kind, body), "id": remote_id})
        doc = _body(r)
        return Remote(str(doc.get("id", remote_id)), doc if isinstance(doc, dict) else {})

    def update(self, kind: str, remote_id: str, changes: ChangeSet) -> Remote | None:
        """Apply a change set: as PATCH operations (RFC 7644 §3.5.2) where the app takes
        them, in requests of at most max_members_per_patch operations; else as a PUT of
        the whole desired object (RFC 7644 §3.5.1). The object as the last answer holds
        it, or None when the app answered 204 (RFC 7644 §3.5.2: either is allowed)."""
        found = self.discover()
        if not (self.profile.patch and found.patch):
            return self.replace(kind, remote_id, changes.desired)
        ops = patch_operations(shaping.changed(found, kind, changes, self.base),
                               lambda added: shaping.members(found, added, self.base))
        size = max(1, self.profile.max_members_per_patch)
        answered: Any = None
        for i in range(0, len(ops), size):
            answered = _body(self._call("PATCH", _resource_path(kind, remote_id),
                                        {"schemas": [PATCH_OP], "Operations": ops[i:i + size]}))
        if isinstance(answered, dict) and str(answered.get("id", "")) == remote_id:
            return Remote(remote_id, answered)
        return None

    def delete(self, kind: str, remote_id: str) -> None:
        try:
            self._call("DELETE", _resource_path(kind, remote_id))
        except RemoteNotFound:
            return  # already gone: the goal is reached

    def get(self, kind: str, remote_id: str) -> Remote | None:
        try:
            r = self._call("GET", _resource_path(kind, remote_id))
        except RemoteNotFound:
            return None
        doc = _body(r)
        return Remote(str(doc["id"]), doc)

    def find(self, kind: str, attribute: str, values: list[str]) -> list[Remote]:
        """The remote objects whose attribute equals one of `values` (RFC 7644 §3.4.2.2),
        fifty values to an `or` filter; an app that refuses the filter is asked one value
        at a time."""
        attr = "emails.value" if attribute == "email" else attribute
        out: dict[str, Remote] = {}
        # Room for two matches a value within the count the profile allows.
        batch = max(1, min(FIND_BATCH, self.profile.count // 2)) \
            if isinstance(self.profile.count, int) else FIND_BATCH
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
                    out[str(doc["id"])] = Remote(str(doc["id"]), doc)
        return list(out.values())

    def _filtered(self, kind: str, attr: str, values: list[str]) -> list[Doc]:
        quoted = [v.replace("\\", "\\\\").replace('"', '\\"') for v in values]
        flt = " or ".join(f'{attr} eq "{q}"' for q in quoted)
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
                    yield Remote(str(doc["id"]), doc)
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
                yield Remote(str(doc["id"]), doc)
            if last:
                return
            start += len(items)

    def _paged(self, params: dict[str, str], wanted: int | None = None) -> dict[str, str]:
        """`params` with the `count` the profile allows: `wanted` (else a page,
        `profile.page_size`) capped by `profile.count`, or none at all where the
        profile says `omit` (an app that fails on any count)."""
        limit = self.profile.count
        if limit == "omit":
            return params
        count = self.profile.page_size if wanted is None else wanted
        if isinstance(limit, int):
            count = min(count, limit)
        return {**params, "count": str(count)}


def _resource_path(kind: str, remote_id: str) -> str:
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


def patch_operations(changes: ChangeSet,
                     members: Callable[[list[str]], list[Doc]] | None = None) -> list[Doc]:
    """A change set as SCIM PATCH operations (RFC 7644 §3.5.2): replace or remove each
    changed attribute, remove each gone member by value filter, add new members."""
    ops: list[Doc] = [{"op": "replace", "path": k, "value": v}
                      for k, v in sorted(changes.set.items())]
    ops += [{"op": "remove", "path": k} for k in sorted(changes.clear)]
    ops += [{"op": "remove", "path": f'members[value eq "{m}"]'}
            for m in sorted(changes.remove_members)]
    if changes.add_members:
        added = sorted(changes.add_members)
        ops.append({"op": "add", "path": "members",
                    "value": members(added) if members else [{"value": m} for m in added]})
    return ops


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
    "scim", parse_settings, _open, settings=SETTINGS, profile=("count", "discovery"),
    check_profile=check_profile,
    credentials=tuple(sorted({f"auth.{k}" for ks in SECRET_FIELDS.values() for k in ks}))))
