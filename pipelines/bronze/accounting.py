"""Accounting over the stored bronze tables: what the ingest log promised is what the lake holds."""

from __future__ import annotations

import polars as pl
from upath import UPath

from pipelines.bronze.tables import (
    BRONZE,
    DEVICE_RECORDS,
    FEEDBACK_RECORDS,
    FHIR_RESOURCES,
    INGEST_LOG,
    OUTREACH_EVENTS,
    QUARANTINE,
)
from pipelines.lake import parquet_files, scan_table, table_path


def _rows_per_file(lake: UPath, table: str) -> pl.LazyFrame:
    if not parquet_files(table_path(lake, BRONZE, table)):
        return pl.LazyFrame(schema={"ingest_key": pl.String, "rows": pl.UInt32})
    return scan_table(lake, BRONZE, table).group_by("ingest_key").agg(pl.len().alias("rows"))


def accounting_table(lake: UPath) -> pl.DataFrame:
    """Per ingested file: records in, and rows actually found in bronze tables and quarantine."""
    if not parquet_files(table_path(lake, BRONZE, INGEST_LOG)):
        return pl.DataFrame(schema={"ingest_key": pl.String, "records_in": pl.Int64})
    log = scan_table(lake, BRONZE, INGEST_LOG).filter(pl.col("status") == "ingested")
    bronze = (
        pl.concat(
            [
                _rows_per_file(lake, t)
                for t in (FHIR_RESOURCES, DEVICE_RECORDS, FEEDBACK_RECORDS, OUTREACH_EVENTS)
            ]
        )
        .group_by("ingest_key")
        .agg(pl.col("rows").sum().alias("found_bronze"))
    )
    quarantine = _rows_per_file(lake, QUARANTINE).rename({"rows": "found_quarantine"})
    return (
        log.select(
            "source",
            "file",
            "file_sha256",
            "ingest_key",
            "records_in",
            "records_bronze",
            "records_quarantined",
        )
        .join(bronze, on="ingest_key", how="left")
        .join(quarantine, on="ingest_key", how="left")
        .with_columns(pl.col("found_bronze", "found_quarantine").fill_null(0).cast(pl.Int64))
        .collect()
    )


def accounting_discrepancies(lake: UPath) -> pl.DataFrame:
    """Files whose records in ≠ rows found in bronze + quarantine (or ≠ what the log recorded)."""
    table = accounting_table(lake)
    if table.is_empty():
        return table
    return table.filter(
        (pl.col("records_in") != pl.col("found_bronze") + pl.col("found_quarantine"))
        | (pl.col("records_bronze") != pl.col("found_bronze"))
        | (pl.col("records_quarantined") != pl.col("found_quarantine"))
    )


def duplicate_ingests(lake: UPath) -> int:
    """How many file contents appear more than once among ingested files."""
    if not parquet_files(table_path(lake, BRONZE, INGEST_LOG)):
        return 0
    log = scan_table(lake, BRONZE, INGEST_LOG).filter(pl.col("status") == "ingested").collect()
    return log.height - log["ingest_key"].n_unique()
