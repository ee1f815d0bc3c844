"""Webhook targets, signed per the Standard Webhooks specification.

Each journal entry in scope becomes one POST with `webhook-id` (stable per event and
target, for idempotency), `webhook-timestamp` and `webhook-signature`: `v1,` and the
base64 HMAC-SHA256 of `id.timestamp.body` under each configured secret, separated by
spaces, so receivers keep verifying while a secret is rotated. Only 2xx is success.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from standardwebhooks import Webhook

from scimsync import outbound
from scimsync.connectors.contract import Rejected, Transient
from scimsync.connectors.http import RateLimiter, retry_after, transient_status
from scimsync.connectors.registry import ConnectorKind, Secrets, register
from scimsync.connectors.scim import http_url
from scimsync.errors import UsageError
from scimsync.netpolicy import check_url
from scimsync.validation import ConfigError, Problems, reject_unknown

if TYPE_CHECKING:
    from scimsync.sync.config import Profile

SETTINGS = ("url", "secret")
SECRET_BYTES = (24, 64)  # what the Standard Webhooks specification allows


class WebhookSender:
    """An EventSink (scimsync.connectors.contract) that POSTs signed events."""

    def __init__(self, settings: dict[str, Any], profile: Profile, secrets: Secrets,
                 transport: httpx.BaseTransport | None = None):
        self.url = check_url(settings["url"], resolve=False)  # connections are checked too
        self.signers = [Webhook(s) for s in secrets.get("signing", [])]
        if not self.signers:
            raise Rejected("webhook target has no signing secret")
        self.http = outbound.client(profile.timeout, transport)
        self.limiter = RateLimiter(profile.rate_limit)

    def close(self) -> None:
        self.http.close()

    def headers(self, msg_id: str, body: bytes, timestamp: int) -> dict[str, str]:
        from datetime import UTC, datetime

        when = datetime.fromtimestamp(timestamp, UTC)
        signatures = " ".join(s.sign(msg_id, when, body.decode()) for s in self.signers)
        return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                "webhook-signature": signatures, "content-type": "application/json"}

    def send(self, event: dict[str, Any]) -> None:
        """POST one event; raises Transient (retry) or Rejected (dead letter)."""
        self.limiter.wait()
        body = orjson.dumps(event)
        headers = self.headers(event["id"], body, int(time.time()))
        request = {"method": "POST", "url": self.url, "event_id": event["id"],
                   "type": event["type"]}
        try:
            r = self.http.post(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise Transient(f"POST webhook: {outbound.reason(exc)}", request=request) from exc
        if 200 <= r.status_code < 300:
            return
        message = f"webhook answered {r.status_code}"
        response = {"status": r.status_code, "body": r.text[:2000]}
        if transient_status(r.status_code):
            raise Transient(message, status=r.status_code, request=request, response=response,
                            retry_after=retry_after(r.headers.get("retry-after")))
        raise Rejected(message, status=r.status_code, request=request, response=response)


def parse_settings(raw: dict[str, Any]) -> tuple[dict[str, Any], Secrets]:
    """A webhook's own settings: where to POST and the signing secrets (kept secret)."""
    reject_unknown("webhook target", raw, SETTINGS)
    url = http_url(raw, "a webhook target")
    signing = raw.get("secret")
    listed = isinstance(signing, list)
    signing = signing if isinstance(signing, list) else [signing] if signing else []
    if not signing:
        raise ConfigError("a webhook target needs a signing secret (or a list of them)",
                          ("secret",))
    problems = Problems()
    for i, secret in enumerate(signing):
        where = f"secret[{i}]" if listed else "secret"
        with problems.check(*(("secret", i) if listed else ("secret",))):
            check_secret(secret, where)
    problems.raise_any()
    return {"url": url.rstrip("/")}, {"signing": list(signing)}


def check_secret(secret: Any, where: str = "secret") -> None:
    """A Standard Webhooks signing secret: `whsec_` and the base64 of 24 to 64 random
    bytes. The message never repeats the secret."""
    prefix = "whsec_"
    body = secret[len(prefix):] if isinstance(secret, str) else ""
    if not isinstance(secret, str) or not secret.startswith(prefix):
        raise UsageError(f"{where} is not a webhook signing secret ({prefix} and the "
                         f"base64 of {SECRET_BYTES[0]} to {SECRET_BYTES[1]} random bytes)")
    try:
        size = len(base64.b64decode(body, validate=True))
    except binascii.Error:
        raise UsageError(f"{where}: what follows {prefix} is not base64") from None
    if not SECRET_BYTES[0] <= size <= SECRET_BYTES[1]:
        raise UsageError(f"{where} holds {size} bytes; a signing secret holds "
                         f"{SECRET_BYTES[0]} to {SECRET_BYTES[1]}")


def _open(settings: dict[str, Any], profile: Profile, secrets: Secrets) -> WebhookSender:
    return WebhookSender(settings, profile, secrets)


KIND = register(ConnectorKind("webhook", parse_settings, _open, sink=True, settings=SETTINGS,
                              credentials=("secret",), readable=False))
