"""How the SCIM connector authenticates to an application (docs/provisioning.md:
Authentication).

A target's `auth` has a `type`:

- `none`: nothing is sent;
- `bearer`: `Authorization: Bearer <token>` (RFC 6750 §2.1);
- `basic`: `Authorization: Basic` of `username` and `password` (RFC 7617);
- `header`: a header the application names, carrying a secret (`X-API-Key: <value>`);
- `oauth2`: OAuth 2.0 client credentials (RFC 6749 §4.4). The client authenticates to
  the token endpoint as `token_endpoint_auth_method` says (RFC 7591 §2 names):
  `client_secret_basic`, the default and the one method every server must accept
  (RFC 6749 §2.3.1), or `client_secret_post`, its credentials in the body. `scope`
  (RFC 6749 §3.3), `audience` (the parameter Auth0 and others take) and `resource`
  (RFC 8707 §2) are sent when given. The token is reused, across the connectors of a
  process, until shortly before `expires_in`; when the application answers 401 it is
  asked for again, and the request sent again, once.

Secrets (`token`, `password`, `value`, `client_secret`) are split from the settings
as they are parsed, to be encrypted (scimsync.crypto). No message here holds one, and
a message built from a token endpoint's answer is scrubbed of them before it leaves.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote_plus, urlsplit

import httpx

from scimsync import outbound
from scimsync.connectors.contract import Rejected, Transient
from scimsync.connectors.http import retry_after, transient_status
from scimsync.netpolicy import check_url
from scimsync.validation import ConfigError, Problems, at, reject_unknown

Secrets = dict[str, Any]
Clock = Callable[[], float]

AUTH_TYPES = ("none", "bearer", "basic", "header", "oauth2")
FIELDS: dict[str, tuple[str, ...]] = {
    "none": (), "bearer": ("token",), "basic": ("username", "password"),
    "header": ("name", "value"),
    "oauth2": ("token_url", "client_id", "client_secret", "token_endpoint_auth_method",
               "scope", "audience", "resource")}
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "bearer": ("token",), "basic": ("password",), "header": ("value",),
    "oauth2": ("client_secret",)}
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
# Headers HTTP or the connector itself sets: a credential cannot stand in for them.
RESERVED_HEADERS = frozenset({
    "accept", "connection", "content-length", "content-type", "host", "keep-alive",
    "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"})
# A token that does not say how long it lives (RFC 6749 §5.1 only recommends
# expires_in) is asked for again after this long.
DEFAULT_LIFETIME = 300.0
# A token is asked for again this long before it expires (half the lifetime of a
# shorter-lived one), so that a request never carries one that expires on the way.
MARGIN = 30.0

_TOKEN_CHARS = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 §5.6.2 token
_HEADER_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")  # RFC 9110 §5.5
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §3.3 NQCHAR
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")  # RFC 6749 §5.2


# --- settings --------------------------------------------------------------------------

def parse_auth(raw: Any) -> tuple[dict[str, Any], Secrets]:
    """A target's `auth` settings checked and split into (stored settings, secrets).

    Every problem is a ConfigError at its path under `auth`; none repeats a value."""
    if raw is None:
        return {"type": "none"}, {}
    if not isinstance(raw, dict):
        raise ConfigError("auth must be a mapping with a type", ("auth",))
    atype = raw.get("type", "none")
    if atype not in AUTH_TYPES:
        raise ConfigError(f"unknown auth type {str(atype)[:40]!r}; known: "
                          f"{', '.join(AUTH_TYPES)}", ("auth", "type"))
    problems = Problems()
    with problems.check():
        reject_unknown(f"auth ({atype})", {k: v for k, v in raw.items() if k != "type"},
                       FIELDS[atype], ("auth",))
    secret_keys = SECRET_FIELDS.get(atype, ())
    settings = {k: v for k, v in raw.items() if k in FIELDS[atype] and k not in secret_keys}
    secrets = {k: raw[k] for k in secret_keys if k in raw}
    for k in secret_keys:
        if not isinstance(secrets.get(k), str) or not secrets[k]:
            problems.add(f"auth type {atype} needs {k}", "auth", k)
    _CHECKS[atype](settings, secrets, problems)
    problems.raise_any()
    return {**settings, "type": atype}, secrets


def _check_bearer(settings: dict[str, Any], secrets: Secrets, problems: Problems) -> None:
    _header_safe(secrets, "token", problems)


def _check_basic(settings: dict[str, Any], secrets: Secrets, problems: Problems) -> None:
    user = settings.get("username")
    if not isinstance(user, str) or not user:
        problems.add("auth type basic needs username", "auth", "username")
    elif ":" in user or not user.isprintable():
        # RFC 7617 §2: the first colon ends the user-id.
        problems.add("auth.username may not hold a colon or a control character",
                     "auth", "username")


def _check_header(settings: dict[str, Any], secrets: Secrets, problems: Problems) -> None:
    name = settings.get("name")
    if not isinstance(name, str) or not name:
        problems.add("auth type header needs name (the header, e.g. X-API-Key)",
                     "auth", "name")
    elif not _TOKEN_CHARS.fullmatch(name):
        problems.add("auth.name is not a header name (RFC 9110 §5.1)", "auth", "name")
    elif name.lower() in RESERVED_HEADERS:
        problems.add(f"auth.name may not be {name}: the connector or HTTP sets it",
                     "auth", "name")
    _header_safe(secrets, "value", problems)


def _check_oauth2(settings: dict[str, Any], secrets: Secrets, problems: Problems) -> None:
    url = settings.get("token_url")
    if not isinstance(url, str) or not url:
        problems.add("auth type oauth2 needs token_url", "auth", "token_url")
    else:
        with problems.check():  # the token request is a call like any other
            at(("auth", "token_url"), check_url, url)
    client_id = settings.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        problems.add("auth type oauth2 needs client_id", "auth", "client_id")
    method = settings.get("token_endpoint_auth_method", CLIENT_AUTH_METHODS[0])
    if method not in CLIENT_AUTH_METHODS:
        problems.add(f"auth.token_endpoint_auth_method is {' or '.join(CLIENT_AUTH_METHODS)}",
                     "auth", "token_endpoint_auth_method")
    scope = _strings(settings.get("scope"))
    if scope is None or not all(_SCOPE_TOKEN.fullmatch(s) for s in scope):
        problems.add("auth.scope is a scope or a list of them, each without spaces, quotes "
                     "or backslashes (RFC 6749 §3.3)", "auth", "scope")
    audience = settings.get("audience")
    if audience is not None and (not isinstance(audience, str) or not audience.strip()):
        problems.add("auth.audience is a string", "auth", "audience")
    resource = _strings(settings.get("resource"))
    if resource is None or not all(_absolute_uri(r) for r in resource):
        problems.add("auth.resource is an absolute URI without a fragment, or a list of "
                     "them (RFC 8707 §2)", "auth", "resource")


_CHECKS: dict[str, Callable[[dict[str, Any], Secrets, Problems], None]] = {
    "none": lambda *_: None, "bearer": _check_bearer, "basic": _check_basic,
    "header": _check_header, "oauth2": _check_oauth2}


def _header_safe(secrets: Secrets, key: str, problems: Problems) -> None:
    """A secret sent as a header value holds visible ASCII only (RFC 9110 §5.5): a line
    break would start another header, and httpx would repeat the value in its error."""
    value = secrets.get(key)
    if isinstance(value, str) and value and not _HEADER_VALUE.fullmatch(value):
        problems.add(f"auth.{key} holds a character an HTTP header cannot carry (visible "
                     "ASCII only, no space at either end)", "auth", key)


def _strings(value: Any) -> list[str] | None:
    """A string or a list of strings as a list (None: neither); a string is split on
    spaces, as RFC 6749 §3.3 writes a scope."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split(" ")
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _absolute_uri(value: str) -> bool:
    parts = urlsplit(value)
    return bool(parts.scheme and (parts.netloc or parts.path)) and "#" not in value


# --- requests --------------------------------------------------------------------------

class Credentials(Protocol):
    """What the connector sends to authenticate, and whether a 401 is worth a retry."""

    def headers(self) -> dict[str, str]:
        """The headers to send with the next request."""
        ...

    def refresh(self, sent: Mapping[str, str]) -> bool:
        """After a 401 to a request sent with `sent`: whether another try may succeed
        (new credentials can be had)."""
        ...


@dataclass(frozen=True)
class Static:
    """Credentials that never change (bearer, basic, a named header): a 401 is final."""

    fixed: dict[str, str] = field(repr=False)

    def headers(self) -> dict[str, str]:
        return dict(self.fixed)

    def refresh(self, sent: Mapping[str, str]) -> bool:
        return False


@dataclass(frozen=True)
class Token:
    """An access token and the clock time after which it is asked for again."""

    value: str = field(repr=False)
    renew_at: float


# Tokens by a hash of everything that asks for them (secret included: a rotated
# secret gets a token of its own). A connector lives for one run; the token outlives it.
_TOKENS: dict[str, Token] = {}
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock(key: str) -> threading.Lock:
    """One lock per token: concurrent requests wait for one token request, not several."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


class ClientCredentials:
    """OAuth 2.0 client credentials (RFC 6749 §4.4), sent as a bearer token."""

    def __init__(self, auth: dict[str, Any], secret: str, http: httpx.Client, clock: Clock):
        self.token_url = check_url(auth["token_url"], resolve=False)
        self.client_id = str(auth["client_id"])
        self.method = str(auth.get("token_endpoint_auth_method", CLIENT_AUTH_METHODS[0]))
        self._secret = secret
        self.http = http
        self.clock = clock
        self.params: dict[str, str | list[str]] = {"grant_type": "client_credentials"}
        if scope := _strings(auth.get("scope")):
            self.params["scope"] = " ".join(scope)
        if auth.get("audience"):
            self.params["audience"] = str(auth["audience"])
        if resource := _strings(auth.get("resource")):
            self.params["resource"] = resource  # repeated, one per URI (RFC 8707 §2)
        what = repr((self.token_url, self.client_id, secret, self.method, self.params))
        self.key = hashlib.sha256(what.encode()).hexdigest()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token()}"}

    def refresh(self, sent: Mapping[str, str]) -> bool:
        with _lock(self.key):
            held = _TOKENS.get(self.key)
            # Another request may have replaced it already: that one is kept.
            if held is not None and sent.get("Authorization") == f"Bearer {held.value}":
                del _TOKENS[self.key]
        return True

    def _token(self) -> str:
        with _lock(self.key):
            held = _TOKENS.get(self.key)
            if held is None or held.renew_at <= self.clock():
                held = _TOKENS[self.key] = self._request()
            return held.value

    def _request(self) -> Token:
        """A token request (RFC 6749 §4.4.2), the client authenticated by its method."""
        data = dict(self.params)
        headers = {"Accept": "application/json"}
        if self.method == "client_secret_post":
            data |= {"client_id": self.client_id, "client_secret": self._secret}
        else:  # §2.3.1: each part form-encoded, then joined and encoded
            headers["Authorization"] = basic(quote_plus(self.client_id),
                                             quote_plus(self._secret))
        asked = self.clock()
        try:
            r = self.http.post(self.token_url, data=data, headers=headers)
        except httpx.TransportError as exc:
            raise Transient(f"token endpoint unreachable: {outbound.reason(exc)}") from exc
        if transient_status(r.status_code):
            raise Transient(f"token endpoint answered {r.status_code}", status=r.status_code,
                            retry_after=retry_after(r.headers.get("retry-after")))
        if r.status_code != 200:
            # No request can go out without a token: the run stops and is retried with
            # backoff, as when the app is down, rather than setting every operation
            # aside and asking the token endpoint again for each (a lockout risk).
            raise Transient(self._scrub(self._refusal(r)))
        return self._issued(r, asked)

    def _refusal(self, r: httpx.Response) -> str:
        """Why the token endpoint refused, by its error code (RFC 6749 §5.2), naming the
        method the client used; the description is left out (it is the server's text)."""
        code = _field(r, "error")
        message = (f"the token endpoint refused the client ({self.method}): {r.status_code}"
                   + (f" {code}" if code and _ERROR_CODE.fullmatch(code) else ""))
        if r.status_code == 401 or code == "invalid_client":
            other = next(m for m in CLIENT_AUTH_METHODS if m != self.method)
            message += (f"; check client_id and client_secret, or whether the server takes "
                        f"{other} (auth.token_endpoint_auth_method)")
        return message

    def _issued(self, r: httpx.Response, asked: float) -> Token:
        """The token of a successful answer (RFC 6749 §5.1), to be asked for again a
        margin before it expires (timed from when it was asked for)."""
        try:
            body = r.json()
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise Rejected("the token endpoint answered 200 without an access_token")
        assert isinstance(body, dict)
        kind = body.get("token_type", "Bearer")
        if not isinstance(kind, str) or kind.lower() != "bearer":
            raise Rejected(self._scrub(f"the token endpoint issued a {str(kind)[:20]!r} "
                                       "token; only Bearer tokens are sent (RFC 6750)"))
        if not _HEADER_VALUE.fullmatch(token):
            raise Rejected("the token endpoint issued an access_token an HTTP header "
                           "cannot carry")
        life = _lifetime(body.get("expires_in"))
        return Token(token, asked + life - min(MARGIN, life / 2))

    def _scrub(self, message: str) -> str:
        return message.replace(self._secret, "***")


def _field(r: httpx.Response, name: str) -> str | None:
    try:
        body = r.json()
    except ValueError:
        return None
    value = body.get(name) if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def _lifetime(expires_in: Any) -> float:
    """Seconds a token lives: expires_in as a number, or as digits (some servers send
    a string); DEFAULT_LIFETIME when it is missing or makes no sense."""
    if isinstance(expires_in, str) and expires_in.strip().isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) \
            and 0 < expires_in < 10 ** 9:
        return float(expires_in)
    return DEFAULT_LIFETIME


def basic(user: str, password: str) -> str:
    """An `Authorization: Basic` value (RFC 7617 §2, UTF-8)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def credentials_for(auth: dict[str, Any], secrets: Secrets, http: httpx.Client,
                    clock: Clock = time.monotonic) -> Credentials:
    """The credentials a target's stored `auth` settings and secrets stand for."""
    kind = auth.get("type", "none")
    if kind == "bearer":
        return Static({"Authorization": f"Bearer {secrets['token']}"})
    if kind == "basic":
        return Static({"Authorization": basic(str(auth.get("username", "")),
                                              secrets["password"])})
    if kind == "header":
        return Static({str(auth["name"]): secrets["value"]})
    if kind == "oauth2":
        return ClientCredentials(auth, secrets["client_secret"], http, clock)
    return Static({})
