"""Clinical events of every person, in one long table the measure engine filters by value set:
conditions, procedures, observations and their components (with values), immunizations, medication
requests, encounter types, and plausible home blood-pressure readings from devices."""

from __future__ import annotations

import polars as pl

from pipelines.devices.build import DEVICE_READING
from pipelines.fhir.times import fhir_timestamp
from pipelines.gold.records import PersonRecords
from pipelines.measures.engine import EVENT_SCHEMA

# table, code column, system column (or a fixed system), date columns (first present wins), value column
_SOURCES: tuple[tuple[str, str, str, tuple[str, ...], str | None, str], ...] = (
    ("condition", "code", "code_system", ("onset_date_time", "recorded_date"), None, "Condition"),
    ("procedure", "code", "code_system", ("performed_date_time", "performed_start"), None, "Procedure"),
    ("observation", "code", "code_system", ("effective_date_time",), "value_quantity_value", "Observation"),
    (
        "observation_component",
        "code",
        "code_system",
        ("effective_date_time",),
        "value_quantity_value",
        "Observation",
    ),
    ("immunization", "vaccine_code", "vaccine_system", ("occurrence_date_time",), None, "Immunization"),
    (
        "medication_request",
        "medication_code",
        "medication_system",
        ("authored_on",),
        None,
        "MedicationRequest",
    ),
    ("encounter", "type_code", "type_system", ("period_start",), None, "Encounter"),
)
DEVICE_LOINC = {"systolic_blood_pressure": "8480-6", "diastolic_blood_pressure": "8462-4"}


def person_events(records: PersonRecords) -> pl.DataFrame:
    """Every dated, coded event of the persons of `records` (EVENT_SCHEMA)."""
    frames = []
    for table, code, system, dates, value, resource_type in _SOURCES:
        rows = records.table(table)
        if not rows.height or code not in rows.columns:
            continue
        id_column = "observation_id" if table == "observation_component" else "id"
        frames.append(
            rows.select(
                "person_id",
                pl.col(system).alias("system"),
                pl.col(code).alias("code"),
                pl.coalesce([fhir_timestamp(pl.col(d)) for d in dates if d in rows.columns])
                .dt.date()
                .alias("date"),
                (pl.col(value).cast(pl.Float64) if value else pl.lit(None, pl.Float64)).alias("value"),
                pl.format(f"{resource_type}/{{}}", id_column).alias("record"),
                _active(rows) if table == "condition" else pl.lit(None, pl.Boolean).alias("active"),
            )
        )
    readings = records.table(DEVICE_READING)
    if readings.height and "metric" in readings.columns:
        frames.append(
            readings.filter(pl.col("plausible") & pl.col("metric").is_in(list(DEVICE_LOINC))).select(
                "person_id",
                pl.lit("http://loinc.org").alias("system"),
                pl.col("metric").replace_strict(DEVICE_LOINC).alias("code"),
                pl.col("effective_start").dt.date().alias("date"),
                "value",
                pl.format("device_reading/{}", "reading_id").alias("record"),
                pl.lit(None, pl.Boolean).alias("active"),
            )
        )
    if not frames:
        return pl.DataFrame(schema=EVENT_SCHEMA)
    events = pl.concat([f.select([pl.col(n).cast(t) for n, t in EVENT_SCHEMA.items()]) for f in frames])
    return events.filter(pl.col("date").is_not_null() & pl.col("code").is_not_null())


def _active(conditions: pl.DataFrame) -> pl.Expr:
    status = pl.col("clinical_status").is_null() | pl.col("clinical_status").is_in(
        ["active", "recurrence", "relapse"]
    )
    return (status & pl.col("abatement_date_time").is_null()).alias("active")
