"""What an HTTP answer means to a connector, and how fast one may ask: one rule for
every HTTP kind.

The SCIM connector, its token requests (scimsync.connectors.auth) and webhooks all
decide "try again later" and "how much later" here, so that a status is never
retryable in one place and final in another.
"""

from __future__ import annotations

import threading
import time
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER = 86_400.0  # a day


def transient_status(status: int) -> bool:
    """Whether an HTTP status means "try again later" (timeouts, throttling, 5xx);
    501 Not Implemented is permanent: the operation will never work there."""
    return status in (408, 425, 429) or (status >= 500 and status != 501)


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 §10.2.3): delta-seconds or
    an HTTP-date, at most MAX_RETRY_AFTER (a downstream cannot push a retry past any
    date we can represent)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        wait = parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, OverflowError):
        return None
    return min(max(0.0, wait), MAX_RETRY_AFTER)


class RateLimiter:
    """A token bucket: at most `rate` requests per second (0 means no limit)."""

    def __init__(self, rate: float):
        self.rate = rate
        self.allowance = rate
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        if self.rate <= 0:
            return
        with self.lock:
            now = time.monotonic()
            self.allowance = min(self.rate, self.allowance + (now - self.last) * self.rate)
            self.last = now
            if self.allowance < 1:
                time.sleep((1 - self.allowance) / self.rate)
                self.allowance = 0
                self.last = time.monotonic()
            else:
                self.allowance -= 1
