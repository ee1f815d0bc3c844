"""The OpenAPI 3.1 description of the admin API (served at /admin/openapi.json)."""

from __future__ import annotations

from typing import Any

_ERR = {"$ref": "#/components/responses/Error"}
_DID = {"name": "did", "in": "path", "required": True, "schema": {"type": "string"}}
_TID = {"name": "tid", "in": "path", "required": True, "schema": {"type": "string"}}
_FID = {"name": "fid", "in": "path", "required": True, "schema": {"type": "string"}}
_OBJECT = {"type": "object"}
# Reports come as JSON, or as CSV with format=csv (or Accept: text/csv).
_FORMAT = {"name": "format", "in": "query",
           "schema": {"type": "string", "enum": ["json", "csv"]}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_POLICY = {"type": "object", "properties": {
    "unowned": {"type": "string", "enum": ["flag", "reject"]},
    "on_owner_departure": {"type": "string", "enum": ["manager", "group", "suspend"]},
    "fallback_group": {"type": ["string", "null"]},
    "grace": {"type": ["string", "number"], "description": "seconds, or 7d, 12h, ..."}}}
_DISCOVERY = {"type": "object", "properties": {"agent_extension": {
    "type": "boolean", "description": "Serve draft-abbey-scim-agent-extension's "
    "agentExtension member in /ServiceProviderConfig (strict clients refuse it)"}}}
_REPORT = {"description": "The report", "content": {
    "application/json": {"schema": _OBJECT}, "text/csv": {"schema": {"type": "string"}}}}


_DIRECTORY = {
    "type": "object",
    "required": ["id", "name", "created", "scim_path"],
    "properties": {
        "id": {"type": "string"}, "name": {"type": "string"},
        "created": {"type": "string", "format": "date-time"},
        "scim_path": {"type": "string"}, "journal_seq": {"type": "integer"},
    },
}
_TOKEN = {
    "type": "object",
    "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "kind": {"type": "string"},
        "directory_id": {"type": ["string", "null"]},
        "created": {"type": "string"}, "expires_at": {"type": ["string", "null"]},
        "revoked_at": {"type": ["string", "null"]}, "last_used_at": {"type": ["string", "null"]},
    },
}
_NEW_TOKEN = {
    "type": "object",
    "required": ["id", "token"],
    "properties": {"id": {"type": "string"},
                   "token": {"type": "string", "description": "Shown once."},
                   "expires_at": {"type": ["string", "null"]}},
}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_TARGET = {
    "type": "object",
    "properties": {
        "id": {"type": "string"}, "directory_id": {"type": "string"},
        "name": {"type": "string"}, "kind": {"type": "string"},
        "status": {"type": "string", "enum": ["active", "paused", "quarantined", "held"]},
        "has_credentials": {"type": "boolean", "description": "Credentials are never shown."},
        "failures": {"type": "integer", "description": "Failed runs in a row."},
        "last_error": {"type": ["string", "null"],
                       "description": "Why the last run failed or is held."},
        "retry_at": {**_NULLABLE_TIME, "description": "While backing off: the next try."},
        "last_applied": {**_NULLABLE_TIME,
                         "description": "Only in a single target: the last change applied."},
        "hold": {"type": ["object", "null"], "description": "Only in a single target: the "
                 "deprovisionings the accidental-deletion guard holds for a person "
                 "(status `held`), and how many were rejected and kept",
                 "properties": {
                     "count": {"type": "integer"}, "since": _NULLABLE_TIME,
                     "by_type": {"type": "object", "description": "How many of each kind "
                                 "(User, Group, Agent, AgenticApplication)",
                                 "additionalProperties": {"type": "integer"}},
                     "kept": {"type": "integer"},
                     "identities": {"type": "array", "description": "Up to 1000 of them",
                                    "items": {"type": "object", "properties": {
                                        "id": {"type": "string"},
                                        "type": {"type": "string"},
                                        "userName": {"type": ["string", "null"],
                                                     "description": "of a User"},
                                        "displayName": {"type": ["string", "null"],
                                                        "description": "of a Group"},
                                        "name": {"type": ["string", "null"],
                                                 "description": "of an agent"},
                                        "left_directory": {"type": "boolean"}}}}}},
        "resync": {"type": "boolean", "description": "After an update or a resync: whether "
                   "every identity is being re-evaluated"},
    },
}
_DECISION = {"type": "object", "properties": {
    "target_id": {"type": "string"}, "approved_deprovisions": {"type": "integer"},
    "rejected_deprovisions": {"type": "integer"}}}


def _decision(summary: str) -> dict[str, Any]:
    """A person's decision on a target's held deprovisionings."""
    return {"parameters": [_TID], "post": {"summary": summary, "responses": {
        "200": _json(_DECISION, "How many were decided"), "400": _ERR, "404": _ERR}}}
_ENTRY = {
    "type": "object",
    "properties": {
        "seq": {"type": "integer"}, "directory_id": {"type": "string"},
        "resource_type": {"type": "string"}, "resource_id": {"type": "string"},
        "op": {"type": "string", "enum": ["created", "updated", "deactivated", "reactivated",
                                          "deleted", "member_added", "member_removed"]},
        "version": {"type": "integer"},
        "changed": {"type": "array", "items": {"type": "string"}},
        "lifecycle": {"type": ["string", "null"], "enum": ["joiner", "mover", "leaver", None]},
        "detail": {"type": ["object", "null"]},
        "actor": {"type": ["string", "null"]}, "at": {"type": "string"},
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "scimsync admin API", "version": "0.1.0"},
    "servers": [{"url": "/admin"}],
    "security": [{"adminToken": []}],
    "components": {
        "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        "responses": {"Error": _json({"type": "object", "properties": {
            "error": {"type": "string"}}}, "An error")},
    },
    "paths": {
        "/directories": {
            "get": {"summary": "List directories", "responses": {
                "200": _json({"type": "object", "properties": {
                    "directories": {"type": "array", "items": _DIRECTORY}}}, "Directories"),
                "401": _ERR}},
            "post": {"summary": "Create a directory and its first token",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"type": "object", "required": ["name"],
                                    "properties": {"name": {"type": "string"}}}}}},
                     "responses": {"201": _json({"allOf": [_DIRECTORY, _NEW_TOKEN]},
                                                "Created"), "400": _ERR, "401": _ERR}},
        },
        "/directories/{did}": {
            "parameters": [_DID],
            "get": {"summary": "Show a directory",
                    "responses": {"200": _json(_DIRECTORY, "The directory"), "404": _ERR}},
            "delete": {"summary": "Delete a directory and everything in it",
                       "responses": {"204": {"description": "Deleted"}, "404": _ERR}},
        },
        "/directories/{did}/tokens": {
            "parameters": [_DID],
            "get": {"summary": "List a directory's tokens (never their secrets)",
                    "responses": {"200": _json({"type": "object", "properties": {
                        "tokens": {"type": "array", "items": _TOKEN}}}, "Tokens"),
                        "404": _ERR}},
            "post": {"summary": "Create a token",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "properties": {
                             "name": {"type": "string"},
                             "expires_in_seconds": {"type": "integer", "minimum": 0}}}}}},
                     "responses": {"201": _json(_NEW_TOKEN, "The new token"), "404": _ERR}},
        },
        "/directories/{did}/tokens/{tid}/rotate": {
            "parameters": [_DID, _TID],
            "post": {"summary": "Issue a successor; the old token expires after the overlap",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "properties": {
                             "overlap_seconds": {"type": "integer", "minimum": 0},
                             "expires_in_seconds": {
                                 "type": ["integer", "null"], "minimum": 0,
                                 "description": "The successor's lifetime; absent: the old "
                                                "token's, null or 0: never expires"}}}}}},
                     "responses": {"201": _json(_NEW_TOKEN, "The new token"), "404": _ERR}},
        },
        "/directories/{did}/tokens/{tid}": {
            "parameters": [_DID, _TID],
            "delete": {"summary": "Revoke a token",
                       "responses": {"204": {"description": "Revoked"}, "404": _ERR}},
        },
        "/admin-tokens": {
            "get": {"summary": "List admin tokens (never their secrets)",
                    "responses": {"200": _json({"type": "object", "properties": {
                        "tokens": {"type": "array", "items": _TOKEN}}}, "Tokens")}},
            "post": {"summary": "Create an admin token",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "properties": {
                             "name": {"type": "string"},
                             "expires_in_seconds": {"type": "integer", "minimum": 0}}}}}},
                     "responses": {"201": _json(_NEW_TOKEN, "The new token")}},
        },
        "/admin-tokens/{tid}/rotate": {
            "parameters": [_TID],
            "post": {"summary": "Issue a successor admin token",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "properties": {
                             "overlap_seconds": {"type": "integer", "minimum": 0},
                             "expires_in_seconds": {
                                 "type": ["integer", "null"], "minimum": 0,
                                 "description": "The successor's lifetime; absent: the old "
                                                "token's, null or 0: never expires"}}}}}},
                     "responses": {"201": _json(_NEW_TOKEN, "The new token"), "404": _ERR}},
        },
        "/admin-tokens/{tid}": {
            "parameters": [_TID],
            "delete": {"summary": "Revoke an admin token",
                       "responses": {"204": {"description": "Revoked"}, "404": _ERR}},
        },
        "/targets": {
            "parameters": [{"name": "directory", "in": "query", "schema": {"type": "string"}}],
            "get": {"summary": "List targets, with their status, failures and last error",
                    "responses": {"200": _json({"type": "object", "properties": {
                        "targets": {"type": "array", "items": _TARGET}}}, "Targets")}},
        },
        "/targets/{tid}": {
            "parameters": [_TID],
            "get": {"summary": "Show a target and how it is doing",
                    "responses": {"200": _json(_TARGET, "The target"), "404": _ERR}},
            "put": {"summary": "Replace a target's configuration (as when adding it); a "
                               "change of scope, mapping, roles or profile starts a resync",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": _OBJECT}}},
                    "responses": {"200": _json(_TARGET, "The target"), "400": _ERR,
                                  "404": _ERR}},
        },
        "/targets/{tid}/approve": _decision(
            "Approve the held deprovisionings: those still wanted are applied by the "
            "target's lane"),
        "/targets/{tid}/reject": _decision(
            "Reject the held deprovisionings: nobody is deprovisioned; the accounts are "
            "kept until the configuration or the identity changes"),
        "/targets/{tid}/resync": {
            "parameters": [_TID],
            "post": {"summary": "Re-evaluate every identity of the target, as bulk work in "
                                "its lane",
                     "responses": {"200": _json(_TARGET, "The target"), "400": _ERR,
                                   "404": _ERR}},
        },
        "/targets/{tid}/drift": {
            "parameters": [_TID],
            "post": {"summary": "Reconcile the target in full now (read back, classify); "
                                "optionally fix classes afterwards",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "properties": {
                             "fix": {"type": "array", "items": {"type": "string"}},
                             "approve": {"type": "boolean"}}}}}},
                     "responses": {"200": _json(_OBJECT, "The run and any remediation"),
                                   "404": _ERR}},
        },
        "/targets/{tid}/drift/fix": {
            "parameters": [_TID],
            "post": {"summary": "Fix the open findings of these classes (an approval)",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "required": ["classes"], "properties": {
                             "classes": {"type": "array", "items": {"type": "string"}},
                             "approve": {"type": "boolean", "description":
                                         "Go past the accidental-deletion guard"}}}}}},
                     "responses": {"200": _json(_OBJECT, "What was fixed"), "400": _ERR}},
        },
        "/targets/{tid}/drift-runs": {
            "parameters": [_TID],
            "get": {"summary": "The latest full reconciliations, newest first",
                    "responses": {"200": _json(_OBJECT, "Runs"), "404": _ERR}},
        },
        "/findings": {
            "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}} for n in
                           ("directory", "target", "class", "status", "identity", "after",
                            "limit")] + [_FORMAT],
            "get": {"summary": "Drift findings, filtered (JSON, or CSV with format=csv)",
                    "responses": {"200": _REPORT, "400": _ERR}},
        },
        "/findings/{fid}": {
            "parameters": [_FID],
            "get": {"summary": "One finding", "responses": {
                "200": _json(_OBJECT, "The finding"), "404": _ERR}},
        },
        "/findings/{fid}/accept": {
            "parameters": [_FID],
            "post": {"summary": "Accept a finding as a risk until an expiry",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "required": ["reason", "approver", "until"],
                         "properties": {"reason": {"type": "string"},
                                        "approver": {"type": "string"},
                                        "until": {"type": "string",
                                                  "format": "date-time"}}}}}},
                     "responses": {"200": _json(_OBJECT, "The finding"), "400": _ERR,
                                   "404": _ERR}},
        },
        "/directories/{did}/discovery": {
            "parameters": [_DID],
            "get": {"summary": "What the directory's discovery documents advertise",
                    "responses": {"200": _json(_DISCOVERY, "The choices"), "404": _ERR}},
            "put": {"summary": "Change what the discovery documents advertise",
                    "requestBody": {"content": {"application/json": {"schema": _DISCOVERY}}},
                    "responses": {"200": _json(_DISCOVERY, "The choices"), "400": _ERR,
                                  "404": _ERR}},
        },
        "/directories/{did}/nhi/policy": {
            "parameters": [_DID],
            "get": {"summary": "The directory's ownership policy for non-human identities",
                    "responses": {"200": _json(_POLICY, "The policy"), "404": _ERR}},
            "put": {"summary": "Set the ownership policy",
                    "requestBody": {"content": {"application/json": {"schema": _POLICY}}},
                    "responses": {"200": _json(_POLICY, "The policy"), "400": _ERR,
                                  "404": _ERR}},
        },
        "/directories/{did}/nhi/sweep": {
            "parameters": [_DID],
            "post": {"summary": "Apply the ownership policy and expiry now",
                     "responses": {"200": _json(_OBJECT, "What the sweep did"),
                                   "404": _ERR}},
        },
        "/directories/{did}/nhi/reports/{kind}": {
            "parameters": [_DID, {"name": "kind", "in": "path", "required": True,
                                  "schema": {"type": "string", "enum": [
                                      "inventory", "orphaned", "expiring", "leavers"]}},
                           {"name": "days", "in": "query", "schema": {"type": "integer"}},
                           _FORMAT],
            "get": {"summary": "A report on the directory's non-human identities",
                    "responses": {"200": _REPORT, "400": _ERR, "404": _ERR}},
        },
        "/revocations": {
            "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                           for n in ("directory", "status", "identity")] + [_FORMAT],
            "get": {"summary": "Credential revocation requests (open ones are open risks)",
                    "responses": {"200": _REPORT, "400": _ERR}},
        },
        "/revocations/{rid}/acknowledge": {
            "parameters": [{"name": "rid", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "post": {"summary": "Record that a credential was revoked",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "required": ["by"],
                         "properties": {"by": {"type": "string"},
                                        "note": {"type": "string"}}}}}},
                     "responses": {"200": _json(_OBJECT, "The revocation"), "400": _ERR,
                                   "404": _ERR}},
        },
        "/directories/{did}/journal": {
            "parameters": [
                _DID,
                {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
            ],
            "get": {"summary": "Read the change journal after a sequence number",
                    "responses": {"200": _json({"type": "object", "properties": {
                        "entries": {"type": "array", "items": _ENTRY},
                        "next_after": {"type": "integer"}}}, "Entries"), "404": _ERR}},
        },
    },
}
