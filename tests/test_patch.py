"""PATCH semantics (RFC7644 §3.5.2), pure, plus atomicity over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import ENTERPRISE, Scim
from scimsync.errors import BadRequest
from scimsync.protocol.patch import apply_patch
from scimsync.protocol.resources import GROUP, USER
from scimsync.protocol.values import normalise_body

BASE: dict[str, Any] = {
    "schemas": [USER.schema.id],
    "userName": "bjensen",
    "name": {"givenName": "Barbara", "familyName": "Jensen"},
    "emails": [{"value": "bj@example.com", "type": "work", "primary": True},
               {"value": "babs@jensen.org", "type": "home"}],
    "active": True,
}


def patch(*ops: dict[str, Any], doc: dict[str, Any] | None = None) -> dict[str, Any]:
    return apply_patch(USER, doc or BASE, list(ops)).doc


def test_add_single_and_complex_merge() -> None:
    out = patch({"op": "add", "path": "title", "value": "Tour Guide"},
                {"op": "add", "path": "name", "value": {"middleName": "J"}})
    assert out["title"] == "Tour Guide"
    assert out["name"] == {"givenName": "Barbara", "familyName": "Jensen", "middleName": "J"}


def test_add_multi_valued_appends_without_duplicates_and_moves_primary() -> None:
    out = patch({"op": "add", "path": "emails", "value": [
        {"value": "new@example.com", "type": "other", "primary": True},
        {"value": "bj@example.com", "type": "work"},
    ]})
    assert [e["value"] for e in out["emails"]] == ["bj@example.com", "babs@jensen.org",
                                                   "new@example.com"]
    assert [e.get("primary") for e in out["emails"]] == [None, None, True]


def test_pathless_add() -> None:
    out = patch({"op": "add", "value": {"nickName": "Babs", "emails": [{"value": "x@y.z"}]}})
    assert out["nickName"] == "Babs"
    assert len(out["emails"]) == 3


def test_replace_multi_valued_replaces_all() -> None:
    out = patch({"op": "replace", "path": "emails", "value": [{"value": "only@x.y"}]})
    assert out["emails"] == [{"value": "only@x.y"}]


def test_replace_filtered_sub_attribute() -> None:
    out = patch({"op": "replace", "path": 'emails[type eq "home"].value',
                 "value": "babs@new.org"})
    assert out["emails"][1] == {"value": "babs@new.org", "type": "home"}


def test_replace_filtered_element_whole() -> None:
    out = patch({"op": "replace", "path": 'emails[type eq "home"]',
                 "value": {"value": "h@x.y", "type": "home"}})
    assert out["emails"][1] == {"value": "h@x.y", "type": "home"}


def test_replace_no_match_without_equality_is_no_target() -> None:
    with pytest.raises(BadRequest) as info:
        patch({"op": "replace", "path": 'emails[value co "nowhere"].type', "value": "x"})
    assert info.value.scim_type == "noTarget"


def test_remove_attribute_sub_attribute_and_filtered_values() -> None:
    out = patch({"op": "remove", "path": "name.familyName"},
                {"op": "remove", "path": 'emails[type eq "work"]'})
    assert out["name"] == {"givenName": "Barbara"}
    assert [e["value"] for e in out["emails"]] == ["babs@jensen.org"]
    out = patch({"op": "remove", "path": "emails"})
    assert "emails" not in out


def test_remove_without_path_is_no_target() -> None:
    with pytest.raises(BadRequest) as info:
        patch({"op": "remove"})
    assert info.value.scim_type == "noTarget"


def test_remove_required_attribute_is_refused() -> None:
    with pytest.raises(BadRequest) as info:
        patch({"op": "remove", "path": "userName"})
    assert info.value.scim_type == "mutability"


@pytest.mark.parametrize("op,scim_type", [
    ({"op": "replace", "path": "id", "value": "x"}, "mutability"),
    ({"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}, "mutability"),
    ({"op": "add", "path": "groups", "value": [{"value": "g"}]}, "mutability"),
    ({"op": "add", "path": "nosuch", "value": "x"}, "invalidPath"),
    ({"op": "add", "path": "name.nosuch", "value": "x"}, "invalidPath"),
    ({"op": "add", "path": "emails[", "value": "x"}, "invalidPath"),
    ({"op": "add", "path": 'title[value eq "x"]', "value": "x"}, "invalidPath"),
    ({"op": "add", "path": 'emails[nosuch eq "x"].value', "value": "x"}, "invalidFilter"),
    ({"op": "add", "path": "active", "value": "perhaps"}, "invalidValue"),
    ({"op": "add", "path": "emails", "value": [{"value": 5j}]}, None),
    ({"op": "move", "path": "title", "value": "x"}, "invalidSyntax"),
    ({"op": "add", "path": "title"}, "invalidSyntax"),
    ({"op": "add", "value": "not an object"}, "invalidSyntax"),
])
def test_errors(op: dict[str, Any], scim_type: str | None) -> None:
    if scim_type is None:
        with pytest.raises(BadRequest):
            patch(op)
        return
    with pytest.raises(BadRequest) as info:
        patch(op)
    assert info.value.scim_type == scim_type


def test_extension_paths() -> None:
    out = patch({"op": "add", "path": f"{ENTERPRISE}:department", "value": "Ops"},
                {"op": "add", "path": f"{ENTERPRISE}:manager.value", "value": "m1"})
    assert out[ENTERPRISE] == {"department": "Ops", "manager": {"value": "m1"}}
    assert ENTERPRISE in out["schemas"]
    out = patch({"op": "remove", "path": ENTERPRISE}, doc=out)
    assert ENTERPRISE not in out and out["schemas"] == [USER.schema.id]


def test_group_member_changes_are_returned_in_order() -> None:
    doc = {"schemas": [GROUP.schema.id], "displayName": "g"}
    res = apply_patch(GROUP, doc, [
        {"op": "remove", "path": 'members[value eq "a"]'},
        {"op": "add", "path": "members", "value": [{"value": "b"}]},
        {"op": "remove", "path": "members", "value": [{"value": "c"}]},
        {"op": "replace", "path": "members", "value": [{"value": "d"}]},
        {"op": "remove", "path": "members"},
    ])
    assert [c.kind for c in res.members] == ["remove_where", "add", "remove", "replace", "clear"]
    assert res.doc == doc


def test_input_is_not_mutated() -> None:
    before = repr(BASE)
    patch({"op": "replace", "path": 'emails[type eq "work"].value', "value": "z@z.z"},
          {"op": "remove", "path": "name.givenName"})
    assert repr(BASE) == before


# --- property: any op sequence either fails cleanly or yields a valid document -------

attr_paths = st.sampled_from([
    "title", "displayName", "nickName", "active", "name", "name.givenName", "emails",
    'emails[type eq "work"]', 'emails[type eq "work"].value', 'emails[primary eq true].type',
    "phoneNumbers", f"{ENTERPRISE}:department", f"{ENTERPRISE}:manager", ENTERPRISE,
    "userName", "id", "nosuch", "", None,
])
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5),
              st.sampled_from(["True", "false", "x@y.z"])),
    lambda c: st.one_of(st.lists(c, max_size=3),
                        st.dictionaries(st.sampled_from(["value", "type", "primary",
                                                         "givenName", "department"]),
                                        c, max_size=3)),
    max_leaves=6,
)
operations = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "replace", "remove", "Add", "REPLACE"])},
    optional={"path": attr_paths, "value": json_values},
)


@settings(max_examples=400, deadline=None)
@given(ops=st.lists(operations, min_size=1, max_size=5))
# Found by hypothesis: two values that were only `primary: true` left an empty `{}`.
@example(ops=[{"op": "add", "path": "emails", "value": [{"primary": True}, {"primary": True}]}])
def test_patch_fails_cleanly_or_yields_valid_document(ops: list[dict[str, Any]]) -> None:
    try:
        out = apply_patch(USER, BASE, ops).doc
    except BadRequest as exc:
        assert exc.scim_type in {"invalidPath", "invalidValue", "invalidSyntax", "noTarget",
                                 "mutability", "invalidFilter"}
        return
    # The result is a document the service itself would accept as a full replacement.
    again = normalise_body(USER, out).doc
    assert again == out


# --- atomicity over HTTP ------------------------------------------------------------


def test_failing_operation_leaves_resource_and_journal_untouched(scim: Scim) -> None:
    u = scim.user("atomic", title="Before")
    before = scim.get(f"/Users/{u['id']}").json()
    r = scim.patch(f"/Users/{u['id']}", [
        {"op": "replace", "path": "title", "value": "After"},
        {"op": "replace", "path": "displayName", "value": "Changed"},
        {"op": "replace", "path": "nosuch", "value": "x"},
    ])
    assert r.status_code == 400
    assert scim.get(f"/Users/{u['id']}").json() == before


def test_noop_patch_does_not_bump_version(scim: Scim) -> None:
    u = scim.user("same", title="T")
    r = scim.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "title", "value": "T"}])
    assert r.json()["meta"]["version"] == u["meta"]["version"]
