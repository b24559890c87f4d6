"""The as-of date of gold computations: configured (`PATIENT_INSIGHTS_AS_OF`), else the data's own
latest transaction time, so that a replay of old data is computed as of its own day."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
from upath import UPath

from pipelines.bronze.tables import BRONZE, FHIR_RESOURCES, INGEST_LOG
from pipelines.lake import parquet_files, scan_table, table_path


def resolve_as_of(configured: date | None, lake: UPath) -> date:
    """`configured`, else the latest Bulk export transaction time, else the latest `meta.lastUpdated` of
    any resource, else today (UTC)."""
    if configured is not None:
        return configured
    if parquet_files(table_path(lake, BRONZE, INGEST_LOG)):
        latest = (
            scan_table(lake, BRONZE, INGEST_LOG)
            .select(
                pl.col("manifest_transaction_time").str.to_datetime("%+", time_zone="UTC", strict=False).max()
            )
            .collect()
            .item()
        )
        if latest is not None:
            return latest.date()
    if parquet_files(table_path(lake, BRONZE, FHIR_RESOURCES)):
        updated = (
            scan_table(lake, BRONZE, FHIR_RESOURCES).select(pl.col("last_updated").max()).collect().item()
        )
        if updated is not None:
            return updated.date()
    return datetime.now(UTC).date()
