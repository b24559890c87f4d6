"""Crash-safe, idempotent batch writes of bronze rows.

Files are grouped into batches; a batch is written as one Parquet part per table and bucket, then its
`ingest_log` part, which is the commit point. A `_pending/` marker written before the parts lets the
next run roll back a batch that a crash left without its log, so nothing half-made stays visible and
nothing is ingested twice. Part names derive from the batch's ingest keys: a repeated batch overwrites
its own parts.
"""

from __future__ import annotations

import hashlib

import orjson
import polars as pl
from upath import UPath

from pipelines.bronze import discovery as d
from pipelines.bronze.tables import (
    BRONZE,
    DEVICE_RECORDS,
    FEEDBACK_RECORDS,
    FHIR_RESOURCES,
    INGEST_LOG,
    INGEST_LOG_SCHEMA,
    OUTREACH_EVENTS,
    PROVENANCE_SCHEMA,
    QUARANTINE,
    QUARANTINE_RECORD_SCHEMA,
    RECORD_SCHEMAS,
    ReadResult,
    conform,
)
from pipelines.buckets import assign_buckets
from pipelines.lake import remove_files, table_path, write_bytes_atomic, write_parquet_atomic

PENDING = "_pending"
DEFAULT_BATCH_ROWS = 400_000
DEFAULT_BATCH_BYTES = 64 << 20
"""A batch is written when it holds this many rows or this many bytes of landing data, which bounds
the writer's memory (raw records are kept in full, so bytes matter more than rows)."""
RECORD_TABLES = (FHIR_RESOURCES, DEVICE_RECORDS, FEEDBACK_RECORDS, OUTREACH_EVENTS)
_FILE_POSITION = "_file_position"
ROW_GROUP_ROWS = 16_384


class BatchWriter:
    """Collects read results and writes them in batches, each committed by its ingest_log part."""

    def __init__(
        self, lake: UPath, run_id: str, buckets: int, batch_rows: int, batch_bytes: int = DEFAULT_BATCH_BYTES
    ) -> None:
        self.lake, self.run_id, self.buckets = lake, run_id, buckets
        self.batch_rows, self.batch_bytes = batch_rows, batch_bytes
        self.touched: set[tuple[str, str]] = set()  # (table, bucket) partitions written by this writer
        self._frames: dict[str, list[pl.DataFrame]] = {t: [] for t in (*RECORD_TABLES, QUARANTINE)}
        self._log: list[dict[str, object]] = []
        self._rows = 0
        self._bytes = 0

    def add(
        self,
        landing_file: d.LandingFile | None,
        sha: str,
        key: str,
        result: ReadResult,
        log_row: dict[str, object],
    ) -> None:
        # provenance columns are added once per batch at flush (a join on the file's position), not per
        # file: broadcasting five string literals over every row of every file was a third of the cost
        position = pl.lit(len(self._log), pl.UInt32).alias(_FILE_POSITION)
        if result.target_table in RECORD_SCHEMAS and not result.bronze.is_empty():
            self._frames[result.target_table].append(result.bronze.with_columns(position))
        if not result.quarantine.is_empty():
            self._frames[QUARANTINE].append(result.quarantine.with_columns(position))
        self._log.append(log_row)
        self._rows += result.bronze.height + result.quarantine.height
        self._bytes += int(log_row.get("file_bytes") or 0)
        if self._rows >= self.batch_rows or self._bytes >= self.batch_bytes:
            self.flush()

    def note(self, log_row: dict[str, object]) -> None:
        """An ingest_log row for a path that was not read (skipped or refused): no records, no data part."""
        self._log.append(log_row)

    @staticmethod
    def _with_provenance(frames: list[pl.DataFrame], files: pl.DataFrame) -> pl.DataFrame:
        rows = pl.concat(frames, how="vertical_relaxed")
        return rows.join(files, on=_FILE_POSITION, how="left", maintain_order="left").drop(_FILE_POSITION)

    def flush(self) -> None:
        """Write the collected batch: pending marker, data parts, ingest_log part (commit), unmark."""
        if not self._log:
            return
        batch_id = hashlib.sha256(
            "".join(sorted(str(r["ingest_key"]) for r in self._log)).encode()
        ).hexdigest()[:20]
        name = f"part-{batch_id}.parquet"
        parts: list[tuple[UPath, pl.DataFrame]] = []
        files = pl.DataFrame(self._log, schema=INGEST_LOG_SCHEMA).select(list(PROVENANCE_SCHEMA))
        files = files.with_row_index(_FILE_POSITION)
        for table in RECORD_TABLES:
            if not self._frames[table]:
                continue
            frame = self._with_provenance(self._frames[table], files)
            frame = conform(
                frame, {**PROVENANCE_SCHEMA, **RECORD_SCHEMAS[table]} | {"_bucket_source": pl.String()}
            )
            bucket_source = "patient_source" if table == FEEDBACK_RECORDS else "source"
            frame = assign_buckets(
                frame.with_columns(pl.col(bucket_source).alias("_bucket_source")),
                "_bucket_source",
                "patient_key",
                self.buckets,
            ).drop("_bucket_source")
            if table == FHIR_RESOURCES:
                # grouped by type in small row groups, so a reader of one resource type skips the others
                frame = frame.sort("resource_type", maintain_order=True)
            for (bucket,), part in frame.partition_by("bucket", as_dict=True, maintain_order=True).items():
                self.touched.add((table, str(bucket)))
                parts.append(
                    (table_path(self.lake, BRONZE, table) / f"bucket={bucket}" / name, part.drop("bucket"))
                )
        if self._frames[QUARANTINE]:
            frame = conform(
                self._with_provenance(self._frames[QUARANTINE], files),
                {**PROVENANCE_SCHEMA, **QUARANTINE_RECORD_SCHEMA},
            )
            parts.append((table_path(self.lake, BRONZE, QUARANTINE) / name, frame))
        log_path = table_path(self.lake, BRONZE, INGEST_LOG) / name
        marker = self.lake / BRONZE / PENDING / f"{batch_id}.json"
        write_bytes_atomic(
            orjson.dumps(
                [str(p.relative_to(self.lake)) for p, _ in parts] + [str(log_path.relative_to(self.lake))]
            ),
            marker,
        )
        for path, frame in parts:
            write_parquet_atomic(frame, path, row_group_size=ROW_GROUP_ROWS)
        write_parquet_atomic(pl.DataFrame(self._log, schema=INGEST_LOG_SCHEMA), log_path)
        marker.unlink()
        self._frames = {t: [] for t in self._frames}
        self._log = []
        self._rows = 0
        self._bytes = 0


def roll_back_pending(lake: UPath) -> int:
    """Remove the parts of batches a crash left uncommitted (no ingest_log part); return how many."""
    folder = lake / BRONZE / PENDING
    if not folder.exists():
        return 0
    rolled_back = 0
    for marker in sorted(folder.glob("*.json")):
        listed = [lake / p for p in orjson.loads(marker.read_bytes())]
        log_part = listed[-1]
        if not log_part.exists():
            remove_files(listed)
            rolled_back += 1
        marker.unlink()
    return rolled_back
