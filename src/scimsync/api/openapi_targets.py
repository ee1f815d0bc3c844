"""The OpenAPI description of the admin API's targets: adding, showing, changing,
pausing and removing them, their lag, dead letters and guard decisions."""

from __future__ import annotations

from typing import Any

from scimsync.api.openapi_parts import DID, ERR, OBJECT, TID, json_body

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
    return {"parameters": [TID], "post": {"summary": summary, "responses": {
        "200": json_body(_DECISION, "How many were decided"), "400": ERR, "404": ERR}}}


_MS = {"type": ["integer", "null"], "description": "milliseconds; null without samples"}
_FIGURE_PROPS: dict[str, Any] = {
    "samples": {"type": "integer"}, "p50_ms": _MS, "p95_ms": _MS, "p99_ms": _MS,
    "max_ms": _MS}
_FIGURES = {"type": "object", "properties": _FIGURE_PROPS}
_LAG = {"type": "object", "description": "Lag of the most recent applied changes (up to "
        "10,000 of all phases, and as many of each), counted from when the identity "
        "entered the target's scope or changed (docs/provisioning.md: Lag)",
        "properties": {
            "target_id": {"type": "string"}, **_FIGURE_PROPS,
            "phases": {"type": "object", "description": "initial: initial load and "
                       "resyncs; incremental: journal changes (joiner, mover, leaver); "
                       "remediation: drift fixes and approved guard holds",
                       "properties": {p: _FIGURES for p in
                                      ("initial", "incremental", "remediation")}},
            "worst_leaver": {"type": ["object", "null"], "description": "The slowest "
                             "recent deprovisioning (time-to-deprovision)", "properties": {
                                 "resource_id": {"type": "string"},
                                 "lag_ms": {"type": "integer"},
                                 "applied_at": {"type": "string"},
                                 "action": {"type": "string"}}},
            "deliveries": {"type": "object", "description": "Deliveries by outcome",
                           "additionalProperties": {"type": "integer"}}}}
_DEAD_LETTER = {"type": "object", "properties": {
    "id": {"type": "integer"}, "target_id": {"type": "string"},
    "resource_type": {"type": "string"}, "resource_id": {"type": "string"},
    "action": {"type": "string"},
    "request": {"type": ["object", "array", "null"], "description": "Secrets redacted"},
    "response": {"type": ["object", "array", "null"]}, "error": {"type": "string"},
    "status": {"type": "string", "enum": ["open", "retried"]},
    "created": {"type": "string"}, "retried": {"type": ["string", "null"]}}}


def _status(summary: str) -> dict[str, Any]:
    """Pausing or resuming a target."""
    return {"parameters": [TID], "post": {"summary": summary, "responses": {
        "200": json_body(_TARGET, "The target"), "404": ERR}}}


TARGET_PATHS: dict[str, Any] = {
        "/directories/{did}/targets": {
            "parameters": [DID],
            "post": {"summary": "Add a target to the directory: name, kind (default scim), "
                                "the kind's settings, and paused to add it paused",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"type": "object", "required": ["name"], "properties": {
                             "name": {"type": "string"}, "kind": {"type": "string"},
                             "paused": {"type": "boolean"}},
                             "additionalProperties": True}}}},
                     "responses": {"201": json_body(_TARGET, "The target"), "400": ERR,
                                   "404": ERR, "409": ERR}},
        },
        "/targets": {
            "parameters": [{"name": "directory", "in": "query", "schema": {"type": "string"}}],
            "get": {"summary": "List targets, with their status, failures and last error",
                    "responses": {"200": json_body({"type": "object", "properties": {
                        "targets": {"type": "array", "items": _TARGET}}}, "Targets")}},
        },
        "/targets/{tid}": {
            "parameters": [TID],
            "get": {"summary": "Show a target and how it is doing",
                    "responses": {"200": json_body(_TARGET, "The target"), "404": ERR}},
            "delete": {"summary": "Remove a target (its links, deliveries and dead letters "
                                  "go with it; nothing is sent to the application)",
                       "responses": {"204": {"description": "Removed"}, "404": ERR}},
            "put": {"summary": "Replace a target's configuration (as when adding it); a "
                               "change of scope, mapping, roles or profile starts a resync",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": OBJECT}}},
                    "responses": {"200": json_body(_TARGET, "The target"), "400": ERR,
                                  "404": ERR}},
        },
        "/targets/{tid}/approve": _decision(
            "Approve the held deprovisionings: those still wanted are applied by the "
            "target's lane"),
        "/targets/{tid}/reject": _decision(
            "Reject the held deprovisionings: nobody is deprovisioned; the accounts are "
            "kept until the configuration or the identity changes"),
        "/targets/{tid}/resync": {
            "parameters": [TID],
            "post": {"summary": "Re-evaluate every identity of the target, as bulk work in "
                                "its lane",
                     "responses": {"200": json_body(_TARGET, "The target"), "400": ERR,
                                   "404": ERR}},
        },
        "/targets/{tid}/pause": _status("Pause a target: nothing is sent until it resumes; "
                                        "its journal changes wait"),
        "/targets/{tid}/resume": _status("Resume a paused (or quarantined) target"),
        "/targets/{tid}/lag": {
            "parameters": [TID],
            "get": {"summary": "Propagation lag of the target's recent deliveries, all phases "
                               "together and per phase",
                    "responses": {"200": json_body(_LAG, "Lag"), "404": ERR}},
        },
        "/targets/{tid}/dead-letters": {
            "parameters": [TID, {"name": "status", "in": "query", "schema": {
                "type": "string", "enum": ["open", "retried", "all"]}}],
            "get": {"summary": "Operations the application refused, with request and "
                               "response (open ones by default)",
                    "responses": {"200": json_body({"type": "object", "properties": {
                        "dead_letters": {"type": "array", "items": _DEAD_LETTER}}},
                        "Dead letters"), "404": ERR}},
        },
        "/targets/{tid}/dead-letters/retry": {
            "parameters": [TID],
            "post": {"summary": "Reconcile the resources of open dead letters now (all, or "
                                "these ids)",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "properties": {"ids": {
                             "type": "array", "items": {"type": "integer"}}}}}}},
                     "responses": {"200": json_body(OBJECT, "What was retried"), "400": ERR,
                                   "404": ERR}},
        },
}
