"""App profiles: the shipped ones, a target that names one, and what is stored."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest

from scimsync import profiles
from scimsync.sync.config import Profile, load_config, parse_config
from scimsync.validation import ConfigError, ConfigErrors

URL = "http://127.0.0.1:9/scim"


def test_every_shipped_profile_is_a_valid_profile_of_a_scim_target() -> None:
    assert profiles.names() == ["better-auth", "canaille", "django-scim2"]
    for name, shipped in profiles.shipped().items():
        config, _ = parse_config("scim", {"url": URL, "profile": {"app": name}})
        assert config.profile.app == name
        for key, value in shipped.profile.items():
            held = getattr(config.profile, key)
            assert (list(held) if isinstance(held, tuple) else held) == value, key
        assert shipped.tested and shipped.description


def test_a_target_starts_from_the_shipped_profile_and_its_own_settings_win() -> None:
    config, _ = parse_config("scim", {"url": URL, "profile": {
        "app": "canaille", "count": 200, "page_size": 50}})
    p = config.profile
    assert (p.count, p.page_size, p.member_value, p.empty_group, p.match) == \
        (200, 50, "userName", "put", ("userName",))


def test_a_target_stores_the_profile_name_and_its_own_settings_only() -> None:
    """The shipped part is read from the running release: a quirk fixed there is fixed
    for every target that names the app."""
    config, _ = parse_config("scim", {"url": URL, "profile": {"app": "canaille",
                                                              "page_size": 50}})
    stored = config.to_json()
    assert stored["profile"] == {"app": "canaille", "page_size": 50}
    assert load_config("scim", stored).profile == config.profile
    # Without a name, every setting is stored as before.
    plain, _ = parse_config("scim", {"url": URL, "profile": {"page_size": 50}})
    assert plain.to_json()["profile"]["find_batch"] is None
    assert load_config("scim", plain.to_json()).profile == plain.profile


def test_a_stored_target_reads_the_shipped_profile_of_the_release_that_runs_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    config, _ = parse_config("scim", {"url": URL, "profile": {"app": "better-auth"}})
    stored = config.to_json()
    shipped = profiles.shipped()["better-auth"]
    fixed = profiles.Shipped(shipped.app, shipped.tested, shipped.description,
                             {"find_batch": 5}, shipped.notes)
    monkeypatch.setitem(profiles.shipped(), "better-auth", fixed)
    assert load_config("scim", stored).profile.find_batch == 5


def test_an_unknown_app_is_refused_naming_the_shipped_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("scim", {"url": URL, "profile": {"app": "canaile"}})
    assert caught.value.path == ("profile", "app")
    assert "better-auth, canaille, django-scim2" in str(caught.value)


def test_the_quirk_settings_take_their_words_only_and_belong_to_scim_targets() -> None:
    with pytest.raises(ConfigErrors) as caught:
        parse_config("scim", {"url": URL, "profile": {
            "group_members": "later", "member_remove": "all", "member_value": "email",
            "empty_group": "delete", "find_batch": 0}})
    found = {e.path: e.message for e in caught.value.errors}
    assert found == {
        ("profile", "group_members"): "profile.group_members is one of inline, patch "
                                      "(default inline)",
        ("profile", "member_remove"): "profile.member_remove is one of filter, value "
                                      "(default filter)",
        ("profile", "member_value"): "profile.member_value is one of id, userName "
                                     "(default id)",
        ("profile", "empty_group"): "profile.empty_group is one of patch, put "
                                    "(default patch)",
        ("profile", "find_batch"): "profile.find_batch is at least 1"}
    with pytest.raises(ConfigErrors) as caught:
        parse_config("memory", {"store": "s", "profile": {"app": "canaille"}})
    assert ("profile", "member_value") in {e.path for e in caught.value.errors}


def test_defaults_are_unchanged_without_a_profile() -> None:
    config, _ = parse_config("scim", {"url": URL})
    assert asdict(config.profile) == asdict(Profile())
    assert config.profile.app is None


def test_drift_ignore_names_resource_types_and_valid_filters_only() -> None:
    config, _ = parse_config("scim", {"url": URL, "drift": {
        "ignore": {"User": ['userName eq "scim-service"']}}})
    assert config.drift.ignore == {"User": ['userName eq "scim-service"']}
    assert load_config("scim", config.to_json()).drift == config.drift
    with pytest.raises(ConfigErrors) as caught:
        parse_config("scim", {"url": URL, "drift": {"ignore": {
            "Users": ["userName eq 1"], "Group": "displayName eq \"x\"",
            "User": ['userName eq "a"', "userName eq"]}}})
    found = {e.path: e.message for e in caught.value.errors}
    assert set(found) == {("drift", "ignore", "Users"), ("drift", "ignore", "Group"),
                          ("drift", "ignore", "User", 1)}
    assert "not a resource type" in found[("drift", "ignore", "Users")]
    assert "not a valid SCIM filter" in found[("drift", "ignore", "User", 1)]


def test_the_cli_lists_and_shows_shipped_profiles_as_a_target_takes_them() -> None:
    import json

    import yaml
    from click.testing import CliRunner

    from scimsync.cli import main

    runner = CliRunner()
    listed = runner.invoke(main, ["profiles", "list", "--json"])
    assert listed.exit_code == 0
    assert [p["app"] for p in json.loads(listed.output)] == profiles.names()
    shown = runner.invoke(main, ["profiles", "show", "django-scim2"])
    assert shown.exit_code == 0
    pasted = yaml.safe_load(shown.output)["profile"]  # comments are YAML comments
    config, _ = parse_config("scim", {"url": URL, "profile": pasted})
    assert config.profile.group_members == "patch"
    # Pasted whole, every setting is the target's own: stored as written.
    assert config.to_json()["profile"]["group_members"] == "patch"
    missing = runner.invoke(main, ["profiles", "show", "nope"])
    assert missing.exit_code == 2 and "shipped: better-auth" in missing.output


def test_a_target_shows_the_profile_it_runs_with_beside_what_it_stores(
        engine: Any, scim: Any) -> None:
    from scimsync.store.targets import Targets

    added = Targets(engine).add(scim.directory_id, "crm", "scim", {
        "url": URL, "profile": {"app": "canaille", "page_size": 50}})
    shown = Targets(engine).show(added["id"])
    assert shown["config"]["profile"] == {"app": "canaille", "page_size": 50}
    assert (shown["profile"]["member_value"], shown["profile"]["page_size"],
            shown["profile"]["match"]) == ("userName", 50, ["userName"])


def test_how_an_app_takes_members_changes_no_desired_state_so_starts_no_resync() -> None:
    from scimsync.sync import resync

    before, _ = parse_config("scim", {"url": URL, "profile": {"app": "canaille"}})
    for how in ({"member_remove": "value"}, {"find_batch": 1}, {"patch_complex": "sub"},
                {"group_members": "patch"}, {"empty_group": "patch"}):
        after, _ = parse_config("scim", {"url": URL, "profile": {"app": "canaille", **how}})
        assert not resync.changed(before, after), how
    # What the app is matched by is what decides which accounts are whose: it does.
    after, _ = parse_config("scim", {"url": URL, "profile": {"app": "canaille",
                                                             "match": ["email"]}})
    assert resync.changed(before, after)


def test_a_stored_configuration_is_taken_back_as_it_is_shown() -> None:
    """An operator may GET a target's configuration and PUT it back: its unset
    settings (null) are taken as the defaults."""
    for profile in ({}, {"app": "canaille"}, {"member_remove": "value"}):
        config, _ = parse_config("scim", {"url": URL, "profile": profile})
        again, _ = parse_config("scim", config.to_json())
        assert again.profile == config.profile


def test_a_targets_own_discovery_overrides_merge_into_the_shipped_ones() -> None:
    config, _ = parse_config("scim", {"url": URL, "profile": {
        "app": "django-scim2", "discovery": {"attributes": {"User": {
            "title": {"stored": True}}}}}})
    attrs = (config.profile.discovery or {})["attributes"]["User"]
    assert attrs["title"] == {"stored": True}  # the target's word
    assert attrs["locale"] == {"stored": False}  # the shipped profile's, kept


def test_a_setting_the_target_gives_is_stored_even_where_the_shipped_one_agrees() -> None:
    config, _ = parse_config("scim", {"url": URL, "profile": {
        "app": "canaille", "count": "omit", "page_size": 50}})
    assert config.to_json()["profile"] == {"app": "canaille", "count": "omit",
                                           "page_size": 50}
    again = load_config("scim", config.to_json())
    assert again.to_json()["profile"] == config.to_json()["profile"]


def test_the_same_profile_named_or_written_out_starts_no_resync() -> None:
    from scimsync.sync import resync

    named, _ = parse_config("scim", {"url": URL, "profile": {"app": "canaille"}})
    written, _ = parse_config("scim", {"url": URL, "profile": {
        **profiles.shipped()["canaille"].profile}})
    assert not resync.changed(written, named)


def test_a_target_naming_a_profile_this_release_lacks_is_shown_with_the_reason(
        engine: Any, scim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from scimsync.store.targets import Targets

    added = Targets(engine).add(scim.directory_id, "gone", "scim", {
        "url": URL, "profile": {"app": "better-auth"}})
    monkeypatch.delitem(profiles.shipped(), "better-auth")
    shown = Targets(engine).show(added["id"])
    assert "no shipped profile 'better-auth'" in shown["profile"]["error"]
    # It can be given a profile that exists, and that is a change that converges.
    updated = Targets(engine).update(added["id"], {"url": URL, "profile": {"app": "canaille"}})
    assert updated["resync"] is True
