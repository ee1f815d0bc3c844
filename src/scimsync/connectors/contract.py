"""The connector seam (docs/architecture.md: Connectors).

A connector creates, replaces, patches, deletes, reads, finds and lists remote
objects, and raises one of the errors below. Links, retries, rate limits, ordering
and guards live in the engine. Errors carry what the engine needs to decide:

ConnectorError            base: the request and response, secrets redacted
├── Transient             retry later (timeouts, resets, 5xx, 429 with Retry-After)
├── RemoteNotFound        404: the remote object is gone (the link is stale)
├── RemoteConflict        409: the object exists already (match and adopt it)
└── Rejected              any other 4xx: retrying cannot fix it (dead letter)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

Doc = dict[str, Any]


@dataclass
class Remote:
    """An object as the target holds it."""

    id: str
    doc: Doc = field(default_factory=dict)


class ConnectorError(Exception):
    def __init__(self, message: str, *, status: int | None = None,
                 request: Doc | None = None, response: Any = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.request = request
        self.response = response
        self.retry_after = retry_after


class Transient(ConnectorError):
    pass


class RemoteNotFound(ConnectorError):
    pass


class RemoteConflict(ConnectorError):
    pass


class Rejected(ConnectorError):
    pass


class Connector(Protocol):
    """What the engine needs from a target. `kind` is "User" or "Group"."""

    def create(self, kind: str, body: Doc) -> Remote: ...

    def replace(self, kind: str, remote_id: str, body: Doc) -> Remote: ...

    def patch(self, kind: str, remote_id: str, operations: list[Doc]) -> None: ...

    def delete(self, kind: str, remote_id: str) -> None: ...

    def get(self, kind: str, remote_id: str) -> Remote | None: ...

    def find(self, kind: str, attribute: str, value: str) -> Remote | None: ...

    def find_many(self, kind: str, attribute: str, values: list[str]) -> dict[str, Remote]: ...

    def list(self, kind: str) -> Iterator[Remote]: ...

    def capabilities(self) -> dict[str, bool]: ...

    def close(self) -> None: ...


def redact(body: Any) -> Any:
    """A request or response body with secrets masked, for dead letters and logs."""
    if isinstance(body, dict):
        return {k: ("***" if k.lower() in ("password", "secret", "client_secret", "token")
                    else redact(v)) for k, v in body.items()}
    if isinstance(body, list):
        return [redact(v) for v in body]
    return body
