"""The SCIM 2.0 connector: a downstream application that speaks RFC 7644."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from scimsync.connectors.contract import (
    Doc,
    Rejected,
    Remote,
    RemoteConflict,
    RemoteNotFound,
    Transient,
    redact,
)
from scimsync.netpolicy import check_url
from scimsync.sync.config import TargetConfig

ENDPOINT = {"User": "Users", "Group": "Groups", "Agent": "Agents",
            "AgenticApplication": "AgenticApplications"}
DISCOVERY_TTL = 600.0
_DISCOVERED: dict[str, tuple[float, dict[str, bool]]] = {}
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


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

    def __init__(self, config: TargetConfig, secrets: dict[str, Any],
                 transport: httpx.BaseTransport | None = None):
        self.config = config
        self.secrets = secrets
        self.base = check_url(config.url)
        self.http = httpx.Client(timeout=config.profile.timeout, transport=transport,
                                 headers={"Accept": SCIM_JSON})
        self.limiter = RateLimiter(config.profile.rate_limit)
        self._oauth_token: tuple[str, float] | None = None

    def close(self) -> None:
        self.http.close()

    def capabilities(self) -> dict[str, bool]:
        """What the app's ServiceProviderConfig advertises (RFC7643 §5), cached per URL.

        An app that does not serve it is taken at the profile's word.
        """
        now_ = time.monotonic()
        cached = _DISCOVERED.get(self.base)
        if cached is not None and cached[0] > now_:
            return cached[1]
        found = {"patch": True, "filter": True, "cursor": False, "agents": False,
                 "applications": False}
        try:
            r = self._call("GET", "ServiceProviderConfig")
            spc = _body(r)
            if isinstance(spc, dict):
                for key in ("patch", "filter"):
                    value = spc.get(key)
                    if isinstance(value, dict) and value.get("supported") is False:
                        found[key] = False
                agents = spc.get("agentExtension")  # draft-abbey-scim-agent-extension §4.1
                if isinstance(agents, dict):
                    found["agents"] = agents.get("agentsSupported") is True
                    found["applications"] = agents.get("agenticApplicationsSupported") is True
                pagination = spc.get("pagination")  # RFC 9865 §5
                if isinstance(pagination, dict) and pagination.get("cursor") is True:
                    found["cursor"] = True
        except (Rejected, RemoteNotFound):
            pass
        _DISCOVERED[self.base] = (now_ + DISCOVERY_TTL, found)
        return found

    # --- authentication -------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        auth = self.config.auth
        kind = auth.get("type", "none")
        if kind == "bearer":
            return {"Authorization": f"Bearer {self.secrets['token']}"}
        if kind == "basic":
            raw = f"{auth.get('username', '')}:{self.secrets['password']}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if kind == "oauth2":
            return {"Authorization": f"Bearer {self._client_credentials()}"}
        return {}

    def _client_credentials(self) -> str:
        """An OAuth 2.0 client-credentials access token, cached until near expiry."""
        cached = self._oauth_token
        if cached is not None and cached[1] > time.monotonic() + 30:
            return cached[0]
        auth = self.config.auth
        data = {"grant_type": "client_credentials", "client_id": auth.get("client_id", ""),
                "client_secret": self.secrets["client_secret"]}
        if auth.get("scope"):
            data["scope"] = auth["scope"]
        try:
            r = self.http.post(check_url(auth["token_url"]), data=data)
        except httpx.TransportError as exc:
            raise Transient(f"token endpoint unreachable: {type(exc).__name__}") from exc
        if r.status_code >= 500 or r.status_code == 429:
            raise Transient(f"token endpoint answered {r.status_code}", status=r.status_code,
                            retry_after=retry_after(r.headers.get("retry-after")))
        if r.status_code != 200:
            raise Rejected(f"token endpoint refused the client: {r.status_code}",
                           status=r.status_code)
        body = r.json()
        token = body["access_token"]
        self._oauth_token = (token, time.monotonic() + float(body.get("expires_in", 300)))
        return str(token)

    # --- requests ----------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None,
              params: dict[str, str] | None = None) -> httpx.Response:
        self.limiter.wait()
        url = f"{self.base}/{path}"
        headers = self._auth_headers()
        if body is not None:
            headers["Content-Type"] = SCIM_JSON
        try:
            r = self.http.request(method, url, json=body, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise Transient(f"{method} {path}: {type(exc).__name__}",
                            request=_described(method, url, body)) from exc
        if 200 <= r.status_code < 300:
            return r
        # What went wrong is kept for the dead-letter list, secrets redacted.
        request = _described(method, url, body)
        response = _body(r)
        message = f"{method} {path} answered {r.status_code}"
        if r.status_code in (408, 425, 429) or r.status_code >= 500:
            raise Transient(message, status=r.status_code, request=request, response=response,
                            retry_after=retry_after(r.headers.get("retry-after")))
        if r.status_code == 404:
            raise RemoteNotFound(message, status=404, request=request, response=response)
        if r.status_code == 409:
            raise RemoteConflict(message, status=409, request=request, response=response)
        raise Rejected(message, status=r.status_code, request=request, response=response)

    def create(self, kind: str, body: Doc) -> Remote:
        r = self._call("POST", ENDPOINT[kind], body)
        doc = _body(r)
        return Remote(str(doc["id"]), doc)

    def replace(self, kind: str, remote_id: str, body: Doc) -> Remote:
        r = self._call("PUT", f"{ENDPOINT[kind]}/{remote_id}", {**body, "id": remote_id})
        doc = _body(r)
        return Remote(str(doc.get("id", remote_id)), doc if isinstance(doc, dict) else {})

    def patch(self, kind: str, remote_id: str, operations: list[Doc]) -> None:
        self._call("PATCH", f"{ENDPOINT[kind]}/{remote_id}",
                   {"schemas": [PATCH_OP], "Operations": operations})

    def delete(self, kind: str, remote_id: str) -> None:
        try:
            self._call("DELETE", f"{ENDPOINT[kind]}/{remote_id}")
        except RemoteNotFound:
            return  # already gone: the goal is reached

    def get(self, kind: str, remote_id: str) -> Remote | None:
        try:
            r = self._call("GET", f"{ENDPOINT[kind]}/{remote_id}")
        except RemoteNotFound:
            return None
        doc = _body(r)
        return Remote(str(doc["id"]), doc)

    def find(self, kind: str, attribute: str, value: str) -> Remote | None:
        """The remote object whose attribute equals value (to adopt instead of create)."""
        attr = "emails.value" if attribute == "email" else attribute
        quoted = value.replace("\\", "\\\\").replace('"', '\\"')
        r = self._call("GET", ENDPOINT[kind], params={"filter": f'{attr} eq "{quoted}"'})
        found = _body(r).get("Resources") or []
        if len(found) > 1:
            raise Rejected(f"{len(found)} remote {kind}s have {attribute} {value!r}: "
                           "cannot choose one to adopt", status=409)
        return Remote(str(found[0]["id"]), found[0]) if found else None

    def find_many(self, kind: str, attribute: str, values: list[str]) -> dict[str, Remote]:
        """Remote objects for many values at once (one `or` filter), keyed by value.

        Matching before creating costs a request per account; a full pass matches
        fifty at a time. An application that refuses the filter gets one at a time.
        """
        if not values:
            return {}
        attr = "emails.value" if attribute == "email" else attribute
        quoted = [v.replace("\\", "\\\\").replace('"', '\\"') for v in values]
        flt = " or ".join(f'{attr} eq "{q}"' for q in quoted)
        try:
            r = self._call("GET", ENDPOINT[kind], params={"filter": flt,
                                                           "count": str(len(values))})
        except Rejected:
            found = {}
            for v in values:
                one = self.find(kind, attribute, v)
                if one is not None:
                    found[v] = one
            return found
        wanted = {v.lower(): v for v in values}
        out: dict[str, Remote] = {}
        for doc in _body(r).get("Resources") or []:
            if attribute == "email":
                candidates = [e.get("value") for e in doc.get("emails") or []
                              if isinstance(e, dict)]
            else:
                candidates = [doc.get(attribute)]
            for c in candidates:
                if isinstance(c, str) and c.lower() in wanted:
                    out[wanted[c.lower()]] = Remote(str(doc["id"]), doc)
        return out

    def list(self, kind: str) -> Iterator[Remote]:
        """Every remote object, page by page: by cursor (RFC 9865) when the app
        advertises it, else by index. An index listing that ends short of the total
        the app announced raises Transient (the read was not whole)."""
        size = str(self.config.profile.page_size)
        if self.capabilities().get("cursor"):
            params = {"cursor": "", "count": size}
            while True:
                page = _body(self._call("GET", ENDPOINT[kind], params=params))
                for doc in page.get("Resources") or []:
                    yield Remote(str(doc["id"]), doc)
                following = page.get("nextCursor")
                if not following:
                    return
                params = {"cursor": str(following), "count": size}
        start = 1
        while True:
            page = _body(self._call("GET", ENDPOINT[kind],
                                    params={"startIndex": str(start), "count": size}))
            items = page.get("Resources") or []
            for doc in items:
                yield Remote(str(doc["id"]), doc)
            start += len(items)
            total = int(page.get("totalResults", 0))
            if start > total:
                return
            if not items:
                raise Transient(f"listing {kind}s stopped at {start - 1} of {total}")


def _described(method: str, url: str, body: Any) -> Doc:
    return {"method": method, "url": url, "body": redact(body)}


def _body(r: httpx.Response) -> Any:
    if not r.content:
        return {}
    try:
        return r.json()
    except ValueError:
        return {"text": r.text[:2000]}
