"""Plausibility flags and de-duplication of normalized device readings.

Implausible readings stay in `device_reading` with `plausible = false` and the rule that fired, so a
care manager can see what the device sent; aggregates and alerts use plausible readings only.
"""

from __future__ import annotations

import polars as pl

from pipelines.devices.units import metric_catalogue

DUPLICATE_KEY = [
    "source",
    "vendor_user_id",
    "device_id",
    "metric",
    "effective_start",
    "effective_end",
    "statistic",
]
"""Two uploads are the same reading when these and the value (to 1e-6 of the canonical unit) agree."""


def flag_plausibility(readings: pl.DataFrame) -> pl.DataFrame:
    """Add `plausible` and `implausible_reason` (`below_range`, `above_range`, or
    `systolic_not_above_diastolic` for a blood-pressure pair taken together)."""
    bounds = pl.DataFrame(
        [(m.name, m.plausible[0], m.plausible[1]) for m in metric_catalogue().values()],
        schema={"metric": pl.String, "_low": pl.Float64, "_high": pl.Float64},
        orient="row",
    )
    pairs = (
        readings.filter(pl.col("metric").is_in(["systolic_blood_pressure", "diastolic_blood_pressure"]))
        .filter(pl.col("group_id").is_not_null())
        .group_by("group_id", "statistic")
        .agg(
            pl.col("value").filter(pl.col("metric") == "systolic_blood_pressure").first().alias("_sys"),
            pl.col("value").filter(pl.col("metric") == "diastolic_blood_pressure").first().alias("_dia"),
        )
        .filter(pl.col("_sys") <= pl.col("_dia"))
        .select("group_id", "statistic", pl.lit(True).alias("_inverted"))
    )
    flagged = (
        readings.join(bounds, on="metric", how="left", maintain_order="left")
        .join(pairs, on=["group_id", "statistic"], how="left", nulls_equal=True, maintain_order="left")
        .with_columns(
            pl.when(pl.col("value") < pl.col("_low"))
            .then(pl.lit("below_range"))
            .when(pl.col("value") > pl.col("_high"))
            .then(pl.lit("above_range"))
            .when(
                pl.col("_inverted").fill_null(False)
                & pl.col("metric").is_in(["systolic_blood_pressure", "diastolic_blood_pressure"])
            )
            .then(pl.lit("systolic_not_above_diastolic"))
            .alias("implausible_reason")
        )
    )
    return flagged.with_columns(pl.col("implausible_reason").is_null().alias("plausible")).drop(
        "_low", "_high", "_inverted"
    )


def deduplicate(readings: pl.DataFrame) -> pl.DataFrame:
    """One row per distinct reading; `uploads` counts how many times it was received. The earliest
    received copy (by `received_order`) is kept, so a re-delivery never changes which row survives."""
    key = [*DUPLICATE_KEY, "_value_key"]
    # `normalize_units` lets no value beyond VALUE_LIMIT (1e12) through, so the key fits an Int64; the cast
    # is still lenient so that a value that did not pass there can never stop the whole device job
    keyed = readings.with_columns(
        (pl.col("value") * 1e6).round().cast(pl.Int64, strict=False).alias("_value_key")
    )
    counted = keyed.with_columns(pl.len().over(key).cast(pl.Int64).alias("uploads"))
    return (
        counted.sort("received_order")
        .unique(subset=key, keep="first", maintain_order=True)
        .drop("_value_key")
    )
