"""The probe's writes (`targets check --write`): one marked user and group, each
read back, changed, deleted (RFC 7644 §3.3, §3.5.2, §3.6).

The user is sent as the engine would send it to this app (connectors/shaping.py,
from what the app announced), a raw body only if that one is refused. Everything
created is recorded as it is created and deleted in a `finally`, whatever failed; what
could not be deleted is reported (`left_behind`) for the operator to remove. Only
ids the probe created are ever written to.
"""

from __future__ import annotations

from typing import Any

from scimsync.connectors import shaping
from scimsync.connectors.contract import ChangeSet, ConnectorError
from scimsync.connectors.members import PATCH_OP, patch_operations, quoted
from scimsync.connectors.probe import (
    FAILED,
    MARK,
    OK,
    QUIRK,
    SKIPPED,
    Answer,
    ProbeFailed,
    Session,
    Stop,
)
from scimsync.connectors.scim import resource_path

Doc = dict[str, Any]
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# The user's attributes checked after the read back, by path.
PATHS = ("userName", "externalId", "name.givenName", "name.familyName", "name.formatted",
         "displayName", "title", "locale", "emails.value", "emails.type", "emails.primary",
         "active", f"{ENTERPRISE}:employeeNumber")
# Not kept, these are reported but never suggested away: the engine needs them.
ESSENTIAL = ("userName", "externalId", "emails.value", "active")
# Kept attributes a PATCH may change, in order of preference (top-level: a change set's).
PATCHABLE = ("title", "displayName", "name")


def user_body(tag: str) -> Doc:
    """A full user, marked: every value differs from what an app could derive."""
    user_name = f"{MARK}{tag}@example.com"
    return {"schemas": [USER, ENTERPRISE], "userName": user_name,
            "externalId": f"{MARK}{tag}",
            "name": {"givenName": "Scimsync", "familyName": f"Check{tag}",
                     "formatted": f"Scimsync Check{tag} (probe)"},
            "displayName": f"scimsync probe {tag}", "title": "Conformance probe",
            "locale": "en-GB", "active": True,
            "emails": [{"value": user_name, "type": "work", "primary": True}],
            ENTERPRISE: {"employeeNumber": tag}}


def run(s: Session) -> None:
    """Every write check; cleanup in the `finally`."""
    created: list[Doc] = []
    try:
        user = _create_user(s, created)
        _kept(s, user)
        _patch(s, user)
        group = _groups(s, created, user)
        _remove_member(s, group, user)
        for item in reversed(created):
            if not item.get("gone"):
                _delete(s, item, checked=True)
    except Stop:
        pass
    except ConnectorError as exc:  # no answer at all: the app went away midway
        s.check("writes", FAILED, f"stopped: {exc}")
    finally:
        _cleanup(s, created)


def _get(s: Session, kind: str, rid: str) -> Answer:
    return s.ask("GET", resource_path(kind, rid))


def _create_user(s: Session, created: list[Doc]) -> Doc:
    body = user_body(s.tag)
    shaped = shaping.render(s.found, "User", body, s.connector.base)
    for variant, sent in (("as shaped for the app", shaped), ("raw", body)):
        a = s.ask("POST", "Users", sent)
        if a.ok and isinstance(a.doc, dict) and a.doc.get("id") not in (None, ""):
            rid = str(a.doc["id"])
            created.append({"resource": "User", "id": rid, "userName": body["userName"]})
            s.check("create user", OK, f"{variant}: {a.evidence()}")
            back = _get(s, "User", rid)
            if not back.ok or not isinstance(back.doc, dict):
                s.check("read user back", FAILED, back.evidence())
                raise Stop
            return {"id": rid, "sent": sent, "back": back.doc, "body": body,
                    "evidence": back.evidence()}
        if a.ok:
            s.report.left_behind.append({"resource": "User", "id": None,
                                         "userName": body["userName"],
                                         "error": "created without an id in the answer"})
            s.check("create user", FAILED, f"{variant}: {a.evidence()}: no id")
            raise Stop
        s.check("create user", FAILED, f"{variant}: {a.evidence()}")
        if sent is body or shaped == body:
            break
    raise Stop


def _value(doc: Any, path: str) -> Any:
    """A path's value; `emails.x` in the first email."""
    if path.startswith(ENTERPRISE):
        ext = doc.get(ENTERPRISE) if isinstance(doc, dict) else None
        return ext.get(path.rsplit(":", 1)[1]) if isinstance(ext, dict) else None
    head, _, sub = path.partition(".")
    value = doc.get(head) if isinstance(doc, dict) else None
    if isinstance(value, list):
        value = value[0] if value else None
    if sub:
        return value.get(sub) if isinstance(value, dict) else None
    return value


def _same(sent: Any, back: Any) -> bool:
    if isinstance(sent, str) and isinstance(back, str):
        return sent.lower() == back.lower() if "@" in sent else sent == back
    return bool(sent == back)


def _kept(s: Session, user: Doc) -> None:
    """Per attribute: sent and kept, sent and not kept (suggest `stored: false`), or
    not sent (the app's schema does not have it)."""
    sent, back = user["sent"], user["back"]
    for path in PATHS:
        name = f"user {path}"
        wanted, got = _value(sent, path), _value(back, path)
        if wanted is None:
            s.check(name, SKIPPED, "not sent: the app's schema does not have it, or has "
                    "it read-only")
            if path == "externalId":
                s.suggest("match", ["userName"])
            continue
        shown = f"sent {wanted!r}, read back {got!r} ({user['evidence'].split(' → ')[0]})"
        if _same(wanted, got):
            s.check(name, OK, shown)
            continue
        s.check(name, QUIRK, shown)
        if path == "externalId":
            s.suggest("match", ["userName"])
        elif path not in ESSENTIAL:
            s.not_stored("User", path)


def _patch(s: Session, user: Doc) -> None:
    """A PATCH of a kept attribute (as the engine sends it), then read back."""
    held = s.report.suggested.get("discovery", {}).get("attributes", {}).get("User", {})
    attr = next((a for a in PATCHABLE if _value(user["sent"], a) is not None
                 and a not in held), None)
    if attr is None:
        s.check("patch user", SKIPPED, "no attribute the app kept to change")
        return
    value: Any = f"Conformance probe {s.tag} (patched)"
    if attr == "name":  # the parts every app that has a name keeps
        value = {"givenName": "Patched", "familyName": user["sent"]["name"].get("familyName")}
    desired = {**user["sent"], attr: value}
    changes = shaping.changed(s.found, "User", ChangeSet(desired, set={attr: value}),
                              s.connector.base)
    path = resource_path("User", user["id"])
    if s.found.patch and s.connector.profile.patch:
        a = s.ask("PATCH", path, {"schemas": [PATCH_OP],
                                  "Operations": patch_operations(changes)})
    else:
        a = s.ask("PUT", path, {**desired, "id": user["id"]})
    if not a.ok and isinstance(value, dict) and s.found.patch and s.connector.profile.patch:
        first = a.evidence()
        a = s.ask("PATCH", path, {"schemas": [PATCH_OP],
                                  "Operations": patch_operations(changes, by_sub=True)})
        if not a.ok:
            s.check(f"patch user {attr}", QUIRK, f"{first}; {a.evidence()}")
            return
        s.suggest("patch_complex", "sub")
        back = _get(s, "User", user["id"])
        s.check(f"patch user {attr}", QUIRK, f"{first}; by sub-attribute {a.evidence()}; "
                f"{back.evidence()} (patch_complex: sub)")
        return
    if not a.ok:
        s.check(f"patch user {attr}", QUIRK, a.evidence())
        return
    back = _get(s, "User", user["id"])
    shown = "name.givenName" if attr == "name" else attr
    result = OK if _same(_value(desired, shown), _value(back.doc, shown)) else QUIRK
    s.check(f"patch user {attr}", result, f"{a.evidence()}; {back.evidence()}")


def _members(doc: Any) -> set[str]:
    items = doc.get("members") if isinstance(doc, dict) else None
    return {str(m.get("value")) for m in items or [] if isinstance(m, dict)}


def _groups(s: Session, created: list[Doc], user: Doc) -> Doc:
    """An empty group (the engine sends one with `members: []`: a refusal is a quirk
    no profile absorbs), then one with the user as its member by POST; members
    dropped are sent by PATCH add (group_members: patch)."""
    name = f"{MARK}{s.tag}"
    base = s.connector.base
    empty = s.ask("POST", "Groups", shaping.render(
        s.found, "Group", {"schemas": [GROUP], "displayName": f"{name}-empty", "members": []},
        base))
    if empty.ok and isinstance(empty.doc, dict) and empty.doc.get("id"):
        item = {"resource": "Group", "id": str(empty.doc["id"]), "displayName": f"{name}-empty"}
        created.append(item)
        s.check("create empty group", OK, empty.evidence())
        _delete(s, item, checked=False)
    elif 400 <= empty.status < 500:
        s.check("create empty group", QUIRK, f"{empty.evidence()}: a group without "
                "members is refused; the engine sends `members: []` for one")
    else:
        s.check("create empty group", FAILED, empty.evidence())
    body = {"schemas": [GROUP], "displayName": name, "members": [{"value": user["id"]}]}
    a = s.ask("POST", "Groups", shaping.render(s.found, "Group", body, base))
    if not (a.ok and isinstance(a.doc, dict) and a.doc.get("id")):
        s.check("create group with a member", FAILED, a.evidence())
        raise Stop
    gid = str(a.doc["id"])
    created.append({"resource": "Group", "id": gid, "displayName": name})
    back = _get(s, "Group", gid)
    held = _members(back.doc)
    evidence = f"{a.evidence()}; {back.evidence()}"
    if held:
        s.check("group members by POST", OK, evidence)
    else:
        add = s.ask("PATCH", resource_path("Group", gid), {"schemas": [PATCH_OP], "Operations": [
            {"op": "add", "path": "members",
             "value": shaping.members(s.found, [user["id"]], base)}]})
        back = _get(s, "Group", gid)
        held = _members(back.doc)
        evidence += f"; {add.evidence()}; {back.evidence()}"
        if not held:
            s.check("group members", FAILED, f"{evidence}: kept neither by POST nor PATCH")
            raise Stop
        s.suggest("group_members", "patch")
        s.check("group members by POST", QUIRK, f"{evidence}: dropped on POST, kept by "
                "PATCH add (group_members: patch)")
    user_name = str(user["body"]["userName"]).lower()
    if user["id"] in held:
        value, result = user["id"], OK
    elif user_name in {v.lower() for v in held}:
        value, result = next(v for v in held if v.lower() == user_name), QUIRK
        s.suggest("member_value", "userName")
    else:
        value, result = next(iter(held)), QUIRK
    s.check("member value", result, f"user id {user['id']!r}, member value {value!r}"
            + (" (member_value: userName)" if value != user["id"] and result == QUIRK
               and value.lower() == user_name else ""))
    return {"id": gid, "value": value, "displayName": name}


def _remove_member(s: Session, group: Doc, user: Doc) -> None:
    """By a `members[value eq "x"]` path (RFC 7644 §3.5.2.2), else by a value list;
    `x` is the member's value as the app holds it (its userName in some apps)."""
    path = resource_path("Group", group["id"])
    value = group["value"]
    tried: list[str] = []
    for form, op in (("filter", {"op": "remove", "path": f"members[value eq {quoted(value)}]"}),
                     ("value", {"op": "remove", "path": "members", "value": [{"value": value}]})):
        a = s.ask("PATCH", path, {"schemas": [PATCH_OP], "Operations": [op]})
        tried.append(a.evidence())
        if a.ok:
            back = _get(s, "Group", group["id"])
            if value not in _members(back.doc) and back.ok:
                if form == "value":
                    s.suggest("member_remove", "value")
                s.check("remove member", OK if form == "filter" else QUIRK,
                        "; ".join(tried) + (" (member_remove: value)" if form == "value" else ""))
                return
            tried[-1] += ": the member is still there"
    # The member is the group's only one: an app may refuse to empty a group by PATCH
    # and take a PUT with `members: []` (empty_group: put).
    put = s.ask("PUT", path, shaping.render(s.found, "Group", {
        "schemas": [GROUP], "displayName": group["displayName"], "members": [],
        "id": group["id"]}, s.connector.base))
    tried.append(f"PUT members [] {put.evidence()}")
    after = _get(s, "Group", group["id"]) if put.ok else None
    if after is not None and after.ok and value not in _members(after.doc):
        s.suggest("empty_group", "put")
        s.check("remove member", QUIRK, "; ".join(tried) + ": neither PATCH removed the "
                "group's only member, a PUT with no members did (empty_group: put)")
        return
    s.check("remove member", QUIRK, "; ".join(tried) + ": nothing removed the group's "
            "only member")


def _delete(s: Session, item: Doc, checked: bool) -> bool:
    """DELETE, then a GET that must answer 404; whether it is gone."""
    path = resource_path(item["resource"], item["id"])
    a = s.ask("DELETE", path)
    if not (a.ok or a.status == 404):
        item["error"] = a.evidence()
        if checked:
            s.check(f"delete {item['resource'].lower()}", FAILED, a.evidence())
        return False
    back = s.ask("GET", path)
    item["gone"] = back.status == 404
    if checked:
        s.check(f"delete {item['resource'].lower()}", OK if item["gone"] else QUIRK,
                f"{a.evidence()}; {back.evidence()}")
    if not item["gone"]:
        item["error"] = f"still there after DELETE: {back.evidence()}"
    return bool(item["gone"])


# How much of a listing the cleanup reads to find the probe's own objects.
SWEEP_PAGES, SWEEP_PAGE = 20, 100


def _sweep(s: Session, created: list[Doc]) -> None:
    """Add to `created` the objects bearing this probe's mark that it did not record:
    a create the app kept though it answered an error, or whose answer was lost. Read
    from the app's listing (filters may be missing or ignored), a bounded part of it."""
    mark = f"{MARK}{s.tag}".lower()
    known = {(i["resource"], i.get("id")) for i in created}
    for kind, path, attr in (("User", "Users", "userName"), ("Group", "Groups", "displayName")):
        start = 1
        for _ in range(SWEEP_PAGES):
            page = s.ask("GET", path, params=s.paged({"startIndex": str(start)}, SWEEP_PAGE))
            items = page.doc.get("Resources") if page.ok and isinstance(page.doc, dict) else None
            if not items:
                break
            for doc in items:
                name = doc.get(attr) if isinstance(doc, dict) else None
                if isinstance(name, str) and name.lower().startswith(mark) and \
                        (kind, str(doc.get("id"))) not in known and doc.get("id"):
                    created.append({"resource": kind, "id": str(doc["id"]), attr: name})
                    known.add((kind, str(doc["id"])))
            start += len(items)


def _cleanup(s: Session, created: list[Doc]) -> None:
    """Delete what is left (groups first), the probe's marked objects it did not record
    too; report what could not be deleted."""
    try:
        _sweep(s, created)
    except (ConnectorError, ProbeFailed) as exc:
        s.check("cleanup sweep", FAILED, f"the probe's marked objects could not be "
                f"looked for: {exc}")
    for item in sorted(created, key=lambda i: i["resource"] != "Group"):
        if item.get("gone"):
            continue
        try:
            gone = _delete(s, item, checked=False)
        except (ConnectorError, ProbeFailed) as exc:
            item["error"], gone = str(exc), False
        if not gone:
            s.report.left_behind.append({k: v for k, v in item.items() if k != "gone"})
