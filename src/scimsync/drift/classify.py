"""Classifying one directory identity against what the target holds for it.

Pure: a directory record, its desired body (as provisioning computes it), the remote
object found for it (through its link or by the matching attributes) and its link
go in; the findings it gives rise to come out, in the order they are written
(docs/drift.md: Finding classes). Finding them, and writing them, is the
comparison's (scimsync.drift.comparison).
"""

from __future__ import annotations

from typing import Any

from scimsync.drift.compare import (
    ENTITLEMENT_ATTRIBUTES,
    differences,
    user_differences,
    value_set,
)
from scimsync.drift.findings import Finding
from scimsync.drift.readback import Linked
from scimsync.protocol.record import Record
from scimsync.protocol.schema import ENTERPRISE_USER

Doc = dict[str, Any]
# A remote object as the scratch file gives it: remote id, active (0 or 1), document.
Listed = tuple[str, int, Doc]
# Attributes whose difference grants or keeps access: an attribute_drift finding about
# one of them is medium, not low.
WEIGHTY = {"User": ("active",), "Agent": ("active", "owners", "roles", "entitlements")}


def finding(cls: str, severity: str, rtype: str, rid: str | None, remote_id: str | None,
            evidence: Doc, remote: Doc | None) -> Finding:
    """A finding about a directory identity, or else about `remote:<remote id>`."""
    return Finding(cls, rid if rid is not None else f"remote:{remote_id}", severity, rtype,
                   rid, remote_id, evidence, remote)


def user(rec: Record, desired: Doc | None, remote: Listed | None, via_link: bool,
         link: Linked | None, managed_roles: set[str]) -> list[Finding]:
    """The findings about one directory user."""
    wants_access = desired is not None and desired.get("active", True) is not False
    if remote is None:
        if wants_access:
            evidence: Doc = {**_ident(rec),
                             "reason": "in scope and active, no account in the target"}
            if link is not None and link.remote_id:
                evidence["linked_remote_id"] = link.remote_id
                evidence["reason"] = "the linked account no longer exists in the target"
            return [finding("missing_account", "medium", "User", rec.id, None, evidence, None)]
        return []
    remote_id, active, doc = remote
    if not wants_access:
        if active:
            why = ("deactivated in the directory" if desired is not None
                   else "out of the target's scope")
            return [finding("lingering_access", "critical", "User", rec.id, remote_id,
                            {**_ident(rec), "reason": f"{why}, active in the target",
                             "linked": via_link}, doc)]
        return []
    assert desired is not None
    if not via_link:
        return [finding("unmanaged_matchable", "low", "User", rec.id, remote_id,
                        {**_ident(rec), "reason": "an account in the target matches this "
                         "identity but is not linked: it can be adopted",
                         "differences": user_differences(desired, doc, set())}, doc)]
    out = []
    found = user_differences(desired, doc, link.keys if link else frozenset())
    entitlements = [d for d in found if d["attribute"] in ENTITLEMENT_ATTRIBUTES
                    and d["attribute"] in managed_roles]
    attributes = [d for d in found if d not in entitlements]
    if entitlements:
        proof: Doc = {**_ident(rec), "entitlements": []}
        extra_any = False
        for d in entitlements:
            extra = sorted(value_set(d["actual"]) - value_set(d["desired"]))
            missing = sorted(value_set(d["desired"]) - value_set(d["actual"]))
            extra_any = extra_any or bool(extra)
            proof["entitlements"].append({"attribute": d["attribute"], "extra": extra,
                                          "missing": missing})
        out.append(finding("membership_drift", "high" if extra_any else "medium", "User",
                           rec.id, remote_id, proof, doc))
    if attributes:
        out.append(finding("attribute_drift", severity("User", attributes), "User", rec.id,
                           remote_id, {**_ident(rec), "differences": attributes}, doc))
    return out


def group(rec: Record, desired: Doc | None, remote: Listed | None,
          via_link: bool) -> list[Finding]:
    """The findings about one directory group."""
    ident = {"displayName": rec.doc.get("displayName")}
    if desired is None:
        if remote is not None and via_link:
            # A group the target should not have (out of scope, no longer pushed).
            return [finding("lingering_access", "high", "Group", rec.id, remote[0],
                            {**ident, "reason": "out of the target's scope, still in the "
                             "target", "members": len(remote[2].get("members") or [])},
                            summary(remote[2]))]
        return []
    if remote is None:
        return [finding("missing_account", "medium", "Group", rec.id, None,
                        {**ident, "reason": "in scope, no such group in the target"}, None)]
    remote_id, _, doc = remote
    if not via_link:
        return [finding("unmanaged_matchable", "low", "Group", rec.id, remote_id,
                        {**ident, "reason": "a group in the target matches this group but "
                         "is not linked: it can be adopted"}, summary(doc))]
    out = []
    want, have = value_set(desired["members"]), value_set(doc.get("members"))
    if want != have:
        extra, missing = sorted(have - want), sorted(want - have)
        out.append(finding("membership_drift", "high" if extra else "medium", "Group",
                           rec.id, remote_id,
                           {**ident, "extra_members": extra[:100],
                            "missing_members": missing[:100], "extra": len(extra),
                            "missing": len(missing)}, summary(doc)))
    if str(doc.get("displayName", "")) != str(desired["displayName"]):
        out.append(finding("attribute_drift", "low", "Group", rec.id, remote_id,
                           {**ident, "differences": [{"attribute": "displayName",
                                                      "desired": desired["displayName"],
                                                      "actual": doc.get("displayName")}]},
                           summary(doc)))
    return out


def agent(rec: Record, desired: Doc, remote: Listed | None,
          link: Linked | None) -> list[Finding]:
    """The findings about one directory agent (found through `link`, if not None)."""
    ident = {"name": rec.doc.get("name"), "active": rec.doc.get("active", True)}
    wants_access = desired.get("active", True) is not False
    if remote is None:
        if wants_access:
            return [finding("missing_account", "medium", "Agent", rec.id, None,
                            {**ident, "reason": "active, no such agent in the target"}, None)]
        return []
    remote_id, active, doc = remote
    if not wants_access:
        if active:
            return [finding("lingering_access", "critical", "Agent", rec.id, remote_id,
                            {**ident, "reason": "suspended in the directory, active in the "
                             "target", "linked": link is not None}, doc)]
        return []
    if link is None:
        return [finding("unmanaged_matchable", "low", "Agent", rec.id, remote_id,
                        {**ident, "reason": "an agent in the target matches this one but is "
                         "not linked: it can be adopted",
                         "differences": differences("Agent", desired, doc, set())}, doc)]
    found = differences("Agent", desired, doc, link.keys)
    if not found:
        return []
    return [finding("attribute_drift", severity("Agent", found), "Agent", rec.id, remote_id,
                    {**ident, "differences": found}, doc)]


def severity(kind: str, differences: list[Doc]) -> str:
    """An attribute_drift finding's severity: medium where access is at stake."""
    weighty = WEIGHTY.get(kind, ("active",))
    return "medium" if any(d["attribute"] in weighty for d in differences) else "low"


def gone(rtype: str, lk: Linked) -> Finding | None:
    """A link whose identity left the directory: the object must not grant access."""
    if lk.doc is None:
        return None  # gone from the target as well
    if rtype == "Agent" and lk.active:
        return finding("lingering_access", "critical", "Agent", lk.rid, lk.remote_id,
                       {"name": lk.doc.get("name"), "linked": True,
                        "reason": "deleted from the directory, active in the target"}, lk.doc)
    if rtype == "User" and lk.active:
        return finding("lingering_access", "critical", "User", lk.rid, lk.remote_id,
                       {"userName": lk.doc.get("userName"), "linked": True,
                        "reason": "deleted from the directory, active in the target"}, lk.doc)
    if rtype == "Group":
        return finding("lingering_access", "high", "Group", lk.rid, lk.remote_id,
                       {"displayName": lk.doc.get("displayName"),
                        "reason": "deleted from the directory, still in the target",
                        "members": len(lk.doc.get("members") or [])}, summary(lk.doc))
    return None


def orphan(rtype: str, remote_id: str, doc: Doc) -> Finding:
    """An active object in the target that no link points at and no identity matched."""
    if rtype == "Group":
        return finding("orphaned_account", "medium", "Group", None, remote_id,
                       {"displayName": doc.get("displayName"),
                        "reason": "matches no directory group"}, summary(doc))
    name = "name" if rtype == "Agent" else "userName"
    return finding("orphaned_account", "high", rtype, None, remote_id,
                   {name: doc.get(name), "active": True,
                    "reason": "matches no directory identity"}, doc)


def manager(rec: Record) -> str | None:
    """The directory id of a user's manager (enterprise extension), if any."""
    ext = rec.doc.get(ENTERPRISE_USER)
    manager = ext.get("manager") if isinstance(ext, dict) else None
    value = manager.get("value") if isinstance(manager, dict) else None
    return value if isinstance(value, str) else None


def summary(doc: Doc) -> Doc:
    """A remote group without its member list (findings stay small)."""
    out = {k: v for k, v in doc.items() if k != "members"}
    out["members"] = len(doc.get("members") or [])
    return out


def _ident(rec: Record) -> Doc:
    """Who a user finding is about, in words (made only when there is a finding)."""
    return {"userName": rec.doc.get("userName"), "active": rec.doc.get("active", True)}
