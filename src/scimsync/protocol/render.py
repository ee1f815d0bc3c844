"""Stored records to SCIM resource documents (RFC7643 §3.1 meta, §4.1.2 groups, §4.2)."""

from __future__ import annotations

from typing import Any

from scimsync.protocol.agents import with_refs
from scimsync.protocol.projection import Projection, project
from scimsync.protocol.record import Member, Record
from scimsync.protocol.resources import RESOURCE_TYPES
from scimsync.protocol.values import Doc

NHI_TYPES = frozenset({"Agent", "AgenticApplication", "User"})  # types with references

ENDPOINTS = {name: rt.endpoint.lstrip("/") for name, rt in RESOURCE_TYPES.items()}
_LOCATIONS = {name: rt.endpoint for name, rt in RESOURCE_TYPES.items()}


def _refs(base: str, items: list[Member], kind: str) -> list[dict[str, Any]]:
    out = []
    for m in items:
        target = m.type if kind == "members" else "Group"
        entry: dict[str, Any] = {"value": m.value}
        # Group.members has no display in RFC7643 §8.7.1; User.groups does.
        if m.display is not None and kind == "groups":
            entry["display"] = m.display
        entry["type"] = m.type
        entry["$ref"] = f"{base}/{ENDPOINTS.get(target, target + 's')}/{m.value}"
        out.append(entry)
    return out


def full_document(rec: Record, base: str) -> Doc:
    """Every attribute of a record, with meta and derived members/groups."""
    doc: Doc = {"schemas": rec.doc.get("schemas", []), "id": rec.id}
    for k, v in rec.doc.items():
        if k != "schemas":
            doc[k] = v
    if rec.members is not None and rec.members:
        doc["members"] = _refs(base, rec.members, "members")
    if rec.groups is not None and rec.groups:
        doc["groups"] = _refs(base, rec.groups, "groups")
    if rec.type in NHI_TYPES:
        doc = with_refs(rec.type, doc, base, _LOCATIONS)
    doc["meta"] = {
        "resourceType": rec.type,
        "created": rec.created,
        "lastModified": rec.last_modified,
        "location": f"{base}/{ENDPOINTS[rec.type]}/{rec.id}",
        "version": rec.etag,
    }
    return doc


def render(rec: Record, base: str, proj: Projection) -> Doc:
    """The document a response carries for this record under a projection."""
    return project(RESOURCE_TYPES[rec.type], full_document(rec, base), proj)
