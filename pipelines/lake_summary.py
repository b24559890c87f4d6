"""What is in a lake, counted: rows per table and quarantined records by reason.

`patient-insights summary` reads these without running anything, so this module imports no Dagster and
nothing else the pipeline run needs: the summary starts as fast as reading the lake allows.
"""

from __future__ import annotations

import polars as pl
from upath import UPath

from pipelines.bronze.tables import BRONZE, QUARANTINE
from pipelines.lake import parquet_files, scan_table

LAYERS = ("bronze", "silver", "identity", "gold")


def table_row_counts(lake: UPath) -> pl.DataFrame:
    """Rows per lake table, layer by layer."""
    rows: list[tuple[str, str, int]] = []
    for layer in LAYERS:
        folder = lake / layer
        if not folder.exists():
            continue
        for table in sorted(
            p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
        ):
            if parquet_files(folder / table):
                count = scan_table(lake, layer, table).select(pl.len()).collect().item()
                rows.append((layer, table, int(count)))
    return pl.DataFrame(rows, schema={"layer": pl.String, "table": pl.String, "rows": pl.Int64}, orient="row")


def quarantine_by_reason(lake: UPath) -> pl.DataFrame:
    """Quarantined records per target table and reason code, and how many of them were released into
    bronze since (their Patient arrived; their quarantine rows stay as history)."""
    from pipelines.bronze.accounting import released_positions

    if not parquet_files(lake / BRONZE / QUARANTINE):
        return pl.DataFrame(
            schema={
                "target_table": pl.String,
                "reason_code": pl.String,
                "records": pl.UInt32,
                "released": pl.UInt32,
            }
        )
    quarantine = scan_table(lake, BRONZE, QUARANTINE)
    released = released_positions(lake).unique()
    if released.is_empty():  # the common case: no join, and no column read beyond the two counted
        none = pl.lit(None, pl.UInt32).alias("_released")
        quarantine = quarantine.select("target_table", "reason_code", none)
    else:
        quarantine = quarantine.select("target_table", "reason_code", "ingest_key", "line", "entry").join(
            released.lazy().with_columns(pl.lit(1, pl.UInt32).alias("_released")),
            left_on=["ingest_key", "line", "entry"],
            right_on=["released_from", "line", "entry"],
            how="left",
            nulls_equal=True,
        )
    return (
        quarantine.group_by("target_table", "reason_code")
        .agg(pl.len().alias("records"), pl.col("_released").sum().cast(pl.UInt32).alias("released"))
        .sort("target_table", "records", descending=[False, True])
        .collect()
    )
