"""Webhook targets: signed per Standard Webhooks, verified by a real receiver."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import orjson
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy import Engine
from standardwebhooks import Webhook, WebhookVerificationError

from conftest import Scim, free_port
from downstream import PEER_TOKEN, Peer, converge, read_body
from scimsync.store.directories import Directories
from scimsync.store.tables import dead_letters
from scimsync.store.targets import Targets
from scimsync.sync.engine import Reconciler


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Receiver:
    """An HTTP endpoint that verifies every delivery with the Standard Webhooks library."""

    def __init__(self, secret: str):
        self.verifier = Webhook(secret)
        self.events: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.rejected = 0
        self.fail_next: list[int] = []
        self.port = free_port()

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        status = 204
        if self.fail_next:
            status = self.fail_next.pop(0)
        else:
            try:
                self.verifier.verify(body, headers)
                self.events.append(orjson.loads(body))
                self.ids.append(headers["webhook-id"])
            except WebhookVerificationError:
                self.rejected += 1
                status = 401
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    secret = new_secret()
    r = Receiver(secret)
    server = uvicorn.Server(uvicorn.Config(r.app, host="127.0.0.1", port=r.port,
                                           log_level="error", lifespan="off",
                                           interface="asgi3"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield r, secret
    server.should_exit = True
    thread.join(timeout=10)


def hook(engine: Engine, scim: Scim, url: str, secret: str | list[str], **extra: Any) -> str:
    t = Targets(engine).add(scim.directory_id, f"hook-{secrets.token_hex(2)}", "webhook",
                            {"url": url, "secret": secret, **extra})
    rec = Reconciler(engine)
    rec.run(t["id"])  # a new webhook starts at the end of the journal
    return str(t["id"])


def drain(engine: Engine, tid: str) -> None:
    for _ in range(10):
        result = Reconciler(engine).run(tid)
        assert result.error is None, result.error
        if result.processed == 0:
            return


def test_every_change_is_one_signed_event(engine: Engine, scim: Scim,
                                          receiver: tuple[Receiver, str]) -> None:
    r, secret = receiver
    scim.user("before@x.test")  # history is not replayed
    tid = hook(engine, scim, f"http://127.0.0.1:{r.port}/hook", secret)
    u = scim.user("ann@x.test", title="Dev")
    g = scim.group("Devs", [u["id"]])
    scim.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "title", "value": "Lead"}])
    drain(engine, tid)
    # Events carry the resource as it is when delivered (level-triggered, docs/architecture.md).
    assert r.events[-1]["data"]["resource"]["title"] == "Lead"
    scim.patch(f"/Groups/{g['id']}", [{"op": "remove", "path": "members"}])
    scim.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "active", "value": False}])
    scim.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "active", "value": True}])
    scim.delete(f"/Users/{u['id']}")
    scim.delete(f"/Groups/{g['id']}")
    drain(engine, tid)
    types = [e["type"] for e in r.events]
    assert types == ["user.created", "group.created", "group.member_added", "user.updated",
                     "group.member_removed", "user.deactivated", "user.reactivated",
                     "user.deleted", "group.deleted"]
    assert r.rejected == 0
    assert r.events[3]["data"]["changed"] == ["title"]
    assert r.events[7]["data"]["resource"] == {"id": u["id"], "deleted": True}
    assert r.events[2]["data"]["added"] == [u["id"]]
    assert r.events[5]["data"]["lifecycle"] == "leaver"
    assert "password" not in orjson.dumps(r.events).decode()
    assert len(set(r.ids)) == len(r.ids)


def test_retried_delivery_keeps_its_id(engine: Engine, scim: Scim,
                                       receiver: tuple[Receiver, str]) -> None:
    r, secret = receiver
    tid = hook(engine, scim, f"http://127.0.0.1:{r.port}/hook", secret)
    scim.user("retry@x.test")
    r.fail_next = [503]
    result = Reconciler(engine).run(tid)
    assert result.error is not None and "503" in result.error
    drain(engine, tid)
    assert [e["type"] for e in r.events] == ["user.created"]
    first_id = r.ids[0]
    # The id is a pure function of (event, target): a redelivery would carry it again.
    from scimsync.sync.events import event_id

    assert first_id == event_id(tid, {"directory_id": scim.directory_id,
                                      "seq": r.events[0]["seq"]})


def test_rotation_signs_with_both_secrets(engine: Engine, scim: Scim,
                                          receiver: tuple[Receiver, str]) -> None:
    r, secret = receiver
    tid = hook(engine, scim, f"http://127.0.0.1:{r.port}/hook", [new_secret(), secret])
    scim.user("rotating@x.test")
    drain(engine, tid)
    assert len(r.events) == 1 and r.rejected == 0


def test_wrong_secret_is_refused_and_dead_lettered(engine: Engine, scim: Scim,
                                                   receiver: tuple[Receiver, str]) -> None:
    r, _ = receiver
    tid = hook(engine, scim, f"http://127.0.0.1:{r.port}/hook", new_secret())
    scim.user("forged@x.test")
    drain(engine, tid)
    assert r.events == [] and r.rejected == 1
    with engine.connect() as conn:
        dead = conn.execute(sa.select(dead_letters).where(dead_letters.c.target_id == tid)).all()
    assert len(dead) == 1 and "401" in dead[0].error


def test_admin_api_refuses_a_signing_secret_that_is_not_one(client: Any, scim: Scim,
                                                            directories: Directories) -> None:
    admin = {"Authorization": f"Bearer {directories.create_token(None, 't')['token']}"}
    url = f"/admin/directories/{scim.directory_id}/targets"
    short = "whsec_" + base64.b64encode(b"abc").decode()
    for secret, message in (("not-a-whsec", "secret is not a webhook signing secret"),
                            (short, "secret holds 3 bytes"),
                            ([new_secret(), short], "secret[1] holds 3 bytes")):
        r = client.post(url, headers=admin, json={"name": "h", "kind": "webhook",
                                                  "url": "http://127.0.0.1:9/h",
                                                  "secret": secret})
        assert r.status_code == 400 and message in r.json()["error"], r.text
        assert short not in r.text and "not-a-whsec" not in r.text
    assert client.get(f"/admin/targets?directory={scim.directory_id}",
                      headers=admin).json() == {"targets": []}
    ok = client.post(url, headers=admin, json={"name": "h", "kind": "webhook",
                                               "url": "http://127.0.0.1:9/h",
                                               "secret": new_secret()})
    assert ok.status_code == 201, ok.text


def test_scope_filters_events(engine: Engine, scim: Scim,
                              receiver: tuple[Receiver, str]) -> None:
    r, secret = receiver
    tid = hook(engine, scim, f"http://127.0.0.1:{r.port}/hook", secret,
               scope={"filter": 'title eq "Contractor"'}, profile={"groups": False})
    scim.user("emp@x.test", title="Employee")
    c = scim.user("con@x.test", title="Contractor")
    scim.group("G", [c["id"]])
    drain(engine, tid)
    assert [(e["type"], e["resource_id"]) for e in r.events] == [("user.created", c["id"])]


def test_events_api_by_cursor_and_retention(client: Any, engine: Engine, scim: Scim,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from scimsync.store.directories import Directories

    admin = {"Authorization": f"Bearer {Directories(engine).create_token(None, 'e')['token']}"}
    u = scim.user("evented@x.test")
    scim.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "active", "value": False}])
    url = f"/admin/directories/{scim.directory_id}/events"
    page = client.get(f"{url}?after=0&limit=1", headers=admin).json()
    assert [e["type"] for e in page["events"]] == ["user.created"]
    assert page["retention_days"] == 30
    rest = client.get(f"{url}?after={page['next_after']}", headers=admin).json()
    assert [e["type"] for e in rest["events"]] == ["user.deactivated"]
    assert rest["events"][0]["data"]["lifecycle"] == "leaver"
    again = client.get(f"{url}?after=0&limit=1", headers=admin).json()
    assert again["events"][0]["id"] == page["events"][0]["id"]  # stable ids
    monkeypatch.setenv("SCIMSYNC_EVENT_RETENTION_DAYS", "0")
    assert client.get(f"{url}?after=0", headers=admin).json()["events"] == []


def test_drift_detected_reaches_webhooks_signed(engine: Engine, scim: Scim, peer: Peer,
                                                receiver: tuple[Receiver, str]) -> None:
    from scimsync.drift.detect import Detector

    r, secret = receiver
    tid_hook = hook(engine, scim, f"http://127.0.0.1:{r.port}/hook", secret)
    scim.user("seen@x.test")
    app = Targets(engine).add(scim.directory_id, f"app-{secrets.token_hex(2)}", "scim", {
        "url": peer.base, "auth": {"type": "bearer", "token": PEER_TOKEN}})
    converge(engine, app["id"])
    httpx2.post(f"{peer.base}/Users", headers={"Authorization": f"Bearer {PEER_TOKEN}"},
                json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                      "userName": "rogue@x.test"}).raise_for_status()
    Detector(engine).run(app["id"])
    Detector(engine).run(app["id"])  # nothing new: no second event
    drain(engine, tid_hook)
    drift = [e for e in r.events if e["type"] == "drift.detected"]
    assert len(drift) == 1 and r.rejected == 0
    assert drift[0]["data"]["target"] == app["name"]
    assert drift[0]["data"]["findings"] == {"orphaned_account": 1}


def test_agents_and_nhi_notices_reach_webhooks_signed(
        engine: Engine, scim: Scim, receiver: tuple[Receiver, str]) -> None:
    from scimsync.nhi.sweep import Sweeper

    r, secret = receiver
    tid = hook(engine, scim, f"http://127.0.0.1:{r.port}/hook", secret)
    owner = scim.user("owner@x.test")
    bot = scim.post("/Agents", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Agent",
                    "urn:scimsync:params:scim:schemas:extension:nhi:1.0:Agent"],
        "name": "deploy-bot", "owners": [{"value": owner["id"]}],
        "urn:scimsync:params:scim:schemas:extension:nhi:1.0:Agent": {
            "credentials": [{"value": "gh-app-42", "type": "oauthClient",
                             "system": "github"}]}}).json()
    scim.patch(f"/Users/{owner['id']}", [{"op": "replace", "path": "active", "value": False}])
    from datetime import UTC, datetime, timedelta

    sweeper = Sweeper(engine)
    sweeper.run(scim.directory_id)
    sweeper.run(scim.directory_id, datetime.now(UTC) + timedelta(days=8))  # past grace
    drain(engine, tid)
    assert r.rejected == 0
    about_bot = [e["type"] for e in r.events if e["resource_id"] == bot["id"]]
    assert about_bot == ["agent.created", "nhi.owner_departed", "agent.deactivated",
                         "nhi.credentials_revoke_requested", "nhi.suspended"]
    revoke = next(e for e in r.events if e["type"] == "nhi.credentials_revoke_requested")
    assert revoke["data"]["credentials"][0]["value"] == "gh-app-42"
    assert revoke["data"]["reason"] == "owner_departed"
