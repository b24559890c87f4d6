"""`gold/timeline`: the patient's story, one row per event, for the dashboard.

Encounters, conditions, observations, procedures, immunizations, medication requests, communications,
device alerts and survey answers of every source record of a person, with a time, a kind, a code, a short
display text and the source record it came from. Events after the as-of date are left out.
"""

from __future__ import annotations

from datetime import date, datetime, time

import polars as pl

from pipelines.devices.gold import DEVICE_ALERTS, GOLD
from pipelines.fhir.times import fhir_timestamp
from pipelines.gold.records import PersonRecords

TIMELINE = "timeline"
TIMELINE_SCHEMA: dict[str, pl.DataType] = {
    "person_id": pl.String(),
    "time": pl.Datetime("us", "UTC"),
    "kind": pl.String(),  # encounter | condition | observation | procedure | immunization | medication | ...
    "code": pl.String(),
    "display": pl.String(),
    "source": pl.String(),
    "record": pl.String(),  # '<ResourceType>/<id>' or the gold table row it came from
}

# table, kind, time column, code column, display expression, resource type
_EVENTS: tuple[tuple[str, str, str, str, pl.Expr, str], ...] = (
    (
        "encounter",
        "encounter",
        "period_start",
        "type_code",
        pl.coalesce("type_display", "class_code"),
        "Encounter",
    ),
    ("condition", "condition", "onset_date_time", "code", pl.col("code_display"), "Condition"),
    ("observation", "observation", "effective_date_time", "code", pl.col("code_display"), "Observation"),
    ("procedure", "procedure", "performed_date_time", "code", pl.col("code_display"), "Procedure"),
    (
        "immunization",
        "immunization",
        "occurrence_date_time",
        "vaccine_code",
        pl.col("vaccine_display"),
        "Immunization",
    ),
    (
        "medication_request",
        "medication",
        "authored_on",
        "medication_code",
        pl.col("medication_display"),
        "MedicationRequest",
    ),
    # a message to or from the patient: its category and medium, not its text (that stays in silver)
    (
        "communication",
        "conversation",
        "sent",
        "category_code",
        pl.format("{} message", "medium_code"),
        "Communication",
    ),
)


def build_timeline(records: PersonRecords, as_of: date) -> pl.DataFrame:
    """Every dated event of the persons of `records` up to the end of `as_of`, newest first per person."""
    end = pl.lit(datetime.combine(as_of, time(23, 59, 59, 999999))).dt.replace_time_zone("UTC")
    frames = []
    for table, kind, when, code, display, resource_type in _EVENTS:
        rows = records.table(table)
        if not rows.height or when not in rows.columns:
            continue
        frames.append(
            rows.select(
                "person_id",
                fhir_timestamp(pl.col(when)).alias("time"),
                pl.lit(kind).alias("kind"),
                pl.col(code).alias("code"),
                display.alias("display"),
                "source",
                pl.format(f"{resource_type}/{{}}", "id").alias("record"),
            )
        )
    answers = records.table("questionnaire_response_item")
    if answers.height and "authored" in answers.columns:
        frames.append(
            answers.group_by("person_id", "source", "questionnaire_response_id", "authored", "questionnaire")
            .agg(pl.len().alias("answers"))
            .select(
                "person_id",
                fhir_timestamp(pl.col("authored")).alias("time"),
                pl.lit("survey").alias("kind"),
                pl.col("questionnaire").alias("code"),
                pl.format("survey answered ({} answers)", "answers").alias("display"),
                "source",
                pl.format("QuestionnaireResponse/{}", "questionnaire_response_id").alias("record"),
            )
        )
    alerts = records.table(DEVICE_ALERTS, layer=GOLD)
    if alerts.height and "alert" in alerts.columns:
        frames.append(
            alerts.select(
                "person_id",
                pl.col("triggered_at").alias("time"),
                pl.lit("device_alert").alias("kind"),
                pl.col("alert").alias("code"),
                pl.format("{} ({})", pl.col("alert").str.replace_all("_", " "), "threshold").alias("display"),
                pl.col("patient_source").alias("source"),
                pl.format("device_alerts/{}", pl.col("reading_ids").list.first()).alias("record"),
            )
        )
    if not frames:
        return pl.DataFrame(schema=TIMELINE_SCHEMA)
    events = pl.concat([f.select([pl.col(n).cast(t) for n, t in TIMELINE_SCHEMA.items()]) for f in frames])
    # every column in the order: rows that tie on person, time, kind and record (one record sent by two
    # sources) would otherwise come out in the order the records were read, which differs between a full
    # and an incremental run (100,000 people: one bucket's timeline differed)
    keys = ["person_id", "time", "kind", "record", "source", "code", "display"]
    return events.filter(pl.col("time").is_not_null() & (pl.col("time") <= end)).sort(
        keys, descending=[key == "time" for key in keys]
    )
