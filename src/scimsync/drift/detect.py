"""Drift detection: read a target back and classify every difference (docs/architecture.md: Drift).

A full reconciliation is the provisioning planner with "actual" read from the target
instead of taken from the links. It runs in three steps, none of which holds the
target or the directory in memory:

1. *Listing* (scimsync.drift.readback). Every account (and group, where the target
   takes groups) is read through the connector, page by page, into a scratch SQLite
   file beside the run, indexed by remote id and by each matching attribute. A
   listing that fails, or does not add up (scimsync.connectors.paging; an id listed
   twice), makes the run *incomplete*, with the reason in its stats: it changes no
   finding and fixes nothing.
2. *Comparison* (scimsync.drift.comparison, scimsync.drift.classify). The directory
   is walked in id order, a thousand identities at a time; each one's desired body
   (scope and mapping, as provisioning computes it) is compared with its remote
   account, found by its link or by the target's matching attributes. Links whose
   identity is gone, and remote objects nothing claimed, are swept up afterwards
   from the scratch file.
3. *Findings* are written as they are found (scimsync.drift.findings); the run
   itself is a row (scimsync.drift.runs).
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine

from scimsync.connectors import registry
from scimsync.connectors.contract import ConnectorError
from scimsync.drift.comparison import Comparison
from scimsync.drift.findings import FindingsWriter
from scimsync.drift.readback import Scratch, copy_links, list_into
from scimsync.drift.runs import RunStats, finish_run, incompleteness, list_runs, start_run
from scimsync.store.targets import Targets
from scimsync.sync.config import DRIFT_CLASSES, TargetConfig
from scimsync.sync.engine import make_connector
from scimsync.sync.events import announce
from scimsync.sync.lease import Lease, LeaseLost, held

Doc = dict[str, Any]
__all__ = ["Detector", "fewer_collections", "list_runs"]


class _Collector:
    """A larger young generation for the garbage collector while comparisons run.

    The comparison makes and drops millions of small dicts and lists (decoded
    documents, desired bodies) with no reference cycles among them: reference counting
    frees them. At the default threshold (a collection every 700 allocations) the
    collector spent a quarter of the comparison walking them (docs/benchmarks.md).
    The setting is process-wide, so overlapping runs share it: the first one in saves
    the thresholds, the last one out restores them. At most 50,000 young objects wait.
    """

    YOUNG = 50_000

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.saved = gc.get_threshold()

    @contextlib.contextmanager
    def relaxed(self) -> Iterator[None]:
        with self.lock:
            if self.users == 0:
                self.saved = gc.get_threshold()
                gc.set_threshold(max(self.saved[0], self.YOUNG), *self.saved[1:])
            self.users += 1
        try:
            yield
        finally:
            with self.lock:
                self.users -= 1
                if self.users == 0:
                    gc.set_threshold(*self.saved)


fewer_collections = _Collector().relaxed



class Detector:
    """Runs full reconciliations of targets and records what they find."""

    def __init__(self, engine: Engine, connector_factory: Any = make_connector,
                 scratch_dir: str | None = None):
        self.engine = engine
        self.targets = Targets(engine)
        self.connector_factory = connector_factory
        self.scratch_dir = scratch_dir or os.environ.get("SCIMSYNC_SCRATCH_DIR")

    def run(self, target_id: str, trigger: str = "manual",
            progress: Callable[[str, int], None] | None = None,
            lease: Lease | None = None) -> Doc:
        """One full reconciliation; returns the run as stored (id, status, stats).

        It runs under the target's lease: a worker's lane passes its own, and a run
        asked for by hand takes it (sync.lease.held), so that it and its fixes never
        work on the target at once with its lane, nor with another run. Every write
        is fenced by the lease, and a lost lease stops the run before its next request.
        """
        row, config, secrets = self.targets.runtime(target_id)
        with held(self.engine, row.id, lease) as lease:
            return self._run(row, config, secrets, trigger, progress, lease)

    def _run(self, row: Any, config: TargetConfig, secrets: Any, trigger: str,
             progress: Callable[[str, int], None] | None, lease: Lease) -> Doc:
        run_id = start_run(self.engine, row.id, trigger, lease)
        stats = RunStats()
        if not registry.get(row.kind).readable:
            return finish_run(self.engine, run_id, "not_reconcilable", stats,
                              f"a {row.kind} target cannot be read back", lease)

        def tick(phase: str, n: int) -> None:
            lease.check()
            if progress is not None:
                progress(phase, n)

        connector = self.connector_factory(row.kind, config, secrets)
        scratch = Scratch(self.scratch_dir)
        writer = FindingsWriter(self.engine, row, run_id, lease)
        try:
            start = time.perf_counter()
            try:
                stats.listed_users = list_into(scratch, connector, "User", tick, lease.check)
                if config.profile.groups:
                    stats.listed_groups = list_into(scratch, connector, "Group", tick,
                                                    lease.check)
                # Agents are read back from applications that take them (agentExtension).
                takes_agents = "Agent" in connector.capabilities().kinds
                if takes_agents:
                    stats.listed_agents = list_into(scratch, connector, "Agent", tick,
                                                    lease.check)
            except ConnectorError as exc:
                stats.listing_seconds = time.perf_counter() - start
                stats.incomplete = incompleteness(exc)
                return finish_run(self.engine, run_id, "incomplete", stats,
                                  f"the target could not be read whole: {exc}", lease)
            copy_links(self.engine, row.id, scratch)
            scratch.index()
            stats.listing_seconds = time.perf_counter() - start
            start = time.perf_counter()
            comparison = Comparison(self.engine, row, config, scratch, writer, stats, tick,
                                    connector.capabilities().stores)
            with fewer_collections():
                comparison.users()
                if config.profile.groups:
                    comparison.groups()
                if takes_agents:
                    comparison.agents()
                comparison.leftovers(takes_agents)
            writer.flush()
            stats.comparison_seconds = time.perf_counter() - start
            stats.findings = writer.counts
            stats.new = writer.new
            stats.resolved = writer.resolve_unseen()
            done = finish_run(self.engine, run_id, "complete", stats, None, lease)
            if writer.new:
                # Not fenced (the journal is written on the lean path), but it tells of
                # a run whose every write was: complete under this lease.
                lease.check()
                self._announce(row, done)
        except Exception as exc:
            # The run's own row, which no other run writes: a run that failed, or lost
            # its lease half-way, is not left `running` for ever.
            error = ("lost the target's lease; another worker has it"
                     if isinstance(exc, LeaseLost) else f"{type(exc).__name__}: {exc}")
            finish_run(self.engine, run_id, "failed", stats, error)
            raise
        finally:
            scratch.close()
            connector.close()
        auto = [c for c in DRIFT_CLASSES if config.drift.mode(c) == "auto" and
                writer.counts.get(c)]
        if auto:
            from scimsync.drift.remediate import fix

            done["remediation"] = fix(self.engine, row.id, auto, automatic=True,
                                      connector_factory=self.connector_factory, lease=lease)
        return done

    def _announce(self, row: Any, run: Doc) -> None:
        """`drift.detected` in the directory's journal: to webhooks and the events API."""
        stats = run["stats"]
        announce(self.engine, row.directory_id, row.id, "drift_detected", {
            "target": row.name, "run_id": run["id"], "new_findings": stats["new"],
            "findings": stats["findings"]})
