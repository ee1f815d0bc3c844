"""Attribute and schema definitions, and path lookup through them (RFC7643 §2, §7)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"


@dataclass(frozen=True)
class Attribute:
    """One attribute definition (RFC7643 §7)."""

    name: str
    type: str = "string"
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    description: str = ""
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    sub_attributes: tuple[Attribute, ...] = ()

    def sub(self, name: str) -> Attribute | None:
        """The sub-attribute called `name` (case-insensitive), if any."""
        lname = name.lower()
        for a in self.sub_attributes:
            if a.name.lower() == lname:
                return a
        return None

    def to_scim(self) -> dict[str, Any]:
        """The attribute's representation in a /Schemas document."""
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        }
        if self.canonical_values:
            out["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            out["referenceTypes"] = list(self.reference_types)
        if self.sub_attributes:
            out["subAttributes"] = [s.to_scim() for s in self.sub_attributes]
        return out


@dataclass(frozen=True)
class Schema:
    """A schema: a URN and its attributes (RFC7643 §7)."""

    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]
    _index: dict[str, Attribute] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for a in self.attributes:
            self._index[a.name.lower()] = a

    def attr(self, name: str) -> Attribute | None:
        """The top-level attribute called `name` (case-insensitive), if any."""
        return self._index.get(name.lower())


@dataclass(frozen=True)
class ResourceType:
    """A resource type: endpoint, core schema and extensions (RFC7643 §6)."""

    name: str
    endpoint: str
    description: str
    schema: Schema
    extensions: tuple[tuple[Schema, bool], ...] = ()

    @property
    def schema_ids(self) -> tuple[str, ...]:
        return (self.schema.id, *(s.id for s, _ in self.extensions))

    def extension(self, urn: str) -> Schema | None:
        """The extension schema with this URN (case-insensitive), if any."""
        lurn = urn.lower()
        for s, _ in self.extensions:
            if s.id.lower() == lurn:
                return s
        return None


# Attributes common to every resource (RFC7643 §3.1).
META = Attribute(
    "meta",
    "complex",
    mutability="readOnly",
    description="Resource metadata.",
    sub_attributes=(
        Attribute("resourceType", case_exact=True, mutability="readOnly"),
        Attribute("created", "dateTime", mutability="readOnly"),
        Attribute("lastModified", "dateTime", mutability="readOnly"),
        Attribute("location", "reference", mutability="readOnly", reference_types=("uri",)),
        Attribute("version", case_exact=True, mutability="readOnly"),
    ),
)
ID = Attribute(
    "id", case_exact=True, mutability="readOnly", returned="always", uniqueness="server",
    description="Identifier issued by the service provider.",
)
EXTERNAL_ID = Attribute(
    "externalId", case_exact=True, description="Identifier issued by the provisioning client.",
)
COMMON: tuple[Attribute, ...] = (ID, EXTERNAL_ID, META)


@dataclass(frozen=True)
class ResolvedPath:
    """Where an attribute path points: its schema, attribute and optional sub-attribute."""

    schema: Schema | None  # None for the common attributes id/externalId/meta
    attr: Attribute
    sub: Attribute | None = None
    extension: bool = False

    @property
    def leaf(self) -> Attribute:
        return self.sub or self.attr

    @property
    def dotted(self) -> str:
        """The canonical path: `name.givenName`, or `urn:...:User:manager.value` for extensions."""
        base = self.attr.name if self.sub is None else f"{self.attr.name}.{self.sub.name}"
        if self.extension and self.schema is not None:
            return f"{self.schema.id}:{base}"
        return base


def split_urn(path: str, rtype: ResourceType) -> tuple[Schema | None, str]:
    """Split a URN-prefixed path into its schema and the rest (RFC7644 §3.10)."""
    lpath = path.lower()
    for s in (rtype.schema, *(s for s, _ in rtype.extensions)):
        lid = s.id.lower()
        if lpath.startswith(lid + ":"):
            return s, path[len(s.id) + 1 :]
        if lpath == lid:
            return s, ""
    return None, path


def resolve(rtype: ResourceType, attr_path: str, sub: str | None = None) -> ResolvedPath | None:
    """Resolve `attr[.sub]`, optionally URN-prefixed, against a resource type."""
    schema, rest = split_urn(attr_path, rtype)
    if schema is None:
        schema = rtype.schema
    if "." in rest and sub is None:
        rest, sub = rest.split(".", 1)
    if not rest:
        return None
    attr = schema.attr(rest)
    found_schema: Schema | None = schema
    if attr is None and schema is rtype.schema:
        for c in COMMON:
            if c.name.lower() == rest.lower():
                attr, found_schema = c, None
                break
    if attr is None:
        return None
    ext = found_schema is not None and found_schema is not rtype.schema
    if sub is None:
        return ResolvedPath(found_schema, attr, None, ext)
    sattr = attr.sub(sub)
    if sattr is None:
        return None
    return ResolvedPath(found_schema, attr, sattr, ext)


def all_schemas(types: Iterable[ResourceType]) -> list[Schema]:
    """Every schema used by these resource types, each once, in order."""
    seen: dict[str, Schema] = {}
    for t in types:
        seen.setdefault(t.schema.id, t.schema)
        for s, _ in t.extensions:
            seen.setdefault(s.id, s)
    return list(seen.values())
