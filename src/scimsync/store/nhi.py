"""Non-human identities at write time (docs/architecture.md, invariant: the journal and the state
commit together).

When an Agent or a non-human User that was active is deactivated or deleted, every
credential it holds gets a revocation request, and a notice is journaled with the
change (`nhi.credentials_revoke_requested`): webhooks and the events API hear of it
in order, and the request stays open until someone acknowledges it (scimsync.nhi).

Where the directory's ownership policy says `unowned: reject`, an active non-human
identity must have an active owner: a User that is active, or a Group with at least
one active User in it, directly or through nested groups.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, bindparam, insert, literal, select, true

from scimsync.errors import invalid_value
from scimsync.protocol.agents import Facets, facets
from scimsync.protocol.timefmt import now
from scimsync.store.journal import Entry
from scimsync.store.lean import LeanConnection, json_value
from scimsync.store.tables import directories, memberships, nhi_revocations, resources

Doc = dict[str, Any]
Conn = Connection | LeanConnection
R, M = resources.c, memberships.c
REVOKE = "revoke_requested"  # journal op (24 characters at most)
# Actors the ownership policy writes as, and the reason each one's suspension gives.
POLICY_ACTOR = "scimsync:nhi-policy"
SUSPENSION_ACTORS = {f"{POLICY_ACTOR}:expired": "expired",
                     f"{POLICY_ACTOR}:owner_departed": "owner_departed"}

SETTINGS = select(directories.c.settings).where(directories.c.id == bindparam("d"))
OWNER_ROWS = select(R.id, R.type, R.active, R.doc).where(
    R.directory_id == bindparam("d"), R.id.in_(bindparam("ids", expanding=True)))


def _staffed_groups() -> Any:
    """Which of these groups have an active User in them, directly or through nested
    groups (at most 16 deep, as derived `groups` are)."""
    nested, direct = memberships.alias("n"), memberships.alias("d")
    base = (select(M.group_id.label("root"), M.group_id.label("gid"),
                   literal(0).label("depth"))
            .where(M.group_id.in_(bindparam("ids", expanding=True)))
            .cte("tree", recursive=True))
    step = select(base.c.root, nested.c.member_id, base.c.depth + 1).where(
        nested.c.group_id == base.c.gid, nested.c.member_type == "Group",
        base.c.depth < 16)
    tree = base.union(step)
    return (select(tree.c.root).distinct()
            .select_from(tree.join(direct, direct.c.group_id == tree.c.gid)
                         .join(resources, R.id == direct.c.member_id))
            .where(R.type == "User", R.active == true()))


STAFFED_GROUPS = _staffed_groups()
INSERT_REVOCATION = insert(nhi_revocations)


def policy_settings(conn: Conn, directory_id: str) -> Doc:
    """The directory's ownership policy as stored (scimsync.nhi parses it)."""
    row = conn.execute(SETTINGS, {"d": directory_id}).first()
    settings = json_value(row[0]) if row is not None and row[0] is not None else {}
    found = settings.get("nhi") if isinstance(settings, dict) else None
    return found if isinstance(found, dict) else {}


def owner_status(conn: Conn, directory_id: str, owners: list[Doc]) -> dict[str, Doc]:
    """Each owner id -> {type, active, doc}; owners that no longer exist are absent.
    A Group counts as active while at least one active User is in it (directly or
    through nested groups)."""
    ids = sorted({o["value"] for o in owners if isinstance(o.get("value"), str)})
    if not ids:
        return {}
    out: dict[str, Doc] = {}
    for rid, rtype, active, doc in conn.execute(OWNER_ROWS, {"d": directory_id, "ids": ids}):
        out[rid] = {"type": rtype, "active": bool(active) if rtype == "User" else False,
                    "doc": json_value(doc)}
    groups = [g for g, o in out.items() if o["type"] == "Group"]
    if groups:
        for (gid,) in conn.execute(STAFFED_GROUPS, {"ids": groups}):
            out[gid]["active"] = True
    return out


def check_owned(conn: LeanConnection, directory_id: str, rtype: str, doc: Doc) -> None:
    """Refuse an active non-human identity without an active owner, where the policy
    says so (400 invalidValue)."""
    found = facets(rtype, doc)
    if found is None or not found.active:
        return
    if policy_settings(conn, directory_id).get("unowned", "flag") != "reject":
        return
    status = owner_status(conn, directory_id, found.owners)
    if not any(s["active"] for s in status.values()):
        raise invalid_value(
            f"{found.owners_path}: this directory requires every active non-human identity "
            "to have an active owner (a User, or a Group with an active member)")


def leaving(conn: LeanConnection, directory_id: str, rtype: str, rid: str,
            before: Doc | None, after: Doc | None, version: int,
            actor: str | None) -> list[Entry]:
    """Revocation requests for the credentials of an identity that stops being active
    (suspended, or deleted while active), and the notice that announces them."""
    was = facets(rtype, before)
    if was is None or not was.active:
        return []
    if after is not None:
        now_facets = facets(rtype, after)
        if now_facets is None or now_facets.active:
            return []
        reason = SUSPENSION_ACTORS.get(actor or "", "deactivated")
    else:
        reason = "deleted"
    return request_revocations(conn, directory_id, rtype, rid, before or {}, was, reason,
                               version)


def request_revocations(conn: LeanConnection, directory_id: str, rtype: str, rid: str,
                        doc: Doc, found: Facets, reason: str, version: int) -> list[Entry]:
    if not found.credentials:
        return []
    ts = now()
    name = doc.get("userName") or doc.get("name")
    rows = [{"id": str(uuid.uuid4()), "directory_id": directory_id, "resource_type": rtype,
             "resource_id": rid, "identity": name, "credential": str(c.get("value")),
             "credential_type": c.get("type"), "system": c.get("system"), "reason": reason,
             "requested": ts, "acknowledged": None, "acknowledged_by": None, "note": None}
            for c in found.credentials if c.get("value")]
    if not rows:
        return []
    conn.execute(INSERT_REVOCATION, rows)
    return [Entry(rtype, rid, REVOKE, version, [], None, {
        "reason": reason, "identity": name,
        "credentials": [{"revocation_id": r["id"], "value": r["credential"],
                         "type": r["credential_type"], "system": r["system"]}
                        for r in rows]})]
