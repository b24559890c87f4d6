"""`gold/care_gaps` (one row per person per measure) and `gold/care_gap_rates` (per measure)."""

from __future__ import annotations

from datetime import date

import polars as pl

from pipelines.measures.definitions import LABEL, load_measures
from pipelines.measures.engine import PERSON_SCHEMA, evaluate_measure, events_of

CARE_GAPS = "care_gaps"
CARE_GAP_RATES = "care_gap_rates"
CARE_GAP_RATE_HISTORY = "care_gap_rate_history"
INVERSE_MEASURES = {"GSD"}
"""Measures where the numerator is the poor outcome (a lower rate is better)."""


def evaluate_care_gaps(view: pl.DataFrame, events: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Every measure in data_contracts/measures for every person of a `patient_360` frame."""
    persons = view.select([pl.col(n).cast(t) for n, t in PERSON_SCHEMA.items()])
    # each measure gets only the events of its own value sets: its every `matching` then scans a few
    # hundred rows, not all of a bucket's events (same rows out: see `measure_codes`)
    codes = events.select("system", "code").unique()
    return pl.concat(
        [evaluate_measure(m, persons, events_of(m, events, codes), as_of) for m in load_measures()]
    )


def open_gap_counts(view: pl.DataFrame, gaps: pl.DataFrame) -> pl.DataFrame:
    """`view` with `open_care_gaps` filled: the number of the person's open gaps (0 when none)."""
    counts = (
        gaps.filter(pl.col("status") == "open-gap")
        .group_by("person_id")
        .agg(pl.len().cast(pl.Int64).alias("_open"))
    )
    return (
        view.join(counts, on="person_id", how="left", maintain_order="left")
        .with_columns(pl.col("_open").fill_null(0).alias("open_care_gaps"))
        .drop("_open")
    )


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
