"""The SQL filter compiler agrees with the in-memory evaluator on both databases.

Hypothesis builds filters from the full grammar (all operators, and/or/not, value
paths, extension attributes); each is run as SQL and checked against the oracle.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scimsync.errors import BadRequest
from scimsync.protocol.evaluate import matches
from scimsync.protocol.filter import parse_filter
from scimsync.protocol.render import full_document
from scimsync.protocol.resources import USER
from scimsync.protocol.values import normalise_body
from scimsync.store.directories import Directories
from scimsync.store.resources import Loads, Store

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
NAMES = ["alice", "Bob", "carol", "dave", "Eve", "frank_o'neil", 'quote"d', "100%", "a_b"]
DEPTS = ["R&D", "Sales", "sales", None]
TITLES = ["Engineer", "Senior Engineer", "Manager", None]


def _people() -> list[dict[str, Any]]:
    people = []
    for i, name in enumerate(NAMES):
        body: dict[str, Any] = {
            "schemas": [USER.schema.id, ENT],
            "userName": f"{name}{i}",
            "externalId": f"EXT-{i}" if i % 3 else None,
            "active": i % 4 != 0,
            "displayName": name.title() if i % 2 else None,
            "title": TITLES[i % len(TITLES)],
            "name": {"givenName": name, "familyName": f"F{i}"},
            "emails": [{"value": f"{name}@corp.local", "type": "work", "primary": True},
                       {"value": f"{name}.home@mail.test", "type": "home"}][: 1 + i % 2],
            ENT: {"department": DEPTS[i % len(DEPTS)], "employeeNumber": str(1000 + i)},
        }
        people.append(body)
    return people


@pytest.fixture(scope="module")
def dataset(engine: Any) -> tuple[Store, str, list[dict[str, Any]]]:
    store = Store(engine)
    did = Directories(engine).create(f"filters-{secrets.token_hex(3)}")["id"]
    docs = []
    for body in _people():
        rec = store.create(did, USER, normalise_body(USER, body), None)
        docs.append(full_document(rec, "http://x"))
    return store, did, docs


def check(dataset: tuple[Store, str, list[dict[str, Any]]], text: str) -> set[str]:
    store, did, docs = dataset
    flt = parse_filter(text)
    expected = {d["id"] for d in docs if matches(USER, flt, d)}
    _, recs = store.search(did, USER, flt, None, False, 0, 1000, Loads(False, False))
    assert {r.id for r in recs} == expected, text
    return expected


@pytest.mark.parametrize("text,count", [
    ('userName eq "ALICE0"', 1),
    ('userName sw "a"', 2),
    ('userName co "%"', 1),
    ('userName co "_"', 2),
    ("userName co \"'\"", 1),
    ('userName co "\\""', 1),
    ('externalId eq "EXT-1"', 1),
    ('externalId eq "ext-1"', 0),
    ('externalId co "ext"', 0),
    ('externalId sw "EXT"', 6),
    ("externalId pr", 6),
    ("active eq false", 3),
    ('title eq "engineer"', 3),
    ('title sw "Senior"', 2),
    ('emails[type eq "home" and value ew ".test"]', 4),
    ('emails.value co "HOME"', 4),
    ('emails co "corp.local"', 9),
    ("emails pr", 9),
    ('not (emails[type eq "home"])', 5),
    (f'{ENT}:department eq "sales"', 4),
    (f'{ENT}:employeeNumber gt "1005"', 3),
    ('meta.lastModified gt "2000-01-01T00:00:00Z"', 9),
    ('meta.created lt "2000-01-01T00:00:00+02:00"', 0),
    ('name.familyName eq "F3" or (displayName pr and title eq "Manager")', 1),
    ('meta.resourceType eq "User"', 9),
    ("title eq null", 2),
    ('title ne "Manager"', 7),
])
def test_known_filters(dataset: Any, text: str, count: int) -> None:
    assert len(check(dataset, text)) == count


ATTRS = {
    "userName": st.sampled_from(["alice0", "BOB1", "a", "e", "0", "%", "_"]),
    "displayName": st.sampled_from(["Bob", "dave", "E", "x"]),
    "title": st.sampled_from(["Engineer", "engineer", "Man", "Senior", "r"]),
    "externalId": st.sampled_from(["EXT-1", "ext-2", "EXT", "-"]),
    "active": st.booleans(),
    "name.givenName": st.sampled_from(["alice", "BOB", "c", "o"]),
    "emails.value": st.sampled_from(["corp", "alice@corp.local", ".test", "@"]),
    "emails.type": st.sampled_from(["work", "HOME", "x"]),
    f"{ENT}:department": st.sampled_from(["Sales", "r&d", "S", "D"]),
    f"{ENT}:employeeNumber": st.sampled_from(["1000", "1004", "1"]),
    "meta.lastModified": st.just("2001-01-01T00:00:00Z"),
}
STRING_OPS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]


def _quote(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def comparisons(draw: st.DrawFn) -> str:
    attr = draw(st.sampled_from(sorted(ATTRS)))
    if draw(st.integers(0, 9)) == 0:
        return f"{attr} pr"
    value = draw(ATTRS[attr])
    ops = ["eq", "ne"] if isinstance(value, bool) else STRING_OPS
    if attr == "meta.lastModified":
        ops = ["gt", "ge", "lt", "le", "eq", "ne"]
    return f"{attr} {draw(st.sampled_from(ops))} {_quote(value)}"


@st.composite
def value_paths(draw: st.DrawFn) -> str:
    sub = draw(st.sampled_from(["type", "value"]))
    value = draw(ATTRS[f"emails.{sub}"])
    op = draw(st.sampled_from(STRING_OPS))
    inner = f"{sub} {op} {_quote(value)}"
    if draw(st.booleans()):
        inner = f"{inner} and primary eq true"
    return f"emails[{inner}]"


filters = st.recursive(
    st.one_of(comparisons(), value_paths()),
    lambda children: st.one_of(
        st.tuples(children, st.sampled_from(["and", "or"]), children).map(
            lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        children.map(lambda c: f"not ({c})"),
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(text=filters)
def test_sql_matches_oracle(dataset: Any, text: str) -> None:
    check(dataset, text)


def test_unknown_attribute_is_invalid_filter(dataset: Any) -> None:
    with pytest.raises(BadRequest) as info:
        check(dataset, 'nosuch eq "x"')
    assert info.value.scim_type == "invalidFilter"


def test_ordering_a_boolean_is_invalid_filter(dataset: Any) -> None:
    with pytest.raises(BadRequest) as info:
        check(dataset, "active gt true")
    assert info.value.scim_type == "invalidFilter"
