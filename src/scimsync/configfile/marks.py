"""YAML read with the place of every key and value (PyYAML's node marks).

PyYAML composes a tree of nodes, each with the line and column it starts at, and then
constructs plain Python values from it (the safe constructor: no tags that run code).
Both are kept here: the values, and for each path such as
`("targets", 2, "profile", "concurrency")` the position of its key and of its value,
so that a problem found in the values can be shown where it was written.

A key given twice in one mapping is a problem (PyYAML would keep the last one
silently, so `scope:` written twice would lose the first), and so is a document with
more nodes than MAX_NODES counting every alias as often as it is used: aliases are
how a few lines of YAML become a huge document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from scimsync.validation import Path

MAX_NODES = 200_000
MERGE = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Mark:
    """A position in the file, both counted from 1."""

    line: int
    column: int


class EnvText(str):
    """A string written `!env "..."`: the file allows `${VAR}` to be read into it."""

    __slots__ = ()


class Loader(yaml.SafeLoader):
    """The safe loader, plus the `!env` tag."""


def _env_text(loader: yaml.SafeLoader, node: yaml.Node) -> EnvText:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, "`!env` marks a string, not a list or a mapping", node.start_mark)
    return EnvText(loader.construct_scalar(node))


Loader.add_constructor("!env", _env_text)


@dataclass
class Located:
    """A document's values, where each was written, and what was wrong in its form."""

    data: Any = None
    values: dict[Path, Mark] = field(default_factory=dict)
    keys: dict[Path, Mark] = field(default_factory=dict)
    problems: list[tuple[Mark, str]] = field(default_factory=list)

    def where(self, path: Path, key: bool = False) -> Mark:
        """The position of `path` (its key's if `key`), or of the nearest enclosing
        value that was written (a missing setting points at its section)."""
        if key and path in self.keys:
            return self.keys[path]
        for n in range(len(path), -1, -1):
            found = self.values.get(path[:n])
            if found is not None:
                return found
        return Mark(1, 1)


def _mark(node: yaml.Node | yaml.Mark) -> Mark:
    start = node.start_mark if isinstance(node, yaml.Node) else node
    return Mark(start.line + 1, start.column + 1)


def load(text: str) -> Located:
    """Read one YAML document; syntax problems come back in `problems`, not raised."""
    out = Located()
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return out
        visits = [0]
        _duplicates(node, out, visits)
        if visits[0] > MAX_NODES:
            return out
        out.data = loader.construct_document(node)
        _positions(loader, node, out.data, (), out)
    except RecursionError:
        out.problems.append((Mark(1, 1), "the document is nested too deeply"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _mark(mark) if mark is not None else Mark(1, 1)
        out.problems.append((where, f"not valid YAML: {exc.problem or exc.context}"))
    except yaml.YAMLError as exc:
        out.problems.append((Mark(1, 1), f"not valid YAML: {exc}"))
    finally:
        loader.dispose()
    return out


def _duplicates(node: yaml.Node, out: Located, visits: list[int]) -> None:
    """Report keys written twice in a mapping, and stop past MAX_NODES visits."""
    visits[0] += 1
    if visits[0] > MAX_NODES:
        if visits[0] == MAX_NODES + 1:
            out.problems.append((_mark(node), f"the document has more than {MAX_NODES} "
                                 "values (counting each alias as often as it is used)"))
        return
    if isinstance(node, yaml.MappingNode):
        seen: set[tuple[str, str]] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != MERGE:
                ident = (key.tag, key.value)
                if ident in seen:
                    out.problems.append((_mark(key), f"key `{key.value}` is written twice "
                                         "in this mapping"))
                seen.add(ident)
            _duplicates(value, out, visits)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _duplicates(item, out, visits)


def _positions(loader: Loader, node: yaml.Node, data: Any, path: Path, out: Located) -> None:
    """Walk the (merged) node tree beside the values it made, noting positions."""
    out.values.setdefault(path, _mark(node))
    if isinstance(node, yaml.MappingNode) and isinstance(data, dict):
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int) or key not in data:
                continue
            sub = (*path, key)
            out.keys[sub] = _mark(key_node)
            out.values[sub] = _mark(value_node)
            _positions(loader, value_node, data[key], sub, out)
    elif isinstance(node, yaml.SequenceNode) and isinstance(data, list):
        for i, (item_node, item) in enumerate(zip(node.value, data, strict=False)):
            _positions(loader, item_node, item, (*path, i), out)
