"""Target configuration: what a target receives and how the engine treats it.

The settings common to every kind (profile, scope, mapping, roles, drift) are checked
here; the rest of a target's settings belong to its connector kind, which checks them
(scimsync.connectors.registry). Credentials are split out as soon as they are read,
so that they can be encrypted (scimsync.crypto) and never returned, logged or
journaled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from scimsync import profiles
from scimsync.durations import seconds
from scimsync.errors import ScimError, UsageError
from scimsync.protocol.filter import parse_filter
from scimsync.validation import ConfigError, Problems, check_fields, reject_unknown

COMMON = ("profile", "scope", "mapping", "roles", "drift")
MATCH_ATTRIBUTES = ("externalId", "userName", "email")
# What a full reconciliation can find (docs/drift.md), most severe first.
DRIFT_CLASSES = ("lingering_access", "orphaned_account", "membership_drift",
                 "missing_account", "attribute_drift", "unmanaged_matchable")
REMEDIATION_MODES = ("report", "auto", "approve")
# What drift.ignore may name: the kinds a drift run reads back.
IGNORABLE = ("User", "Group", "Agent")
# What a run reads back after writing it, to see that the application kept it
# (docs/provisioning.md: Verification).
VERIFY_MODES = ("groups", "all", "none")
# The profile settings that take one of a few words, each with its choices, the
# first being the default.
CHOICES: dict[str, tuple[str, ...]] = {
    "deprovision": ("deactivate", "delete"), "adopt": ("externalId", "match"),
    "verify": VERIFY_MODES, "group_members": ("inline", "patch"),
    "member_remove": ("filter", "value"), "member_value": ("id", "userName"),
    "empty_group": ("patch", "put"), "patch_complex": ("whole", "sub")}


@dataclass
class Profile:
    """What a SCIM application can do, and how it wants to be treated."""

    # A shipped profile these settings start from (scimsync.profiles); the target's
    # own settings win over it.
    app: str | None = None
    patch: bool = True  # false: send full PUTs
    groups: bool = True  # push groups and memberships
    match: tuple[str, ...] = ("externalId", "userName")  # how existing accounts are found
    # Which found accounts may be adopted: only those whose externalId is the identity's
    # id ("externalId"), or also those without any externalId ("match").
    adopt: str = "externalId"
    deprovision: str = "deactivate"  # or "delete"
    page_size: int = 100
    # The `count` a listing or search sends (SCIM targets): None sends page_size, a
    # number caps it, "omit" sends none (an app that fails on any count).
    count: int | str | None = None
    # Overrides of what the app announced (SCIM targets; connectors/overrides.py).
    discovery: dict[str, Any] | None = None
    max_members_per_patch: int = 100
    rate_limit: float = 0.0  # requests per second; 0 = unlimited
    concurrency: int = 8  # requests in flight at once (1: one at a time)
    timeout: float = 30.0
    # Accidental-deletion guard: a run that would take out more accounts than this, or
    # more than this share of those provisioned (once over 10), waits for approval.
    max_deprovisions: int = 500
    max_deprovision_percent: float = 30.0
    # What is checked after a write (VERIFY_MODES): groups' members, also users' (and
    # agents') attributes, or nothing.
    verify: str = "groups"
    # SCIM targets only (None: the first of CHOICES, or FIND_BATCH; docs/apps.md).
    # How the app takes a group's members: with the group (`inline`) or only by
    # PATCH after it (`patch`, which the engine also learns by verifying).
    group_members: str | None = None
    # How a member is removed: by a filter in the path (`filter`, RFC 7644 §3.5.2.2)
    # or by listing it in the operation's value (`value`).
    member_remove: str | None = None
    # What a member's `value` is in what the app answers and filters: the member's
    # id (`id`) or its userName (`userName`).
    member_value: str | None = None
    # How a group loses its last member: by PATCH, or by a PUT of `members: []`.
    empty_group: str | None = None
    # Values one lookup asks for at once (an `or` filter); 1 sends one at a time.
    find_batch: int | None = None
    # How a changed complex attribute (`name`) is PATCHed: whole, or one `replace` per
    # sub-attribute it holds (`sub`: django-scim2 fails on a whole `name`).
    patch_complex: str | None = None


@dataclass
class Scope:
    """Which identities a target receives: everyone, members of groups, or a filter."""

    groups: tuple[str, ...] = ()  # group displayNames or ids
    filter: str | None = None


@dataclass
class Drift:
    """Full reconciliation: how often (seconds, 0 = only on demand) and, per finding
    class, whether to only report it, fix it automatically after each complete run,
    or fix it when a person asks (`approve`, the default). `ignore` names, per resource
    type, SCIM filters of the application's own objects (its service account): an
    object that matches one and that no identity claims is neither reported nor
    fixed; a linked or matched one always is."""

    interval: float = 0.0
    remediate: dict[str, str] = field(default_factory=dict)
    ignore: dict[str, list[str]] = field(default_factory=dict)

    def mode(self, cls: str) -> str:
        return self.remediate.get(cls, "approve")


@dataclass
class TargetConfig:
    """A target's configuration: its connector kind's own settings, then the rest."""

    kind: str
    settings: dict[str, Any] = field(default_factory=dict)
    profile: Profile = field(default_factory=Profile)
    scope: Scope = field(default_factory=Scope)
    # [{"target": path, "source": path | "value": literal | "expression": text}]
    mapping: list[dict[str, Any]] = field(default_factory=list)
    # [{"group": name or id, "value": role, "attribute": "roles" | "entitlements"}]
    roles: list[dict[str, Any]] = field(default_factory=list)
    drift: Drift = field(default_factory=Drift)
    # The profile settings the target gives itself (beside `app`): stored even where
    # they equal the shipped profile's, so that a release changing that one leaves
    # them as the operator set them.
    own: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The stored form: the kind's settings beside the common sections. A profile
        that starts from a shipped one keeps its name and what differs from it only
        (scimsync.profiles: the shipped part is read from the running release)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("kind", "settings", "own")}
        out["profile"]["match"] = list(self.profile.match)
        if self.profile.app is not None:
            shipped = asdict(_profile(profiles.expand({"app": self.profile.app})))
            shipped["match"] = list(shipped["match"])
            out["profile"] = {k: v for k, v in out["profile"].items()
                              if k == "app" or k in self.own or v != shipped[k]}
        out["scope"]["groups"] = list(self.scope.groups)
        return {**self.settings, **out}


# The fields a range limits: (lowest, highest, whether the lowest itself is allowed).
RANGES: dict[str, tuple[float, float | None, bool]] = {
    "page_size": (1, None, True), "max_members_per_patch": (1, None, True),
    "rate_limit": (0, None, True), "concurrency": (1, 64, True), "timeout": (0, None, False),
    "max_deprovisions": (0, None, True), "max_deprovision_percent": (0, 100, True),
    "find_batch": (1, None, True)}
RULE_KEYS = ("target", "source", "value", "expression")
ROLE_KEYS = ("group", "value", "attribute")


def parse_config(kind: str, raw: dict[str, Any]) -> tuple[TargetConfig, dict[str, Any]]:
    """Validate a target's settings; returns (config without secrets, secrets).

    Every section is checked even when another fails, and each problem is a
    ConfigError with its path (scimsync.validation), so a file shows them all."""
    from scimsync.connectors import registry

    spec = registry.get(kind)
    problems = Problems()
    settings: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    profile, scope, drift = Profile(), Scope(), Drift()
    mapping: list[dict[str, Any]] = []
    roles: list[dict[str, Any]] = []
    with problems.check():
        reject_unknown(f"{kind} target", raw, (*spec.settings, *COMMON))
    with problems.check():
        settings, secrets = spec.parse({k: v for k, v in raw.items() if k in spec.settings})
    given = raw.get("profile")
    own = tuple(k for k in given if k != "app") if isinstance(given, dict) else ()
    expanded = given
    with problems.check("profile"):
        expanded = profiles.expand(given)
        profile = _check_profile(expanded)
    with problems.check("profile"):
        _check_kind_profile(spec, expanded)
    with problems.check("scope"):
        scope = _check_scope(raw.get("scope"))
    with problems.check("mapping"):
        mapping = _check_mapping(raw.get("mapping") or [])
    with problems.check("roles"):
        roles = _check_roles(raw.get("roles") or [])
    with problems.check("drift"):
        drift = _check_drift(raw.get("drift"))
    problems.raise_any()
    return TargetConfig(kind, settings, profile, scope, mapping, roles, drift, own), secrets


def _check_profile(raw: Any) -> Profile:
    problems = Problems()
    pf = check_fields(Profile, raw, "profile", problems=problems)
    if "match" in pf:
        pf["match"] = tuple(pf["match"])
        if any(m not in MATCH_ATTRIBUTES for m in pf["match"]):
            problems.add(f"profile.match supports {', '.join(MATCH_ATTRIBUTES)}", "match")
    for name, choices in CHOICES.items():
        if pf.get(name) is not None and pf[name] not in choices:
            problems.add(f"profile.{name} is one of {', '.join(choices)} (default "
                         f"{choices[0]})", name)
    for name, (low, high, closed) in RANGES.items():
        value = pf.get(name)
        if value is None:
            continue
        if value < low or (value == low and not closed) or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else \
                f"at least {low}" if closed else f"more than {low}"
            problems.add(f"profile.{name} is {span}", name)
    problems.raise_any()
    return Profile(**pf)


def check_profile(kind: str, raw: Any) -> None:
    """A profile's settings as a target of `kind` would take them (a configuration
    file's named profiles are checked so, each on its own); paths inside it."""
    from scimsync.connectors import registry

    problems = Problems()
    expanded = raw
    with problems.check():
        expanded = profiles.expand(raw)
        _check_profile(expanded)
    with problems.check():
        _check_kind_profile(registry.get(kind), expanded)
    problems.raise_any()


def _profile(raw: dict[str, Any]) -> Profile:
    """A checked or stored profile's settings as a Profile."""
    return Profile(**{**raw, "match": tuple(raw.get("match", Profile.match))})


def _check_kind_profile(spec: Any, raw: Any) -> None:
    """Profile settings of some kinds only: refused elsewhere, checked by their kind."""
    if not isinstance(raw, dict):
        return
    from scimsync.connectors import registry

    problems = Problems()
    for key, kinds in registry.profile_owners().items():
        if key in raw and raw[key] is not None and spec.name not in kinds:
            problems.add(f"profile.{key} is a setting of {', '.join(kinds)} targets only", key)
    with problems.check():
        spec.check_profile({k: v for k, v in raw.items() if k in spec.profile})
    problems.raise_any()


def _check_scope(raw: Any) -> Scope:
    sc = check_fields(Scope, raw, "scope")
    if "groups" in sc:
        sc["groups"] = tuple(sc["groups"])
    scope = Scope(**sc)
    if scope.filter is not None:
        try:
            parse_filter(scope.filter)  # a bad filter is refused when configured
        except ScimError as exc:
            raise ConfigError(f"scope.filter is not a valid SCIM filter: {exc.detail}",
                              ("filter",)) from exc
    return scope


def parse_interval(value: Any) -> float:
    """Seconds from a number or a duration such as `90s`, `30m`, `24h`, `7d`."""
    out = seconds(value, "drift.interval")
    if out != 0 and out < 60:
        raise UsageError("drift.interval is at least 60 seconds (or 0 for on demand only)")
    return out


def _check_drift(raw: Any) -> Drift:
    d = check_fields(Drift, raw, "drift", own=("interval",))
    problems = Problems()
    interval = 0.0
    with problems.check("interval"):
        interval = parse_interval(d.get("interval", 0))
    remediate = d.get("remediate") or {}
    for cls, mode in remediate.items():
        if cls not in DRIFT_CLASSES:
            problems.add(f"drift.remediate: unknown class {cls!r}; known: "
                         f"{', '.join(DRIFT_CLASSES)}", "remediate", cls, key=True)
        elif mode not in REMEDIATION_MODES:
            problems.add(f"drift.remediate.{cls} is one of {', '.join(REMEDIATION_MODES)}",
                         "remediate", cls)
    ignore = d.get("ignore") or {}
    for kind, filters in ignore.items():
        if kind not in IGNORABLE:
            problems.add(f"drift.ignore: {kind!r} is not a resource type; known: "
                         f"{', '.join(IGNORABLE)}", "ignore", kind, key=True)
            continue
        if not isinstance(filters, list) or not all(isinstance(f, str) for f in filters):
            problems.add(f"drift.ignore.{kind} is a list of SCIM filters", "ignore", kind)
            continue
        for i, text in enumerate(filters):
            try:
                parse_filter(text)
            except ScimError as exc:
                problems.add(f"drift.ignore.{kind}[{i}] is not a valid SCIM filter: "
                             f"{exc.detail}", "ignore", kind, i)
    problems.raise_any()
    return Drift(interval, dict(remediate), {k: list(v) for k, v in ignore.items()})


def _check_mapping(rules: Any) -> list[dict[str, Any]]:
    if not isinstance(rules, list):
        raise UsageError("mapping must be a list of rules")
    problems = Problems()
    out = []
    for i, rule in enumerate(rules):
        with problems.check(i):
            out.append(_check_rule(i, rule))
    problems.raise_any()
    return out


def _check_rule(i: int, rule: Any) -> dict[str, Any]:
    from scimsync.protocol.resources import USER
    from scimsync.protocol.schema import resolve
    from scimsync.sync.sample import check_rule

    if not isinstance(rule, dict) or not isinstance(rule.get("target"), str):
        raise UsageError(f"mapping[{i}] needs a target attribute")
    reject_unknown(f"mapping[{i}]", rule, RULE_KEYS)
    sources = [k for k in ("source", "value", "expression") if k in rule]
    if len(sources) != 1:
        raise UsageError(f"mapping[{i}] needs exactly one of source, value, expression")
    target = rule["target"]
    rp = resolve(USER, target)
    if rp is None or rp.attr.mutability == "readOnly" or rp.attr.name in ("id", "password"):
        raise ConfigError(f"mapping[{i}]: {target!r} is not a writable User attribute",
                          ("target",))
    if rp.attr.name == "externalId":
        # externalId carries the identity's id: it is how an account is known to be
        # this identity's, so a mapping may not change it (docs/provisioning.md).
        raise ConfigError(f"mapping[{i}]: externalId is the hub's own (the identity's id)",
                          ("target",))
    try:
        check_rule(i, rule)  # parsed and tried on a sample user, not first in a run
    except UsageError as exc:
        raise ConfigError(str(exc), (sources[0],)) from exc
    return dict(rule)


def _check_roles(rules: Any) -> list[dict[str, Any]]:
    if not isinstance(rules, list):
        raise UsageError("roles must be a list of {group, value}")
    problems = Problems()
    out = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict) or not isinstance(rule.get("group"), str) or \
                not isinstance(rule.get("value"), str):
            problems.add(f"roles[{i}] needs a group and a value", i)
            continue
        with problems.check(i):
            reject_unknown(f"roles[{i}]", rule, ROLE_KEYS)
        attribute = rule.get("attribute", "roles")
        if attribute not in ("roles", "entitlements"):
            problems.add(f"roles[{i}].attribute is roles or entitlements", i, "attribute")
        out.append({"group": rule["group"], "value": rule["value"], "attribute": attribute})
    problems.raise_any()
    return out


def load_config(kind: str, raw: dict[str, Any]) -> TargetConfig:
    """Rebuild a stored configuration (already validated)."""
    stored = dict(raw.get("profile") or {})
    profile = profiles.expand(stored)
    scope = dict(raw.get("scope") or {})
    scope["groups"] = tuple(scope.get("groups", ()))
    drift = dict(raw.get("drift") or {})
    return TargetConfig(kind, {k: v for k, v in raw.items() if k not in COMMON},
                        _profile(profile), Scope(**scope), list(raw.get("mapping") or []),
                        list(raw.get("roles") or []),
                        Drift(float(drift.get("interval", 0)), dict(drift.get("remediate") or {}),
                              dict(drift.get("ignore") or {})),
                        tuple(k for k in stored if k != "app"))
