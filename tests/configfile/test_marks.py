"""YAML read with positions: pure, no fixtures."""

from __future__ import annotations

from scimsync.configfile.marks import MAX_NODES, EnvText, Mark, load


def test_every_key_and_value_has_its_line_and_column() -> None:
    doc = load("targets:\n  - name: crm\n    profile: {concurrency: 4}\n")
    assert doc.problems == []
    assert doc.keys[("targets", 0, "profile", "concurrency")] == Mark(3, 15)
    assert doc.values[("targets", 0, "profile", "concurrency")] == Mark(3, 28)
    assert doc.where(("targets", 0, "profile", "missing")) == Mark(3, 14)
    assert doc.where(("targets", 0, "name"), key=True) == Mark(2, 5)


def test_a_key_written_twice_is_a_problem_but_a_merge_is_not() -> None:
    doc = load("base: &b {url: x}\nt:\n  <<: *b\n  url: y\n  scope: 1\n  scope: 2\n")
    assert doc.problems == [(Mark(6, 3), "key `scope` is written twice in this mapping")]
    assert doc.data["t"]["url"] == "y" and doc.values[("t", "url")] == Mark(4, 8)


def test_env_marks_a_string_and_only_a_string() -> None:
    doc = load('url: !env "https://${HOST}/x"\n')
    assert isinstance(doc.data["url"], EnvText)
    assert load("url: !env [1]\n").problems == [
        (Mark(1, 6), "not valid YAML: `!env` marks a string, not a list or a mapping")]


def test_tags_that_build_objects_are_refused() -> None:
    (problem,) = load("x: !!python/object/apply:os.system [id]\n").problems
    assert problem[0] == Mark(1, 4) and "could not determine a constructor" in problem[1]


def test_an_alias_bomb_is_refused_before_it_is_walked() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    doc = load("\n".join(lines) + "\n")
    assert doc.data is None
    assert doc.problems[0][1] == f"the document has more than {MAX_NODES} values " \
                                 "(counting each alias as often as it is used)"


def test_nesting_and_syntax_problems_come_back_with_a_position() -> None:
    assert load("[" * 5000).problems == [(Mark(1, 1), "the document is nested too deeply")]
    assert load("a: [1\n").problems[0][0] == Mark(2, 1)
    assert load("").data is None and load("").problems == []
