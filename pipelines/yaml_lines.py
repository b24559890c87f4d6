"""YAML contract files with line numbers: an error names the file and the line of the offending key.

Definition files (measures, value sets, segments, campaigns) are read strictly: text that is not UTF-8,
not YAML, nested too deeply, repeating a key or expanding through aliases into a huge document fails with
a `DefinitionError` naming the file and the line, instead of an exception that names neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# libyaml's loader when PyYAML was built with it (the wheels are): the same documents, several times faster
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_NODES = 100_000
"""The most nodes a definition may expand to (aliases count each time they are used): contracts are
small, and a document of nested aliases ("billion laughs") would otherwise take forever to walk."""


class DefinitionError(ValueError):
    """A measure, value-set, segment or campaign file that cannot be used, with its file and line."""


def load_with_lines(path: Path) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the data of a YAML file; a problem names the file and line."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        at = raw.count(b"\n", 0, err.start) + 1
        raise DefinitionError(f"{path.name}:{at}: not UTF-8 text") from None
    node: yaml.Node | None = None
    try:
        node = yaml.compose(text, Loader=_LOADER)
        _check_nodes(path, node)
        return node, yaml.load(text, Loader=_LOADER)  # a safe loader: libyaml's or PyYAML's
    except DefinitionError:
        raise
    except (ValueError, TypeError, OverflowError) as err:  # a scalar YAML reads but Python refuses
        raise DefinitionError(
            f"{path.name}:{_unreadable_scalar_line(node)}: a value cannot be read ({type(err).__name__}: "
            "a date, time or time zone out of range?)"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or type(err).__name__
        if "nesting depth" in str(problem):  # libyaml's own limit, where PyYAML would recurse too deep
            raise DefinitionError(f"{path.name}:1: the document is nested too deeply") from None
        raise DefinitionError(
            f"{path.name}:{mark.line + 1 if mark else 1}: not valid YAML ({problem})"
        ) from None
    except RecursionError:
        raise DefinitionError(f"{path.name}:1: the document is nested too deeply") from None


def _check_nodes(path: Path, root: yaml.Node | None) -> None:
    """Refuse repeated mapping keys (the last one would silently win) and alias bombs."""
    pending = [root] if root is not None else []
    seen = 0
    while pending:
        node = pending.pop()
        seen += 1
        if seen > MAX_NODES:
            raise DefinitionError(
                f"{path.name}:{node.start_mark.line + 1}: the document expands to more than {MAX_NODES} "
                "values (aliases used over and over?)"
            )
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in keys:
                        raise DefinitionError(
                            f"{path.name}:{key.start_mark.line + 1}: key {key.value!r} repeated"
                        )
                    keys.add(key.value)
                pending += [key, value]
        elif isinstance(node, yaml.SequenceNode):
            pending += node.value


def _unreadable_scalar_line(root: yaml.Node | None) -> int:
    """The line of the first scalar the safe loader cannot construct (e.g. the date 2026-13-01)."""
    constructor = yaml.constructor.SafeConstructor()
    pending = [root] if root is not None else []
    while pending:
        node = pending.pop(0)
        if isinstance(node, yaml.ScalarNode):
            try:
                constructor.construct_object(node)
            except (ValueError, TypeError, OverflowError, yaml.YAMLError):
                return node.start_mark.line + 1
        elif isinstance(node, yaml.MappingNode):
            pending += [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            pending += node.value
    return 1


def child(node: yaml.Node | None, key: str | int) -> yaml.Node | None:
    """The node of a mapping key or sequence index (the parent when absent, so lines stay close)."""
    if isinstance(node, yaml.MappingNode):
        return next((v for k, v in node.value if k.value == key), node)
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]
    return node


def line(node: yaml.Node | None, key: str | int | None = None) -> int:
    """The 1-based line of `node` (or of its child `key`)."""
    target = child(node, key) if key is not None else node
    return target.start_mark.line + 1 if target is not None else 1
