"""Non-human identity schemas: Agent and AgenticApplication (draft-abbey-scim-agent-
extension-00) and scimsync's service-account extension of User.

Choices where the draft is silent or inconsistent (docs/non-human-identities.md):

- `owners` is readWrite. The draft's JSON marks it (and `parent`, `applications`,
  `protocols`, `subject`) readOnly while its prose has clients supply them; an IdP
  must be able to say who is accountable for an agent, so scimsync accepts them.
  Owners must be Users or Groups of the same directory; `type` says which, and
  scimsync fills it in when the client leaves it out.
- `applications` on an Agent and `agents` on an AgenticApplication are both
  writable references, each checked against the directory (`$ref` spelled `$ref`
  in both, where the draft's prose says `ref` for the latter).
- In every reference `$ref` is writable, as in Group.members: a client may send it
  (it must locate the resource `value` names, or stands for `value` when that is
  left out); the stored reference is the value, and `$ref` is derived on each read.
- The draft's `specifiationUrl` is spelled `specificationUrl`, as its prose has it.
- `active` defaults to true, as for Users: an agent is suspended by setting it false.
- Agents can be members of Groups (member `type` Agent); an Agent's `groups` is
  derived from that, read-only, as a User's is.

The service-account extension is scimsync's own (not under `urn:ietf`): a User that
carries it is non-human, of a kind (service, bot, agent, workload), with owners, a
purpose, an expiry and the identifiers of the credentials it holds, never secrets.
A second one gives Agents the same purpose, expiry and credentials (their owners
are the draft's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scimsync.protocol.schema import Attribute, ResourceType, Schema

A = Attribute
CORE_AGENT = "urn:ietf:params:scim:schemas:core:2.0:Agent"
CORE_AGENTIC_APPLICATION = "urn:ietf:params:scim:schemas:core:2.0:AgenticApplication"
NHI_USER = "urn:scimsync:params:scim:schemas:extension:nhi:1.0:User"
NHI_AGENT = "urn:scimsync:params:scim:schemas:extension:nhi:1.0:Agent"
NHI_KINDS = ("service", "bot", "agent", "workload")


def _ref(name: str, description: str, types: tuple[str, ...], *,
         multi: bool = True, extra: tuple[Attribute, ...] = ()) -> Attribute:
    """A reference to other resources of the directory: value, $ref, display."""
    return A(name, "complex", multi_valued=multi, description=description, sub_attributes=(
        A("value", case_exact=True, description="The id of the referenced resource."),
        # Writable, as Group.members.$ref and manager.$ref are (RFC 7643 §4.3, §8.7.1):
        # a client may name the resource by its URI; the value is what is stored.
        A("$ref", "reference", reference_types=types,
          description="The URI of the referenced resource."),
        A("display", mutability="readOnly", description="A human-readable name."),
        *extra,
    ))


def _owners() -> Attribute:
    return _ref("owners", "The Users or Groups accountable for this identity.",
                ("User", "Group"), extra=(
                    A("type", canonical_values=("User", "Group"), case_exact=True,
                      description="Whether the owner is a User or a Group."),))


def _multi(name: str, description: str) -> Attribute:
    return A(name, "complex", multi_valued=True, description=description, sub_attributes=(
        A("value"), A("display"), A("type"), A("primary", "boolean"),
    ))


AGENT_SCHEMA = Schema(
    CORE_AGENT, "Agent", "An AI agent: a workload with its own identifier and privileges",
    (
        A("name", required=True, uniqueness="server",
          description="Unique name of the Agent within the directory."),
        A("displayName", description="The name of the Agent, suitable for display."),
        A("description", description="What the Agent does."),
        A("agentType", description="A classification, e.g. 'Assistant', 'Researcher'."),
        A("active", "boolean", description="The Agent's administrative status."),
        _multi("entitlements", "Entitlements the Agent has."),
        _multi("roles", "Roles the Agent assumes."),
        A("groups", "complex", multi_valued=True, mutability="readOnly",
          description="Groups the Agent belongs to.", sub_attributes=(
              A("value", mutability="readOnly"),
              A("$ref", "reference", reference_types=("Group",), mutability="readOnly"),
              A("display", mutability="readOnly"),
              A("type", canonical_values=("direct", "indirect"), mutability="readOnly"),
          )),
        _ref("applications", "Agentic applications this Agent shares a trust boundary with.",
             ("AgenticApplication",)),
        A("subject", description="The `sub` of this Agent in inbound tokens."),
        A("x509Certificates", "complex", multi_valued=True, sub_attributes=(
            A("value", "binary"), A("display"), A("type"), A("primary", "boolean"),
        )),
        A("protocols", "complex", multi_valued=True,
          description="Protocols to communicate with the Agent.", sub_attributes=(
              A("type", canonical_values=("A2A", "OpenAPI", "MCP-Server"),
                description="The protocol."),
              A("specificationUrl", "reference", reference_types=("external",),
                description="Where the Agent's description for that protocol is."),
          )),
        _ref("parent", "The parent Agent, in a hierarchy of agents.", ("Agent",), multi=False),
        _owners(),
    ),
)

AGENTIC_APPLICATION_SCHEMA = Schema(
    CORE_AGENTIC_APPLICATION, "AgenticApplication",
    "An application that hosts or gives access to agents",
    (
        A("name", required=True, uniqueness="server",
          description="Unique name of the application within the directory."),
        A("displayName"),
        A("description"),
        A("active", "boolean", description="The application's administrative status."),
        A("applicationUrls", "complex", multi_valued=True, sub_attributes=(
            A("type", canonical_values=("ssoEndpoint", "loginPage", "api", "homepage")),
            A("primary", "boolean"), A("value", "reference", reference_types=("external",)),
            A("description"),
        )),
        A("lastAccessed", "dateTime",
          description="When an agent or a user last used the application."),
        A("oAuthConfiguration", "complex", multi_valued=True, sub_attributes=(
            A("clientId", case_exact=True), A("description"),
            A("audienceUri", "reference", reference_types=("uri",)),
            A("issuerUri", "reference", reference_types=("uri",)),
            A("redirectUri", "reference", multi_valued=True, reference_types=("uri",)),
        )),
        _ref("agents", "Agents associated with this application.", ("Agent",), extra=(
            A("type", canonical_values=("owned", "authorized", "guest")),)),
        A("externalIdentifiers", "complex", multi_valued=True, sub_attributes=(
            A("type"), A("value", case_exact=True), A("system"),
        )),
    ),
)

def _lifecycle() -> tuple[Attribute, ...]:
    """What every non-human identity may carry besides its owners."""
    return (
        A("purpose", description="Why this identity exists."),
        A("validUntil", "dateTime",
          description="When this identity expires; it is suspended then."),
        A("credentials", "complex", multi_valued=True,
          description="Credentials this identity holds, by identifier only (never secrets).",
          sub_attributes=(
              A("value", required=True, case_exact=True,
                description="The credential's identifier (key id, client id, ...)."),
              A("type", canonical_values=("apiKey", "oauthClient", "sshKey", "certificate",
                                          "password", "token", "other")),
              A("system", description="Where the credential lives (vault, cloud, app)."),
              A("display"),
          )),
    )


NHI_SCHEMA = Schema(
    NHI_USER, "NonHumanIdentity",
    "scimsync: marks a User as a non-human identity with accountable owners",
    (
        A("kind", required=True, canonical_values=NHI_KINDS,
          description="service, bot, agent or workload."),
        _owners(),
        *_lifecycle(),
    ),
)

# An Agent's owners are the draft's core `owners`; its expiry and credentials live here.
NHI_AGENT_SCHEMA = Schema(
    NHI_AGENT, "AgentLifecycle", "scimsync: an Agent's purpose, expiry and credentials",
    _lifecycle(),
)

AGENT = ResourceType("Agent", "/Agents", "Agent identities", AGENT_SCHEMA,
                     ((NHI_AGENT_SCHEMA, False),))
AGENTIC_APPLICATION = ResourceType(
    "AgenticApplication", "/AgenticApplications",
    "Applications that host or provide access to agents", AGENTIC_APPLICATION_SCHEMA)


# Reference attributes of non-human identities: (resource type, extension URN or None,
# attribute, the type referenced unless the value says). Values must name resources
# of the same directory (scimsync.nhi checks them on every write).
REFERENCES: tuple[tuple[str, str | None, str, str | None], ...] = (
    ("Agent", None, "owners", None),
    ("Agent", None, "parent", "Agent"),
    ("Agent", None, "applications", "AgenticApplication"),
    ("AgenticApplication", None, "agents", "Agent"),
    ("User", NHI_USER, "owners", None),
)


def reference_values(rtype: str, doc: dict[str, Any]
                     ) -> list[tuple[str, dict[str, Any], str | None]]:
    """Every reference a document holds: (attribute, the value object, the type it
    must reference, None for owners, which may be a User or a Group)."""
    out = []
    for rt, urn, attr, kind in REFERENCES:
        if rt != rtype:
            continue
        holder = doc.get(urn) if urn else doc
        items = holder.get(attr) if isinstance(holder, dict) else None
        for item in items if isinstance(items, list) else [items] if items else []:
            if isinstance(item, dict):
                out.append((attr, item, kind))
    return out


def map_references(rtype: str, doc: dict[str, Any],
                   fn: Callable[[dict[str, Any], str | None], dict[str, Any]]
                   ) -> dict[str, Any]:
    """A copy of `doc` in which each reference object is replaced by `fn(item, kind)`
    (kind as in REFERENCES). Only what holds references is copied; `doc` and the
    values it shares with a stored record are never changed."""
    out = doc  # copied on the first reference found: most documents hold none
    for rt, urn, attr, kind in REFERENCES:
        if rt != rtype:
            continue
        holder = out.get(urn) if urn else out
        if not isinstance(holder, dict) or attr not in holder:
            continue
        if out is doc:
            out = dict(doc)
            holder = out.get(urn) if urn else out
            assert isinstance(holder, dict)
        if urn:
            holder = out[urn] = dict(holder)
        items = holder[attr]
        holder[attr] = [fn(i, kind) if isinstance(i, dict) else i for i in items] \
            if isinstance(items, list) else fn(items, kind) if isinstance(items, dict) \
            else items
    return out


def with_refs(rtype: str, doc: dict[str, Any], base: str,
              endpoints: dict[str, str]) -> dict[str, Any]:
    """The document with each reference given its `$ref`, a location in this directory."""
    def ref(item: dict[str, Any], kind: str | None) -> dict[str, Any]:
        target = kind or item.get("type")
        value = item.get("value")
        if isinstance(value, str) and isinstance(target, str) and target in endpoints:
            return {**item, "$ref": f"{base}{endpoints[target]}/{value}"}
        return item

    return map_references(rtype, doc, ref)


@dataclass(frozen=True)
class Facets:
    """What makes a resource a non-human identity, read from its document."""

    kind: str  # agent, service, bot, workload
    owners: list[dict[str, Any]]
    owners_path: str  # the PATCH path of its owners
    valid_until: str | None
    credentials: list[dict[str, Any]]
    active: bool


def facets(rtype: str, doc: dict[str, Any] | None) -> Facets | None:
    """The non-human facets of an Agent, or of a User that carries the extension;
    None for anything else (people, groups, applications)."""
    if doc is None:
        return None
    ext: dict[str, Any]
    if rtype == "Agent":
        found = doc.get(NHI_AGENT)
        ext = found if isinstance(found, dict) else {}
        kind, owners, path = "agent", doc.get("owners"), "owners"
    elif rtype == "User" and isinstance(doc.get(NHI_USER), dict):
        ext = doc[NHI_USER]
        kind, owners, path = str(ext.get("kind")), ext.get("owners"), f"{NHI_USER}:owners"
    else:
        return None
    creds = ext.get("credentials")
    until = ext.get("validUntil")
    return Facets(kind, [o for o in owners or [] if isinstance(o, dict)], path,
                  until if isinstance(until, str) else None,
                  [c for c in creds or [] if isinstance(c, dict)],
                  doc.get("active", True) is not False)
