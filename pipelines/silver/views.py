"""The silver ViewDefinitions (data_contracts/views/*.json), loaded and validated once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from pipelines.sof.view import View, parse_view

VIEWS_DIR = Path(__file__).resolve().parents[2] / "data_contracts" / "views"

FHIR_TYPE_DTYPES: dict[str, pl.DataType] = {
    "boolean": pl.Boolean(),
    "integer": pl.Int64(),
    "positiveInt": pl.Int64(),
    "unsignedInt": pl.Int64(),
    "integer64": pl.Int64(),
    "decimal": pl.Float64(),
}
"""Column types other than these are kept as text (ids, codes, uris, dates and times in ISO form)."""


@dataclass(frozen=True)
class SilverView:
    """One silver table: its name, the parsed view, and the declared dtype of each column."""

    name: str
    definition: dict[str, Any]
    view: View
    dtypes: dict[str, pl.DataType]


def column_dtypes(definition: dict[str, Any]) -> dict[str, pl.DataType]:
    """Declared column types of a view (collection columns become lists), in column order."""
    dtypes: dict[str, pl.DataType] = {}

    def walk(select: dict[str, Any]) -> None:
        for column in select.get("column") or []:
            base = FHIR_TYPE_DTYPES.get(column.get("type") or "string", pl.String())
            dtypes[column["name"]] = pl.List(base) if column.get("collection") else base
        for child in select.get("select") or []:
            walk(child)
        for branch in (select.get("unionAll") or [])[:1]:
            walk(branch)

    for select in definition["select"]:
        walk(select)
    return dtypes


@lru_cache(maxsize=4)
def load_views(folder: Path = VIEWS_DIR) -> tuple[SilverView, ...]:
    """Every view of the folder, sorted by name; a broken file raises with its name."""
    views = []
    for path in sorted(folder.glob("*.json")):
        definition = orjson.loads(path.read_bytes())
        name = definition.get("name") or path.stem
        views.append(SilverView(name, definition, parse_view(definition), column_dtypes(definition)))
    return tuple(views)
