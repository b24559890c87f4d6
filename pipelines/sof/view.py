"""ViewDefinition structure: parsed and validated once, before any data is read."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pipelines.sof.errors import ViewDefinitionError
from pipelines.sof.fhirpath import Node, parse

COLUMN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_CONSTANT_TYPES = {
    "valueBase64Binary": "string",
    "valueBoolean": "boolean",
    "valueCanonical": "string",
    "valueCode": "string",
    "valueDate": "date",
    "valueDateTime": "dateTime",
    "valueDecimal": "decimal",
    "valueId": "string",
    "valueInstant": "dateTime",
    "valueInteger": "integer",
    "valueInteger64": "integer",
    "valueOid": "string",
    "valuePositiveInt": "integer",
    "valueString": "string",
    "valueTime": "time",
    "valueUnsignedInt": "integer",
    "valueUri": "string",
    "valueUrl": "string",
    "valueUuid": "string",
}


@dataclass(frozen=True)
class Column:
    """One output column."""

    name: str
    path: str
    expression: Node
    type: str | None = None
    collection: bool = False


@dataclass(frozen=True)
class Select:
    """A select node: its iteration (forEach / forEachOrNull / repeat), columns, nested selects, unions."""

    columns: tuple[Column, ...] = ()
    selects: tuple[Select, ...] = ()
    union_all: tuple[Select, ...] = ()
    for_each: Node | None = None
    for_each_or_null: Node | None = None
    repeat: tuple[Node, ...] = ()

    def column_names(self) -> list[str]:
        """Output columns in order: own columns, nested selects, then the union's columns."""
        names = [c.name for c in self.columns]
        for child in self.selects:
            names += child.column_names()
        if self.union_all:
            names += self.union_all[0].column_names()
        return names


@dataclass(frozen=True)
class View:
    """A validated ViewDefinition."""

    resource: str
    select: Select
    where: tuple[Node, ...] = ()
    constants: dict[str, tuple[Any, str]] = field(default_factory=dict)


def parse_view(definition: Any) -> View:
    """Validate a ViewDefinition (as parsed JSON) and compile its FHIRPath expressions."""
    if not isinstance(definition, dict):
        raise ViewDefinitionError("a ViewDefinition must be a JSON object")
    resource = definition.get("resource")
    if not isinstance(resource, str) or not resource:
        raise ViewDefinitionError("a ViewDefinition needs a `resource` (the FHIR resource type)")
    selects = definition.get("select")
    if not isinstance(selects, list) or not selects:
        raise ViewDefinitionError("a ViewDefinition needs a non-empty `select` list")
    root = Select(selects=tuple(_select(s, f"select[{i}]") for i, s in enumerate(selects)))
    names = root.column_names()
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ViewDefinitionError(f"column names must be unique; repeated: {', '.join(duplicates)}")
    wheres = definition.get("where") or []
    if not isinstance(wheres, list):
        raise ViewDefinitionError("`where` must be a list")
    where = tuple(
        _expression(w.get("path") if isinstance(w, dict) else None, f"where[{i}]")
        for i, w in enumerate(wheres)
    )
    return View(resource, root, where, _constants(definition.get("constant") or []))


def _select(node: Any, where: str) -> Select:
    if not isinstance(node, dict):
        raise ViewDefinitionError(f"{where} must be an object")
    if "forEach" in node and "forEachOrNull" in node:
        raise ViewDefinitionError(f"{where}: forEach and forEachOrNull cannot both be set")
    columns = node.get("column") or []
    children = node.get("select") or []
    unions = node.get("unionAll") or []
    for key, value in (("column", columns), ("select", children), ("unionAll", unions)):
        if not isinstance(value, list):
            raise ViewDefinitionError(f"{where}.{key} must be a list")
    repeat = node.get("repeat") or []
    if not isinstance(repeat, list) or not all(isinstance(p, str) for p in repeat):
        raise ViewDefinitionError(f"{where}.repeat must be a list of FHIRPath expressions")
    union_all = tuple(_select(u, f"{where}.unionAll[{i}]") for i, u in enumerate(unions))
    if union_all:
        first = union_all[0].column_names()
        for i, branch in enumerate(union_all[1:], start=1):
            if branch.column_names() != first:
                raise ViewDefinitionError(
                    f"{where}.unionAll[{i}] has columns {branch.column_names()}, expected {first} "
                    "(same names in the same order)"
                )
    return Select(
        columns=tuple(_column(c, f"{where}.column[{i}]") for i, c in enumerate(columns)),
        selects=tuple(_select(c, f"{where}.select[{i}]") for i, c in enumerate(children)),
        union_all=union_all,
        for_each=_expression(node["forEach"], f"{where}.forEach") if "forEach" in node else None,
        for_each_or_null=(
            _expression(node["forEachOrNull"], f"{where}.forEachOrNull") if "forEachOrNull" in node else None
        ),
        repeat=tuple(_expression(p, f"{where}.repeat") for p in repeat),
    )


def _column(node: Any, where: str) -> Column:
    if not isinstance(node, dict):
        raise ViewDefinitionError(f"{where} must be an object")
    name = node.get("name")
    if not isinstance(name, str) or not COLUMN_NAME.match(name):
        raise ViewDefinitionError(f"{where}: column name {name!r} must match {COLUMN_NAME.pattern}")
    collection = node.get("collection", False)
    if not isinstance(collection, bool):
        raise ViewDefinitionError(f"{where}: collection must be true or false")
    path = node.get("path")
    return Column(name, path, _expression(path, where), node.get("type"), collection)


def _expression(path: Any, where: str) -> Node:
    if not isinstance(path, str):
        raise ViewDefinitionError(f"{where}: path must be a FHIRPath string")
    try:
        return parse(path)
    except ViewDefinitionError as err:
        raise ViewDefinitionError(f"{where}: {err}") from None


def _constants(items: Any) -> dict[str, tuple[Any, str]]:
    if not isinstance(items, list):
        raise ViewDefinitionError("`constant` must be a list")
    constants: dict[str, tuple[Any, str]] = {}
    for i, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise ViewDefinitionError(f"constant[{i}] needs a name")
        values = [k for k in item if k.startswith("value")]
        if len(values) != 1 or values[0] not in _CONSTANT_TYPES:
            raise ViewDefinitionError(f"constant {name} needs exactly one value[x] of a primitive type")
        constants[name] = (item[values[0]], _CONSTANT_TYPES[values[0]])
    return constants


ROW_WISE_FUNCTIONS = frozenset({"lowBoundary", "highBoundary"})
"""FHIRPath functions evaluated value by value (each value's own precision decides the result)."""


def row_wise_columns(view: View) -> list[str]:
    """Columns whose expression uses a row-wise function: the engine's only non-vectorized code."""
    from pipelines.sof.fhirpath import Binary, Call, Index, Path, Unary

    def uses(node: Node) -> bool:
        if isinstance(node, Call):
            return node.name in ROW_WISE_FUNCTIONS or any(uses(a) for a in node.args)
        if isinstance(node, Path | Binary):
            return uses(node.left) or uses(node.right)
        if isinstance(node, Index):
            return uses(node.target) or uses(node.index)
        if isinstance(node, Unary):
            return uses(node.operand)
        return False

    found: list[str] = []

    def walk(select: Select) -> None:
        found.extend(c.name for c in select.columns if uses(c.expression))
        for child in (*select.selects, *select.union_all):
            walk(child)

    walk(view.select)
    return list(dict.fromkeys(found))
