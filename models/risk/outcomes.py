"""Outcomes the risk models learn, built from the data: (a) per person point, an ED visit or unplanned
inpatient admission in the `horizon` days after the cutoff; (b) per inpatient discharge, a readmission or
ED visit in the 30 days after it, with the discharge's LACE index.

An inpatient admission is unplanned unless its admit source says it came from a physician referral or
an outpatient setting (`gp`, `outp`); sources that record no admit source (Synthea) count every
admission as unplanned.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from models.risk.baselines import charlson_category_flags, charlson_index, lace_index
from models.risk.features import POINT, POINT_SCHEMA, active_conditions
from pipelines.gold.records import PersonRecords
from pipelines.gold.utilization import encounter_times

PLANNED_ADMIT_SOURCES = ["gp", "outp"]
EMERGENCY_ADMIT_SOURCES = ["emd"]


def _acute_events(records: PersonRecords) -> pl.DataFrame:
    """ED visits and unplanned admissions: person, start, encounter id."""
    encounters = encounter_times(records)
    unplanned = (pl.col("class_code") == "IMP") & ~pl.col("admit_source_code").fill_null("").is_in(
        PLANNED_ADMIT_SOURCES
    )
    return encounters.filter(
        pl.col("_start").is_not_null() & ((pl.col("class_code") == "EMER") | unplanned)
    ).select("person_id", "id", "_start")


def person_outcomes(records: PersonRecords, points: pl.DataFrame, horizon_days: int) -> pl.DataFrame:
    """`points` with `outcome` (bool): an acute event in [cutoff, cutoff + horizon)."""
    events = _acute_events(records)
    hits = (
        events.join(points.select(list(POINT_SCHEMA)), on="person_id")
        .filter(
            (pl.col("_start") >= pl.col("cutoff"))
            & (pl.col("_start") < pl.col("cutoff") + pl.duration(days=horizon_days))
        )
        .select(POINT)
        .unique()
        .with_columns(pl.lit(True).alias("outcome"))
    )
    return points.join(hits, on=POINT, how="left").with_columns(pl.col("outcome").fill_null(False))


def inpatient_stays(encounters: pl.DataFrame, last_cutoff: datetime, horizon_days: int) -> pl.DataFrame:
    """The inpatient stays of `encounter_times` whose outcome window ends by `last_cutoff` (UTC, naive):
    `person_id`, `encounter_id`, `_admitted`, `cutoff` (discharge instant), `as_of` (its day),
    `length_of_stay_days`, `admit_source_code`. The discharge points, and what the training sample counts."""
    return encounters.filter(
        (pl.col("class_code") == "IMP")
        & pl.col("_end").is_not_null()
        & (pl.col("_end") + pl.duration(days=horizon_days) <= pl.lit(last_cutoff).dt.replace_time_zone("UTC"))
    ).select(
        "person_id",
        pl.col("id").alias("encounter_id"),
        pl.col("_start").alias("_admitted"),
        pl.col("_end").alias("cutoff"),
        pl.col("_end").dt.date().alias("as_of"),
        (pl.col("_end") - pl.col("_start")).dt.total_days().cast(pl.Float64).alias("length_of_stay_days"),
        pl.col("admit_source_code"),
    )


def discharge_points(records: PersonRecords, last_cutoff: datetime, horizon_days: int) -> pl.DataFrame:
    """Every inpatient discharge whose outcome window ends by `last_cutoff` (UTC, naive), with its LACE
    inputs and index and its outcome: `person_id`, `as_of` (discharge day), `cutoff` (discharge instant),
    `encounter_id`, `length_of_stay_days`, `emergent_admission`, `ed_visits_before_6m`, `charlson_index`,
    `lace_index`, `outcome`."""
    encounters = encounter_times(records)
    stays = inpatient_stays(encounters, last_cutoff, horizon_days)
    if not stays.height:
        return pl.DataFrame(schema=_DISCHARGE_SCHEMA)
    ed = encounters.filter(pl.col("class_code") == "EMER").select(
        "person_id", pl.col("_start").alias("_ed"), pl.col("_end").alias("_ed_end")
    )
    per_stay = (
        stays.join(ed, on="person_id", how="left")
        .group_by("encounter_id")
        .agg(
            # ED visits in the 6 months before admission (the visit that led to it excluded)
            (
                (pl.col("_ed") < pl.col("_admitted") - pl.duration(days=1))
                & (pl.col("_ed") >= pl.col("_admitted") - pl.duration(days=183))
            )
            .sum()
            .cast(pl.Float64)
            .alias("ed_visits_before_6m"),
            # admitted through the emergency department: an ED visit ending within a day before admission
            (
                pl.col("_ed").is_not_null()
                & (pl.col("_ed") <= pl.col("_admitted"))
                & (pl.col("_ed_end").fill_null(pl.col("_ed")) >= pl.col("_admitted") - pl.duration(days=1))
            )
            .any()
            .alias("_through_ed"),
        )
    )
    stays = stays.join(per_stay, on="encounter_id", how="left").with_columns(
        (
            pl.col("admit_source_code").is_in(EMERGENCY_ADMIT_SOURCES).fill_null(False)
            | pl.col("_through_ed")
        ).alias("emergent_admission")
    )
    points = stays.select(list(POINT_SCHEMA)).unique(POINT)  # two discharges of a person on one day: once
    conditions = active_conditions(records, points)
    charlson = charlson_category_flags(conditions, POINT)
    stays = stays.join(charlson.select(*POINT, charlson_index(charlson)), on=POINT, how="left").with_columns(
        pl.col("charlson_index").fill_null(0)
    )
    stays = stays.with_columns(
        lace_index(
            pl.col("length_of_stay_days"),
            pl.col("emergent_admission"),
            pl.col("charlson_index"),
            pl.col("ed_visits_before_6m"),
        )
    )
    events = _acute_events(records)
    hits = (
        stays.select("person_id", "encounter_id", "cutoff")
        .join(events, on="person_id")
        .filter(
            (pl.col("id") != pl.col("encounter_id"))
            & (pl.col("_start") > pl.col("cutoff"))
            & (pl.col("_start") <= pl.col("cutoff") + pl.duration(days=horizon_days))
        )
        .select("encounter_id")
        .unique()
        .with_columns(pl.lit(True).alias("outcome"))
    )
    return (
        stays.join(hits, on="encounter_id", how="left")
        .with_columns(pl.col("outcome").fill_null(False))
        .select(list(_DISCHARGE_SCHEMA))
        .sort("cutoff", "encounter_id")
    )


_DISCHARGE_SCHEMA: dict[str, pl.DataType] = {
    **POINT_SCHEMA,
    "encounter_id": pl.String(),
    "length_of_stay_days": pl.Float64(),
    "emergent_admission": pl.Boolean(),
    "ed_visits_before_6m": pl.Float64(),
    "charlson_index": pl.Int32(),
    "lace_index": pl.Int32(),
    "outcome": pl.Boolean(),
}
