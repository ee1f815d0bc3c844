"""A configuration file checked as a whole: every problem, each at its line and column.

The file is a mapping with a `targets` list and, optionally, `profiles`: profiles of
its own by name, each a target profile (scimsync.sync.config.Profile) that may start
from a shipped one (`app: canaille`, scimsync.profiles). A target's `profile: {app:
NAME}` names a shipped profile or one of the file's; the target's own settings win.
Each target has `directory` (id or name), `name`, optionally `kind` (default `scim`)
and `paused`, and then the settings of its kind and the common sections
(scimsync.sync.config). Unknown keys are refused at every level. Each target is
checked on its own, so that one file shows all of its problems at once; nothing may
be applied unless the list is empty.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scimsync import profiles as shipped_profiles
from scimsync.configfile.envrefs import credential_paths, expand
from scimsync.configfile.marks import load
from scimsync.connectors import registry
from scimsync.errors import UsageError
from scimsync.store import group_names
from scimsync.store.targets import Targets
from scimsync.sync import group_rules
from scimsync.sync.config import COMMON, TargetConfig, check_profile, parse_config
from scimsync.validation import ConfigError, Path, Problems, reject_unknown

TOP = ("targets", "profiles")
OWN = ("directory", "name", "kind", "paused")  # a target's keys that are not settings


@dataclass(frozen=True)
class FileError:
    """One problem of a file, where it is and which target it belongs to."""

    file: str
    line: int
    column: int
    message: str
    path: str  # e.g. targets[2].profile.concurrency
    target: str | None = None  # directory/name, as written

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.column,
                "target": self.target, "path": self.path, "message": self.message}


@dataclass
class Declared:
    """One target as the file declares it, checked."""

    index: int
    directory: str  # as written
    directory_id: str
    name: str
    kind: str
    paused: bool | None  # None: the file does not say
    settings: dict[str, Any]  # the environment read in; what Targets.add/update take
    config: TargetConfig
    secrets: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.directory}/{self.name}"


def dotted(path: Path) -> str:
    """`("targets", 2, "profile")` as `targets[2].profile`."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def read(file: str, text: str, targets: Targets,
         env: Mapping[str, str] | None = None) -> tuple[list[Declared], list[FileError]]:
    """Every target of a file, checked, or the problems that stop it being applied."""
    doc = load(text)
    errors = [FileError(file, m.line, m.column, msg, "") for m, msg in doc.problems]
    if errors and doc.data is None:  # not YAML: nothing further can be checked
        return [], errors

    def report(problems: list[ConfigError], label: str | None = None) -> None:
        for p in problems:
            m = doc.where(p.path, p.key)
            prefix = f"target {label} ({dotted(p.path[:2])}): " if label else ""
            errors.append(FileError(file, m.line, m.column, prefix + p.message,
                                    dotted(p.path), label))

    data = doc.data
    top = Problems()
    if isinstance(data, dict):
        with top.check():
            reject_unknown("top-level", data, TOP)
    if not isinstance(data, dict) or not isinstance(data.get("targets"), list):
        top.add("the file is a mapping with a `targets` list", "targets")
        report(top.errors)
        return [], sorted(errors, key=lambda e: (e.line, e.column))
    named = _profiles(data.get("profiles"), top)
    report(top.errors)
    out: list[Declared] = []
    seen: dict[tuple[str, str], int] = {}
    for i, raw in enumerate(data["targets"]):
        label = _label(raw, i)
        problems = Problems()
        with problems.check("targets", i):
            found = _target(i, _with_profile(raw, named), targets,
                            os.environ if env is None else env)
            key = (found.directory_id, found.name)
            if key in seen:
                raise ConfigError(f"targets[{seen[key]}] already declares {found.label}",
                                  ("name",))
            seen[key] = i
            out.append(found)
        report(problems.errors, label)
    errors.sort(key=lambda e: (e.line, e.column))
    return (out if not errors else []), errors


def _profiles(raw: Any, problems: Problems) -> dict[str, dict[str, Any]]:
    """The file's own profiles by name, each checked as a SCIM target's (their
    settings are those of SCIM applications); the sound ones only."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add("profiles maps a name to a profile", "profiles")
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, profile in raw.items():
        if name in shipped_profiles.shipped():
            problems.add(f"profiles.{name}: scimsync ships a profile of that name; name "
                         f"yours otherwise and start it from the shipped one with `app: "
                         f"{name}`", "profiles", name, key=True)
            continue
        if not isinstance(profile, dict):
            problems.add(f"profiles.{name} is a mapping of profile settings",
                         "profiles", name)
            continue
        with problems.check("profiles", name):
            check_profile("scim", profile)
            out[name] = profile
    return out


def _with_profile(raw: Any, named: dict[str, dict[str, Any]]) -> Any:
    """A target with the file's profile it names under its own settings."""
    if not isinstance(raw, dict) or not isinstance(raw.get("profile"), dict):
        return raw
    own = raw["profile"]
    base = named.get(own["app"]) if isinstance(own.get("app"), str) else None
    if base is None:
        return raw
    return {**raw, "profile": shipped_profiles.merged(
        base, {k: v for k, v in own.items() if k != "app"})}


def _label(raw: Any, i: int) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        return f"{raw.get('directory')}/{raw['name']}"
    return f"targets[{i}]"


def _target(i: int, raw: Any, targets: Targets, env: Mapping[str, str]) -> Declared:
    if not isinstance(raw, dict):
        raise ConfigError(f"targets[{i}] is a mapping with directory, name and settings")
    problems = Problems()
    for key in ("directory", "name"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            problems.add(f"a target needs a {key}", *((key,) if key in raw else ()))
    kind = raw.get("kind", "scim")
    spec = None
    with problems.check("kind"):
        if not isinstance(kind, str):
            raise UsageError("kind is a string, e.g. scim or webhook")
        spec = registry.get(kind)
    if "paused" in raw and not isinstance(raw["paused"], bool):
        problems.add("paused is true or false", "paused")
    directory_id = ""
    if isinstance(raw.get("directory"), str) and raw["directory"].strip():
        with problems.check("directory"):
            directory_id = targets.directory_id(raw["directory"])
    if spec is None:
        problems.raise_any()  # without a kind its settings cannot be checked
    assert spec is not None
    with problems.check():
        reject_unknown(f"{kind} target", raw, (*OWN, *spec.settings, *COMMON))
    given = {k: v for k, v in raw.items()
             if k not in OWN and k in (*spec.settings, *COMMON)}
    unread = Problems()
    settings = expand(given, (), credential_paths(spec.credentials), env, unread)
    problems.errors += unread.errors
    config: TargetConfig | None = None
    secrets: dict[str, Any] = {}
    checked = Problems()
    with checked.check():
        config, secrets = parse_config(kind, settings)
    # A value whose reference could not be read is blank: what that blank breaks is
    # not another problem of the file.
    problems.errors += [e for e in checked.errors
                        if not any(_related(e.path, u.path) for u in unread.errors)]
    if directory_id and isinstance(raw.get("name"), str):
        with problems.check("kind"):
            _same_kind(targets, directory_id, raw["name"], kind)
    if directory_id and config is not None:
        _groups_exist(targets, directory_id, config, problems)
    problems.raise_any()
    assert config is not None
    return Declared(i, raw["directory"], directory_id, raw["name"], kind, raw.get("paused"),
                    settings, config, secrets)


def _groups_exist(targets: Targets, directory_id: str, config: TargetConfig,
                  problems: Problems) -> None:
    """Scope and role rules name groups of the directory (sync/group_rules.py), each
    refused at its own rule; Targets.add/update check the same when storing."""
    named = group_rules.named_groups(config)
    if not named:
        return
    with targets.engine.connect() as conn:
        found = group_names.existing(conn, directory_id, [g for _, g in named])
    paths: list[Path] = [("scope", "groups", i) for i in range(len(config.scope.groups))]
    paths += [("roles", i, "group") for i in range(len(config.roles))]
    for (rule, group), path in zip(named, paths, strict=True):
        if group.lower() not in found:
            problems.add(f"{rule}: no group {group!r} in the directory (rules name a group "
                         "by displayName or id; create the group first)", *path)


def _related(a: Path, b: Path) -> bool:
    n = min(len(a), len(b))
    return n > 0 and a[:n] == b[:n]


def _same_kind(targets: Targets, directory_id: str, name: str, kind: str) -> None:
    for t in targets.list(directory_id):
        if t["name"] == name and t["kind"] != kind:
            raise UsageError(f"target {name} is a {t['kind']} target; a kind cannot change "
                             f"(remove the target and apply again to make it a {kind})")

