"""`gold/segment_membership` and `gold/segment_snapshots` for one as-of day (both keep history)."""

from __future__ import annotations

from datetime import date

import polars as pl

from pipelines.measures.definitions import load_measures
from pipelines.segments.engine import load_segments, person_frame, update_membership, update_snapshots

SEGMENT_MEMBERSHIP = "segment_membership"
SEGMENT_SNAPSHOTS = "segment_snapshots"


def evaluate_segments(
    view: pl.DataFrame,
    gaps: pl.DataFrame,
    triggers: pl.DataFrame,
    previous: pl.DataFrame,
    snapshots: pl.DataFrame,
    as_of: date,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Re-evaluate every segment in data_contracts/segments for the persons of `view`: the membership
    history and the static snapshots after this run."""
    people = person_frame(view, gaps, triggers, as_of)
    # a rule may name any defined measure or trigger, even when no person here has that gap or event
    gap_columns = {f"gap_{m.id}" for m in load_measures()}
    people = people.with_columns(
        *[pl.lit(None, pl.String).alias(c) for c in sorted(gap_columns - set(people.columns))],
        *[
            pl.lit(None, pl.Datetime("us", "UTC")).alias(c)
            for c in sorted(_trigger_columns() - set(people.columns))
        ],
    )
    segments = load_segments(set(people.columns))
    membership = update_membership(segments, people, previous, as_of, snapshots)
    return membership, update_snapshots(segments, membership, snapshots, as_of)


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
