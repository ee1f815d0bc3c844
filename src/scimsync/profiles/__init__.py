"""App profiles scimsync ships: the quirks of each application it is tested against.

A profile is what a target's `profile:` section says about its application (how it
pages, how it takes a group's members, what it stores beyond what it announces, ...;
scimsync.sync.config.Profile). Discovery learns what an app announces; a shipped
profile says what the tests showed it does *not* announce (docs/apps.md). A target
starts from one with `profile: {app: canaille}`; its own settings win over the
shipped ones, and a configuration file may name profiles of its own under
`profiles:` (scimsync.configfile.declared).

A target stores the name and its own settings only, never a copy of the shipped
profile: the shipped profile it is read with is the one of the scimsync that runs it,
so a quirk fixed in a release is fixed for every target that names the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from scimsync.validation import ConfigError


@dataclass(frozen=True)
class Shipped:
    """One shipped profile, as its file says."""

    app: str
    tested: str  # the version of the app the tests run
    description: str
    profile: dict[str, Any]
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"app": self.app, "tested": self.tested, "description": self.description,
                "profile": self.profile, "notes": list(self.notes)}


@cache
def shipped() -> dict[str, Shipped]:
    """Every shipped profile by its app's name."""
    out: dict[str, Shipped] = {}
    for entry in sorted(resources.files(__package__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        doc = yaml.safe_load(entry.read_text(encoding="utf-8"))
        out[doc["app"]] = Shipped(doc["app"], str(doc["tested"]), doc["description"],
                                  dict(doc["profile"]), tuple(doc.get("notes") or ()))
    return out


def names() -> list[str]:
    return sorted(shipped())


def base(app: Any) -> dict[str, Any]:
    """The settings of the shipped profile `app`; a ConfigError at `profile.app`
    naming the known ones otherwise."""
    found = shipped().get(app) if isinstance(app, str) else None
    if found is None:
        raise ConfigError(f"profile.app: no shipped profile {app!r}; shipped: "
                          f"{', '.join(names())} (scimsync profiles list); a "
                          "configuration file may name its own under `profiles:`", ("app",))
    return dict(found.profile)


def expand(raw: Any) -> Any:
    """A target's profile with the shipped one it names under its own settings."""
    if not isinstance(raw, dict) or raw.get("app") is None:
        return raw
    return merged(base(raw["app"]), raw)


def merged(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """`own` settings over `base`; `discovery` overrides merge fact by fact, so that
    a target that says one more attribute is stored keeps every other the base says
    is not (a setting that is not a mapping on either side is replaced whole)."""
    out = dict(base)
    for key, value in own.items():
        if key == "discovery" and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep(out[key], value)
        else:
            out[key] = value
    return out


def _deep(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in own.items():
        old = out.get(key)
        out[key] = _deep(old, value) if isinstance(old, dict) and isinstance(value, dict) \
            else value
    return out
