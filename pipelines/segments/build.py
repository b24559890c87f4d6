"""Build `gold/trigger_events` and `gold/segment_membership` for one as-of day (both keep history)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl
from upath import UPath

from pipelines.gold.patient_360 import PATIENT_360
from pipelines.lake import table_path, write_parquet_atomic
from pipelines.measures.build import CARE_GAPS
from pipelines.segments.engine import MEMBERSHIP_SCHEMA, load_segments, person_frame, update_membership
from pipelines.segments.triggers import TRIGGER_EVENTS, TRIGGER_SCHEMA, build_trigger_events

GOLD = "gold"
SEGMENT_MEMBERSHIP = "segment_membership"
TABLE_FILE = "data.parquet"


@dataclass(frozen=True)
class SegmentReport:
    """Counts of one run (no person data)."""

    new_triggers: dict[str, int]
    members: dict[str, int]  # current members per segment


def build_segments(lake: UPath, as_of: date) -> SegmentReport:
    """Fire the new trigger events, then re-evaluate every segment and write both tables."""
    previous_triggers = _read(lake, TRIGGER_EVENTS, TRIGGER_SCHEMA)
    triggers = build_trigger_events(lake, as_of, previous_triggers)
    view = _read(lake, PATIENT_360, {"person_id": pl.String()})
    gaps = _read(
        lake, CARE_GAPS, {"person_id": pl.String(), "measure_id": pl.String(), "status": pl.String()}
    )
    people = person_frame(view, gaps, triggers, as_of)
    segments = load_segments(set(people.columns) | _trigger_columns())
    missing = sorted(_trigger_columns() - set(people.columns))
    people = people.with_columns(pl.lit(None, pl.Datetime("us", "UTC")).alias(c) for c in missing)
    membership = update_membership(
        segments, people, _read(lake, SEGMENT_MEMBERSHIP, MEMBERSHIP_SCHEMA), as_of
    )
    write_parquet_atomic(triggers, table_path(lake, GOLD, TRIGGER_EVENTS) / TABLE_FILE)
    write_parquet_atomic(membership, table_path(lake, GOLD, SEGMENT_MEMBERSHIP) / TABLE_FILE)
    fresh = triggers.filter(pl.col("fired_on") == as_of)
    return SegmentReport(
        dict(fresh.group_by("kind").len().sort("kind").iter_rows()),
        dict(
            membership.filter(pl.col("exited").is_null())
            .group_by("segment_id")
            .len()
            .sort("segment_id")
            .iter_rows()
        ),
    )


def _trigger_columns() -> set[str]:
    """Trigger columns a rule may name even when no such event has happened yet."""
    kinds = (
        "inpatient_discharge",
        "ed_discharge",
        "new_diagnosis",
        "missed_appointment",
        "device_alert",
        "negative_survey",
    )
    alerts = (
        "hypertensive_urgency",
        "sustained_hypertension",
        "hypoglycemia",
        "hyperglycemia",
        "low_oxygen_saturation",
        "weight_gain_heart_failure",
    )
    return {f"trigger_{k}" for k in kinds} | {f"trigger_device_alert_{a}" for a in alerts}


def _read(lake: UPath, table: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    path = table_path(lake, GOLD, table) / TABLE_FILE
    return pl.read_parquet(str(path)) if path.exists() else pl.DataFrame(schema=schema)
