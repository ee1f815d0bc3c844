"""Strict SCIM clients against a live scimsync HTTP server, as it is served by default:
python-scim's scim2-tester on every advertised resource type, scim2-client's
discovery and the scim2 command line. Nothing is hidden from them.

What scim2-tester 0.5.2 gets wrong is listed in KNOWN_CHECKER_DEFECTS and in
docs/scim.md (Conformance); the tests assert exactly that list, so a new error, or a
defect that goes away, fails them.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import CheckResult, Status, check_server

from scimsync.store.directories import Directories

ADVERTISED = {"User", "Group", "Agent", "AgenticApplication"}
# The checks each resource type with a writable dateTime attribute loses.
_FILLED = ("object_query_with_attributes", "object_list_with_attributes",
           "search_with_attributes", "object_replacement", "check_remove_attribute")
# (resource type, check title, what its reason says). Defect 1: the tester fills a
# dateTime attribute with a random UUID and its own model refuses it, before any
# request is sent (the User's and the Agent's `validUntil`, in their nhi extensions,
# and AgenticApplication's `lastAccessed`). Defect 2: its PATCH checks send such a
# non-date, and the server's 400 invalidValue is counted as an error.
KNOWN_CHECKER_DEFECTS = Counter(
    [(rt, title, "valid_until") for rt in ("User", "Agent")
     for title in (*_FILLED, "check_add_attribute", "check_replace_attribute")]
    + [("AgenticApplication", title, "last_accessed") for title in _FILLED]
    + [("AgenticApplication", title, "lastAccessed is not a valid dateTime")
       for title in ("check_add_attribute", "check_replace_attribute")])
# Defect 3, seen once defects 1 and 2 are corrected: after an `add` to a multi-valued
# attribute that already has values, the tester expects only the values it added,
# where RFC 7644 §3.5.2.1 says they are added to those already there.
APPEND_DEFECTS = Counter(
    [("User", "check_add_attribute", f"nhi:1.0:User:{attr}'")
     for attr in ("owners", "credentials")]
    + [("Agent", "check_add_attribute", "nhi:1.0:Agent:credentials'")])


@pytest.fixture
def directory(live_server: str, directories: Directories) -> Iterator[tuple[str, str]]:
    """A fresh directory's SCIM base URL on the live server, and its token."""
    d = directories.create("conformance")
    yield f"{live_server}{d['scim_path']}", d["token"]


@pytest.fixture
def client(directory: tuple[str, str]) -> Iterator[SyncSCIMClient]:
    """python-scim's scim2-client for that directory, as strict as it comes."""
    base, token = directory
    with httpx2.Client(base_url=base, timeout=30,
                       headers={"Authorization": f"Bearer {token}"}) as http:
        yield SyncSCIMClient(http)


def _errors(results: list[CheckResult], known: Counter[tuple[str, str, str]]
            ) -> Counter[tuple[str, str, str]]:
    """Each failed check as (resource type, title, the known reason it matches, or
    the whole reason when it matches none)."""
    found: Counter[tuple[str, str, str]] = Counter()
    for r in results:
        if r.status == Status.SUCCESS:
            continue
        reason = f"{r.status.name}: {r.reason}"
        match = next((k for rt, title, k in known
                      if (rt, title) == (r.resource_type, r.title) and k in reason), reason)
        found[(str(r.resource_type), r.title, match)] += 1
    return found


def test_scim2_tester_finds_only_its_known_defects(client: SyncSCIMClient) -> None:
    results = check_server(client)
    assert _errors(results, KNOWN_CHECKER_DEFECTS) == KNOWN_CHECKER_DEFECTS
    assert {r.resource_type for r in results} >= ADVERTISED
    assert {r.status for r in results if r.resource_type == "Group"} == {Status.SUCCESS}
    assert len(results) > 100


def _dates_for_datetimes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Correct defects 1 and 2: scim2-tester fills dateTime attributes with dates."""
    import scim2_tester.checkers.patch_add as patch_add
    import scim2_tester.checkers.patch_replace as patch_replace
    import scim2_tester.filling as filling
    from scim2_models import Mutability, Required

    original = filling.generate_random_value
    when = datetime.datetime(2031, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)

    def generate(context: Any, path: Any, mutability: Any = None, required: Any = None) -> Any:
        binding = path.resolve()
        if binding is None or binding.target_type is not datetime.datetime or (
                mutability is not None and binding.get_annotation(Mutability)
                not in mutability) or (
                required is not None and binding.get_annotation(Required) not in required):
            return original(context, path, mutability, required)
        return [when] if binding.target_is_multivalued else when

    for module in (filling, patch_add, patch_replace):
        monkeypatch.setattr(module, "generate_random_value", generate)


def test_scim2_tester_with_dates_finds_only_its_append_defect(
        client: SyncSCIMClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks defect 1 stops before they send anything all run, and pass."""
    _dates_for_datetimes(monkeypatch)
    results = check_server(client)
    assert _errors(results, APPEND_DEFECTS) == APPEND_DEFECTS
    assert len(results) > 200


def test_scim2_client_discovers_every_resource_type(client: SyncSCIMClient) -> None:
    client.discover()
    provider = client.provider
    assert {str(rt.name) for rt in provider.resource_types} == ADVERTISED
    assert provider.config is not None and provider.config.pagination is not None
    assert provider.config.pagination.cursor is True
    agent = provider.model_for("Agent")
    assert agent is not None and "owners" in agent.model_fields
    created = client.create(agent(name="discovered-bot"))
    listed = client.query(agent)
    assert [a.id for a in listed.resources or []] == [created.id]


def test_scim2_cli_queries_the_server(directory: tuple[str, str]) -> None:
    exe = shutil.which("scim2", path=str(Path(sys.executable).parent))
    assert exe is not None, "scim2-cli is in the test extras"
    base, token = directory
    env = {**os.environ, "SCIM_CLI_HEADERS": f"Authorization: Bearer {token}"}
    for rtype in ("User", "Agent"):
        proc = subprocess.run([exe, "--url", base, "query", rtype], capture_output=True,
                              text=True, env=env, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        listing = json.loads(proc.stdout)
        assert listing["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
        assert listing["totalResults"] == 0
