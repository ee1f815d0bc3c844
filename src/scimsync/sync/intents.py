"""Intents: what a run is about to send is recorded before it is sent
(docs/provisioning.md: Crash safety).

Links and deliveries are written in batches, so a crash loses the last of them: an
account created just before a kill had no link, and a change applied just before one
left the link with the state before it (so an undo in the directory looked applied).
So before each wave of requests a run writes, in one transaction with what it has
not written yet, an intent on the link of every resource it is about to send
something for (a new row in state `pending` for one never linked). The outcome, or a
step that turned out to send nothing, clears it.

A link read with an intent is unknown: before anything is planned from it the run
asks the application, finding the object by the identity's id in `externalId` (fifty
to a request) or reading it by its remote id. One that exists is linked and replaced
whole by the next step (a PUT of the desired object, as on adoption); one that does
not is unlinked, so it is created, or, for a leaver, there is nothing to take out.
An application that cannot be searched is read by one listing instead (its objects
of that kind, indexed by externalId). One that can be neither searched nor listed
cannot say whether an unlinked create went through: that is a dead letter for a
person. So is a create into one that does not keep externalId (Canaille), found
neither way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scimsync.connectors.contract import Rejected, Remote
from scimsync.store.links import upsert
from scimsync.sync import mapping
from scimsync.sync.work import Link, Work

if TYPE_CHECKING:
    from scimsync.sync.context import RunContext

PENDING = "pending"  # the state of a link row written for an intent, no remote id yet
FIND_BATCH = 50
Doc = dict[str, Any]
# What a read-back carries that is not the desired state: kept out of the body that a
# deactivation of a put-only application sends back.
READ_ONLY = ("id", "meta", "groups")

def intent_upsert(dialect: str) -> Any:
    """INSERT a pending link, or set the intent of the existing one (nothing else)."""
    return upsert(dialect, ("intent", "updated"))


def put_intent(link: Link | None, body: Doc) -> str | None:
    """What `put` will send for this body: a create, an update, or nothing."""
    if link is None or not link.remote_id:
        return "create"
    if link.state != "provisioned" or link.applied_hash != mapping.digest(body):
        return "update"
    return None


def sends_put(ctx: RunContext, bodies: dict[str, Doc]) -> Callable[[Work], str | None]:
    """The intent of each user's `put` with these desired bodies."""
    return lambda w: put_intent(ctx.link(w.resource_id), bodies[w.resource_id])


def sends_deprovision(ctx: RunContext) -> Callable[[Work], str | None]:
    """The intent of each `deprovision`: something only for a provisioned account."""
    return lambda w: "deprovision" if ctx.remote_id(w.resource_id) is not None else None


def sends_sync(_work: Work) -> str:
    """A group's or an agent's body is built in its step: it is always recorded."""
    return "sync"


def resolve(ctx: RunContext, works: list[Work]) -> None:
    """Compare the links of these resources that carry an intent with the application.

    A dry run (a plan) reads the application too, and keeps what it finds in the run's
    cache only: a link with an intent is unknown, so a plan that trusted it would show
    nothing where the next run will repair something.
    """
    if ctx.sender is not None:
        return
    ctx.prefetch_links([w.resource_id for w in works])
    unknown: dict[str, list[tuple[Work, Link]]] = {}
    for w in works:
        link = ctx.link(w.resource_id)
        if link is not None and link.intent is not None and w.resource_id not in ctx.stuck:
            unknown.setdefault(link.resource_type, []).append((w, link))
    for kind, found in unknown.items():
        by_external = _find(ctx, kind, [link.resource_id for _, link in found])
        for w, link in found:
            _settle_one(ctx, w, link, by_external)


def _find(ctx: RunContext, kind: str, ids: list[str]) -> dict[str, list[Remote]] | None:
    """Remote objects by the hub id they carry in externalId: searched for, or, in an
    application that cannot be searched, read by one listing of its objects of this
    kind; None if it can be neither, or does not keep externalId (nothing to find an
    object by: the caller makes it a dead letter, never a second create)."""
    if not ctx.can_filter:
        stores = ctx.caps.stores
        keeps = stores is None or "externalId" in stores(kind, {"externalId": "-"})
        return _listed(ctx, kind, set(ids)) if ctx.caps.list and keeps else None
    out: dict[str, list[Remote]] = {}
    try:
        for i in range(0, len(ids), FIND_BATCH):
            for remote in ctx.connector.find(kind, "externalId", ids[i:i + FIND_BATCH]):
                ext = remote.doc.get("externalId")
                if isinstance(ext, str):
                    out.setdefault(ext, []).append(remote)
    except Rejected:
        return None  # the application refuses this filter: read by remote id instead
    return out


def _listed(ctx: RunContext, kind: str, ids: set[str]) -> dict[str, list[Remote]]:
    """What `_find` answers, from a listing of every object of `kind` the application
    holds (django-scim2 keeps externalId but announces no filter): one listing per
    run that meets unknown links, so that a create whose answer was lost is found, not
    sent twice."""
    out: dict[str, list[Remote]] = {}
    for remote in ctx.connector.list(kind):
        ext = remote.doc.get("externalId")
        if isinstance(ext, str) and ext in ids:
            out.setdefault(ext, []).append(remote)
    return out


def _settle_one(ctx: RunContext, work: Work, link: Link,
                by_external: dict[str, list[Remote]] | None) -> None:
    kind, rid = link.resource_type, link.resource_id
    hits = sorted((by_external or {}).get(rid, []), key=lambda r: r.id)
    remote = next((h for h in hits if h.id == link.remote_id), hits[0] if hits else None)
    if remote is None and link.remote_id:
        remote = ctx.connector.get(kind, link.remote_id)
    if remote is None and by_external is None and not link.remote_id:
        # Nothing can say whether the create went through: a person looks, and until
        # then nothing is sent for it (a second create would duplicate the account in
        # an app that keeps no uniqueness). Retrying the dead letter says "go on".
        ctx.stuck.add(rid)
        if ctx.awaiting_person(work):
            ctx.waiting(work)  # not done, whoever asked (a drift fix counts it failed)
        else:
            ctx.dead_letter(work, "verify", Rejected(
                f"a {link.intent} of this {kind} was under way when a run stopped, and "
                "the application cannot be searched by externalId: check whether it "
                "holds the object; if it does, link it by hand (drift), if not, retry "
                "this dead letter and it is created"))
        return
    if remote is None:
        ctx.drop_link(rid)
        return
    inactive = remote.doc.get("active") is False
    state = "deprovisioned" if link.state == "deprovisioned" and inactive else "provisioned"
    observed = {k: v for k, v in remote.doc.items() if k not in READ_ONLY} \
        if kind == "User" else None
    # No applied state: the step replaces the object whole, whatever it holds now.
    ctx.observed(Link(rid, kind, remote.id, None, None, state), observed)
