"""Data contracts as asset checks: each table's Great Expectations suite, once per table per run, over the
partitions the run rebuilt (evaluated vectorized in Polars, `pipelines.silver.expectations`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import polars as pl
from upath import UPath

from pipelines.lake import parquet_files, read_parquet, scan_parquet, table_path
from pipelines.silver.expectations import ContractOutcome, check_table, load_suites, suite_columns

BUCKET = "bucket"


def rebuilt_rows(
    lake: UPath, layer: str, table: str, keys: Sequence[str | None], columns: Sequence[str]
) -> pl.LazyFrame:
    """A scan of the `columns` (those the table has) of the partitions `keys` of a table ([None]: the whole
    table), with the bucket each row sits in when the table is partitioned. Lazy: the contract is evaluated
    over it without holding a large table's columns in memory at once."""
    folder = table_path(lake, layer, table)
    if list(keys) == [None]:
        files = parquet_files(folder)
        partitioned = False
    else:
        files = [f for key in keys if key is not None for f in parquet_files(folder / f"{BUCKET}={key}")]
        partitioned = True
    if not files:
        return pl.LazyFrame()
    scan = scan_parquet(
        files, hive_partitioning=partitioned, hive_schema={BUCKET: pl.String} if partitioned else None
    )
    present = set(scan.collect_schema().names())
    wanted = [c for c in columns if c in present and c != BUCKET]
    if partitioned:
        wanted.append(BUCKET)
    return scan.select(wanted) if wanted else pl.LazyFrame()


def contract_result(
    lake: UPath,
    layer: str,
    table: str,
    suites: Path,
    key: dg.AssetKey,
    check_name: str,
    keys: Sequence[str | None] = (None,),
) -> dg.AssetCheckResult:
    """The result of `table`'s suite (from the `suites` folder) over the partitions `keys` the run rebuilt
    ([None]: the whole, unpartitioned table); the metadata carries expectation names, counts and the
    failing buckets, never values."""
    suite = load_suites(suites)[table]
    if not keys:
        return dg.AssetCheckResult(
            asset_key=key,
            check_name=check_name,
            passed=True,
            metadata={"expectations_evaluated": 0, "rows_checked": 0, "buckets_checked": ""},
        )
    frame = rebuilt_rows(lake, layer, table, keys, suite_columns(suite))
    group = BUCKET if BUCKET in frame.collect_schema().names() else None
    outcome = check_table(table, frame, suite, group_column=group)
    failing = sorted({b for buckets in outcome.failing_groups.values() for b in buckets})
    buckets = {
        "buckets_checked": ",".join(k for k in keys if k is not None),
        "failing_buckets": ",".join(failing),
    }
    return _result(key, check_name, outcome, outcome.rows, buckets)


def contract_check(
    path: UPath, table: str, suites: Path, key: dg.AssetKey, check_name: str
) -> dg.AssetCheckResult:
    """The result of `table`'s suite on the one Parquet file of an unpartitioned table at `path`."""
    suite = load_suites(suites)[table]
    if path.exists():  # unpartitioned tables are small summaries: read whole, keep the suite's columns
        whole = read_parquet(path)
        frame = whole.select(c for c in suite_columns(suite) if c in whole.columns)
    else:
        frame = pl.DataFrame()
    return _result(key, check_name, check_table(table, frame, suite), frame.height, {})


def _result(
    key: dg.AssetKey, check_name: str, outcome: ContractOutcome, rows: int, extra: dict[str, str]
) -> dg.AssetCheckResult:
    """A contract's outcome as a check result: expectation names and counts, never values."""
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=check_name,
        passed=outcome.success,
        metadata={
            "expectations_evaluated": outcome.evaluated,
            "rows_checked": rows,
            "failures": "; ".join(outcome.failures),
            **extra,
        },
    )
