"""Webhook targets, signed per the Standard Webhooks specification.

Each journal entry in scope becomes one POST with `webhook-id` (stable per event and
target, for idempotency), `webhook-timestamp` and `webhook-signature`: `v1,` and the
base64 HMAC-SHA256 of `id.timestamp.body` under each configured secret, separated by
spaces, so receivers keep verifying while a secret is rotated. Only 2xx is success.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from standardwebhooks import Webhook

from scimsync import outbound
from scimsync.connectors.contract import Rejected, Transient
from scimsync.connectors.registry import ConnectorKind, Secrets, register
from scimsync.connectors.scim import RateLimiter, retry_after
from scimsync.netpolicy import check_url
from scimsync.validation import ConfigError, at, reject_unknown

if TYPE_CHECKING:
    from scimsync.sync.config import Profile

SETTINGS = ("url", "secret")


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
        if r.status_code in (408, 425, 429) or r.status_code >= 500:
            raise Transient(message, status=r.status_code, request=request, response=response,
                            retry_after=retry_after(r.headers.get("retry-after")))
        raise Rejected(message, status=r.status_code, request=request, response=response)


def parse_settings(raw: dict[str, Any]) -> tuple[dict[str, Any], Secrets]:
    """A webhook's own settings: where to POST and the signing secrets (kept secret)."""
    reject_unknown("webhook target", raw, SETTINGS)
    url = raw.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError("a webhook target needs a url", ("url",))
    at(("url",), check_url, url)  # resolved: a name that does not resolve is refused here
    signing = raw.get("secret")
    if isinstance(signing, str):
        signing = [signing]
    if not signing or not all(isinstance(s, str) and s for s in signing):
        raise ConfigError("a webhook target needs a signing secret (or a list of them)",
                          ("secret",))
    return {"url": url.rstrip("/")}, {"signing": list(signing)}


def _open(settings: dict[str, Any], profile: Profile, secrets: Secrets) -> WebhookSender:
    return WebhookSender(settings, profile, secrets)


KIND = register(ConnectorKind("webhook", parse_settings, _open, sink=True, settings=SETTINGS,
                              credentials=("secret",), readable=False))
