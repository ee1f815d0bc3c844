"""What a SCIM application says of itself, read and kept (RFC 7643 §5-§7).

Discovery reads the app's ServiceProviderConfig (§5: patch, filter, sort, bulk, the
pagination forms of RFC 9865 §5, maxResults), its ResourceTypes (§6: each type's
schema and extensions) and its Schemas (§7: each attribute's mutability, whether it
and its sub-attributes are required). The result is a `Discovered`, frozen.

A discovery that failed is never stood in for by defaults: the connector raises
`Transient` (the run fails and is retried), or uses the last discovery that
succeeded for the same app and says so (`Discovered.stale`). An app that serves no
ServiceProviderConfig announces nothing: the profile's word is taken (every feature
on); one that serves no Schemas stores, as far as the hub knows, everything.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from scimsync.connectors.contract import ConnectorError, Rejected, RemoteNotFound, Transient
from scimsync.protocol import agent_support

Fetch = Callable[[str], Any]
CORE = {"User": "urn:ietf:params:scim:schemas:core:2.0:User",
        "Group": "urn:ietf:params:scim:schemas:core:2.0:Group"}
MUTABILITIES = ("readOnly", "readWrite", "immutable", "writeOnly")
TTL = 600.0  # seconds a discovery is believed before it is read again
# Answers that mean "this endpoint is not served", not "discovery failed".
NOT_SERVED = (404, 405, 501)


@dataclass(frozen=True)
class AppAttribute:
    """An attribute as the app defines it (RFC 7643 §7), or a resource type's root.

    `sub` holds the sub-attributes by lower-cased name; `open` says that names not
    listed are stored too (an app that serves no Schemas, a fact only overridden);
    `stored: false` is an override's "never send this"."""

    name: str
    mutability: str = "readWrite"
    required: bool = False
    sub: Mapping[str, AppAttribute] = field(default_factory=dict)
    open: bool = False
    stored: bool = True
    origin: str = "app"  # "profile" where an override set these facts

    def child(self, name: str) -> AppAttribute | None:
        """The sub-attribute `name` (case-insensitive) if the app stores it; an open
        node stores what it does not list."""
        found = self.sub.get(name.lower())
        if found is None and self.open:
            return AppAttribute(name, open=True)
        return found if found is not None and found.stored else None


ANYTHING = AppAttribute("", open=True)


@dataclass(frozen=True)
class Discovered:
    """The facts of one app (RFC 7643 §5-§7); `resources` maps a resource type
    (`User`, `Group`) to its root attribute, extensions as attributes named by URN."""

    patch: bool = True
    filter: bool = True
    sort: bool = False
    bulk: bool = False
    cursor: bool = False
    index: bool = True
    max_results: int | None = None
    agents: bool = False
    applications: bool = False
    schemas: bool = False  # whether the app served its Schemas
    resources: Mapping[str, AppAttribute] = field(default_factory=dict)
    at: float = 0.0  # wall-clock time of the discovery
    stale: str | None = None  # why the last successful discovery is used instead

    def root(self, kind: str) -> AppAttribute:
        """What the app stores of `kind`: everything if it did not say."""
        return self.resources.get(kind, ANYTHING)

    def facts(self) -> dict[str, Any]:
        """The discovered features, as `targets show` reports them."""
        return {"patch": self.patch, "filter": self.filter, "sort": self.sort,
                "bulk": self.bulk, "cursor": self.cursor, "index": self.index,
                "max_results": self.max_results, "schemas": self.schemas}


def read(fetch: Fetch, now: Callable[[], float] = time.time) -> Discovered:
    """Discover an app through `fetch(path) -> body` (a connector's GET); raises the
    ConnectorError of the first endpoint that fails other than by not being served."""
    spc = _served(fetch, "ServiceProviderConfig")
    if not isinstance(spc, dict):
        return Discovered(at=now())
    pagination = _section(spc, "pagination")  # RFC 9865 §5
    maximum = _section(spc, "filter").get("maxResults")
    found = Discovered(
        patch=_supported(spc, "patch"), filter=_supported(spc, "filter"),
        sort=_supported(spc, "sort", False), bulk=_supported(spc, "bulk", False),
        cursor=pagination.get("cursor") is True, index=pagination.get("index") is not False,
        max_results=maximum if isinstance(maximum, int) and maximum > 0 else None, at=now())
    types = _served(fetch, "ResourceTypes")
    agents = agent_support.from_config(spc) or agent_support.from_resource_types(types)
    found = replace(found, agents=agents.agents, applications=agents.applications)
    schemas = _served(fetch, "Schemas")
    if schemas is None:
        return found
    return replace(found, schemas=True, resources=_resources(_listed(types), _listed(schemas)))


def _served(fetch: Fetch, path: str) -> Any:
    """The endpoint's body, or None where the app does not serve it."""
    try:
        return fetch(path)
    except RemoteNotFound:
        return None
    except Rejected as exc:
        if exc.status in NOT_SERVED:
            return None
        raise


def _section(spc: dict[str, Any], key: str) -> dict[str, Any]:
    value = spc.get(key)
    return value if isinstance(value, dict) else {}


def _supported(spc: dict[str, Any], key: str, default: bool = True) -> bool:
    value = _section(spc, key).get("supported")
    return value if isinstance(value, bool) else default


def _listed(body: Any) -> list[dict[str, Any]]:
    """The resources of a ListResponse, or of a bare list (some apps serve one)."""
    items = body.get("Resources") if isinstance(body, dict) else body
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _resources(types: list[dict[str, Any]], schemas: list[dict[str, Any]]
               ) -> dict[str, AppAttribute]:
    """Each resource type's root: its schema's attributes, and each extension as one
    attribute named by its URN (RFC 7643 §6). Without ResourceTypes, the core ones."""
    by_id = {str(s.get("id")): s for s in schemas}
    declared = {str(t.get("name") or t.get("id")): t for t in types} or {
        kind: {"schema": urn} for kind, urn in CORE.items()}
    out: dict[str, AppAttribute] = {}
    for kind, rtype in declared.items():
        core = by_id.get(str(rtype.get("schema")))
        if core is None:
            continue
        attrs = _attributes(core.get("attributes"))
        for ext in rtype.get("schemaExtensions") or []:
            urn = str(ext.get("schema")) if isinstance(ext, dict) else ""
            if urn in by_id:
                sub = _attributes(by_id[urn].get("attributes"))
                # A schema that lists no attribute says nothing (Better Auth's
                # enterprise extension): what it holds is not known, so all is sent.
                attrs[urn.lower()] = AppAttribute(urn, required=ext.get("required") is True,
                                                  sub=sub, open=not sub)
        out[kind] = AppAttribute(kind, sub=attrs, open=not core.get("attributes"))
    return out


def _attributes(raw: Any) -> dict[str, AppAttribute]:
    out: dict[str, AppAttribute] = {}
    for a in raw if isinstance(raw, list) else []:
        if not isinstance(a, dict) or not isinstance(a.get("name"), str):
            continue
        mutability = a.get("mutability")
        out[a["name"].lower()] = AppAttribute(
            a["name"], mutability if mutability in MUTABILITIES else "readWrite",
            a.get("required") is True, _attributes(a.get("subAttributes")))
    return out


class Cache:
    """Discoveries per app and configuration, each believed for `ttl` seconds.

    The key holds a digest of everything that decides the answer (the URL, the
    credentials, the profile's overrides), so a changed credential or setting is
    discovered afresh. Only successes are kept."""

    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self.lock = threading.Lock()
        self.fresh: dict[str, tuple[float, Discovered]] = {}
        self.last_good: dict[str, Discovered] = {}

    def get(self, base: str, key: str, discover: Callable[[], Discovered]) -> Discovered:
        """The app's discovery: kept, else read; a failed read raises Transient unless
        an earlier one of the same app succeeded, which is returned, marked stale."""
        with self.lock:
            kept = self.fresh.get(key)
        if kept is not None and kept[0] > self.clock():
            return kept[1]
        try:
            found = discover()
        except ConnectorError as exc:
            with self.lock:
                last = self.last_good.get(base)
            if last is not None:
                return replace(last, stale=f"discovery failed ({exc}); the last "
                                           "successful discovery is used")
            raise Transient(f"discovery failed: {exc}", status=exc.status,
                            request=exc.request, response=exc.response,
                            retry_after=exc.retry_after) from exc
        with self.lock:
            self.fresh[key] = (self.clock() + self.ttl, found)
            self.last_good[base] = found
        return found

    def forget(self) -> None:
        with self.lock:
            self.fresh.clear()
            self.last_good.clear()


CACHE = Cache()


def cache_key(*parts: Any) -> str:
    """A digest of what decides a discovery (secrets included, never stored)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
