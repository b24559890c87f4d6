"""The current state of each resource from bronze: the latest version wins, deletions remove it.

Latest = greatest `meta.lastUpdated`, then greatest numeric `versionId`, then the most recent ingest
(run, file, position). A Bulk `deleted[]` entry removes every version last updated at or before the
export's `transactionTime` (a later version brings the resource back); a delete without a known
transaction time removes the resource.
"""

from __future__ import annotations

import polars as pl

RESOURCE_KEY = ["source", "resource_type", "resource_id"]


def current_resources(upserts: pl.LazyFrame, deletes: pl.LazyFrame) -> pl.LazyFrame:
    """`upserts` (bronze rows) reduced to one current row per resource key, deletions applied.

    `deletes` has the resource key and `deleted_at` (the export's transaction time, may be null).
    """
    latest = (
        upserts.with_columns(pl.col("version_id").cast(pl.Int64, strict=False).alias("_version"))
        .sort(
            [*RESOURCE_KEY, "last_updated", "_version", "ingest_run_id", "file", "line", "entry"],
            descending=[False, False, False, True, True, True, True, True, True],
            nulls_last=True,
        )
        .unique(subset=RESOURCE_KEY, keep="first", maintain_order=True)
        .drop("_version")
    )
    last_delete = deletes.group_by(RESOURCE_KEY).agg(
        pl.col("deleted_at").max().alias("deleted_at"), pl.col("deleted_at").is_null().any().alias("_always")
    )
    joined = latest.join(last_delete, on=RESOURCE_KEY, how="left", maintain_order="left")
    removed = pl.col("_always").fill_null(False) | (
        pl.col("deleted_at").is_not_null()
        & (pl.col("last_updated").is_null() | (pl.col("last_updated") <= pl.col("deleted_at")))
    )
    return joined.filter(~removed).drop("deleted_at", "_always")
