"""Where agent support is advertised: /ResourceTypes always, the draft's top-level
`agentExtension` member only for a directory that asks for it; and the hub's own SCIM
connector reads either form. Real HTTP servers, SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from scimsync.connectors.contract import Capabilities
from scimsync.connectors.scim import ScimConnector
from scimsync.protocol.agent_support import AgentSupport, from_config, from_resource_types
from scimsync.store.directories import Directories
from scimsync.sync.config import parse_config

DRAFT = {"supported": True, "agentsSupported": True, "agenticApplicationsSupported": True}


def _admin(directories: Directories) -> dict[str, str]:
    return {"Authorization": f"Bearer {directories.create_token(None, 'discovery')['token']}"}


def _spc(live_server: str, d: dict[str, Any]) -> Any:
    return httpx.get(f"{live_server}{d['scim_path']}/ServiceProviderConfig",
                     headers={"Authorization": f"Bearer {d['token']}"}, timeout=10).json()


def _capabilities(base: str, token: str) -> Capabilities:
    config, creds = parse_config("scim", {"url": base,
                                          "auth": {"type": "bearer", "token": token}})
    connector = ScimConnector(config.settings, config.profile, creds)
    try:
        return connector.capabilities()
    finally:
        connector.close()


def test_a_directory_serves_the_drafts_member_only_when_it_asks(
        live_server: str, directories: Directories) -> None:
    d = directories.create(f"draft-{secrets.token_hex(3)}")
    other = directories.create(f"strict-{secrets.token_hex(3)}")
    admin = _admin(directories)
    url = f"{live_server}/admin/directories/{d['id']}/discovery"
    assert "agentExtension" not in _spc(live_server, d)
    assert httpx.get(url, headers=admin).json() == {"agent_extension": False}
    r = httpx.put(url, json={"agent_extension": True}, headers=admin)
    assert r.status_code == 200 and r.json() == {"agent_extension": True}
    assert _spc(live_server, d)["agentExtension"] == DRAFT
    assert "agentExtension" not in _spc(live_server, other)  # per directory
    # Bad settings are refused and change nothing.
    for body, message in (({"agent_extension": "yes"}, "true or false"),
                          ({"agentExtension": True}, "unknown discovery settings"),
                          ([True], "must be a JSON object")):
        r = httpx.put(url, json=body, headers=admin)
        assert r.status_code == 400 and message in r.json()["error"], r.text
    assert _spc(live_server, d)["agentExtension"] == DRAFT
    missing = httpx.put(f"{live_server}/admin/directories/nope/discovery",
                        json={"agent_extension": True}, headers=admin)
    assert missing.status_code == 404
    assert httpx.put(url, json={"agent_extension": False}, headers=admin).status_code == 200
    assert "agentExtension" not in _spc(live_server, d)


def test_the_connector_reads_agent_support_in_either_form(
        live_server: str, directories: Directories, peer_root: str) -> None:
    from downstream import PEER_TOKEN

    strict = directories.create(f"rt-{secrets.token_hex(3)}")
    draft = directories.create(f"draft-{secrets.token_hex(3)}")
    httpx.put(f"{live_server}/admin/directories/{draft['id']}/discovery",
              json={"agent_extension": True}, headers=_admin(directories)).raise_for_status()
    for d in (strict, draft):
        found = _capabilities(f"{live_server}{d['scim_path']}", d["token"])
        assert {"Agent", "AgenticApplication"} <= found.kinds, (d["name"], found)
        assert found.cursor and found.update
    # python-scim's scim2-server advertises no agent resource type: none are sent there.
    plain = _capabilities(f"{peer_root}/t{secrets.token_hex(4)}", PEER_TOKEN)
    assert not {"Agent", "AgenticApplication"} & plain.kinds


def test_agent_support_forms_are_parsed_strictly() -> None:
    assert from_config({"agentExtension": {"agentsSupported": True}}) == AgentSupport(
        agents=True, applications=False)
    assert from_config({"agentExtension": {"agentsSupported": "true"}}) == AgentSupport(
        agents=False, applications=False)
    assert from_config({"patch": {"supported": True}}) is None
    assert from_config(["not", "a", "config"]) is None
    listing = {"Resources": [{"schema": "urn:ietf:params:scim:schemas:core:2.0:User"},
                             {"schema": "URN:ietf:params:scim:schemas:core:2.0:Agent"}, "x"]}
    assert from_resource_types(listing) == AgentSupport(agents=True, applications=False)
    assert from_resource_types({"Resources": "nope"}) == AgentSupport(False, False)
    assert from_resource_types(None) == AgentSupport(False, False)
