"""IdP quirks, absorbed here and nowhere else (docs/architecture.md: Inbound).

Each rule turns a shape some identity provider really sends into the RFC shape:
- Entra ID: capitalised PATCH `op` values, booleans as the strings "True"/"False",
  the enterprise `manager` sent as a bare id string, path-less `replace` whose value
  keys are dotted or URN-prefixed paths.
- OneLogin: legacy `urn:scim:schemas:core:2.0` schema URNs.
"""

from __future__ import annotations

from typing import Any

from scimsync.protocol.schema import CORE_GROUP, CORE_USER, ENTERPRISE_USER

LEGACY_URNS = {
    "urn:scim:schemas:core:2.0": None,  # resolved per resource type
    "urn:scim:schemas:core:2.0:user": CORE_USER,
    "urn:scim:schemas:core:2.0:group": CORE_GROUP,
    "urn:scim:schemas:extension:enterprise:2.0": ENTERPRISE_USER,
    "urn:scim:schemas:extension:enterprise:2.0:user": ENTERPRISE_USER,
}


def schema_urn(urn: str, core: str) -> str:
    """Map a legacy schema URN to its RFC 7643 form; others pass through."""
    low = urn.lower()
    if low in LEGACY_URNS:
        return LEGACY_URNS[low] or core
    return urn


def resource_body(body: dict[str, Any], core: str) -> dict[str, Any]:
    """Rename legacy URNs in `schemas` and in extension keys of a resource body."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key == "schemas" and isinstance(value, list):
            out[key] = [schema_urn(v, core) if isinstance(v, str) else v for v in value]
        elif ":" in key:
            out[schema_urn(key, core)] = value
        else:
            out[key] = value
    return out


def boolean(value: Any) -> Any:
    """Entra ID sends booleans as "True"/"False" strings."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def manager(value: Any) -> Any:
    """Entra ID sends the enterprise manager as a bare id string, or {"value": id}."""
    if isinstance(value, str):
        return {"value": value} if value else None
    return value


def patch_op(op: Any) -> Any:
    """Entra ID capitalises `op` ("Replace", "Add", "Remove")."""
    return op.lower() if isinstance(op, str) else op
