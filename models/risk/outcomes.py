"""Outcomes the risk models learn, built from the data: (a) per person point, an ED visit or unplanned
inpatient admission in the `horizon` days after the cutoff; (b) per inpatient discharge, a readmission or
ED visit in the 30 days after it, with the discharge's LACE index.

An inpatient admission is unplanned unless its admit source says it came from a physician referral or
an outpatient setting (`gp`, `outp`); sources that record no admit source (Synthea) count every
admission as unplanned.
"""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from models.risk.baselines import charlson_category_flags, charlson_index, lace_index
from models.risk.features import (
    POINT,
    POINT_SCHEMA,
    active_conditions,
    discharge_day_points,
    end_of_day,
    person_points,
)
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


def _stays(encounters: pl.DataFrame) -> pl.DataFrame:
    """Every inpatient stay of `encounter_times` with an end: `person_id`, `encounter_id`, `_admitted`,
    `cutoff` (discharge instant), `as_of` (its day), `length_of_stay_days`, `admit_source_code`. A stay sent
    by two sources under one id is one stay (the earlier discharge of the two)."""
    return (
        encounters.filter((pl.col("class_code") == "IMP") & pl.col("_end").is_not_null())
        .select(
            "person_id",
            pl.col("id").alias("encounter_id"),
            pl.col("_start").alias("_admitted"),
            pl.col("_end").alias("cutoff"),
            pl.col("_end").dt.date().alias("as_of"),
            (pl.col("_end") - pl.col("_start")).dt.total_days().cast(pl.Float64).alias("length_of_stay_days"),
            pl.col("admit_source_code"),
        )
        .sort("person_id", "encounter_id", "cutoff", "_admitted", nulls_last=True)
        .unique(["person_id", "encounter_id"], keep="first", maintain_order=True)
    )


def _outcome_known(last_cutoff: datetime, horizon_days: int) -> pl.Expr:
    """The stay's outcome window (the `horizon_days` after its discharge) has ended by `last_cutoff`."""
    return pl.col("cutoff") + pl.duration(days=horizon_days) <= _utc(last_cutoff)


def inpatient_stays(encounters: pl.DataFrame, last_cutoff: datetime, horizon_days: int) -> pl.DataFrame:
    """The inpatient stays of `encounter_times` whose outcome window ends by `last_cutoff` (UTC, naive),
    with the columns of `_stays`. The discharge points, and what the training sample counts."""
    return _stays(encounters).filter(_outcome_known(last_cutoff, horizon_days))


def open_window_stays(encounters: pl.DataFrame, last_cutoff: datetime, horizon_days: int) -> pl.DataFrame:
    """The inpatient stays of `encounter_times` discharged before `last_cutoff` (UTC, naive) whose outcome
    window has not ended by then, with the columns of `_stays`: exactly the discharges `inpatient_stays`
    leaves out for now. With `last_cutoff` the end of an as-of day and a 30-day horizon, the stays that ended
    on that day or the 29 before it (a discharge 30 days before the as-of day has its outcome known: it is a
    training discharge); a stay still running (no end, or an end after the cutoff) is no discharge yet."""
    return _stays(encounters).filter(
        (pl.col("cutoff") < _utc(last_cutoff)) & ~_outcome_known(last_cutoff, horizon_days)
    )


def with_lace(records: PersonRecords, stays: pl.DataFrame) -> pl.DataFrame:
    """`stays` (of `_stays`) with their LACE inputs and index: `emergent_admission`,
    `ed_visits_before_6m`, `charlson_index` (at the discharge instant; two discharges of a person on one
    day at the first of them), `lace_index`."""
    encounters = encounter_times(records)
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
    points = discharge_day_points(stays)
    conditions = active_conditions(records, points)
    charlson = charlson_category_flags(conditions, POINT)
    stays = stays.join(charlson.select(*POINT, charlson_index(charlson)), on=POINT, how="left").with_columns(
        pl.col("charlson_index").fill_null(0)
    )
    return stays.with_columns(
        lace_index(
            pl.col("length_of_stay_days"),
            pl.col("emergent_admission"),
            pl.col("charlson_index"),
            pl.col("ed_visits_before_6m"),
        )
    )


def first_returns(records: PersonRecords, stays: pl.DataFrame) -> pl.DataFrame:
    """`encounter_id` and `_returned`: the start of the first ED visit or unplanned admission after each
    stay's discharge (`cutoff`), other than the stay itself; stays with none are left out. Outcome (b) is a
    return within the horizon; `gold/discharge_risk` says when a patient came back."""
    return (
        stays.select("person_id", "encounter_id", "cutoff")
        .join(_acute_events(records), on="person_id")
        .filter((pl.col("id") != pl.col("encounter_id")) & (pl.col("_start") > pl.col("cutoff")))
        .group_by("encounter_id")
        .agg(pl.col("_start").min().alias("_returned"))
    )


def discharge_points(records: PersonRecords, last_cutoff: datetime, horizon_days: int) -> pl.DataFrame:
    """Every inpatient discharge whose outcome window ends by `last_cutoff` (UTC, naive), with its LACE
    inputs and index and its outcome: `person_id`, `as_of` (discharge day), `cutoff` (discharge instant),
    `encounter_id`, `length_of_stay_days`, `emergent_admission`, `ed_visits_before_6m`, `charlson_index`,
    `lace_index`, `outcome`."""
    stays = inpatient_stays(encounter_times(records), last_cutoff, horizon_days)
    if not stays.height:
        return pl.DataFrame(schema=_DISCHARGE_SCHEMA)
    stays = with_lace(records, stays)
    returned = pl.col("_returned") <= pl.col("cutoff") + pl.duration(days=horizon_days)
    return (
        stays.join(first_returns(records, stays), on="encounter_id", how="left")
        .with_columns(returned.fill_null(False).alias("outcome"))
        .select(list(_DISCHARGE_SCHEMA))
        .sort("cutoff", "encounter_id")
    )


def recent_discharges(records: PersonRecords, as_of: date, horizon_days: int) -> pl.DataFrame:
    """The discharges of persons living on `as_of` whose outcome window is still open at the end of that
    day (`open_window_stays`), with their LACE inputs and index and `returned_on`: the day of the first ED
    visit or unplanned admission after the discharge, up to the end of `as_of` (null: none yet). Columns of
    `_RECENT_SCHEMA`; `as_of` is the discharge day, as in `discharge_points`."""
    last_cutoff = end_of_day(as_of)
    stays = open_window_stays(encounter_times(records), last_cutoff, horizon_days).join(
        person_points(records.persons, [as_of]).select("person_id"), on="person_id", how="semi"
    )
    if not stays.height:
        return pl.DataFrame(schema=_RECENT_SCHEMA)
    stays = with_lace(records, stays)
    returned = pl.when(pl.col("_returned") < _utc(last_cutoff)).then(pl.col("_returned").dt.date())
    return (
        stays.join(first_returns(records, stays), on="encounter_id", how="left")
        .with_columns(returned.alias("returned_on"))
        .select(list(_RECENT_SCHEMA))
        .sort("person_id", "cutoff", "encounter_id")
    )


def _utc(moment: datetime) -> pl.Expr:
    return pl.lit(moment).dt.replace_time_zone("UTC")


_LACE_SCHEMA: dict[str, pl.DataType] = {
    **POINT_SCHEMA,
    "encounter_id": pl.String(),
    "length_of_stay_days": pl.Float64(),
    "emergent_admission": pl.Boolean(),
    "ed_visits_before_6m": pl.Float64(),
    "charlson_index": pl.Int32(),
    "lace_index": pl.Int32(),
}
_DISCHARGE_SCHEMA: dict[str, pl.DataType] = {**_LACE_SCHEMA, "outcome": pl.Boolean()}
_RECENT_SCHEMA: dict[str, pl.DataType] = {**_LACE_SCHEMA, "returned_on": pl.Date()}
