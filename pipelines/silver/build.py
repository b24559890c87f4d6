"""Build the silver tables of one partition (a patient bucket, or `shared`) from bronze.

Each partition is rebuilt whole from its bronze bucket and written atomically, one file per table,
so a re-run on unchanged bronze writes the same silver and a killed run leaves the old partition.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import polars as pl
import pyarrow as pa
from upath import UPath

from pipelines.bronze.tables import BRONZE, FHIR_RESOURCES, INGEST_LOG
from pipelines.buckets import SHARED_BUCKET
from pipelines.fhir.birth_dates import birth_date_problem
from pipelines.fhir.times import fhir_timestamp
from pipelines.future_dates import FUTURE_DATE, is_future
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
from pipelines.silver.views import SilverView, column_formats, column_members, load_views
from pipelines.sof.collections import CID
from pipelines.sof.engine import view_rows
from pipelines.sof.frames import contexts_from_json

SILVER = "silver"
TYPE_CONFLICTS = "type_conflicts"
TYPE_CONFLICT = "type_conflict"
TYPE_CONFLICTS_SCHEMA = {
    "table": pl.String,
    "column": pl.String,
    # type_conflict: values of the wrong type (nulled, or converted and kept: a Quantity value "7.1");
    # a birth-date code (pipelines/fhir/birth_dates.py): values kept that give no age;
    # future_date on (<resource type>, meta.lastUpdated): versions whose lastUpdated is not trusted
    "reason_code": pl.String,
    "values_nulled": pl.Int64,
    "values_kept": pl.Int64,
}
"""Silver's data-quality findings per partition, shown on the dashboard's data-quality page."""
PARTITION_FILE = "data.parquet"


@dataclass
class SilverReport:
    """Rows per table and type conflicts of one partition (counts only)."""

    partition: str
    rows: Counter[str] = field(default_factory=Counter)
    resources: int = 0
    type_conflicts: Counter[str] = field(default_factory=Counter)  # "<table>.<column>" -> values nulled
    # "<table>.<column>" -> values of the wrong JSON type converted and kept (a Quantity value "7.1")
    type_coerced: Counter[str] = field(default_factory=Counter)
    flagged: Counter[str] = field(default_factory=Counter)  # "<table>.<column>.<reason code>" -> values
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
    coerced: Counter[tuple[str, str]] = Counter()
    flagged: Counter[tuple[str, str, str]] = Counter()
    clock = datetime.now(UTC)  # no as-of applies in silver: the run's clock is the reference
    bronze = _BronzeOfPartition.scan(lake, partition)
    try:
        for resource_type in sorted({v.view.resource for v in views}):
            of_type = [v for v in views if v.view.resource == resource_type]
            current = bronze.current(resource_type, clock)
            future_versions = bronze.future_versions(resource_type, clock)
            if future_versions:
                flagged[(resource_type, "meta.lastUpdated", FUTURE_DATE)] += future_versions
            report.resources += current.height
            for chunk in current.iter_slices(RESOURCES_PER_CHUNK):
                contexts, decoder, set_aside = contexts_from_json(chunk["raw"])
                report.decoders[decoder] += 1
                for element, count in set_aside.items():  # its shape contradicts the batch's: removed
                    conflicts[(resource_type, element)] += count
                sources = chunk.select(pl.int_range(pl.len(), dtype=pl.Int64).alias(CID), "source")
                for silver_view in of_type:
                    rows = view_rows(silver_view.view, contexts, keep_context=True)
                    rows = rows.join(sources, on=CID, how="left", maintain_order="left")
                    typed, nulled, kept = _typed(
                        rows.select("source", *silver_view.dtypes), silver_view, (chunk["raw"], rows[CID])
                    )
                    for column, count in nulled.items():
                        conflicts[(silver_view.name, column)] += count
                    for column, count in kept.items():
                        coerced[(silver_view.name, column)] += count
                    for column, code, count in _flags(typed, silver_view, clock):
                        flagged[(silver_view.name, column, code)] += count
                    if "last_updated" in typed.columns:  # not trusted for recency downstream either
                        typed = typed.with_columns(
                            pl.when(is_future(fhir_timestamp(pl.col("last_updated")), clock))
                            .then(None)
                            .otherwise(pl.col("last_updated"))
                            .alias("last_updated")
                        )
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
    for (table, column), count in coerced.items():
        report.type_coerced[f"{table}.{column}"] += count
    for (table, column, code), count in flagged.items():
        report.flagged[f"{table}.{column}.{code}"] += count
    findings = [
        (t, c, TYPE_CONFLICT, conflicts.get((t, c), 0), coerced.get((t, c), 0))
        for t, c in sorted(set(conflicts) | set(coerced))
    ] + [(t, c, code, 0, n) for (t, c, code), n in sorted(flagged.items())]
    conflict_frame = pl.DataFrame(findings, schema=TYPE_CONFLICTS_SCHEMA, orient="row")
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

    def current(self, resource_type: str, clock: datetime) -> pl.DataFrame:
        """The current version of every resource of one type (`source`, `raw`), in key order."""
        if "operation" not in self.versions.collect_schema():
            return pl.DataFrame(schema={"source": pl.String, "raw": pl.String})
        of_type = pl.col("resource_type") == resource_type
        return (
            current_resources(self.versions.filter(of_type), self.deletes.filter(of_type), clock)
            .select("source", "raw")
            .collect()
        )

    def future_versions(self, resource_type: str, clock: datetime) -> int:
        """How many versions of one type carry a `meta.lastUpdated` from the future (not trusted)."""
        if "operation" not in self.versions.collect_schema():
            return 0
        return int(
            self.versions.filter(pl.col("resource_type") == resource_type)
            .select(is_future(pl.col("last_updated"), clock).sum())
            .collect()
            .item()
        )


def _typed(
    rows: pl.DataFrame, silver_view: SilverView, resources: tuple[pl.Series, pl.Series] | None = None
) -> tuple[pl.DataFrame, dict[str, int], dict[str, int]]:
    """Cast to the declared types; values that do not fit become null and are counted, never hidden.

    Also counted: values that fit only after conversion because the record gave them as JSON strings
    (a Quantity `value` of `"7.1"`), found in the raw resources when `resources` (the chunk's raw texts,
    each row's position in them) is given.
    """
    nulled: dict[str, int] = {}
    kept: dict[str, int] = {}
    typed = rows.select(pl.col("source").cast(pl.String))
    members = column_members(silver_view.definition)
    formats = column_formats(silver_view.definition)
    for name, dtype in silver_view.dtypes.items():
        column = rows[name]
        converted = column if column.dtype == dtype else _convert(column, dtype)
        if name in formats and converted.dtype == pl.String:  # a date in another form is no date
            converted = converted.to_frame().select(
                pl.when(pl.col(name).str.contains(formats[name])).then(pl.col(name))
            )[name]
        lost = int((column.is_not_null() & converted.is_null()).sum())
        if lost:
            nulled[name] = lost
        member = members.get(name)
        if resources is not None and member and column.dtype == pl.String and dtype != pl.String:
            # a conflict path only: the decoder gave text for a number or boolean, so some record of the
            # chunk held a string; which ones did is read from the raw text (the decoder also turns the
            # real numbers of a mixed column into text)
            raw = resources[0].gather(resources[1])
            strings = _given_as_string(raw, column, member) & converted.is_not_null()
            if strings.any():
                kept[name] = int(strings.sum())
        typed = typed.with_columns(converted.alias(name))
    return typed, nulled, kept


def _given_as_string(raw: pl.Series, column: pl.Series, member: str) -> pl.Series:
    """Rows whose resource holds `"<member>": "<the row's value>"`: the value was a JSON string."""
    pattern = pl.concat_str(pl.lit(f'"{member}"' + r"\s*:\s*\""), pl.col("v").str.escape_regex(), pl.lit('"'))
    frame = pl.DataFrame({"raw": raw, "v": column})
    return frame.select(pl.col("raw").str.contains(pattern).fill_null(False))["raw"]


def _flags(typed: pl.DataFrame, silver_view: SilverView, clock: datetime) -> list[tuple[str, str, int]]:
    """Values kept in silver that a later layer cannot use, per (column, reason code): birth dates that
    give no age (pipelines/fhir/birth_dates.py). They reach the dashboard's data-quality page through
    `type_conflicts`."""
    if silver_view.name != "patient" or "birth_date" not in typed.columns or typed.is_empty():
        return []
    codes = typed.select(birth_date_problem(pl.col("birth_date"), clock).alias("code")).drop_nulls()
    return [("birth_date", code, n) for code, n in codes.group_by("code").len().sort("code").iter_rows()]


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
