"""What a directory's discovery documents advertise beyond RFC 7643, kept in its
settings (`settings.discovery`).

One choice today, off by default: `agent_extension`, whether /ServiceProviderConfig
carries draft-abbey-scim-agent-extension's top-level `agentExtension` member for the
clients of this directory that look for it there. Strict clients refuse a
ServiceProviderConfig with that member, so a directory turns it on only when its
clients need it (protocol.agent_support says where agents are advertised otherwise).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, select, update

from scimsync.errors import UsageError
from scimsync.store.lean import json_value
from scimsync.store.tables import directories

D = directories.c


@dataclass(frozen=True)
class Advertised:
    """A directory's discovery choices."""

    agent_extension: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse(raw: Any) -> Advertised:
    """Choices from settings or a request; UsageError naming what is wrong."""
    if not isinstance(raw, dict):
        raise UsageError("discovery settings must be an object")
    unknown = sorted(set(raw) - {"agent_extension"})
    if unknown:
        raise UsageError(f"unknown discovery settings: {', '.join(unknown)}")
    value = raw.get("agent_extension", False)
    if not isinstance(value, bool):
        raise UsageError("agent_extension must be true or false")
    return Advertised(agent_extension=value)


def _stored(settings: Any) -> Any:
    found = json_value(settings) if settings is not None else {}
    return found.get("discovery", {}) if isinstance(found, dict) else {}


def get_advertised(engine: Engine, directory_id: str) -> Advertised:
    """The directory's discovery choices (the defaults for an unknown directory)."""
    with engine.connect() as conn:
        row = conn.execute(select(D.settings).where(D.id == directory_id)).first()
    return parse(_stored(row[0])) if row is not None else Advertised()


def set_advertised(engine: Engine, directory_id: str, raw: Any) -> Advertised:
    """Validate and store the choices given; those left out keep their value."""
    if not isinstance(raw, dict):
        raise UsageError("discovery settings must be an object")
    with engine.begin() as conn:
        row = conn.execute(select(D.settings).where(D.id == directory_id)
                           .with_for_update()).first()
        if row is None:
            raise UsageError(f"no directory {directory_id}")
        current = _stored(row[0])
        chosen = parse({**(current if isinstance(current, dict) else {}), **raw})
        settings = dict(json_value(row[0]) or {})
        settings["discovery"] = chosen.to_json()
        conn.execute(update(directories).where(D.id == directory_id)
                     .values(settings=settings))
    return chosen
