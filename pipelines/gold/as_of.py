"""The as-of date of gold computations: configured (`PATIENT_INSIGHTS_AS_OF`), else the data's own
latest transaction time, so that a replay of old data is computed as of its own day.

Values from the future are not used (the one rule, pipelines/future_dates.py, against the run's clock:
no as-of applies yet): a Bulk manifest whose `transactionTime` lies in 2099 would otherwise make 2099 the
whole platform's as-of day (every person decades older, every window empty). Each ignored value is counted
in a warning, never quoted.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import polars as pl
from upath import UPath

from pipelines.bronze.tables import BRONZE, FHIR_RESOURCES, INGEST_LOG
from pipelines.future_dates import future_reason, is_future, trusted
from pipelines.lake import parquet_files, scan_table, table_path

log = logging.getLogger(__name__)


def resolve_as_of(configured: date | None, lake: UPath, clock: datetime | None = None) -> date:
    """`configured`, else the latest Bulk export transaction time, else the latest `meta.lastUpdated` of
    any resource, else today (UTC); values past `clock` (the run's clock, default now) plus the tolerance
    are ignored."""
    if configured is not None:
        return configured
    now = clock or datetime.now(UTC)
    if parquet_files(table_path(lake, BRONZE, INGEST_LOG)):
        times = pl.col("manifest_transaction_time").str.to_datetime("%+", time_zone="UTC", strict=False)
        latest, ignored = (
            scan_table(lake, BRONZE, INGEST_LOG)
            .select(trusted(times, now).max().alias("latest"), is_future(times, now).sum().alias("ignored"))
            .collect()
            .row(0)
        )
        _report(ignored, "Bulk export transaction time")
        if latest is not None:
            return latest.date()
    if parquet_files(table_path(lake, BRONZE, FHIR_RESOURCES)):
        updated, ignored = (
            scan_table(lake, BRONZE, FHIR_RESOURCES)
            .select(
                trusted(pl.col("last_updated"), now).max().alias("latest"),
                is_future(pl.col("last_updated"), now).sum().alias("ignored"),
            )
            .collect()
            .row(0)
        )
        _report(ignored, "meta.lastUpdated")
        if updated is not None:
            return updated.date()
    return now.date()


def _report(ignored: int, what: str) -> None:
    if ignored:
        log.warning(
            "as-of day: %d %s value(s) ignored (future_date: %s)",
            ignored,
            what,
            future_reason("the run's clock"),
        )
