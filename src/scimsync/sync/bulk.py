"""Bulk work of a lane: an initial load or a resync, chunk by chunk (docs/architecture.md:
Lanes).

A pass walks every resource of the directory in id order, users first (so that groups
can list them), a chunk at a time, while the journal cursor moves on; where it is lives
in `targets.bulk` (scimsync.store.passes). After each chunk the run looks for anything
else of the target that waits (a journal change, a due retry, an approved
deprovisioning): then it stops and the next run applies that first, so a leaver waits
at most one chunk. Otherwise it goes on with the next chunk, for up to
BULK_SLICE_SECONDS, paying a run's setup once per slice.

While a chunk's requests are in flight, the next chunk's users are read from the
database on a helper thread, so the application is not left idle between chunks.
Reading ahead is safe for the same reason reading at all is: a change made after the
read has a journal entry past the cursor, which the `waiting` check sees before the
chunk is sent or a later run applies after it.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from scimsync.protocol.record import Record
from scimsync.protocol.resources import RESOURCE_TYPES
from scimsync.protocol.timefmt import parse_time
from scimsync.store import passes
from scimsync.store.resources import Loads
from scimsync.sync.holdback import apply_approved, finish_pass
from scimsync.sync.lease import fenced
from scimsync.sync.work import Work

if TYPE_CHECKING:
    from scimsync.sync.engine import Reconciler
    from scimsync.sync.steps import Run

Bulk = dict[str, Any]


@dataclass(frozen=True)
class Sizes:
    """How much a pass takes at a time: users and groups per chunk, deprovisionings
    approved per run, and how long one run goes on from chunk to chunk."""

    users: int
    groups: int
    batch: int
    seconds: float


@dataclass
class Chunk:
    """The next resources of a pass: `bulk` is where the pass stands with them (their
    type); no ids means the pass has seen every resource."""

    bulk: Bulk
    ids: list[str]
    records: dict[str, Record] | None = None  # users read ahead
    # Identities created after the pass began: they entered the target's scope then,
    # and their lag counts from their creation (the rest from the pass's start).
    entered: dict[str, str] = field(default_factory=dict)

    def works(self) -> list[Work]:
        """The chunk's pieces of work, each timed from when it entered scope."""
        b = self.bulk
        return [Work(b["type"], i, b["seq"], self.entered.get(i, b["at"]), b["kind"])
                for i in self.ids]


def order(ctx: Run) -> list[str]:
    """The types a pass walks, in order: users, then what the target also holds."""
    caps, profile = ctx.caps, ctx.config.profile
    return ["User"] + [k for k in ("Group", "Agent", "AgenticApplication")
                       if k in caps.kinds and (k != "Group" or profile.groups)]


def read_chunk(r: Reconciler, ctx: Run, bulk: Bulk, sizes: Sizes,
               records: bool = False) -> Chunk:
    """The next chunk of the pass after `bulk` (and its users' records, if asked)."""
    kinds = order(ctx)
    i = kinds.index(bulk["type"]) if bulk["type"] in kinds else len(kinds)
    while i < len(kinds):
        rtype = kinds[i]
        with r.engine.connect() as conn:
            found_ids = passes.next_ids(conn, ctx.row.directory_id, rtype, bulk["after"],
                                        sizes.users if rtype == "User" else sizes.groups)
        ids = [i for i, _ in found_ids]
        if ids:
            found = None
            if records and rtype == "User":
                found = r.store.get_many(ctx.row.directory_id, RESOURCE_TYPES["User"], ids,
                                         Loads(members=True, groups=True))
            return Chunk({**bulk, "type": rtype}, ids, found, {
                i: created for i, created in found_ids
                if parse_time(created) > parse_time(bulk["at"])})
        i += 1
        bulk = {**bulk, "type": kinds[i] if i < len(kinds) else "", "after": ""}
    return Chunk(bulk, [])


def work(r: Reconciler, ctx: Run, bulk: Bulk, cursor: int, sizes: Sizes) -> bool:
    """Chunks of bulk work while nothing else of the target waits (journal entries past
    `cursor` included), for at most `sizes.seconds` but at least one chunk; True when the
    pass is complete."""
    started = time.monotonic()
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scimsync-ahead")
    try:
        chunk = read_chunk(r, ctx, bulk, sizes)
        while chunk.ids:
            after = {**chunk.bulk, "after": chunk.ids[-1]}
            upcoming: Future[Chunk] = ahead.submit(read_chunk, r, ctx, after, sizes, True)
            apply(ctx, chunk)
            ctx.forget_links()
            if time.monotonic() - started >= sizes.seconds:
                return False
            with r.engine.connect() as conn:
                if passes.waiting(conn, ctx.row.id, ctx.row.directory_id, cursor):
                    return False
            chunk = upcoming.result()
        return finish(r, ctx, chunk.bulk, sizes.batch)
    finally:
        ahead.shutdown(wait=True, cancel_futures=True)


def apply(ctx: Run, chunk: Chunk) -> None:
    """Reconcile one chunk, then write its links, deliveries and progress in one commit."""
    bulk = chunk.bulk
    if chunk.records is not None:
        ctx.preload("User", chunk.ids, chunk.records)
    # A bulk chunk sees every resource in turn: references resolve within the pass,
    # and groups are synced after all users.
    ctx.incremental = False
    ctx.reconcile(chunk.works())
    ctx.settle([])
    ctx.flush(also=partial(passes.save, target_id=ctx.row.id,
                           bulk={**bulk, "after": chunk.ids[-1]}))


def finish(r: Reconciler, ctx: Run, bulk: Bulk, batch: int) -> bool:
    """The end of a pass: linked resources that left the directory go too (and those a
    stopped run was about to send something for: an account it may have created
    without linking it, sync/intents.py); a resync's deferred deprovisionings are
    judged as one batch; approved ones are applied. True when nothing is left."""
    with r.engine.connect() as conn:
        gone = passes.gone(conn, ctx.row.id)
    if gone:
        ctx.incremental = False
        ctx.reconcile([Work(t, i, bulk["seq"], bulk["at"], bulk["kind"]) for t, i in gone])
        ctx.settle([])
    ctx.flush()
    if bulk["kind"] == "resync":
        finish_pass(ctx)  # what the pass deferred is judged as one batch
    with fenced(r.engine, ctx.lease) as conn:
        passes.save(conn, ctx.row.id, None)
    return apply_approved(ctx, batch)
