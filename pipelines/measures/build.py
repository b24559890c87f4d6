"""Build `gold/care_gaps` (one row per person per measure) and `gold/care_gap_rates` (per measure)."""

from __future__ import annotations

from datetime import date

import polars as pl
from upath import UPath

from pipelines.gold.patient_360 import PATIENT_360
from pipelines.lake import table_path, write_parquet_atomic
from pipelines.measures.definitions import LABEL, load_measures
from pipelines.measures.engine import PERSON_SCHEMA, evaluate_measure
from pipelines.measures.events import person_events

GOLD = "gold"
CARE_GAPS = "care_gaps"
CARE_GAP_RATES = "care_gap_rates"
TABLE_FILE = "data.parquet"
INVERSE_MEASURES = {"GSD"}
"""Measures where the numerator is the poor outcome (a lower rate is better)."""


def build_care_gaps(lake: UPath, as_of: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Evaluate every measure for every person of `gold/patient_360`; write and return both tables."""
    view = pl.read_parquet(str(table_path(lake, GOLD, PATIENT_360) / TABLE_FILE))
    persons = view.select([pl.col(n).cast(t) for n, t in PERSON_SCHEMA.items()])
    events = person_events(lake)
    gaps = pl.concat([evaluate_measure(m, persons, events, as_of) for m in load_measures()])
    rates = care_gap_rates(gaps)
    write_parquet_atomic(gaps, table_path(lake, GOLD, CARE_GAPS) / TABLE_FILE)
    write_parquet_atomic(rates, table_path(lake, GOLD, CARE_GAP_RATES) / TABLE_FILE)
    return gaps, rates


def care_gap_rates(gaps: pl.DataFrame) -> pl.DataFrame:
    """Per measure: eligible, exclusions, denominator, numerator and rate, with the period stamped.

    The numerator counts closed (and prospective) gaps; for inverse measures it counts open gaps, the
    poor outcome, as the measure is defined."""
    inverse = pl.col("measure_id").is_in(list(INVERSE_MEASURES))
    closed = pl.col("status").is_in(["closed-gap", "prospective-gap"])
    return (
        gaps.group_by("measure_id", "measure_version", "period_start", "period_end", "as_of")
        .agg(
            (pl.col("status") != "not-applicable").sum().cast(pl.Int64).alias("eligible"),
            (pl.col("status") == "excluded").sum().cast(pl.Int64).alias("exclusions"),
            pl.col("status")
            .is_in(["open-gap", "closed-gap", "prospective-gap"])
            .sum()
            .cast(pl.Int64)
            .alias("denominator"),
            pl.when(inverse.first())
            .then((pl.col("status") == "open-gap").sum())
            .otherwise(closed.sum())
            .cast(pl.Int64)
            .alias("numerator"),
            (pl.col("status") == "open-gap").sum().cast(pl.Int64).alias("open_gaps"),
            inverse.first().alias("inverse"),
        )
        .with_columns(
            # no denominator, no rate (null, not NaN: a measure nobody is eligible for has no rate)
            pl.when(pl.col("denominator") > 0)
            .then(pl.col("numerator") / pl.col("denominator"))
            .alias("rate"),
            pl.lit(LABEL).alias("label"),
        )
        .sort("measure_id")
    )
