"""Utilization: a person's ED visits, inpatient admissions, days in hospital and outpatient visits in the
days before a moment, and their last discharge. One definition for everything that shows or uses them:
the 360 view (`gold/patient_360`) counts them at the end of its as-of day, the risk features at each
point's cutoff, and a care manager reading "2 hospital admissions in the last 12 months" in a risk reason
finds the same 2 in the 360 view.

An encounter counts once it has started before the cutoff, in a window when it started at most that many
days before it. A stay still running at the cutoff (no end yet, or an end after it) is an admission whose
days in hospital so far are counted, never days still to come; a stay counts as discharged only once its
end is before the cutoff.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from pipelines.fhir.times import fhir_timestamp
from pipelines.gold.records import PersonRecords

ED, INPATIENT, OUTPATIENT = "EMER", "IMP", "AMB"
"""The encounter classes (v3 ActCode) counted as ED visits, inpatient stays and outpatient visits."""
WINDOW_DAYS = {"6m": 183, "12m": 365, "36m": 1096}
"""Days counted back from the cutoff for each window name (`ed_visits_12m` looks back 365 days)."""
MEASURES = ("ed_visits", "inpatient_admissions", "outpatient_visits", "bed_days")
ENCOUNTER_COLUMNS = ("person_id", "id", "class_code", "admit_source_code", "period_start", "period_end")
"""The encounter columns `encounter_times_of` reads."""
_TIMES_KEY = ("derived", "encounter_times")
_TIMES_SCHEMA: dict[str, pl.DataType] = {
    "person_id": pl.String(),
    "id": pl.String(),
    "class_code": pl.String(),
    "admit_source_code": pl.String(),
    "_start": pl.Datetime("us", "UTC"),
    "_end": pl.Datetime("us", "UTC"),
}


def encounter_times(records: PersonRecords) -> pl.DataFrame:
    """The encounters of `records` with parsed start and end instants (`_start`, `_end`, UTC) and class."""
    # kept with the records' tables: the 360 view, the risk features, both risk outcomes and the discharge
    # points all need them, and parsing FHIR times is most of what they cost
    if _TIMES_KEY not in records._tables:
        records._tables[_TIMES_KEY] = encounter_times_of(records.table("encounter"))
    return records._tables[_TIMES_KEY]


def encounter_times_of(encounters: pl.DataFrame) -> pl.DataFrame:
    """`encounter_times` of encounter rows with `person_id` (only ENCOUNTER_COLUMNS are read)."""
    if not encounters.height or "class_code" not in encounters.columns:
        return pl.DataFrame(schema=_TIMES_SCHEMA)
    return encounters.select(
        "person_id",
        "id",
        "class_code",
        pl.col("admit_source_code") if "admit_source_code" in encounters.columns else pl.lit(None, pl.String),
        fhir_timestamp(pl.col("period_start")).alias("_start"),
        fhir_timestamp(pl.col("period_end")).alias("_end"),
    )


def known_encounters(times: pl.DataFrame, points: pl.DataFrame) -> pl.DataFrame:
    """The encounters of `encounter_times` joined to their person's points (`person_id`, `cutoff` and the
    point's other columns), kept when they started before the point's cutoff."""
    return times.join(points, on="person_id").filter(
        pl.col("_start").is_not_null() & (pl.col("_start") < pl.col("cutoff"))
    )


def within(days: int, at: str = "_start") -> pl.Expr:
    """`at` is at most `days` days before the cutoff."""
    return pl.col(at) >= pl.col("cutoff") - pl.duration(days=days)


def stay_days() -> pl.Expr:
    """Whole days in hospital of a stay known at the cutoff, at least 1: to its discharge, or to the cutoff
    for a stay still running then (no end recorded yet, or an end after the cutoff)."""
    until = pl.min_horizontal(pl.col("_end").fill_null(pl.col("cutoff")), pl.col("cutoff"))
    return (until - pl.col("_start")).dt.total_days().clip(lower_bound=1)


def discharged() -> pl.Expr:
    """An inpatient stay that ended before the cutoff."""
    ended = pl.col("_end").is_not_null() & (pl.col("_end") < pl.col("cutoff"))
    return (pl.col("class_code") == INPATIENT) & ended


def window_counts(windows: Mapping[str, int] | None = None) -> list[pl.Expr]:
    """Aggregations over `known_encounters` grouped by point: `<measure>_<window>` for every measure of
    MEASURES and window (name → days, default WINDOW_DAYS), as unsigned counts."""
    windows = WINDOW_DAYS if windows is None else windows
    ed, inpatient, outpatient = (pl.col("class_code") == c for c in (ED, INPATIENT, OUTPATIENT))
    out = []
    for name, days in windows.items():
        recent = within(days)
        out += [
            (ed & recent).sum().alias(f"ed_visits_{name}"),
            (inpatient & recent).sum().alias(f"inpatient_admissions_{name}"),
            (outpatient & recent).sum().alias(f"outpatient_visits_{name}"),
            pl.when(inpatient & recent).then(stay_days()).otherwise(0).sum().alias(f"bed_days_{name}"),
        ]
    return out


def last_discharge() -> pl.Expr:
    """Aggregation over `known_encounters` grouped by point: the latest discharge before the cutoff."""
    return pl.col("_end").filter(discharged()).max().alias("last_discharge")
