"""The silver ViewDefinitions (data_contracts/views/*.json), loaded and validated once."""

from __future__ import annotations

import re
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
DATE_TEXT = r"^\d{4}(?:-\d{2}(?:-\d{2})?)?$"
DATE_TIME_TEXT = r"^\d{4}(?:-\d{2}(?:-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))?)?)?$"
FHIR_TYPE_FORMATS: dict[str, str] = {"date": DATE_TEXT, "dateTime": DATE_TIME_TEXT, "instant": DATE_TIME_TEXT}
"""The form a date, dateTime or instant column's text must have, as the silver contracts check it: a value
in another form (a birth date given as the number 19700101, "2026-01-02T03:04:05 UTC") is nulled and
counted as a type conflict, so one record cannot fail its table's contract."""


def column_formats(definition: dict[str, Any]) -> dict[str, str]:
    """The text form (FHIR_TYPE_FORMATS) each date-like, single-valued column of a view must have."""
    return {
        column["name"]: FHIR_TYPE_FORMATS[column["type"]]
        for column in view_columns(definition)
        if column.get("type") in FHIR_TYPE_FORMATS and not column.get("collection")
    }


@dataclass(frozen=True)
class SilverView:
    """One silver table: its name, the parsed view, and the declared dtype of each column."""

    name: str
    definition: dict[str, Any]
    view: View
    dtypes: dict[str, pl.DataType]


def view_columns(definition: dict[str, Any]) -> list[dict[str, Any]]:
    """The column definitions of a view, in column order (the first branch of a unionAll stands for all)."""
    columns: list[dict[str, Any]] = []

    def walk(select: dict[str, Any]) -> None:
        columns.extend(select.get("column") or [])
        for child in select.get("select") or []:
            walk(child)
        for branch in (select.get("unionAll") or [])[:1]:
            walk(branch)

    for select in definition.get("select") or []:
        walk(select)
    return columns


def column_dtypes(definition: dict[str, Any]) -> dict[str, pl.DataType]:
    """Declared column types of a view (collection columns become lists), in column order."""
    dtypes: dict[str, pl.DataType] = {}
    for column in view_columns(definition):
        base = FHIR_TYPE_DTYPES.get(column.get("type") or "string", pl.String())
        dtypes[column["name"]] = pl.List(base) if column.get("collection") else base
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


PATIENT_REFERENCE_PATH = re.compile(r"^([a-z][A-Za-z]*)\.getReferenceKey\((?:FHIR\.)?Patient\)$")
"""A view's `patient_id` path read from one Reference element, e.g. `subject.getReferenceKey(Patient)`."""


@lru_cache(maxsize=4)
def patient_reference_elements(folder: Path = VIEWS_DIR) -> dict[str, str]:
    """Resource type -> the Reference element its silver views read `patient_id` from, for every type whose
    silver contract requires a patient (a `patient_id` that must not be null).

    This is the one definition of "a resource silver keeps per patient": bronze quarantines such a
    resource when that element names no Patient, instead of letting silver's contract fail on it for
    ever. Patient itself is keyed by its own id and is not listed. A required view whose `patient_id` is
    not one element's `getReferenceKey(Patient)` raises: bronze could not check it the same way.
    """
    from pipelines.silver.expectations import EXPECTATIONS_DIR, load_suites  # a leaf module, no cycle

    suites = load_suites(EXPECTATIONS_DIR if folder == VIEWS_DIR else folder.parent / "expectations")
    elements: dict[str, str] = {}
    for path in sorted(folder.glob("*.json")):
        definition = orjson.loads(path.read_bytes())
        name = definition.get("name") or path.stem
        suite = suites.get(name) or {"expectations": []}
        required = any(
            e["type"] == "expect_column_values_to_not_be_null"
            and e["kwargs"].get("column") == "patient_id"
            and "mostly" not in e["kwargs"]
            for e in suite["expectations"]
        )
        column_path = _column_paths(definition).get("patient_id")
        resource = definition["resource"]
        if not required or column_path is None or resource == "Patient":
            continue
        match = PATIENT_REFERENCE_PATH.match(column_path.strip())
        if match is None:
            raise ValueError(f"{path.name}: patient_id must be <element>.getReferenceKey(Patient)")
        if elements.setdefault(resource, match.group(1)) != match.group(1):
            raise ValueError(f"{path.name}: views of {resource} read patient_id from different elements")
    return elements


def _column_paths(definition: dict[str, Any]) -> dict[str, str]:
    """Column name -> FHIRPath of a view's top-level columns (a `forEach` select reads other contexts)."""
    paths: dict[str, str] = {}

    def walk(select: dict[str, Any]) -> None:
        if select.get("forEach") or select.get("forEachOrNull"):
            return
        for column in select.get("column") or []:
            paths.setdefault(column["name"], column["path"])
        for child in select.get("select") or []:
            walk(child)

    for select in definition["select"]:
        walk(select)
    return paths


_OF_TYPE_MEMBER = re.compile(r"^(?:.*\.)?([a-z][A-Za-z0-9]*)\.ofType\(([A-Za-z]+)\)$")
_LAST_MEMBER = re.compile(r"^(?:.*\.)?([a-z][A-Za-z0-9]*)$")


@lru_cache(maxsize=64)
def _members(definition_json: bytes) -> dict[str, str]:
    definition = orjson.loads(definition_json)
    members: dict[str, str] = {}

    def walk(select: dict[str, Any]) -> None:
        for column in select.get("column") or []:
            path = column["path"].strip()
            typed, last = _OF_TYPE_MEMBER.match(path), _LAST_MEMBER.match(path)
            if typed:
                members[column["name"]] = typed.group(1) + typed.group(2)[:1].upper() + typed.group(2)[1:]
            elif last:
                members[column["name"]] = last.group(1)
        for child in [*(select.get("select") or []), *(select.get("unionAll") or [])]:
            walk(child)

    for select in definition.get("select") or []:
        walk(select)
    return members


def column_members(definition: dict[str, Any]) -> dict[str, str]:
    """Column name -> the JSON member its value is read from (`value.ofType(Quantity).value` -> `value`,
    `value.ofType(integer)` -> `valueInteger`), for columns whose path ends in one member."""
    return _members(orjson.dumps(definition))
