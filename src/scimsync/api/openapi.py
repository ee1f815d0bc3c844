"""The OpenAPI 3.1 description of the admin API (served at /admin/openapi.json)."""

from __future__ import annotations

from typing import Any

from scimsync.api.openapi_parts import DID, ERR, FID, FORMAT, OBJECT, TID, json_body
from scimsync.api.openapi_targets import TARGET_PATHS

_POLICY = {"type": "object", "properties": {
    "unowned": {"type": "string", "enum": ["flag", "reject"]},
    "on_owner_departure": {"type": "string", "enum": ["manager", "group", "suspend"]},
    "fallback_group": {"type": ["string", "null"]},
    "grace": {"type": ["string", "number"], "description": "seconds, or 7d, 12h, ..."}}}
_DISCOVERY = {"type": "object", "properties": {"agent_extension": {
    "type": "boolean", "description": "Serve draft-abbey-scim-agent-extension's "
    "agentExtension member in /ServiceProviderConfig (strict clients refuse it)"}}}
_REPORT = {"description": "The report", "content": {
    "application/json": {"schema": OBJECT}, "text/csv": {"schema": {"type": "string"}}}}


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
# Reading the journal (or its events) after a sequence number, a page at a time.
_CURSOR = [{"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
           {"name": "limit", "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}]
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
        "responses": {"Error": json_body({"type": "object", "properties": {
            "error": {"type": "string"}}}, "An error")},
    },
    "paths": {
        "/directories": {
            "get": {"summary": "List directories", "responses": {
                "200": json_body({"type": "object", "properties": {
                    "directories": {"type": "array", "items": _DIRECTORY}}}, "Directories"),
                "401": ERR}},
            "post": {"summary": "Create a directory and its first token",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"type": "object", "required": ["name"],
                                    "properties": {"name": {"type": "string"}}}}}},
                     "responses": {"201": json_body({"allOf": [_DIRECTORY, _NEW_TOKEN]},
                                                "Created"), "400": ERR, "401": ERR}},
        },
        "/directories/{did}": {
            "parameters": [DID],
            "get": {"summary": "Show a directory",
                    "responses": {"200": json_body(_DIRECTORY, "The directory"), "404": ERR}},
            "delete": {"summary": "Delete a directory and everything in it",
                       "responses": {"204": {"description": "Deleted"}, "404": ERR}},
        },
        "/directories/{did}/tokens": {
            "parameters": [DID],
            "get": {"summary": "List a directory's tokens (never their secrets)",
                    "responses": {"200": json_body({"type": "object", "properties": {
                        "tokens": {"type": "array", "items": _TOKEN}}}, "Tokens"),
                        "404": ERR}},
            "post": {"summary": "Create a token",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "properties": {
                             "name": {"type": "string"},
                             "expires_in_seconds": {"type": "integer", "minimum": 0}}}}}},
                     "responses": {"201": json_body(_NEW_TOKEN, "The new token"), "404": ERR}},
        },
        "/directories/{did}/tokens/{tid}/rotate": {
            "parameters": [DID, TID],
            "post": {"summary": "Issue a successor; the old token expires after the overlap",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "properties": {
                             "overlap_seconds": {"type": "integer", "minimum": 0},
                             "expires_in_seconds": {
                                 "type": ["integer", "null"], "minimum": 0,
                                 "description": "The successor's lifetime; absent: the old "
                                                "token's, null or 0: never expires"}}}}}},
                     "responses": {"201": json_body(_NEW_TOKEN, "The new token"), "404": ERR}},
        },
        "/directories/{did}/tokens/{tid}": {
            "parameters": [DID, TID],
            "delete": {"summary": "Revoke a token",
                       "responses": {"204": {"description": "Revoked"}, "404": ERR}},
        },
        "/admin-tokens": {
            "get": {"summary": "List admin tokens (never their secrets)",
                    "responses": {"200": json_body({"type": "object", "properties": {
                        "tokens": {"type": "array", "items": _TOKEN}}}, "Tokens")}},
            "post": {"summary": "Create an admin token",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "properties": {
                             "name": {"type": "string"},
                             "expires_in_seconds": {"type": "integer", "minimum": 0}}}}}},
                     "responses": {"201": json_body(_NEW_TOKEN, "The new token")}},
        },
        "/admin-tokens/{tid}/rotate": {
            "parameters": [TID],
            "post": {"summary": "Issue a successor admin token",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "properties": {
                             "overlap_seconds": {"type": "integer", "minimum": 0},
                             "expires_in_seconds": {
                                 "type": ["integer", "null"], "minimum": 0,
                                 "description": "The successor's lifetime; absent: the old "
                                                "token's, null or 0: never expires"}}}}}},
                     "responses": {"201": json_body(_NEW_TOKEN, "The new token"), "404": ERR}},
        },
        "/admin-tokens/{tid}": {
            "parameters": [TID],
            "delete": {"summary": "Revoke an admin token",
                       "responses": {"204": {"description": "Revoked"}, "404": ERR}},
        },
        **TARGET_PATHS,
        "/targets/{tid}/drift": {
            "parameters": [TID],
            "post": {"summary": "Reconcile the target in full now (read back, classify); "
                                "optionally fix classes afterwards",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "properties": {
                             "fix": {"type": "array", "items": {"type": "string"}},
                             "approve": {"type": "boolean"}}}}}},
                     "responses": {"200": json_body(OBJECT, "The run and any remediation"),
                                   "404": ERR}},
        },
        "/targets/{tid}/drift/fix": {
            "parameters": [TID],
            "post": {"summary": "Fix the open findings of these classes (an approval)",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "required": ["classes"], "properties": {
                             "classes": {"type": "array", "items": {"type": "string"}},
                             "approve": {"type": "boolean", "description":
                                         "Go past the accidental-deletion guard"}}}}}},
                     "responses": {"200": json_body(OBJECT, "What was fixed"), "400": ERR}},
        },
        "/targets/{tid}/drift-runs": {
            "parameters": [TID],
            "get": {"summary": "The latest full reconciliations, newest first",
                    "responses": {"200": json_body(OBJECT, "Runs"), "404": ERR}},
        },
        "/findings": {
            "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}} for n in
                           ("directory", "target", "class", "status", "identity", "after",
                            "limit")] + [FORMAT],
            "get": {"summary": "Drift findings, filtered (JSON, or CSV with format=csv)",
                    "responses": {"200": _REPORT, "400": ERR}},
        },
        "/findings/{fid}": {
            "parameters": [FID],
            "get": {"summary": "One finding", "responses": {
                "200": json_body(OBJECT, "The finding"), "404": ERR}},
        },
        "/findings/{fid}/accept": {
            "parameters": [FID],
            "post": {"summary": "Accept a finding as a risk until an expiry",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "required": ["reason", "approver", "until"],
                         "properties": {"reason": {"type": "string"},
                                        "approver": {"type": "string"},
                                        "until": {"type": "string",
                                                  "format": "date-time"}}}}}},
                     "responses": {"200": json_body(OBJECT, "The finding"), "400": ERR,
                                   "404": ERR}},
        },
        "/directories/{did}/discovery": {
            "parameters": [DID],
            "get": {"summary": "What the directory's discovery documents advertise",
                    "responses": {"200": json_body(_DISCOVERY, "The choices"), "404": ERR}},
            "put": {"summary": "Change what the discovery documents advertise",
                    "requestBody": {"content": {"application/json": {"schema": _DISCOVERY}}},
                    "responses": {"200": json_body(_DISCOVERY, "The choices"), "400": ERR,
                                  "404": ERR}},
        },
        "/directories/{did}/nhi/policy": {
            "parameters": [DID],
            "get": {"summary": "The directory's ownership policy for non-human identities",
                    "responses": {"200": json_body(_POLICY, "The policy"), "404": ERR}},
            "put": {"summary": "Set the ownership policy",
                    "requestBody": {"content": {"application/json": {"schema": _POLICY}}},
                    "responses": {"200": json_body(_POLICY, "The policy"), "400": ERR,
                                  "404": ERR}},
        },
        "/directories/{did}/nhi/sweep": {
            "parameters": [DID],
            "post": {"summary": "Apply the ownership policy and expiry now",
                     "responses": {"200": json_body(OBJECT, "What the sweep did"),
                                   "404": ERR}},
        },
        "/directories/{did}/nhi/reports/{kind}": {
            "parameters": [DID, {"name": "kind", "in": "path", "required": True,
                                  "schema": {"type": "string", "enum": [
                                      "inventory", "orphaned", "expiring", "leavers"]}},
                           {"name": "days", "in": "query", "schema": {"type": "integer"}},
                           FORMAT],
            "get": {"summary": "A report on the directory's non-human identities",
                    "responses": {"200": _REPORT, "400": ERR, "404": ERR}},
        },
        "/revocations": {
            "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                           for n in ("directory", "status", "identity")] + [FORMAT],
            "get": {"summary": "Credential revocation requests (open ones are open risks)",
                    "responses": {"200": _REPORT, "400": ERR}},
        },
        "/revocations/{rid}/acknowledge": {
            "parameters": [{"name": "rid", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "post": {"summary": "Record that a credential was revoked",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "required": ["by"],
                         "properties": {"by": {"type": "string"},
                                        "note": {"type": "string"}}}}}},
                     "responses": {"200": json_body(OBJECT, "The revocation"), "400": ERR,
                                   "404": ERR}},
        },
        "/openapi.json": {
            "get": {"summary": "This description", "responses": {
                "200": json_body(OBJECT, "The OpenAPI 3.1 document")}},
        },
        "/directories/{did}/events": {
            "parameters": [DID, *_CURSOR],
            "get": {"summary": "The events API: journal entries as signed-webhook events, "
                               "by cursor, within the retention",
                    "responses": {"200": json_body({"type": "object", "properties": {
                        "events": {"type": "array", "items": OBJECT},
                        "next_after": {"type": "integer"},
                        "retention_days": {"type": "integer"}}}, "Events"), "404": ERR}},
        },
        "/directories/{did}/journal": {
            "parameters": [DID, *_CURSOR],
            "get": {"summary": "Read the change journal after a sequence number",
                    "responses": {"200": json_body({"type": "object", "properties": {
                        "entries": {"type": "array", "items": _ENTRY},
                        "next_after": {"type": "integer"}}}, "Entries"), "404": ERR}},
        },
    },
}
