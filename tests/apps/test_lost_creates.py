"""A create whose answer was lost (a run stopped between the request and the write of
its link), against real apps that cannot be searched (docs/provisioning.md: Crash
safety): django-scim2 keeps externalId, so one listing finds the account and it is
linked, never created twice; Canaille does not keep it, so nothing can say the
account is the hub's: a dead letter for a person, never a second account."""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from apps.probe import Wire
from apps.servers import App
from conftest import Scim
from downstream import converge
from scimsync.store.tables import dead_letters, links
from scimsync.store.targets import Targets
from scimsync.sync.engine import Reconciler, retry_dead_letters
from scimsync.sync.work import Work


def lose_the_answer(engine: Engine, tid: str, uid: str) -> None:
    """The link as a run leaves it when it stopped after sending the create: pending,
    an intent, no remote id."""
    with engine.begin() as conn:
        conn.execute(sa.update(links).where(links.c.target_id == tid,
                                            links.c.resource_id == uid).values(
            remote_id=None, state="pending", intent="put", applied_hash=None))


def holding(app: App, user_name: str) -> list[dict[str, Any]]:
    wire = Wire(app)
    try:
        start, out = 1, []
        while True:
            page = wire("GET", "Users", startIndex=str(start)).json()
            items = page.get("Resources") or []
            out += [u for u in items if u["userName"] == user_name]
            start += len(items)
            if not items or start > page.get("totalResults", 0):
                return out
    finally:
        wire.close()


def open_dead_letters(engine: Engine, tid: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(dead_letters.c.error).where(
            dead_letters.c.target_id == tid, dead_letters.c.status == "open")))


def setup(engine: Engine, scim: Scim, app: App) -> tuple[str, str, str]:
    tag = secrets.token_hex(3)
    name = f"lost.{tag}@example.com"
    uid = scim.user(name, name={"givenName": "Lost", "familyName": tag},
                    emails=[{"value": name}])["id"]
    tid = str(Targets(engine).add(scim.directory_id, f"{app.name}-{tag}", "scim",
                                  app.target(app=app.name))["id"])
    converge(engine, tid)
    assert len(holding(app, name)) == 1
    lose_the_answer(engine, tid, uid)
    return tid, uid, name


def test_an_app_that_keeps_external_id_is_listed_and_the_account_linked(
        engine: Engine, scim: Scim, django_scim2: App) -> None:
    tid, uid, name = setup(engine, scim, django_scim2)
    (account,) = holding(django_scim2, name)
    Reconciler(engine).run(tid, only=[Work("User", uid)])
    assert holding(django_scim2, name) == [account] or \
        [u["id"] for u in holding(django_scim2, name)] == [account["id"]]
    assert open_dead_letters(engine, tid) == []
    with engine.connect() as conn:
        link = conn.execute(sa.select(links).where(links.c.target_id == tid,
                                                   links.c.resource_id == uid)).one()
    assert (link.remote_id, link.state, link.intent) == (account["id"], "provisioned", None)


def test_an_app_that_keeps_no_external_id_gets_no_second_account(
        engine: Engine, scim: Scim, canaille: App) -> None:
    """A dead letter for a person, and nothing sent for the user until they have
    looked: another run neither creates nor writes a second dead letter. Retrying the
    dead letter says "go on": here the person removed the account they found, and the
    retry creates it once."""
    tid, uid, name = setup(engine, scim, canaille)
    Reconciler(engine).run(tid, only=[Work("User", uid)])
    assert len(holding(canaille, name)) == 1
    (error,) = open_dead_letters(engine, tid)
    assert "cannot be searched by externalId" in str(error)
    # Asked for by name (as a drift fix asks), it is shown not done, never as done.
    again = Reconciler(engine).run(tid, only=[Work("User", uid)])
    assert [(a["resource_id"], a["outcome"]) for a in again.actions] == [(uid, "waiting")]
    scim.patch(f"/Users/{uid}", [{"op": "replace", "path": "title", "value": "Later"}])
    converge(engine, tid)
    assert len(holding(canaille, name)) == 1 and len(open_dead_letters(engine, tid)) == 1
    (account,) = holding(canaille, name)
    # Retrying every open dead letter (after an outage) does not say "go on": the
    # account is not created a second time, and a person is asked again.
    retry_dead_letters(engine, tid)
    assert len(holding(canaille, name)) == 1 and len(open_dead_letters(engine, tid)) == 1
    wire = Wire(canaille)
    try:
        assert wire("DELETE", f"Users/{account['id']}").status_code == 204
    finally:
        wire.close()
    with engine.connect() as conn:
        (letter,) = conn.execute(sa.select(dead_letters.c.id).where(
            dead_letters.c.target_id == tid, dead_letters.c.status == "open")).scalars()
    retry_dead_letters(engine, tid, [letter])
    (again,) = holding(canaille, name)
    assert again["id"] != account["id"] and again["title"] == "Later"
    assert open_dead_letters(engine, tid) == []
