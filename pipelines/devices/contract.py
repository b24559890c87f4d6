"""What every device reader produces, and the metrics the platform knows.

A reader (one per payload shape: Open mHealth, iHealth, Withings, Fitbit, FHIR, generic CSV) turns
bronze device records into *source readings*: one row per measured value, still in the unit the
source gave, plus reject rows with a reason. Units, plausibility, duplicates and patient links are
decided centrally afterwards (`units`, `plausibility`, `build`), so each reader only understands its
own shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

ROW = "_row"
"""Index of the bronze record (row of the frame given to the reader) a reading or reject came from."""

SOURCE_READING_SCHEMA: dict[str, pl.DataType] = {
    ROW: pl.Int64(),
    "metric": pl.String(),  # one of METRICS
    "original_value": pl.Float64(),
    "original_unit": pl.String(),  # as the source states it (UCUM or the vendor's own), null if absent
    "effective_start": pl.Datetime("us", "UTC"),
    "effective_end": pl.Datetime("us", "UTC"),  # null for a point in time
    "time_zone": pl.String(),  # UTC offset '+HH:MM' as recorded, or an IANA name; null when unknown
    "statistic": pl.String(),  # OMH descriptive statistic (average, maximum, ...); null for a single value
    "group_id": pl.String(),  # readings taken together (systolic + diastolic + pulse of one cuff reading)
}

REJECT_SCHEMA: dict[str, pl.DataType] = {
    ROW: pl.Int64(),
    "reason_code": pl.String(),  # machine-readable, e.g. missing_value, unknown_unit, invalid_time_frame
    "reason": pl.String(),  # human-readable; never carries values of the record
}


@dataclass(frozen=True)
class ReaderOutput:
    """Source readings and rejects of one batch of bronze records."""

    readings: pl.DataFrame  # SOURCE_READING_SCHEMA
    rejects: pl.DataFrame  # REJECT_SCHEMA


def empty_readings() -> pl.DataFrame:
    """No readings, with the contract's columns."""
    return pl.DataFrame(schema=SOURCE_READING_SCHEMA)


def empty_rejects() -> pl.DataFrame:
    """No rejects, with the contract's columns."""
    return pl.DataFrame(schema=REJECT_SCHEMA)


def conform(readings: pl.DataFrame, rejects: pl.DataFrame) -> ReaderOutput:
    """A reader's frames cast to the contract (columns in order, missing ones null)."""
    return ReaderOutput(
        readings.select(
            [
                (pl.col(n) if n in readings.columns else pl.lit(None)).cast(t).alias(n)
                for n, t in SOURCE_READING_SCHEMA.items()
            ]
        ),
        rejects.select(
            [
                (pl.col(n) if n in rejects.columns else pl.lit(None)).cast(t).alias(n)
                for n, t in REJECT_SCHEMA.items()
            ]
        ),
    )


METRICS = (
    "systolic_blood_pressure",
    "diastolic_blood_pressure",
    "heart_rate",
    "body_weight",
    "blood_glucose",
    "step_count",
    "oxygen_saturation",
    "body_temperature",
    "sleep_duration",
)
"""Metric names; their unit, LOINC code and plausible range are in data_contracts/devices/metrics.yaml."""
