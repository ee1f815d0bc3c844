"""GET /metrics: Prometheus text exposition of provisioning health and lag.

Behind a bearer token (the metrics token, or an admin token) unless configured open,
and labelled with ids: target names say which applications a tenant uses, so they
are labels only when SCIMSYNC_METRICS_NAMES asks for them.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from scimsync.api.health_metrics import TargetHealthCollector
from scimsync.api.settings import Settings
from scimsync.store.directories import Directories
from scimsync.sync.lag import all_targets

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUANTILES = (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms"), ("1", "max_ms"))


class TargetCollector(Collector):
    """Read at scrape time from the database: every process reports the same figures."""

    def __init__(self, engine: Engine, names: bool = False):
        self.engine = engine
        self.names = names

    def collect(self) -> Iterator[Metric]:
        labels = ["target", "target_id", "directory_id"] if self.names else \
            ["target_id", "directory_id"]
        lag = GaugeMetricFamily("scimsync_propagation_lag_seconds",
                                "Change (or entry into scope) to applied on the target, "
                                "recent changes; phase: all, initial, incremental, "
                                "remediation; quantile 1 is the max",
                                labels=[*labels, "phase", "quantile"])
        leaver = GaugeMetricFamily("scimsync_worst_leaver_lag_seconds",
                                   "Slowest recent deprovisioning (time to deprovision)",
                                   labels=labels)
        backlog = GaugeMetricFamily("scimsync_target_backlog_entries",
                                    "Journal entries not yet processed", labels=labels)
        failures = GaugeMetricFamily("scimsync_target_consecutive_failures",
                                     "Failed runs in a row", labels=labels)
        dead = GaugeMetricFamily("scimsync_dead_letters_open",
                                 "Operations waiting in the dead-letter list", labels=labels)
        up = GaugeMetricFamily("scimsync_target_active", "1 if active, 0 if paused or "
                               "quarantined", labels=[*labels, "status"])
        for t in all_targets(self.engine):
            base = [t["id"], t["directory_id"]]
            if self.names:
                base.insert(0, t["name"])
            for phase, figures in (("all", t), *t["phases"].items()):
                for q, key in QUANTILES:
                    if figures[key] is not None:
                        lag.add_metric([*base, phase, q], figures[key] / 1000)
            if t["worst_leaver"]:
                leaver.add_metric(base, t["worst_leaver"]["lag_ms"] / 1000)
            backlog.add_metric(base, t["backlog"])
            failures.add_metric(base, t["failures"])
            dead.add_metric(base, t["dead_letters"])
            up.add_metric([*base, t["status"]], 1 if t["status"] == "active" else 0)
        yield from (lag, leaver, backlog, failures, dead, up)


def metrics_endpoint(engine: Engine, dirs: Directories, settings: Settings
                     ) -> Callable[[Request], Awaitable[Response]]:
    """The /metrics handler for these settings."""
    registry = CollectorRegistry()
    registry.register(TargetCollector(engine, names=settings.metrics_names))
    registry.register(TargetHealthCollector(engine))

    def allowed(request: Request) -> bool:
        if settings.metrics_open:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        if settings.metrics_token is not None and hmac.compare_digest(
                token.encode(), settings.metrics_token.encode()):
            return True
        principal = dirs.authenticate(token)
        return principal is not None and principal.kind == "admin"

    async def endpoint(request: Request) -> Response:
        if not await run_in_threadpool(allowed, request):
            return Response("a metrics or admin bearer token is required\n", status_code=401,
                            media_type="text/plain",
                            headers={"WWW-Authenticate": 'Bearer realm="scimsync-metrics"'})
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE)

    return endpoint
