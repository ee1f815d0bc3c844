"""Discovery documents: /ServiceProviderConfig, /ResourceTypes, /Schemas (RFC7643 §5-7,
RFC7644 §4). They advertise exactly what this server implements.
"""

from __future__ import annotations

from typing import Any

from scimsync.protocol.agent_support import DRAFT_MEMBER, AgentSupport, draft_member
from scimsync.protocol.resources import RESOURCE_TYPES
from scimsync.protocol.schema import (
    RESOURCE_TYPE_SCHEMA,
    SCHEMA_SCHEMA,
    SPC_SCHEMA,
    ResourceType,
    Schema,
    all_schemas,
)

MAX_OPERATIONS = 1000
MAX_PAYLOAD = 1_048_576
MAX_RESULTS = 1000
DEFAULT_PAGE = 100


def service_provider_config(base: str, *, agent_extension: bool = False) -> dict[str, Any]:
    """RFC7643 §5, with RFC9865 §5 `pagination`; with `agent_extension`, also the
    draft's member (draft-abbey-scim-agent-extension-00 §4.1, see agent_support)."""
    doc: dict[str, Any] = {
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://github.com/scimsync/scimsync/blob/main/docs/scim.md",
        "patch": {"supported": True},
        "bulk": {"supported": True, "maxOperations": MAX_OPERATIONS,
                 "maxPayloadSize": MAX_PAYLOAD},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "pagination": {
            "cursor": True,
            "index": True,
            "defaultPaginationMethod": "index",
            "defaultPageSize": DEFAULT_PAGE,
            "maxPageSize": MAX_RESULTS,
            "cursorTimeout": 3600,
        },
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "A directory token issued by `scimsync directories create` "
                               "or `scimsync tokens create`.",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base}/ServiceProviderConfig",
        },
    }
    if agent_extension:
        doc[DRAFT_MEMBER] = draft_member(AgentSupport(agents=True, applications=True))
    return doc


def resource_type_doc(rt: ResourceType, base: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": rt.name,
        "name": rt.name,
        "endpoint": rt.endpoint,
        "description": rt.description,
        "schema": rt.schema.id,
        "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/{rt.name}"},
    }
    if rt.extensions:
        doc["schemaExtensions"] = [{"schema": s.id, "required": req} for s, req in rt.extensions]
    return doc


def schema_doc(s: Schema, base: str) -> dict[str, Any]:
    return {
        "schemas": [SCHEMA_SCHEMA],
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "attributes": [a.to_scim() for a in s.attributes],
        "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{s.id}"},
    }


def resource_types() -> list[ResourceType]:
    return list(RESOURCE_TYPES.values())


def schemas() -> list[Schema]:
    return all_schemas(resource_types())
