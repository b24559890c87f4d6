"""Build the silver tables of one partition (a patient bucket, or `shared`) from bronze.

Each partition is rebuilt whole from its bronze bucket and written atomically, one file per table,
so a re-run on unchanged bronze writes the same silver and a killed run leaves the old partition.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import orjson
import polars as pl
import pyarrow as pa
from upath import UPath

from pipelines.bronze.tables import BRONZE, FHIR_RESOURCES, INGEST_LOG
from pipelines.buckets import SHARED_BUCKET
from pipelines.lake import (
    AtomicParquetWriter,
    parquet_files,
    read_parquet,
    remove_files,
    scan_parquet,
    scan_table,
    table_path,
    write_parquet_atomic,
)
from pipelines.silver.current import RESOURCE_KEY, current_resources
from pipelines.silver.views import SilverView, load_views
from pipelines.sof.collections import CID
from pipelines.sof.engine import view_rows
from pipelines.sof.frames import contexts_from_json

SILVER = "silver"
TYPE_CONFLICTS = "type_conflicts"
PARTITION_FILE = "data.parquet"


@dataclass
class SilverReport:
    """Rows per table and type conflicts of one partition (counts only)."""

    partition: str
    rows: Counter[str] = field(default_factory=Counter)
    resources: int = 0
    type_conflicts: Counter[str] = field(default_factory=Counter)  # "<table>.<column>" -> values nulled
    decoders: Counter[str] = field(default_factory=Counter)


def partition_keys(buckets: int) -> list[str]:
    """Silver partitions: every patient bucket plus `shared` (resources with no patient)."""
    return [f"{i:02d}" for i in range(buckets)] + [SHARED_BUCKET]


RESOURCES_PER_CHUNK = 50_000
"""Resources decoded and flattened at a time; bounds memory however large a bucket grows."""


def build_partition(lake: UPath, partition: str, views: tuple[SilverView, ...] | None = None) -> SilverReport:
    """Rebuild every silver table's `partition` from bronze and return what was written.

    Resource type by resource type, and within a type chunk by chunk, each chunk decoded once for all
    views of its type; rows are appended to per-table files that replace the old partition at the end.
    """
    views = views if views is not None else load_views()
    report = SilverReport(partition)
    writers = {
        v.name: AtomicParquetWriter(_partition_file(lake, v.name, partition), _arrow_schema(v)) for v in views
    }
    conflicts: Counter[tuple[str, str]] = Counter()
    bronze = _BronzeOfPartition.scan(lake, partition)
    try:
        for resource_type in sorted({v.view.resource for v in views}):
            of_type = [v for v in views if v.view.resource == resource_type]
            current = bronze.current(resource_type)
            report.resources += current.height
            for chunk in current.iter_slices(RESOURCES_PER_CHUNK):
                contexts, decoder = contexts_from_json(chunk["raw"])
                report.decoders[decoder] += 1
                sources = chunk.select(pl.int_range(pl.len(), dtype=pl.Int64).alias(CID), "source")
                for silver_view in of_type:
                    rows = view_rows(silver_view.view, contexts, keep_context=True)
                    rows = rows.join(sources, on=CID, how="left", maintain_order="left")
                    typed, nulled = _typed(rows.select("source", *silver_view.dtypes), silver_view)
                    for column, count in nulled.items():
                        conflicts[(silver_view.name, column)] += count
                    report.rows[silver_view.name] += typed.height
                    writers[silver_view.name].write(typed.to_arrow())
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    for name, writer in writers.items():
        _clear_stale(lake, name, partition)
        writer.commit()
    for (table, column), count in conflicts.items():
        report.type_conflicts[f"{table}.{column}"] += count
    conflict_frame = pl.DataFrame(
        [{"table": t, "column": c, "values_nulled": n} for (t, c), n in sorted(conflicts.items())],
        schema={"table": pl.String, "column": pl.String, "values_nulled": pl.Int64},
    )
    _clear_stale(lake, TYPE_CONFLICTS, partition)
    write_parquet_atomic(conflict_frame, _partition_file(lake, TYPE_CONFLICTS, partition))
    return report


def _arrow_schema(silver_view: SilverView) -> pa.Schema:
    return pl.DataFrame(schema={"source": pl.String, **silver_view.dtypes}).to_arrow().schema


@dataclass(frozen=True)
class _BronzeOfPartition:
    """The bronze rows a partition reads, scanned once: its bucket's versions and deletions (deletions
    of non-patient resources sit in `shared`), and each ingest's transaction time."""

    versions: pl.LazyFrame
    deletes: pl.LazyFrame

    @classmethod
    def scan(cls, lake: UPath, partition: str) -> _BronzeOfPartition:
        folder = table_path(lake, BRONZE, FHIR_RESOURCES)
        files = [f for b in {partition, SHARED_BUCKET} for f in parquet_files(folder / f"bucket={b}")]
        if not files:
            empty = pl.LazyFrame(schema={"source": pl.String, "raw": pl.String, "resource_type": pl.String})
            return cls(empty, empty)
        bronze = scan_parquet(files, hive_partitioning=True, hive_schema={"bucket": pl.String})
        log = (
            scan_table(lake, BRONZE, INGEST_LOG)
            .select(
                "ingest_key",
                pl.col("manifest_transaction_time")
                .str.to_datetime("%+", time_zone="UTC", time_unit="us", strict=False)
                .alias("deleted_at"),
            )
            .collect()
            .lazy()
        )
        upserts = bronze.filter((pl.col("bucket") == partition) & (pl.col("operation") == "upsert"))
        deletes = (
            bronze.filter(pl.col("operation") == "delete")
            .select(*RESOURCE_KEY, "ingest_key")
            .collect()
            .lazy()
            .join(log, on="ingest_key", how="left")
            .select(*RESOURCE_KEY, "deleted_at")
        )
        return cls(upserts, deletes)

    def current(self, resource_type: str) -> pl.DataFrame:
        """The current version of every resource of one type (`source`, `raw`), in key order."""
        if "operation" not in self.versions.collect_schema():
            return pl.DataFrame(schema={"source": pl.String, "raw": pl.String})
        of_type = pl.col("resource_type") == resource_type
        return (
            current_resources(self.versions.filter(of_type), self.deletes.filter(of_type))
            .select("source", "raw")
            .collect()
        )


def _typed(rows: pl.DataFrame, silver_view: SilverView) -> tuple[pl.DataFrame, dict[str, int]]:
    """Cast to the declared types; values that do not fit become null and are counted, never hidden."""
    nulled: dict[str, int] = {}
    typed = rows.select(pl.col("source").cast(pl.String))
    for name, dtype in silver_view.dtypes.items():
        column = rows[name]
        converted = column if column.dtype == dtype else _convert(column, dtype)
        lost = int((column.is_not_null() & converted.is_null()).sum())
        if lost:
            nulled[name] = lost
        typed = typed.with_columns(converted.alias(name))
    return typed, nulled


def _convert(column: pl.Series, dtype: pl.DataType) -> pl.Series:
    """A lenient conversion: objects become JSON text for text columns; what cannot convert is null."""
    if dtype == pl.String and isinstance(column.dtype, pl.Struct | pl.List):
        # a conflict path only (an element that is an object where the view expected text): row-wise is fine
        texts = [None if value is None else orjson.dumps(value).decode() for value in column.to_list()]
        return pl.Series(column.name, texts, dtype=pl.String)
    if dtype == pl.Boolean and column.dtype == pl.String:
        return column.replace_strict({"true": True, "false": False}, default=None, return_dtype=pl.Boolean)
    try:
        return column.cast(dtype, strict=False)
    except pl.exceptions.PolarsError:
        return pl.Series(column.name, [None] * column.len(), dtype=dtype)


def _partition_file(lake: UPath, table: str, partition: str) -> UPath:
    return table_path(lake, SILVER, table) / f"bucket={partition}" / PARTITION_FILE


def _clear_stale(lake: UPath, table: str, partition: str) -> None:
    folder = table_path(lake, SILVER, table) / f"bucket={partition}"
    remove_files(p for p in parquet_files(folder) if p.name != PARTITION_FILE)


def read_partition(lake: UPath, table: str, partition: str) -> pl.DataFrame:
    """One partition of a silver table (empty when it has no file)."""
    path = _partition_file(lake, table, partition)
    return read_parquet(path) if path.exists() else pl.DataFrame()
