"""The engine against django-scim2 0.23.0, which ignores `members` on POST and PUT of a
Group (docs/apps.md): verification finds it, sends the members by PATCH, and the
target learns to do so from the start (docs/provisioning.md: Verification)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from apps.probe import Wire
from apps.servers import App
from conftest import Scim
from downstream import converge
from lying import in_front
from scimsync.drift.findings import list_findings
from scimsync.store import journal
from scimsync.store.directories import Directories
from scimsync.store.tables import deliveries, directories
from scimsync.store.targets import Targets


def members_in_app(django_scim2: App, remote_id: str) -> list[str]:
    wire = Wire(django_scim2)
    try:
        return sorted(m["value"] for m in wire("GET", f"Groups/{remote_id}").json()["members"])
    finally:
        wire.close()


def remote_ids(engine: Engine, tid: str, kind: str) -> dict[str, str]:
    from scimsync.store.tables import links

    c = links.c
    with engine.connect() as conn:
        return {r.resource_id: r.remote_id for r in conn.execute(
            sa.select(c.resource_id, c.remote_id).where(c.target_id == tid,
                                                        c.resource_type == kind))}


def journal_seq(engine: Engine, directory_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(directories.c.journal_seq).where(
            directories.c.id == directory_id)).scalar_one())


def team(scim: Scim) -> tuple[dict[str, Any], list[str]]:
    tag = secrets.token_hex(3)
    members = [scim.user(f"{n}-{tag}@example.com", name={"givenName": n, "familyName": tag})
               ["id"] for n in ("ann", "bob")]
    return scim.group(f"team {tag}", members), members


def test_a_group_whose_members_the_app_ignores_on_post_gets_them_by_patch_and_is_learned(
        engine: Engine, scim: Scim, django_scim2: App, client: Any,
        directories: Directories) -> None:
    first, members = team(scim)
    with in_front(django_scim2.url) as (seen, url):
        tid = str(Targets(engine).add(scim.directory_id, f"dj-{secrets.token_hex(2)}", "scim",
                                      {**django_scim2.target(), "url": url})["id"])
        before = journal_seq(engine, scim.directory_id)
        converge(engine, tid)
        groups, users = remote_ids(engine, tid, "Group"), remote_ids(engine, tid, "User")
        assert members_in_app(django_scim2, groups[first["id"]]) == sorted(
            users[m] for m in members)
        d = deliveries.c
        with engine.connect() as conn:
            assert conn.execute(sa.select(d.outcome).where(
                d.target_id == tid, d.resource_id == first["id"])).scalars().all() == ["ok"]
            entries = journal.read(conn, scim.directory_id, before, 1000)
        [learned] = [e for e in entries if e["op"] == "learned"]
        assert learned["detail"]["fact"] == "group_members"
        assert learned["detail"]["value"] == "patch"
        shown = Targets(engine).show(tid)["learned"]
        assert shown["group_members"]["value"] == "patch"
        assert "POST" in shown["group_members"]["evidence"]

        # Learned: the next group is created without members, which follow by PATCH.
        second, members2 = team(scim)
        del seen.seen[:]
        converge(engine, tid)
        groups, users = remote_ids(engine, tid, "Group"), remote_ids(engine, tid, "User")
        assert members_in_app(django_scim2, groups[second["id"]]) == sorted(
            users[m] for m in members2)
        writes = [(m, body) for m, p, body in seen.seen if "/Groups" in p and m != "GET"]
        assert [m for m, _ in writes] == ["POST", "PATCH"]
        assert "members" not in writes[0][1]
        assert list_findings(engine, target_id=tid) == []

    env = {**os.environ, "SCIMSYNC_DATABASE_URL": engine.url.render_as_string(
        hide_password=False)}
    for args in (["--json"], []):
        out = subprocess.run([sys.executable, "-m", "scimsync.cli", "targets", "show", tid,
                              *args], capture_output=True, text=True, env=env, timeout=60,
                             check=True).stdout
        if args:
            assert json.loads(out)["learned"]["group_members"]["value"] == "patch"
        else:
            assert "group_members" in out and "patch" in out
    admin = {"Authorization": f"Bearer {directories.create_token(None, 't')['token']}"}
    shown = client.get(f"/admin/targets/{tid}", headers=admin).json()
    assert shown["learned"]["group_members"]["value"] == "patch"


def test_a_title_the_app_announces_and_does_not_store_is_found_unless_the_profile_says_so(
        engine: Engine, scim: Scim, other_scim: Scim, django_scim2: App) -> None:
    """django-scim2's schema lists `title`; it does not keep it (and answers a PATCH of
    it 501). With `verify: all` that is an `attribute_drift` finding, and only that;
    a profile that says the truth (`stored: false`) leaves nothing to find."""
    tag = secrets.token_hex(3)
    user = scim.user(f"cy-{tag}@example.com", name={"givenName": "Cy", "familyName": tag},
                     title="Engineer", emails=[{"value": f"cy-{tag}@example.com"}])
    told = {"attributes": {"User": {"title": {"stored": False}}}}
    with in_front(django_scim2.url) as (seen, url):
        tid = str(Targets(engine).add(scim.directory_id, f"dj-{tag}", "scim", {
            **django_scim2.target(verify="all", groups=False), "url": url})["id"])
        converge(engine, tid)
        [finding] = list_findings(engine, target_id=tid)
        assert finding["class"] == "attribute_drift" and finding["resource_id"] == user["id"]
        assert finding["evidence"]["differences"] == [
            {"attribute": "title", "sent": "Engineer", "held": None}]
        assert "501" in finding["evidence"]["reason"]
        d = deliveries.c
        with engine.connect() as conn:
            assert conn.execute(sa.select(d.action, d.outcome).where(
                d.target_id == tid, d.resource_id == user["id"])).all() == [
                    ("create", "unverified")]
        assert [m for m, p, _ in seen.seen if m == "PATCH" and "/Users/" in p] == ["PATCH"]

    # Another directory, another account: what the profile says is what is compared.
    other = other_scim.user(f"di-{tag}@example.com", title="Engineer",
                            name={"givenName": "Di", "familyName": tag},
                            emails=[{"value": f"di-{tag}@example.com"}])
    tid2 = str(Targets(engine).add(other_scim.directory_id, f"dj2-{tag}", "scim", {
        **django_scim2.target(verify="all", groups=False, discovery=told)})["id"])
    converge(engine, tid2)
    assert list_findings(engine, target_id=tid2) == []
    d = deliveries.c
    with engine.connect() as conn:
        assert conn.execute(sa.select(d.outcome).where(
            d.target_id == tid2, d.resource_id == other["id"])).scalars().all() == ["ok"]
