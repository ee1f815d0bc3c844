"""An operator's word over what an app announced: `profile.discovery` of a SCIM target.

Every discovered fact can be overridden (docs/provisioning.md: Discovery)::

    profile:
      discovery:
        filter: false            # patch, filter, sort, bulk, cursor, index
        max_results: 200
        attributes:
          User:
            locale: {stored: false}             # never sent, never compared
            name.formatted: {required: true}    # filled where it can be derived
            title: {mutability: readWrite}
          Group:
            members.$ref: {required: true}

An attribute is named by its name, `name.sub` for a sub-attribute, and an extension's
by its URN and name (`urn:...:enterprise:2.0:User:employeeNumber`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from scimsync.connectors.discovery import MUTABILITIES, AppAttribute, Discovered
from scimsync.validation import ConfigError, Problems

FEATURES = ("patch", "filter", "sort", "bulk", "cursor", "index")
KEYS = (*FEATURES, "max_results", "attributes")
ATTRIBUTE_KEYS = ("stored", "required", "mutability")
KINDS = ("User", "Group", "Agent", "AgenticApplication")


def check(raw: Any) -> None:
    """Validate `profile.discovery`; every problem at once, each with its path."""
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise ConfigError("profile.discovery must be a mapping", ("discovery",))
    problems = Problems()
    for key, value in raw.items():
        path = ("discovery", key)
        if key not in KEYS:
            problems.add(f"profile.discovery.{key} is unknown (known: {', '.join(KEYS)})",
                         *path)
        elif key in FEATURES and not isinstance(value, bool):
            problems.add(f"profile.discovery.{key} is true or false", *path)
        elif key == "max_results" and (isinstance(value, bool) or not isinstance(value, int)
                                       or value < 1):
            problems.add("profile.discovery.max_results is a whole number of at least 1",
                         *path)
        elif key == "attributes":
            _check_attributes(value, problems)
    problems.raise_any()


def _check_attributes(raw: Any, problems: Problems) -> None:
    base = ("discovery", "attributes")
    if not isinstance(raw, dict):
        problems.add("profile.discovery.attributes maps a resource type to its attributes",
                     *base)
        return
    for kind, attrs in raw.items():
        where = f"profile.discovery.attributes.{kind}"
        if kind not in KINDS:
            problems.add(f"{where}: the resource type is one of {', '.join(KINDS)}", *base, kind)
            continue
        if not isinstance(attrs, dict):
            problems.add(f"{where} maps attribute names to their facts", *base, kind)
            continue
        for name, facts in attrs.items():
            path = (*base, kind, name)
            if not isinstance(facts, dict) or not facts:
                problems.add(f"{where}.{name} is a mapping of {', '.join(ATTRIBUTE_KEYS)}",
                             *path)
                continue
            for fact, value in facts.items():
                if fact not in ATTRIBUTE_KEYS:
                    problems.add(f"{where}.{name}.{fact} is unknown (known: "
                                 f"{', '.join(ATTRIBUTE_KEYS)})", *path, fact)
                elif fact == "mutability" and value not in MUTABILITIES:
                    problems.add(f"{where}.{name}.mutability is one of "
                                 f"{', '.join(MUTABILITIES)}", *path, fact)
                elif fact != "mutability" and not isinstance(value, bool):
                    problems.add(f"{where}.{name}.{fact} is true or false", *path, fact)


def apply(found: Discovered, raw: dict[str, Any] | None) -> Discovered:
    """The discovery with the profile's overrides (already checked) applied."""
    if not raw:
        return found
    features = {k: raw[k] for k in FEATURES if k in raw}
    if "max_results" in raw:
        features["max_results"] = raw["max_results"]
    out = replace(found, **features)
    resources = dict(out.resources)
    for kind, attrs in (raw.get("attributes") or {}).items():
        root = resources.get(kind) or AppAttribute(kind, open=not out.schemas)
        for name, facts in attrs.items():
            root = _set(root, split(name), facts)
        resources[kind] = root
    return replace(out, resources=resources)


def split(name: str) -> list[str]:
    """`name.sub` as its parts; an extension's `urn:...:User:attr` as (URN, attr)."""
    if name.lower().startswith("urn:"):
        urn, _, rest = name.rpartition(":")
        return [urn, *rest.split(".")]
    return name.split(".")


def _set(node: AppAttribute, parts: list[str], facts: dict[str, Any]) -> AppAttribute:
    head, rest = parts[0], parts[1:]
    child = node.sub.get(head.lower()) or AppAttribute(
        head, open=node.open or facts.get("stored") is True)
    child = _set(child, rest, facts) if rest else replace(child, origin="profile", **facts)
    return replace(node, sub={**node.sub, head.lower(): child})
