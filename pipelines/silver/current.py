"""The current state of each resource from bronze: the latest version wins, deletions remove it.

Latest = greatest `meta.lastUpdated`, then greatest numeric `versionId`, then the most recent ingest
(run, file, position). A Bulk `deleted[]` entry removes every version last updated at or before the
export's `transactionTime` (a later version brings the resource back); a delete without a known
transaction time removes the resource.

A `meta.lastUpdated` from the future (past the run's clock plus the tolerance: the one rule,
pipelines/future_dates.py) is not trusted: were it, that version would stay current for ever, whatever
came after it. A resource with such a version is ordered without lastUpdated (by versionId, then
delivery), and the untrusted value counts as unknown against deletions.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from pipelines.future_dates import is_future

RESOURCE_KEY = ["source", "resource_type", "resource_id"]


def current_resources(
    upserts: pl.LazyFrame, deletes: pl.LazyFrame, clock: datetime | None = None
) -> pl.LazyFrame:
    """`upserts` (bronze rows) reduced to one current row per resource key, deletions applied.

    `deletes` has the resource key and `deleted_at` (the export's transaction time, may be null);
    `clock` is the run's clock, the reference of the future-date rule (default: now).
    """
    future = is_future(pl.col("last_updated"), clock or datetime.now(UTC))
    latest = (
        upserts.with_columns(
            pl.col("version_id").cast(pl.Int64, strict=False).alias("_version"),
            pl.when(future.any().over(RESOURCE_KEY))
            .then(None)
            .otherwise(pl.col("last_updated"))
            .alias("_order"),
            pl.when(future).then(None).otherwise(pl.col("last_updated")).alias("_trusted"),
        )
        .sort(
            [*RESOURCE_KEY, "_order", "_version", "ingest_run_id", "file", "line", "entry"],
            descending=[False, False, False, True, True, True, True, True, True],
            nulls_last=True,
        )
        .unique(subset=RESOURCE_KEY, keep="first", maintain_order=True)
        .drop("_version", "_order")
    )
    last_delete = deletes.group_by(RESOURCE_KEY).agg(
        pl.col("deleted_at").max().alias("deleted_at"), pl.col("deleted_at").is_null().any().alias("_always")
    )
    joined = latest.join(last_delete, on=RESOURCE_KEY, how="left", maintain_order="left")
    removed = pl.col("_always").fill_null(False) | (
        pl.col("deleted_at").is_not_null()
        & (pl.col("_trusted").is_null() | (pl.col("_trusted") <= pl.col("deleted_at")))
    )
    return joined.filter(~removed).drop("deleted_at", "_always", "_trusted")
