"""Connector kinds, found by name in one registry (docs/architecture.md: Connectors).

Each kind validates its own part of a target's settings (a SCIM application has a
`url` and `auth`, a webhook a `url` and signing secrets, an in-memory store a
`store` name) and opens a connector or an event sink from it. Nothing outside this
module branches on a kind's name; an unknown name fails loudly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scimsync.connectors.contract import Connector, EventSink
from scimsync.errors import UsageError

if TYPE_CHECKING:
    from scimsync.sync.config import Profile

Secrets = dict[str, Any]
# (the kind's own settings from a target's file or API call) -> (stored, secrets)
Parse = Callable[[dict[str, Any]], tuple[dict[str, Any], Secrets]]
Open = Callable[[dict[str, Any], "Profile", Secrets], Any]


@dataclass(frozen=True)
class ConnectorKind:
    """One kind of target: how its settings are checked and how it is opened.

    `sink` kinds receive events in journal order (scimsync.connectors.contract
    EventSink); the others hold objects (Connector). `settings` names the keys of a
    target's configuration that belong to this kind, for readable errors;
    `credentials` the dotted paths among them that hold secrets, the only places a
    configuration file may read from the environment (docs/security.md). `profile`
    names the profile settings that only this kind takes (a SCIM application's
    `count`), whose values `check_profile` checks (paths inside the profile).
    """

    name: str
    parse: Parse
    open: Open
    sink: bool = False
    settings: tuple[str, ...] = ()
    credentials: tuple[str, ...] = ()
    # Whether the kind can be read back, so that drift runs can be scheduled.
    readable: bool = True
    profile: tuple[str, ...] = ()
    check_profile: Callable[[dict[str, Any]], None] = lambda profile: None
    # Which downstream system a target's settings point at: two targets with the same
    # system share its objects, so one never adopts what the other links.
    system: Callable[[dict[str, Any]], str] = lambda settings: str(settings.get("url", ""))


_KINDS: dict[str, ConnectorKind] = {}


def register(kind: ConnectorKind) -> ConnectorKind:
    """Add a kind (its module calls this once when imported)."""
    _KINDS[kind.name] = kind
    return kind


def _load() -> None:
    # Importing a connector module registers its kind.
    from scimsync.connectors import memory, scim, webhook

    del memory, scim, webhook


def get(name: str) -> ConnectorKind:
    """The kind called `name`; a UsageError naming the known kinds otherwise."""
    _load()
    found = _KINDS.get(name)
    if found is None:
        raise UsageError(f"unknown target kind {name!r}; known: {', '.join(names())}")
    return found


def names() -> list[str]:
    """Every registered kind, sorted."""
    _load()
    return sorted(_KINDS)


def open_connector(name: str, settings: dict[str, Any], profile: Profile,
                   secrets: Secrets) -> Connector | EventSink:
    """A ready connector (or event sink) for a target of kind `name`."""
    opened = get(name).open(settings, profile, secrets)
    assert isinstance(opened, Connector | EventSink)
    return opened


def profile_owners() -> dict[str, list[str]]:
    """Each profile setting that belongs to some kinds only: the kinds that take it."""
    _load()
    owners: dict[str, list[str]] = {}
    for kind in sorted(_KINDS):
        for key in _KINDS[kind].profile:
            owners.setdefault(key, []).append(kind)
    return owners


def system_of(name: str, settings: dict[str, Any]) -> str:
    """A key naming the downstream system a target of kind `name` writes to."""
    return f"{name}:{get(name).system(settings).rstrip('/').lower()}"
