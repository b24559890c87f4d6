"""`gold/trigger_events`: things that just happened and may call for outreach.

Inpatient and ED discharges, a first diagnosis of a tracked chronic condition, a missed appointment, a
device alert, and a negative survey answer (a 0-10 rating of 6 or less), each with its person, time,
source record and a stable `event_id`. Only events in the last `TRIGGER_LOOKBACK_DAYS` before the as-of
date are considered, and an event fires once: a later run keeps the day it first fired (`fired_on`), so a
daily run never fires the same trigger twice.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import polars as pl

from pipelines.devices.gold import DEVICE_ALERTS, GOLD
from pipelines.fhir.times import fhir_timestamp
from pipelines.gold.patient_360 import clinical_codes
from pipelines.gold.records import PersonRecords

TRIGGER_EVENTS = "trigger_events"
TRIGGER_LOOKBACK_DAYS = 30
NEGATIVE_RATING = 6
TRIGGER_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String(),  # '<kind>|<record>': the same event always has the same id
    "person_id": pl.String(),
    "kind": pl.String(),  # inpatient_discharge | ed_discharge | new_diagnosis | missed_appointment | ...
    "time": pl.Datetime("us", "UTC"),
    "detail": pl.String(),  # condition group, alert rule, rating: never free text
    "record": pl.String(),
    "fired_on": pl.Date(),  # the as-of day of the run that first fired it
}


def build_trigger_events(records: PersonRecords, as_of: date, previous: pl.DataFrame) -> pl.DataFrame:
    """Previously fired events of these persons plus the new ones of this run (TRIGGER_SCHEMA)."""
    end = datetime.combine(as_of, time(23, 59, 59, 999999)).replace(tzinfo=None)
    until = pl.lit(end).dt.replace_time_zone("UTC")
    since = pl.lit(end - timedelta(days=TRIGGER_LOOKBACK_DAYS)).dt.replace_time_zone("UTC")
    columns = {n: t for n, t in TRIGGER_SCHEMA.items() if n != "fired_on"}
    found = [f.select([pl.col(n).cast(t) for n, t in columns.items()]) for f in _events(records)]
    candidates = pl.concat(found) if found else pl.DataFrame(schema=columns)
    recent = candidates.filter(pl.col("time").is_between(since, until)).unique(
        subset="event_id", keep="first"
    )
    known = previous.select("event_id") if previous.height else pl.DataFrame(schema={"event_id": pl.String})
    new = recent.join(known, on="event_id", how="anti").with_columns(pl.lit(as_of).alias("fired_on"))
    frames = [
        f.select([pl.col(n).cast(t) for n, t in TRIGGER_SCHEMA.items()]) for f in (previous, new) if f.height
    ]
    if not frames:
        return pl.DataFrame(schema=TRIGGER_SCHEMA)
    return pl.concat(frames).sort("person_id", "time", "event_id")


def _events(records: PersonRecords) -> list[pl.DataFrame]:
    frames: list[pl.DataFrame] = []
    encounters = records.table("encounter")
    if encounters.height and "class_code" in encounters.columns:
        discharges = encounters.filter(
            pl.col("class_code").is_in(["IMP", "EMER"]) & pl.col("period_end").is_not_null()
        )
        kind = (
            pl.when(pl.col("class_code") == "IMP")
            .then(pl.lit("inpatient_discharge"))
            .otherwise(pl.lit("ed_discharge"))
        )
        frames.append(
            discharges.select(
                pl.format("{}|Encounter/{}", kind, "id").alias("event_id"),
                "person_id",
                kind.alias("kind"),
                fhir_timestamp(pl.col("period_end")).alias("time"),
                pl.col("discharge_disposition_code").alias("detail"),
                pl.format("Encounter/{}", "id").alias("record"),
            )
        )
    conditions = records.table("condition")
    if conditions.height and "code" in conditions.columns:
        groups = pl.DataFrame(
            [
                (code, group)
                for group, lists in clinical_codes()["chronic_conditions"].items()
                for code in lists["snomed"]
            ],
            schema={"code": pl.String, "group": pl.String},
            orient="row",
        )
        dated = conditions.join(groups, on="code").with_columns(
            pl.coalesce(
                fhir_timestamp(pl.col("onset_date_time")), fhir_timestamp(pl.col("recorded_date"))
            ).alias("time")
        )
        first = dated.sort("time").unique(subset=["person_id", "group"], keep="first")
        frames.append(
            first.select(
                pl.format("new_diagnosis|Condition/{}", "id").alias("event_id"),
                "person_id",
                pl.lit("new_diagnosis").alias("kind"),
                "time",
                pl.col("group").alias("detail"),
                pl.format("Condition/{}", "id").alias("record"),
            )
        )
    appointments = records.table("appointment")
    if appointments.height and "status" in appointments.columns:
        frames.append(
            appointments.filter(pl.col("status") == "noshow").select(
                pl.format("missed_appointment|Appointment/{}", "id").alias("event_id"),
                "person_id",
                pl.lit("missed_appointment").alias("kind"),
                fhir_timestamp(pl.col("start_time")).alias("time"),
                pl.col("service_type_code").alias("detail"),
                pl.format("Appointment/{}", "id").alias("record"),
            )
        )
    alerts = records.table(DEVICE_ALERTS, layer=GOLD)
    if alerts.height and "alert" in alerts.columns:
        frames.append(
            alerts.select(
                pl.format("device_alert|{}|{}", "alert", pl.col("reading_ids").list.first()).alias(
                    "event_id"
                ),
                "person_id",
                pl.lit("device_alert").alias("kind"),
                pl.col("triggered_at").alias("time"),
                pl.col("alert").alias("detail"),
                pl.format("device_reading/{}", pl.col("reading_ids").list.first()).alias("record"),
            )
        )
    answers = records.table("questionnaire_response_item")
    if answers.height and "item_link_id" in answers.columns:
        frames.append(
            answers.filter(
                (pl.col("item_link_id") == "rating") & (pl.col("answer_value_integer") <= NEGATIVE_RATING)
            ).select(
                pl.format("negative_survey|QuestionnaireResponse/{}", "questionnaire_response_id").alias(
                    "event_id"
                ),
                "person_id",
                pl.lit("negative_survey").alias("kind"),
                fhir_timestamp(pl.col("authored")).alias("time"),
                pl.format("rating {}", "answer_value_integer").alias("detail"),
                pl.format("QuestionnaireResponse/{}", "questionnaire_response_id").alias("record"),
            )
        )
    return frames
