"""YAML contract files with line numbers: an error names the file and the line of the offending key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipelines.measures.definitions import DefinitionError


def load_with_lines(path: Path) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the data of a YAML file; a parse error names the line."""
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.compose(text), yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise DefinitionError(f"{path.name}:{mark.line + 1 if mark else 1}: not valid YAML") from None


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
