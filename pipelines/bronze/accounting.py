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

RELEASED = "released"
"""ingest_log status of quarantined records moved into bronze once their Patient arrived."""


def _releases(lake: UPath) -> pl.LazyFrame:
    """Release rows of the ingest log: their ingest key and the file ingest key they released from."""
    return (
        scan_table(lake, BRONZE, INGEST_LOG)
        .filter(pl.col("status") == RELEASED)
        .select("ingest_key", pl.col("detail").str.json_path_match("$.released_from").alias("released_from"))
    )


def released_positions(lake: UPath) -> pl.DataFrame:
    """(released_from, line, entry) of every record released so far: the quarantine rows now in bronze."""
    empty = pl.DataFrame(schema={"released_from": pl.String, "line": pl.Int64, "entry": pl.Int64})
    if not parquet_files(table_path(lake, BRONZE, INGEST_LOG)) or not parquet_files(
        table_path(lake, BRONZE, FHIR_RESOURCES)
    ):
        return empty
    return (
        scan_table(lake, BRONZE, FHIR_RESOURCES)
        .select("ingest_key", "line", "entry")
        .join(_releases(lake), on="ingest_key", how="inner")
        .select("released_from", "line", "entry")
        .collect()
    )


def _rows_per_file(lake: UPath, table: str) -> pl.LazyFrame:
    if not parquet_files(table_path(lake, BRONZE, table)):
        return pl.LazyFrame(schema={"ingest_key": pl.String, "rows": pl.UInt32})
    return scan_table(lake, BRONZE, table).group_by("ingest_key").agg(pl.len().alias("rows"))


def accounting_table(lake: UPath) -> pl.DataFrame:
    """Per ingested file (and per release of quarantined records): records in, and rows actually found in
    bronze tables and quarantine.

    The rule for released records (see `ingest.release_quarantined`): a released record keeps its
    quarantine row under its file's ingest key, and its bronze row sits under the release's own key. The
    release's log row says records_in 0, records_bronze n, records_quarantined -n; the quarantine rows it
    found under its file count -1 each as its `found_quarantine`. So each row of the log balances, and
    over the log records in = bronze + quarantine with every released record counted once, in bronze.
    """
    if not parquet_files(table_path(lake, BRONZE, INGEST_LOG)):
        return pl.DataFrame(schema={"ingest_key": pl.String, "records_in": pl.Int64})
    log = scan_table(lake, BRONZE, INGEST_LOG).filter(pl.col("status").is_in(["ingested", RELEASED]))
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
        .join(_moved_out_of_quarantine(lake), on="ingest_key", how="left")
        .with_columns(
            pl.col("found_bronze").fill_null(0).cast(pl.Int64),
            (
                pl.col("found_quarantine").fill_null(0).cast(pl.Int64)
                - pl.col("moved").fill_null(0).cast(pl.Int64)
            ).alias("found_quarantine"),
        )
        .drop("moved")
        .collect()
    )


def _moved_out_of_quarantine(lake: UPath) -> pl.LazyFrame:
    """Per release (its ingest key): how many of its bronze rows match a quarantine row of the file it
    names (same file ingest key, line and entry)."""
    empty = pl.LazyFrame(schema={"ingest_key": pl.String, "moved": pl.UInt32})
    if not parquet_files(table_path(lake, BRONZE, QUARANTINE)) or not parquet_files(
        table_path(lake, BRONZE, FHIR_RESOURCES)
    ):
        return empty
    quarantined = (
        scan_table(lake, BRONZE, QUARANTINE)
        .select(pl.col("ingest_key").alias("released_from"), "line", "entry")
        .unique()
    )
    return (
        scan_table(lake, BRONZE, FHIR_RESOURCES)
        .select("ingest_key", "line", "entry")
        .join(_releases(lake), on="ingest_key", how="inner")
        .join(quarantined, on=["released_from", "line", "entry"], how="semi", nulls_equal=True)
        .group_by("ingest_key")
        .agg(pl.len().alias("moved"))
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
    """How many file contents appear more than once among ingested files, plus how many quarantined
    records were released into bronze more than once."""
    if not parquet_files(table_path(lake, BRONZE, INGEST_LOG)):
        return 0
    log = scan_table(lake, BRONZE, INGEST_LOG).filter(pl.col("status") == "ingested").collect()
    duplicates = log.height - log["ingest_key"].n_unique()
    released = released_positions(lake)
    return duplicates + released.height - released.n_unique()
