"""Units: every reading converted to its metric's one UCUM unit, with the original value and unit kept.

The conversions come from data_contracts/devices/metrics.yaml. A reading whose unit is missing, or is
not a spelling listed for its metric, is rejected with a reason: a unit is never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl
import yaml

from pipelines.devices.contract import REJECT_SCHEMA, ROW

METRICS_FILE = Path(__file__).resolve().parents[2] / "data_contracts" / "devices" / "metrics.yaml"
VALUE_LIMIT = 1e12
"""The largest magnitude a reading's value may have, in its own unit and in the metric's unit. The columns
downstream hold it: `deduplicate` keys a value to 1e-6 of its unit in a 64-bit integer (up to ±9.2e12), and
no device measures anything near 1e12 in a unit the catalogue lists. A value beyond it, or one that is not
a finite number (NaN, ±Infinity, or a number written too large for a double such as `1e309`), is a reject
(`value_out_of_range`, `non_finite_value`), never a cast that fails and stops every other reading."""


@dataclass(frozen=True)
class Metric:
    """One metric of the catalogue."""

    name: str
    loinc: str
    display: str
    unit: str
    plausible: tuple[float, float]
    fhir_codes: tuple[str, ...]


@cache
def metric_catalogue() -> dict[str, Metric]:
    """The metrics by name."""
    document = yaml.safe_load(METRICS_FILE.read_text(encoding="utf-8"))
    return {
        name: Metric(
            name,
            spec["loinc"],
            spec["display"],
            spec["unit"],
            tuple(spec["plausible"]),
            tuple(spec.get("fhir_codes", [spec["loinc"]])),
        )
        for name, spec in document["metrics"].items()
    }


@cache
def conversions() -> pl.DataFrame:
    """One row per accepted (metric, unit spelling): factor and offset to the canonical unit."""
    document = yaml.safe_load(METRICS_FILE.read_text(encoding="utf-8"))
    rows = []
    for name, spec in document["metrics"].items():
        for spelling, rule in spec["units"].items():
            factor, offset = (rule["factor"], rule["offset"]) if isinstance(rule, dict) else (rule, 0.0)
            rows.append((name, spelling, float(factor), float(offset), spec["unit"], spec["loinc"]))
    return pl.DataFrame(
        rows,
        schema={
            "metric": pl.String,
            "original_unit": pl.String,
            "_factor": pl.Float64,
            "_offset": pl.Float64,
            "unit": pl.String,
            "loinc": pl.String,
        },
        orient="row",
    )


def normalize_units(readings: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Readings with `value`, `unit` (canonical UCUM) and `loinc` added, and the rejects (`_row`,
    `reason_code`, `reason`) of readings whose metric or unit is not known, or whose value is not finite or
    lies beyond `VALUE_LIMIT` (before or after conversion). Every reader's readings pass here, so this is
    the one place such values are stopped before any cast or aggregate sees them."""
    known_metric = pl.col("metric").is_in(list(metric_catalogue()))
    joined = readings.join(conversions(), on=["metric", "original_unit"], how="left")
    original = pl.col("original_value")
    converted = original * pl.col("_factor") + pl.col("_offset")
    reason = (
        pl.when(~known_metric)
        .then(pl.lit("unknown_metric"))
        .when(original.is_null())
        .then(pl.lit("missing_value"))
        .when(~original.is_finite())  # NaN and ±inf (what `1e309` parses to)
        .then(pl.lit("non_finite_value"))
        .when(original.abs() > VALUE_LIMIT)
        .then(pl.lit("value_out_of_range"))
        .when(pl.col("original_unit").is_null() | (pl.col("original_unit").str.strip_chars() == ""))
        .then(pl.lit("missing_unit"))
        .when(pl.col("_factor").is_null())
        .then(pl.lit("unknown_unit"))
        .when(~converted.is_finite() | (converted.abs() > VALUE_LIMIT))  # a conversion that overflows
        .then(pl.lit("value_out_of_range"))
    )
    flagged = joined.with_columns(reason.alias("reason_code"))
    rejects = flagged.filter(pl.col("reason_code").is_not_null()).select(
        ROW,
        "reason_code",
        pl.format(
            "{} reading: {}",
            pl.when(known_metric).then(pl.col("metric")).otherwise(pl.lit("a")),
            _REASON_TEXT,
        ).alias("reason"),
    )
    good = flagged.filter(pl.col("reason_code").is_null())
    normalized = good.with_columns(
        (pl.col("original_value") * pl.col("_factor") + pl.col("_offset")).alias("value")
    ).drop("_factor", "_offset", "reason_code")
    return normalized, rejects.cast(REJECT_SCHEMA)  # type: ignore[arg-type]


_REASON_TEXT = pl.col("reason_code").replace_strict(
    {
        "unknown_metric": "the metric is not one the platform carries",
        "missing_value": "the reading has no numeric value",
        "non_finite_value": "the value is not a finite number (NaN, Infinity, or too large for a double)",
        "value_out_of_range": f"the value's magnitude exceeds {VALUE_LIMIT:.0e}, more than the columns hold",
        "missing_unit": "the reading states no unit",
        "unknown_unit": "the unit is not an accepted spelling for this metric (see metrics.yaml)",
    },
    default="rejected",
)
