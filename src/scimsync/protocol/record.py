"""A stored resource as the protocol layer sees it: document plus server metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scimsync.protocol.values import Doc


@dataclass
class Member:
    value: str
    type: str
    display: str | None = None


@dataclass
class Record:
    """One stored resource: its document plus server-managed metadata."""

    id: str
    type: str
    doc: Doc
    created: str
    last_modified: str
    version: int
    members: list[Member] | None = None  # Groups: loaded when the response needs them
    groups: list[Member] | None = None  # Users: derived from memberships
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'
