"""The exception hierarchy; every error knows its SCIM wire form (RFC7644 §3.12).

ScimError                 base: an HTTP status, an optional scimType and a detail
├── BadRequest            400 with a scimType (invalidFilter, invalidSyntax, ...)
├── Unauthorized          401, no scimType
├── Forbidden             403
├── NotFound              404
├── Conflict              409 uniqueness
├── TargetBusy            409 a worker holds the target's lease (sync.lease.held)
├── PreconditionFailed    412 (If-Match did not match meta.version)
├── PayloadTooLarge       413
├── NotImplementedScim    501
└── Busy                  503 with Retry-After: the database stayed locked (store.contention)
"""

from __future__ import annotations

from typing import Any

SCIM_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(Exception):
    """An error that renders itself as a SCIM Error response (RFC7644 §3.12)."""

    status: int = 500
    scim_type: str | None = None

    def __init__(self, detail: str, *, scim_type: str | None = None, status: int | None = None):
        super().__init__(detail)
        self.detail = detail
        if scim_type is not None:
            self.scim_type = scim_type
        if status is not None:
            self.status = status

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the error response carries (Retry-After, say)."""
        return {}

    def to_scim(self) -> dict[str, Any]:
        """The SCIM Error document for this error."""
        body: dict[str, Any] = {
            "schemas": [SCIM_ERROR_SCHEMA],
            "status": str(self.status),
            "detail": self.detail,
        }
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


class BadRequest(ScimError):
    status = 400


def invalid_filter(detail: str) -> BadRequest:
    return BadRequest(detail, scim_type="invalidFilter")


def invalid_syntax(detail: str) -> BadRequest:
    return BadRequest(detail, scim_type="invalidSyntax")


def invalid_path(detail: str) -> BadRequest:
    return BadRequest(detail, scim_type="invalidPath")


def invalid_value(detail: str) -> BadRequest:
    return BadRequest(detail, scim_type="invalidValue")


def mutability(detail: str) -> BadRequest:
    return BadRequest(detail, scim_type="mutability")


def no_target(detail: str) -> BadRequest:
    return BadRequest(detail, scim_type="noTarget")


class Unauthorized(ScimError):
    status = 401


class Forbidden(ScimError):
    status = 403


class NotFound(ScimError):
    status = 404


class Conflict(ScimError):
    status = 409
    scim_type = "uniqueness"


class TargetBusy(ScimError):
    """Work asked for by hand found the target's lease held, and waited long enough."""

    status = 409


class PreconditionFailed(ScimError):
    status = 412


class PayloadTooLarge(ScimError):
    status = 413


class NotImplementedScim(ScimError):
    status = 501


class Busy(ScimError):
    """The database stayed locked through every retry: try again shortly."""

    status = 503
    retry_after = 1

    def __init__(self, detail: str = "the service is busy; retry shortly"):
        super().__init__(detail)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class UsageError(Exception):
    """A problem with a CLI or admin request that is not a SCIM protocol error."""
