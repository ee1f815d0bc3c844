"""The filter and PATCH path parser (RFC7644 §3.4.2.2, §3.5.2): grammar, limits, fuzz."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scimsync.errors import BadRequest
from scimsync.protocol.filter import (
    And,
    AttrPath,
    Compare,
    Filter,
    Not,
    Or,
    PatchPath,
    Present,
    ValuePath,
    parse_filter,
    parse_patch_path,
)

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.mark.parametrize("text,expected", [
    ('userName eq "bjensen"', Compare(AttrPath(None, "userName"), "eq", "bjensen")),
    ('name.familyName co "O\'Malley"',
     Compare(AttrPath(None, "name", "familyName"), "co", "O'Malley")),
    ('userName Sw "J"', Compare(AttrPath(None, "userName"), "sw", "J")),
    (f'{ENT}:manager.value EQ "x"', Compare(AttrPath(ENT, "manager", "value"), "eq", "x")),
    ("title pr", Present(AttrPath(None, "title"))),
    ('meta.lastModified gt "2011-05-13T04:42:34Z"',
     Compare(AttrPath(None, "meta", "lastModified"), "gt", "2011-05-13T04:42:34Z")),
    ("x ge 10 and y le -2.5e1", And(Compare(AttrPath(None, "x"), "ge", 10),
                                    Compare(AttrPath(None, "y"), "le", -25.0))),
    ("a eq true or b eq false and c eq null",
     Or(Compare(AttrPath(None, "a"), "eq", True),
        And(Compare(AttrPath(None, "b"), "eq", False), Compare(AttrPath(None, "c"), "eq", None)))),
    ('not (a pr) AND (b eq "1" OR c eq "2")',
     And(Not(Present(AttrPath(None, "a"))),
         Or(Compare(AttrPath(None, "b"), "eq", "1"), Compare(AttrPath(None, "c"), "eq", "2")))),
    ('emails[type eq "work" and value co "@example.com"]',
     ValuePath(AttrPath(None, "emails"), And(Compare(AttrPath(None, "type"), "eq", "work"),
                                             Compare(AttrPath(None, "value"), "co",
                                                     "@example.com")))),
    ('userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
     And(Compare(AttrPath(None, "userType"), "eq", "Employee"),
         Or(Compare(AttrPath(None, "emails"), "co", "example.com"),
            Compare(AttrPath(None, "emails", "value"), "co", "example.org")))),
    ('s eq "a\\"b\\\\c\\u00e9"', Compare(AttrPath(None, "s"), "eq", 'a"b\\cé')),
])
def test_rfc_examples(text: str, expected: Filter) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize("text", [
    "", "   ", "userName", "userName eq", 'userName xx "a"', 'eq "a"', '(userName eq "a"',
    'userName eq "a")', 'userName eq "unterminated', "userName eq bare", 'a eq "1" and',
    'emails[type eq "work"', 'emails[type eq "w"]]', 'emails[type[value eq "x"]]',
    'a.b.c eq "x"', 'userName eq "a" "b"', "not a pr", '1abc eq "x"', "a eq 1.2.3",
])
def test_malformed_filters_are_invalid_filter(text: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_filter(text)
    assert info.value.scim_type == "invalidFilter"


def test_hostile_nesting_fails_fast() -> None:
    start = time.perf_counter()
    for text in ["(" * 10_000 + "a pr" + ")" * 10_000,
                 "not (" * 5_000 + "a pr" + ")" * 5_000,
                 " or ".join(["a pr"] * 3000),
                 "(" * 40 + "a pr" + ")" * 40]:
        with pytest.raises(BadRequest):
            parse_filter(text)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("text,expected", [
    ("members", PatchPath(AttrPath(None, "members"))),
    ("name.givenName", PatchPath(AttrPath(None, "name", "givenName"))),
    (f"{ENT}:manager", PatchPath(AttrPath(ENT, "manager"))),
    ('members[value eq "2819c223"]',
     PatchPath(AttrPath(None, "members"), Compare(AttrPath(None, "value"), "eq", "2819c223"))),
    ('emails[type eq "work"].value',
     PatchPath(AttrPath(None, "emails"), Compare(AttrPath(None, "type"), "eq", "work"), "value")),
])
def test_patch_paths(text: str, expected: PatchPath) -> None:
    assert parse_patch_path(text) == expected


@pytest.mark.parametrize("text", ["", "a[", 'a[b eq "1"]x', 'a.b[c eq "1"]', "a..b",
                                  'a[b eq "1"].c.d'])
def test_bad_patch_paths_are_invalid_path(text: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_patch_path(text)
    assert info.value.scim_type == "invalidPath"


# --- property tests ----------------------------------------------------------------

names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s.lower() not in ("and", "or", "not", "pr", "eq", "ne", "co", "sw", "ew", "gt",
                                "ge", "lt", "le", "true", "false", "null"))
paths = st.builds(AttrPath, st.sampled_from([None, ENT]), names,
                  st.one_of(st.none(), names))
values = st.one_of(st.text(max_size=12), st.integers(-1000, 1000), st.booleans(), st.none())
ops = st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])
leaves = st.one_of(st.builds(Compare, paths, ops, values), st.builds(Present, paths))
elements = st.one_of(st.builds(Compare, st.builds(AttrPath, st.none(), names), ops, values),
                     st.builds(Present, st.builds(AttrPath, st.none(), names)))
element_trees = st.recursive(elements, lambda c: st.one_of(
    st.builds(And, c, c), st.builds(Or, c, c), st.builds(Not, c)), max_leaves=4)
trees = st.recursive(
    st.one_of(leaves, st.builds(ValuePath, st.builds(AttrPath, st.none(), names),
                                element_trees)),
    lambda c: st.one_of(st.builds(And, c, c), st.builds(Or, c, c), st.builds(Not, c)),
    max_leaves=8,
)


def render(f: Filter) -> str:
    import json

    if isinstance(f, And):
        return f"({render(f.left)}) and ({render(f.right)})"
    if isinstance(f, Or):
        return f"({render(f.left)}) or ({render(f.right)})"
    if isinstance(f, Not):
        return f"not ({render(f.expr)})"
    if isinstance(f, Present):
        return f"{f.path} pr"
    if isinstance(f, ValuePath):
        return f"{f.path}[{render(f.filter)}]"
    return f"{f.path} {f.op} {json.dumps(f.value)}"


@settings(max_examples=300, deadline=None)
@given(tree=trees)
def test_render_then_parse_round_trips(tree: Filter) -> None:
    assert parse_filter(render(tree)) == tree


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list('abe q"()[] .:-\\notrpd1')), max_size=60))
def test_arbitrary_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        parse_filter(text)
    except BadRequest as exc:
        assert exc.scim_type == "invalidFilter"
