"""Counts of the device tables for the command-line summary (no values, no patient ids)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from upath import UPath

from pipelines.devices.build import DEVICE_READING
from pipelines.devices.gold import DEVICE_ADHERENCE, DEVICE_ALERTS, GOLD
from pipelines.lake import parquet_files, scan_table, table_path
from pipelines.silver.build import SILVER


@dataclass(frozen=True)
class DeviceSummary:
    """Small tables for the console."""

    readings: pl.DataFrame  # metric, readings, implausible, patients
    links: pl.DataFrame  # link_method, readings
    alerts: pl.DataFrame  # alert, alerts, patients
    adherence: pl.DataFrame  # metric, enrolled, adherent, median days with readings


def device_summary(lake: UPath) -> DeviceSummary | None:
    """The summary, or None when no device reading was built."""
    if not parquet_files(table_path(lake, SILVER, DEVICE_READING)):
        return None
    readings = scan_table(lake, SILVER, DEVICE_READING)
    by_metric = (
        readings.group_by("metric")
        .agg(
            pl.len().alias("readings"),
            (~pl.col("plausible")).sum().alias("implausible"),
            pl.struct("patient_source", "patient_id").drop_nulls().n_unique().alias("linked patients"),
        )
        .sort("metric")
        .collect()
    )
    links = readings.group_by("link_method").agg(pl.len().alias("readings")).sort("link_method").collect()
    alerts = pl.DataFrame(schema={"alert": pl.String, "alerts": pl.UInt32, "patients": pl.UInt32})
    if parquet_files(table_path(lake, GOLD, DEVICE_ALERTS)):
        alerts = (
            scan_table(lake, GOLD, DEVICE_ALERTS)
            .group_by("alert")
            .agg(
                pl.len().alias("alerts"),
                pl.struct("patient_source", "patient_id").n_unique().alias("patients"),
            )
            .sort("alert")
            .collect()
        )
    adherence = pl.DataFrame(schema={"metric": pl.String})
    if parquet_files(table_path(lake, GOLD, DEVICE_ADHERENCE)):
        adherence = (
            scan_table(lake, GOLD, DEVICE_ADHERENCE)
            .group_by("metric")
            .agg(
                pl.len().alias("enrolled"),
                pl.col("adherent").sum().alias("adherent (>= 16 days)"),
                pl.col("days_with_readings").median().alias("median days with readings"),
            )
            .sort("metric")
            .collect()
        )
    return DeviceSummary(by_metric, links, alerts, adherence)
