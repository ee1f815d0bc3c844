"""Target health in /metrics, labelled by ids only: what alerting rules match on.

scimsync_target_status{status=...}               1 for the target's status, 0 for the others
scimsync_target_error                            1 while the last run left an error
scimsync_target_retry_timestamp_seconds          when a backing-off target is tried again
scimsync_target_last_applied_timestamp_seconds   when a change last went through
(Failed runs in a row: scimsync_target_consecutive_failures, scimsync.api.metrics.)
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from scimsync.protocol.timefmt import parse_time
from scimsync.store.health import target_health
from scimsync.store.targets import STATUSES

LABELS = ["target_id", "directory_id"]


class TargetHealthCollector(Collector):
    """Read at scrape time, so a target failing in any worker shows in every process."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        status = GaugeMetricFamily(
            "scimsync_target_status", "1 for the target's status (active, paused, "
            "quarantined, held), 0 for the others", labels=[*LABELS, "status"])
        error = GaugeMetricFamily(
            "scimsync_target_error", "1 if the target's last run left an error "
            "(see last_error in scimsync targets show)", labels=LABELS)
        retry = GaugeMetricFamily(
            "scimsync_target_retry_timestamp_seconds",
            "When a target backing off after failures is tried again", labels=LABELS)
        applied = GaugeMetricFamily(
            "scimsync_target_last_applied_timestamp_seconds",
            "When a change was last applied on the target", labels=LABELS)
        for t in target_health(self.engine):
            ids = [t.id, t.directory_id]
            for s in STATUSES:
                status.add_metric([*ids, s], 1 if t.status == s else 0)
            error.add_metric(ids, 1 if t.has_error else 0)
            if t.retry_at is not None:
                retry.add_metric(ids, parse_time(t.retry_at).timestamp())
            if t.last_applied is not None:
                applied.add_metric(ids, parse_time(t.last_applied).timestamp())
        yield from (status, error, retry, applied)
