"""Lag honesty: the lag recorded for a delivery is the time from the oldest change it
applied to the moment the application shows it, as someone polling the app sees it."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Engine

from conftest import Scim
from downstream import PEER_TOKEN, Peer, converge
from scimsync.protocol.timefmt import parse_time
from scimsync.store.tables import deliveries, journal
from scimsync.store.targets import Targets
from scimsync.sync.lag import target_lag
from scimsync.sync.worker import Worker

GAP = 2.0  # seconds between the first change and the last
# How far apart the two clocks may read: the engine notes the time once the app has
# answered, the poll once the app shows it, every 20 ms.
TOLERANCE_MS = 500


def test_coalesced_changes_are_timed_from_the_oldest_as_the_app_observes(
        engine: Engine, scim: Scim, peer: Peer) -> None:
    """A change, then two seconds later a deactivation of the same person, applied as
    one operation: the recorded lag (and the worst leaver that `scimsync lag` shows)
    is what a poller of the app measured from the first change, not from the last."""
    user = scim.user(f"lag-{secrets.token_hex(2)}@x.test", title="Before")
    tid = str(Targets(engine).add(scim.directory_id, "lagged", "scim", {
        "url": peer.base, "auth": {"type": "bearer", "token": PEER_TOKEN}})["id"])
    converge(engine, tid)
    scim.patch(f"/Users/{user['id']}", [{"op": "replace", "path": "title", "value": "After"}])
    time.sleep(GAP)
    scim.patch(f"/Users/{user['id']}", [{"op": "replace", "path": "active", "value": False}])
    with engine.connect() as conn:
        first, last = conn.execute(sa.select(journal.c.seq, journal.c.at).where(
            journal.c.directory_id == scim.directory_id,
            journal.c.resource_id == user["id"]).order_by(journal.c.seq.desc())
            .limit(2)).all()[::-1]
    worker = Worker(engine)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            remote = peer.users()[user["id"]]
            if remote["active"] is False:
                seen = datetime.now(UTC)
                break
            assert time.monotonic() < deadline, "the change never reached the app"
            time.sleep(0.02)
    finally:
        worker.stop()
    assert remote["title"] == "After"
    observed_ms = (seen - parse_time(first.at)).total_seconds() * 1000
    with engine.connect() as conn:
        delivery = conn.execute(sa.select(deliveries).where(
            deliveries.c.target_id == tid, deliveries.c.resource_id == user["id"])
            .order_by(deliveries.c.id.desc()).limit(1)).one()
    assert (delivery.seq, delivery.changed_at, delivery.lifecycle) == (last.seq, first.at,
                                                                       "leaver")
    assert delivery.lag_ms >= GAP * 1000
    assert abs(delivery.lag_ms - observed_ms) <= TOLERANCE_MS, (delivery.lag_ms, observed_ms)
    worst = target_lag(engine, tid)["worst_leaver"]
    assert (worst["resource_id"], worst["lag_ms"]) == (user["id"], delivery.lag_ms)
