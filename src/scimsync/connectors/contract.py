"""The connector contract (docs/architecture.md: Connectors).

A connector is a narrow adapter to one downstream system. It creates, replaces,
updates (a change set), deletes, reads and lists remote objects, says what it can do
(`Capabilities`), and raises one of the errors below. What a write returns is the
object as the system answered (a `Remote` whose doc may be empty, or None for an
update answered without it): the engine verifies by it, or reads the object back.
It knows its wire format and nothing else: links, matching, retries, rate limits,
ordering, dry runs, guards and verification live in the engine (scimsync.sync). An
event sink (webhooks) is the other contract: one signed event per change, in order.

ConnectorError            base: the request and response, secrets redacted
├── Transient             retry later (timeouts, resets, 5xx, 429 with Retry-After)
├── RemoteNotFound        the remote object is gone (the link is stale)
├── RemoteConflict        the object exists already (match it, never overwrite blindly)
├── Rejected              the system refused this operation: retrying cannot fix it
├── IncompleteListing     a listing that does not add up (a page repeated, a count
│                         that disagrees, a cursor that does not advance): what was
│                         read is not all the system holds
└── Unavailable           a local fault: the connector cannot run at all (credentials
                          that do not decrypt, a configuration it refuses)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Doc = dict[str, Any]
# The kinds of object a connector may hold; the engine sends only those it announces.
KINDS = ("User", "Group", "Agent", "AgenticApplication")
SECRET_KEYS = frozenset({"password", "secret", "client_secret", "token", "access_token",
                         "refresh_token", "authorization", "api_key"})


@dataclass(frozen=True)
class Remote:
    """An object as the downstream system holds it: its id there and its attributes."""

    id: str
    doc: Doc = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Capabilities:
    """What a connector (and the system behind it) can do; the engine asks nothing else.

    `kinds` are the object kinds it holds. `update` says whether it applies a change
    set in place (else the engine replaces the whole object). `find` whether objects
    can be looked up by attribute (matching before create, crash recovery by
    externalId), `list` whether they can be read back (drift). `members` whether
    groups hold members. `max_members_per_update` bounds one change set's members.
    `stores` renders an object as the system keeps it, `discovered` is what the connector
    found out about the system (both for reports and drift, never for decisions).
    """

    kinds: frozenset[str] = frozenset({"User", "Group"})
    update: bool = True
    find: bool = True
    list: bool = True
    members: bool = True
    cursor: bool = False
    max_members_per_update: int = 100
    # An object as the system is sent it, so as it keeps it (only what it stores, with
    # what it requires filled in): drift compares that. None: the object as it is.
    stores: Callable[[str, Doc], Doc] | None = field(default=None, compare=False)
    # What the connector discovered of the system, for `targets show` (SCIM: discovery).
    discovered: Doc | None = field(default=None, compare=False)


@dataclass
class ChangeSet:
    """What differs between the applied and the desired object.

    `set` holds top-level attributes with their whole new value, `clear` attributes to
    remove, `add_members`/`remove_members` remote member ids. `desired` is the whole
    object after the change, for systems that can only replace.
    """

    desired: Doc
    set: Doc = field(default_factory=dict)
    clear: list[str] = field(default_factory=list)
    add_members: list[str] = field(default_factory=list)
    remove_members: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.set or self.clear or self.add_members or self.remove_members)

    def describe(self) -> Doc:
        """A readable summary for plans and records (values of secrets masked)."""
        out: Doc = {}
        if self.set:
            out["set"] = redact(self.set)
        if self.clear:
            out["clear"] = list(self.clear)
        if self.add_members:
            out["add_members"] = len(self.add_members)
        if self.remove_members:
            out["remove_members"] = len(self.remove_members)
        return out


class ConnectorError(Exception):
    """Any failure a connector reports, with what the engine needs to decide."""

    def __init__(self, message: str, *, status: int | None = None,
                 request: Doc | None = None, response: Any = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.request = request
        self.response = response
        self.retry_after = retry_after


class Transient(ConnectorError):
    """Retry later: the system or the way to it failed, not this operation."""


class RemoteNotFound(ConnectorError):
    """The remote object does not exist (any more)."""


class RemoteConflict(ConnectorError):
    """An object with these unique values exists already."""


class Rejected(ConnectorError):
    """This operation was refused; sending it again unchanged cannot succeed."""


class IncompleteListing(ConnectorError):
    """A listing that does not add up: the system answered, but not all it holds.

    `reason` names the check that failed (docs/drift.md: Listing): `start_index`,
    `items_per_page`, `short_page`, `total_results`, `repeated_id`, `cursor_repeated`,
    `not_a_list`."""

    def __init__(self, message: str, *, reason: str, **details: Any):
        super().__init__(message, **details)
        self.reason = reason


class Unavailable(ConnectorError):
    """A local fault: the connector cannot be used until a person fixes something."""


@runtime_checkable
class Connector(Protocol):
    """A downstream system that holds objects (docs/architecture.md: Connectors)."""

    def capabilities(self) -> Capabilities: ...

    def create(self, kind: str, attrs: Doc) -> Remote: ...

    def replace(self, kind: str, remote_id: str, attrs: Doc) -> Remote: ...

    def update(self, kind: str, remote_id: str, changes: ChangeSet) -> Remote | None:
        """Apply a change set; the object as the system answered, or None when it
        answered without it (the engine then reads it back to verify)."""
        ...

    def delete(self, kind: str, remote_id: str) -> None: ...

    def get(self, kind: str, remote_id: str) -> Remote | None: ...

    def find(self, kind: str, attribute: str, values: list[str]) -> list[Remote]: ...

    def list(self, kind: str) -> Iterator[Remote]: ...

    def close(self) -> None: ...


@runtime_checkable
class EventSink(Protocol):
    """A receiver of events (webhooks): one signed event per change, in order."""

    def send(self, event: Doc) -> None: ...

    def close(self) -> None: ...


def redact(body: Any) -> Any:
    """A request or response body with secrets masked, for dead letters and logs."""
    if isinstance(body, dict):
        return {k: ("***" if str(k).lower() in SECRET_KEYS else redact(v))
                for k, v in body.items()}
    if isinstance(body, list):
        return [redact(v) for v in body]
    return body
