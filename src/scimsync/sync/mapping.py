"""Desired state of a resource in a target: scope, then mapping (docs/architecture.md: Reconcile).

desired = map(scope(directory)). Users keep their SCIM shape; the hub's id travels
as `externalId`, so a remote account can always be matched back to its identity (no
duplicates after a crash). References to other resources (group members, a user's
manager) become the remote ids of their links; what is not provisioned is left out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson

from scimsync.protocol.agents import CORE_AGENT, CORE_AGENTIC_APPLICATION
from scimsync.protocol.evaluate import matches
from scimsync.protocol.filter import parse_filter
from scimsync.protocol.record import Record
from scimsync.protocol.render import full_document
from scimsync.protocol.resources import USER
from scimsync.protocol.schema import CORE_GROUP, CORE_USER, ENTERPRISE_USER, resolve
from scimsync.sync import expressions
from scimsync.sync.config import TargetConfig

Doc = dict[str, Any]
RemoteId = Callable[[str], str | None]  # hub id -> remote id in this target, if linked

USER_ATTRIBUTES = ("userName", "name", "displayName", "nickName", "profileUrl", "title",
                   "userType", "preferredLanguage", "locale", "timezone", "active", "emails",
                   "phoneNumbers", "ims", "photos", "addresses", "entitlements", "roles",
                   "x509Certificates")


def digest(body: Doc) -> str:
    """A stable hash of a body: equal bodies, equal hashes."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def user_in_scope(config: TargetConfig, rec: Record) -> bool:
    """Whether a user belongs in the target (group scoping counts nested groups)."""
    scope = config.scope
    if scope.groups:
        wanted = {g.lower() for g in scope.groups}
        mine = {g.value.lower() for g in rec.groups or []} | {
            (g.display or "").lower() for g in rec.groups or []}
        if not wanted & mine:
            return False
    if scope.filter:
        return matches(USER, parse_filter(scope.filter), full_document(rec, ""))
    return True


def group_in_scope(config: TargetConfig, rec: Record) -> bool:
    if not config.profile.groups:
        return False
    if config.scope.groups:
        name = str(rec.doc.get("displayName", "")).lower()
        return rec.id.lower() in {g.lower() for g in config.scope.groups} or name in {
            g.lower() for g in config.scope.groups}
    return True


def desired_user(config: TargetConfig, rec: Record, remote_id: RemoteId) -> Doc | None:
    """The body this user should have in the target, or None if it should not be there."""
    if not user_in_scope(config, rec):
        return None
    body: Doc = {"schemas": [CORE_USER], "externalId": rec.id}
    for attr in USER_ATTRIBUTES:
        if attr in rec.doc:
            body[attr] = rec.doc[attr]
    ext = rec.doc.get(ENTERPRISE_USER)
    if isinstance(ext, dict):
        ext = dict(ext)
        manager = ext.pop("manager", None)
        if isinstance(manager, dict) and isinstance(manager.get("value"), str):
            mid = remote_id(manager["value"])
            if mid is not None:
                ext["manager"] = {"value": mid}
        if ext:
            body["schemas"] = [CORE_USER, ENTERPRISE_USER]
            body[ENTERPRISE_USER] = ext
    body.setdefault("active", True)
    if config.mapping:
        apply_mapping(config.mapping, body, full_document(rec, ""))
    if config.roles:
        apply_roles(config.roles, body, rec)
    return body


# What an application that takes agents is sent (draft-abbey-scim-agent-extension-00
# §5.1.4, §5.2.4). References (an agent's owners and parent, an application's agents)
# are sent as the application's own ids; one it does not hold is left out, not sent
# dangling.
AGENT_ATTRIBUTES = ("name", "displayName", "description", "agentType", "active",
                    "entitlements", "roles", "subject", "protocols", "x509Certificates")
APPLICATION_ATTRIBUTES = ("name", "displayName", "description", "active", "applicationUrls",
                          "lastAccessed", "oAuthConfiguration", "externalIdentifiers")
_NHI_SHAPES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    # kind: (schema, attributes, multi-valued references, single references)
    "Agent": (CORE_AGENT, AGENT_ATTRIBUTES, ("owners",), ("parent",)),
    "AgenticApplication": (CORE_AGENTIC_APPLICATION, APPLICATION_ATTRIBUTES, ("agents",), ()),
}


def desired_nhi(rec: Record, remote_id: RemoteId) -> Doc:
    """The body an Agent or an AgenticApplication should have in an application that
    takes them."""
    schema, attributes, many, single = _NHI_SHAPES[rec.type]
    body: Doc = {"schemas": [schema], "externalId": rec.id}
    for attr in attributes:
        if attr in rec.doc:
            body[attr] = rec.doc[attr]
    body.setdefault("active", True)

    def mapped(ref: Any) -> Doc | None:
        mid = remote_id(ref["value"]) if isinstance(ref, dict) and "value" in ref else None
        if mid is None:
            return None
        out: Doc = {"value": mid}
        if isinstance(ref.get("type"), str) and ref["type"] in ("owned", "authorized", "guest"):
            out["type"] = ref["type"]  # an application's relation to its agent
        return out

    for attr in many:
        refs = [m for r in rec.doc.get(attr) or [] if (m := mapped(r)) is not None]
        if refs:
            body[attr] = refs
    for attr in single:
        ref = mapped(rec.doc.get(attr))
        if ref is not None:
            body[attr] = ref
    return body


def _compiled(text: str) -> expressions.Expr:
    found = _EXPRESSIONS.get(text)
    if found is None:
        found = _EXPRESSIONS[text] = expressions.parse(text)
    return found


_EXPRESSIONS: dict[str, expressions.Expr] = {}


def apply_mapping(rules: list[dict[str, Any]], body: Doc, source: Doc) -> None:
    """Set each target attribute from a source path, a constant or an expression."""
    for rule in rules:
        if "value" in rule:
            value = rule["value"]
        else:
            value = expressions.evaluate(_compiled(str(rule.get("source")
                                                        or rule.get("expression"))), source)
        set_path(body, rule["target"], value)


def set_path(body: Doc, path: str, value: Any) -> None:
    """Set (or, for null, remove) an attribute path in a User body."""
    rp = resolve(USER, path)
    assert rp is not None  # checked when the target was configured
    container = body
    if rp.extension and rp.schema is not None:
        container = body.setdefault(rp.schema.id, {})
        if rp.schema.id not in body.get("schemas", []):
            body["schemas"] = [*body.get("schemas", []), rp.schema.id]
    if rp.attr.multi_valued and rp.attr.type == "complex" and value is not None:
        items = value if isinstance(value, list) else [value]
        value = [v if isinstance(v, dict) else {"value": v} for v in items]
    if rp.sub is None:
        if value is None:
            container.pop(rp.attr.name, None)
        else:
            container[rp.attr.name] = value
        return
    parent = container.setdefault(rp.attr.name, {})
    if value is None:
        parent.pop(rp.sub.name, None)
    else:
        parent[rp.sub.name] = value


def apply_roles(rules: list[dict[str, Any]], body: Doc, rec: Record) -> None:
    """Group -> role: membership (direct or through nested groups) grants the value."""
    mine = {g.value.lower() for g in rec.groups or []} | {
        (g.display or "").lower() for g in rec.groups or []}
    granted: dict[str, set[str]] = {}
    for rule in rules:
        attribute = rule.get("attribute", "roles")
        granted.setdefault(attribute, set())
        if rule["group"].lower() in mine:
            granted[attribute].add(rule["value"])
    for attribute, values in granted.items():
        if values:
            body[attribute] = [{"value": v} for v in sorted(values)]
        else:
            body.pop(attribute, None)


def member_users(rec: Record, load_group: Callable[[str], Record | None]) -> list[str]:
    """A group's user members, nested groups flattened (targets need not nest)."""
    out: list[str] = []
    seen = {rec.id}
    stack = [rec]
    while stack:
        g = stack.pop()
        for m in g.members or []:
            if m.type == "User":
                out.append(m.value)
            elif m.value not in seen:
                seen.add(m.value)
                sub = load_group(m.value)
                if sub is not None:
                    stack.append(sub)
    return out


def desired_group(config: TargetConfig, rec: Record, member_ids: list[str],
                  remote_id: RemoteId) -> Doc | None:
    """The group's body, members as remote ids (nested groups flattened to users)."""
    if not group_in_scope(config, rec):
        return None
    members = sorted({r for r in (remote_id(m) for m in member_ids) if r is not None})
    return {"schemas": [CORE_GROUP], "externalId": rec.id,
            "displayName": rec.doc.get("displayName", ""),
            "members": [{"value": m} for m in members]}
