"""Events: one per journal entry, for webhooks and the events API.

An event carries its type (`user.created`, `group.member_added`, ...), the resource
as it is now (SCIM, without secrets; only its id once deleted), the changed
attributes and the lifecycle meaning. Its id is stable per (entry, consumer), so a
retried delivery can be recognised as a duplicate.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from typing import Any

from scimsync.errors import NotFound
from scimsync.protocol.record import Record
from scimsync.protocol.render import full_document
from scimsync.protocol.resources import RESOURCE_TYPES
from scimsync.store.resources import Loads, Store

Doc = dict[str, Any]
USER_EVENTS = {"created": "user.created", "updated": "user.updated",
               "deactivated": "user.deactivated", "reactivated": "user.reactivated",
               "deleted": "user.deleted"}
GROUP_EVENTS = {"created": "group.created", "updated": "group.updated",
                "deleted": "group.deleted", "member_added": "group.member_added",
                "member_removed": "group.member_removed"}
AGENT_EVENTS = {op: f"agent.{op}" for op in USER_EVENTS}
APPLICATION_EVENTS = {op: f"agentic_application.{op}" for op in USER_EVENTS}
BY_TYPE = {"User": USER_EVENTS, "Group": GROUP_EVENTS, "Agent": AGENT_EVENTS,
           "AgenticApplication": APPLICATION_EVENTS}
# Notices about a non-human identity (an Agent, or a User marked non-human), journaled
# against it: they reach webhooks and the events API; SCIM targets have nothing to
# apply for them (scimsync.nhi).
NHI_EVENTS = {"owner_departed": "nhi.owner_departed", "reassigned": "nhi.reassigned",
              "suspended": "nhi.suspended", "expired": "nhi.expired",
              "revoke_requested": "nhi.credentials_revoke_requested",
              "revoked": "nhi.credential_revoked",
              "unowned": "nhi.unowned"}
# Events of the hub itself, journaled with resource_type "Target" (the target they
# concern): they reach webhooks and the events API in journal order, like the others.
HUB_EVENTS = {"drift_detected": "drift.detected", "quarantined": "target.quarantined",
              "released": "target.released", "held": "target.held",
              "adopted": "target.adopted", "learned": "target.learned"}
HUB_RESOURCE = "Target"
EVENT_TYPES = tuple(t for table in (*BY_TYPE.values(), HUB_EVENTS, NHI_EVENTS)
                    for t in table.values())


def retention_days() -> int:
    """How long events stay available (SCIMSYNC_EVENT_RETENTION_DAYS, default 30)."""
    return int(os.environ.get("SCIMSYNC_EVENT_RETENTION_DAYS", "30"))


def announce(engine: Any, directory_id: str, target_id: str, op: str, detail: Doc) -> None:
    """Journal an event of the hub about a target (HUB_EVENTS), in its own transaction."""
    from scimsync.store import journal

    entry = journal.Entry(HUB_RESOURCE, target_id, op, 0, [], None, detail)
    with Store(engine, group_commit=False).write() as conn:
        journal.append(conn, directory_id, [entry], "scimsync")


def event_type(entry: dict[str, Any]) -> str:
    if entry["resource_type"] == HUB_RESOURCE:
        return HUB_EVENTS.get(entry["op"], f"target.{entry['op']}")
    if entry["op"] in NHI_EVENTS:
        return NHI_EVENTS[entry["op"]]
    table = BY_TYPE.get(entry["resource_type"], GROUP_EVENTS)
    return table.get(entry["op"], f"{entry['resource_type'].lower()}.updated")


def event_id(consumer: str, entry: dict[str, Any]) -> str:
    """Stable per (event, consumer): `msg_` and 32 hex characters."""
    raw = f"{consumer}:{entry['directory_id']}:{entry['seq']}".encode()
    return "msg_" + hashlib.sha256(raw).hexdigest()[:32]


def build_event(store: Store, entry: dict[str, Any], consumer: str,
                resource: Doc | None = None) -> Doc:
    """The event for one journal entry, with the resource's current state."""
    did = entry["directory_id"]
    if entry["resource_type"] == HUB_RESOURCE:
        resource = {"id": entry["resource_id"], "type": "target"}
    elif resource is None:
        resource = current(store, did, entry["resource_type"], entry["resource_id"])
    data: Doc = {"resource": resource, "changed": entry["changed"],
                 "lifecycle": entry["lifecycle"], "version": entry["version"]}
    if entry.get("detail"):
        data.update(entry["detail"])
    return {"id": event_id(consumer, entry), "type": event_type(entry),
            "timestamp": entry["at"], "directory_id": did, "seq": entry["seq"],
            "resource_type": entry["resource_type"], "resource_id": entry["resource_id"],
            "data": data}


def current(store: Store, directory_id: str, rtype: str, rid: str) -> Doc:
    """The resource now (members and groups left out: events stay small)."""
    try:
        rec = store.get(directory_id, RESOURCE_TYPES[rtype], rid,
                        Loads(members=False, groups=False))
    except NotFound:
        return resource_doc(None, directory_id, rid)
    return resource_doc(rec, directory_id, rid)


def resource_doc(rec: Record | None, directory_id: str, rid: str) -> Doc:
    """An event's resource: the SCIM document without members or groups, or, once
    the resource is gone, only its id."""
    if rec is None:
        return {"id": rid, "deleted": True}
    return full_document(replace(rec, members=None, groups=None),
                         f"/scim/v2/{directory_id}")
