"""Measure and value-set files in data_contracts/measures, loaded and checked.

A file that does not parse, names an unknown code system, an unknown value set or an unknown key fails
with a `DefinitionError` naming the file and the line, so a broken definition never silently measures
nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from pipelines.yaml_lines import DefinitionError, load_with_lines

__all__ = ["DefinitionError"]  # defined with the YAML loader; imported from here by callers

MEASURES_DIR = Path(__file__).resolve().parents[2] / "data_contracts" / "measures"
LABEL = "HEDIS-aligned; not NCQA-certified"
CODE_SYSTEMS = {
    "http://snomed.info/sct": "SNOMED CT",
    "http://loinc.org": "LOINC",
    "http://hl7.org/fhir/sid/cvx": "CVX",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
}
PREFIX_SYSTEMS = {"http://hl7.org/fhir/sid/icd-10-cm"}
"""Codes of these systems match every code they start with (E11 matches E11.9)."""
NUMERATOR_TYPES = {"any_event", "last_value_at_most", "last_blood_pressure_below", "vaccine_doses"}
EXCLUSION_WINDOWS = {"period", "ever"}


@dataclass(frozen=True)
class Window:
    """Evidence counts when its date is after `period_end - months` and on or before
    `period_end - end_offset_months` (a season ending mid-year: influenza)."""

    months: int
    end_offset_months: int = 0


@dataclass(frozen=True)
class Modality:
    """One way to close the gap (a numerator path) with its own evidence window."""

    name: str
    value_set: str
    window: Window
    min_age: int | None = None  # the person's age on the event's day must be at least this (HPV from 30)
    doses: int = 1  # vaccine_doses: distinct days with a dose needed
    min_age_days: int = 0  # vaccine_doses: a dose counts from this many days after birth ...
    min_age_months: int | None = None  # ... or from this many months (first birthday: 12)
    group: str | None = None  # vaccine_doses: alternatives of one series (either schedule satisfies it)


@dataclass(frozen=True)
class Exclusion:
    """A reason a person leaves the denominator: `deceased`, or events of a value set in a window."""

    reason: str
    value_set: str | None
    window: str  # period | ever
    min_age: int | None = None  # applies only from this age at the period end (frailty: 66)
    also_value_set: str | None = None  # and a second condition must hold (advanced illness) ...
    also_lookback_months: int = 24  # ... recorded in this look-back, or still active


@dataclass(frozen=True)
class Measure:
    """One measure file."""

    id: str
    title: str
    version: str
    sexes: tuple[str, ...]
    age_min: int
    age_max: int
    age_by_sex: tuple[tuple[str, int, int], ...]  # (sex, min, max): replaces age_min/max for that sex
    diagnoses: tuple[tuple[str, int], ...]  # (value set, look-back months before the period end)
    exclusions: tuple[Exclusion, ...]
    numerator_type: str
    modalities: tuple[Modality, ...]
    threshold: float | None  # last_value_at_most: the highest value that closes the gap
    prospective_days: int
    source: str


def _fail(path: Path, node: yaml.Node | None, message: str) -> DefinitionError:
    line = f":{node.start_mark.line + 1}" if node is not None else ""
    return DefinitionError(f"{path.name}{line}: {message}")


def _load(path: Path) -> tuple[dict[str, Any], yaml.Node]:
    node, data = load_with_lines(path)
    if not isinstance(data, dict) or node is None:
        raise DefinitionError(f"{path.name}:1: a definition must be a mapping")
    return data, node


WHOLE, NUMBER, TEXT = "a whole number", "a number", "text"
_BOUNDS = {"min": WHOLE, "max": WHOLE}
MEASURE_SHAPE: dict[str, Any] = {
    "eligible": {
        "age": _BOUNDS,
        "sex": [TEXT],
        "age_by_sex": {str: _BOUNDS},
        "diagnoses": [{"value_set": TEXT, "lookback_months": WHOLE}],
    },
    "exclusions": [
        {
            "reason": TEXT,
            "value_set": TEXT,
            "window": TEXT,
            "min_age": WHOLE,
            "and": {"value_set": TEXT, "lookback_months": WHOLE},
        }
    ],
    "numerator": {
        "type": TEXT,
        "threshold": NUMBER,
        "modalities": [
            {
                "name": TEXT,
                "value_set": TEXT,
                "window_months": WHOLE,
                "end_offset_months": WHOLE,
                "min_age": WHOLE,
                "doses": WHOLE,
                "min_age_days": WHOLE,
                "min_age_months": WHOLE,
                "group": TEXT,
            }
        ],
    },
    "prospective_days": WHOLE,
}
"""What each part of a measure file holds: a mapping (its keys; `str` for any key), a list (of one
shape) or a scalar kind. A null section is allowed (left out); anything else that does not fit fails."""
VALUE_SET_CODES_SHAPE = [{"system": TEXT, "code": TEXT, "display": TEXT}]


def _check_shape(path: Path, value: Any, shape: Any, node: yaml.Node | None, where: str) -> None:
    """Raise a DefinitionError naming the file, the line and the element when `value` does not fit."""
    if value is None:
        return
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            raise _fail(path, node, f"{where} must be a mapping")
        for key, item in value.items():
            inner = shape.get(key, shape.get(str))
            at = _child(node, key) or node
            if inner is None:
                raise _fail(path, at, f"unknown key {key!r} in {where}")
            _check_shape(path, item, inner, at, f"{where}.{key}")
    elif isinstance(shape, list):
        if not isinstance(value, list):
            raise _fail(path, node, f"{where} must be a list")
        for i, item in enumerate(value):
            if item is None:
                raise _fail(path, _child(node, i), f"{where}[{i}] is empty")
            _check_shape(path, item, shape[0], _child(node, i), f"{where}[{i}]")
    elif shape == TEXT and not isinstance(value, str | int | float):
        raise _fail(path, node, f"{where} must be {TEXT}")
    elif shape in (WHOLE, NUMBER) and (
        isinstance(value, bool)
        or not isinstance(value, int if shape == WHOLE else int | float)
        or not math.isfinite(value)  # .nan or .inf would silently close or open every gap
    ):
        raise _fail(path, node, f"{where} must be {shape}")


def _child(node: yaml.Node | None, *keys: str | int) -> yaml.Node | None:
    """The YAML node at a key path (for line numbers in messages)."""
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return node
    return node


@cache
def value_sets(folder: Path = MEASURES_DIR / "value_sets") -> pl.DataFrame:
    """Every code of every value set: `value_set`, `system`, `code`, `display`, `prefix`, `version`."""
    rows: list[tuple[str, str, str, str, bool, str]] = []
    for path in sorted(folder.glob("*.yaml")):
        data, node = _load(path)
        _check_shape(path, data.get("codes"), VALUE_SET_CODES_SHAPE, _child(node, "codes"), "codes")
        name = data.get("name")
        if name != path.stem:
            raise _fail(path, _child(node, "name"), f"name must be the file name ({path.stem})")
        for i, entry in enumerate(data.get("codes") or []):
            system, code, display = entry.get("system"), entry.get("code"), entry.get("display")
            if system not in CODE_SYSTEMS:
                raise _fail(path, _child(node, "codes", i), f"unknown code system {system!r}")
            if not code or not display:
                raise _fail(path, _child(node, "codes", i), "every code needs a code and a display")
            rows.append(
                (name, system, str(code), str(display), system in PREFIX_SYSTEMS, str(data.get("version")))
            )
    return pl.DataFrame(
        rows,
        schema={
            "value_set": pl.String,
            "system": pl.String,
            "code": pl.String,
            "display": pl.String,
            "prefix": pl.Boolean,
            "version": pl.String,
        },
        orient="row",
    )


def load_measure(path: Path, known_value_sets: set[str]) -> Measure:
    """One measure file, checked against the known value sets."""
    data, node = _load(path)
    allowed = {"id", "title", "label", "version", "eligible", "exclusions", "numerator", "prospective_days"}
    for key in data:
        if key not in allowed:
            raise _fail(path, _child(node, key), f"unknown key {key!r}")
    if data.get("label") != LABEL:
        raise _fail(path, _child(node, "label"), f"label must be {LABEL!r}")
    for key, shape in MEASURE_SHAPE.items():
        _check_shape(path, data.get(key), shape, _child(node, key), key)

    def value_set(name: object, *where: str | int) -> str:
        if name not in known_value_sets:
            raise _fail(path, _child(node, *where), f"unknown value set {name!r}")
        return str(name)

    eligible = data.get("eligible") or {}
    age = eligible.get("age") or {}
    diagnoses = tuple(
        (value_set(d.get("value_set"), "eligible", "diagnoses", i), int(d.get("lookback_months", 12)))
        for i, d in enumerate(eligible.get("diagnoses") or [])
    )
    exclusions = []
    for i, e in enumerate(data.get("exclusions") or []):
        window = e.get("window", "period")
        if window not in EXCLUSION_WINDOWS:
            raise _fail(
                path, _child(node, "exclusions", i), f"window must be one of {sorted(EXCLUSION_WINDOWS)}"
            )
        vs = None if e.get("reason") == "deceased" else value_set(e.get("value_set"), "exclusions", i)
        also = e.get("and") or {}
        exclusions.append(
            Exclusion(
                str(e.get("reason")),
                vs,
                window,
                int(e["min_age"]) if "min_age" in e else None,
                value_set(also.get("value_set"), "exclusions", i) if also else None,
                int(also.get("lookback_months", 24)),
            )
        )
    numerator = data.get("numerator") or {}
    kind = numerator.get("type")
    if kind not in NUMERATOR_TYPES:
        raise _fail(
            path,
            _child(node, "numerator", "type"),
            f"numerator type must be one of {sorted(NUMERATOR_TYPES)}",
        )
    modalities = tuple(
        Modality(
            str(m.get("name")),
            value_set(m.get("value_set"), "numerator", "modalities", i),
            Window(int(m.get("window_months", 12)), int(m.get("end_offset_months", 0))),
            int(m["min_age"]) if "min_age" in m else None,
            int(m.get("doses", 1)),
            int(m.get("min_age_days", 0)),
            int(m["min_age_months"]) if "min_age_months" in m else None,
            str(m["group"]) if "group" in m else None,
        )
        for i, m in enumerate(numerator.get("modalities") or [])
    )
    if not modalities:
        raise _fail(path, _child(node, "numerator"), "the numerator needs at least one modality")
    return Measure(
        id=str(data.get("id")),
        title=str(data.get("title")),
        version=str(data.get("version")),
        sexes=tuple(eligible.get("sex") or ()),
        age_min=int(age.get("min", 0)),
        age_max=int(age.get("max", 200)),
        age_by_sex=tuple(
            (str(sex), int(bounds.get("min", 0)), int(bounds.get("max", 200)))
            for sex, bounds in (eligible.get("age_by_sex") or {}).items()
        ),
        diagnoses=diagnoses,
        exclusions=tuple(exclusions),
        numerator_type=str(kind),
        modalities=modalities,
        threshold=float(numerator["threshold"]) if "threshold" in numerator else None,
        prospective_days=int(data.get("prospective_days", 60)),
        source=path.name,
    )


def measure_titles(folder: Path = MEASURES_DIR) -> dict[str, str]:
    """Every measure id with its title, without loading value sets (the dashboard's words for a measure)."""
    titles = {}
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("id"):
            titles[str(data["id"])] = str(data.get("title") or data["id"])
    return titles


def load_measures(folder: Path = MEASURES_DIR) -> list[Measure]:
    """Every measure file of the folder (read once per process: every person bucket and the segments,
    campaigns and simulator use the same definitions)."""
    return list(_measures(folder))


@cache
def _measures(folder: Path) -> tuple[Measure, ...]:
    known = set(value_sets(folder / "value_sets")["value_set"].unique().to_list())
    return tuple(load_measure(path, known) for path in sorted(folder.glob("*.yaml")))
