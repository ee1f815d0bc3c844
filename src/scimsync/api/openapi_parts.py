"""What the admin API's OpenAPI description repeats: parameters, errors, bodies."""

from __future__ import annotations

from typing import Any

ERR = {"$ref": "#/components/responses/Error"}
DID = {"name": "did", "in": "path", "required": True, "schema": {"type": "string"}}
TID = {"name": "tid", "in": "path", "required": True, "schema": {"type": "string"}}
FID = {"name": "fid", "in": "path", "required": True, "schema": {"type": "string"}}
OBJECT = {"type": "object"}
# Reports come as JSON, or as CSV with format=csv (or Accept: text/csv).
FORMAT = {"name": "format", "in": "query",
           "schema": {"type": "string", "enum": ["json", "csv"]}}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}
