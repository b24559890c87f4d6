"""Incremental runs: which partitions a new delivery affects, and what the lake has already processed.

A full run rebuilds every partition. An incremental run starts from what bronze holds that the last
successful run had not processed (`<lake>/meta/incremental.json` lists the ingest keys it had: a failed
or killed run leaves the file as it was, so the next run redoes its work) and follows the assets'
declared dependencies downstream:

- a per-bucket job rebuilds the buckets its bronze table received rows in (`shared` rows - deletions and
  records without a patient - reach every bucket) and the buckets whose upstream partitions changed;
- an upstream partition "changed" only if its files' bytes differ from those the last successful run
  left (`Fingerprints`, recorded in the state): rebuilding a bucket to the same content stops there, and
  a partition that no longer matches at the start (damaged, or rewritten by a run that was killed before
  its readers followed) is rebuilt and its readers follow;
- a job that reads every bucket of an upstream table (identity, device gold, the person tables, the
  summaries and the campaigns) runs whole when anything it reads changed, and not at all otherwise;
- the models are not retrained: an increment is scored with the deployed versions (retraining is its
  own decision: a full run or the training commands), and the gold tables are rebuilt whole when the
  as-of day, the bucket count or the deployed models differ from the last run's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import orjson
import polars as pl
from upath import UPath

from pipelines.bronze.tables import BRONZE, INGEST_LOG
from pipelines.bronze.writer import RECORD_TABLES
from pipelines.buckets import SHARED_BUCKET
from pipelines.lake import parquet_files, scan_parquet, scan_table, table_path, write_bytes_atomic

STATE_FILE = ("meta", "incremental.json")


@dataclass(frozen=True)
class LakeState:
    """What the last successful run processed and built with, and the content hash of every partition
    it left (`fingerprint_key` → sha256): what the next incremental run compares against."""

    ingest_keys: frozenset[str]
    as_of: str
    buckets: int
    models: dict[str, str | None]
    fingerprints: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """The state file's content (sorted, so equal states are equal bytes)."""
        return orjson.dumps(
            {
                "ingest_keys": sorted(self.ingest_keys),
                "as_of": self.as_of,
                "buckets": self.buckets,
                "models": self.models,
                "fingerprints": self.fingerprints,
            },
            option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS,
        )


def state_path(lake: UPath) -> UPath:
    """Where the lake's incremental state lives."""
    return lake.joinpath(*STATE_FILE)


def read_state(lake: UPath) -> LakeState | None:
    """The last successful run's state, or None (never run, or an unreadable file: run in full)."""
    path = state_path(lake)
    if not path.exists():
        return None
    try:
        body = orjson.loads(path.read_bytes())
        return LakeState(
            frozenset(body["ingest_keys"]),
            str(body["as_of"]),
            int(body["buckets"]),
            dict(body["models"]),
            dict(body["fingerprints"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def write_state(lake: UPath, state: LakeState) -> None:
    """Record a successful run's state (atomically: the old state stays until the new one is whole)."""
    write_bytes_atomic(state.to_json(), state_path(lake))


def ingested_keys(lake: UPath) -> frozenset[str]:
    """Every ingest key bronze's ingest log holds (files whose records bronze has taken in)."""
    if not parquet_files(table_path(lake, BRONZE, INGEST_LOG)):
        return frozenset()
    keys = scan_table(lake, BRONZE, INGEST_LOG).select("ingest_key").unique().collect()
    return frozenset(keys["ingest_key"].drop_nulls().to_list())


def unprocessed_buckets(
    lake: UPath, processed: frozenset[str], tables: Iterable[str] = RECORD_TABLES
) -> dict[str, set[str]]:
    """Per bronze record table (of `tables`), the buckets holding rows of ingests not in `processed`."""
    touched: dict[str, set[str]] = {}
    for table in tables:
        if table not in RECORD_TABLES:
            continue
        files = parquet_files(table_path(lake, BRONZE, table))
        if not files:
            touched[table] = set()
            continue
        new = (
            scan_parquet(files, hive_partitioning=True, hive_schema={"bucket": pl.String})
            .select("bucket", "ingest_key")
            .filter(~pl.col("ingest_key").is_in(list(processed)))
            .select(pl.col("bucket").unique())
            .collect()
        )
        touched[table] = set(new["bucket"].drop_nulls().to_list())
    return touched


def buckets_to_rebuild(touched: Iterable[str], partitions: list[str]) -> list[str]:
    """The partitions rows in `touched` buckets affect: those buckets, or all when `shared` is touched."""
    touched = set(touched)
    if SHARED_BUCKET in touched:
        return list(partitions)
    return [p for p in partitions if p in touched]


Partition = tuple[tuple[str, str], str | None]
"""A table (layer, name) and one of its partitions (None: the whole, unpartitioned table)."""


def fingerprint_key(partition: Partition) -> str:
    """`layer/table` or `layer/table/bucket=<key>`: how the state file names a partition."""
    (layer, table), key = partition
    return f"{layer}/{table}" if key is None else f"{layer}/{table}/bucket={key}"


class Fingerprints:
    """Content hashes of tables' partition files: a partition whose hash differs from the one the last
    successful run recorded was rebuilt to new content (its readers must follow), or was damaged or left
    half-made by a killed run (it must be rebuilt)."""

    def __init__(self, lake: UPath) -> None:
        self.lake = lake

    def of(self, partition: Partition) -> str:
        """The sha256 over the file names and bytes of one partition (empty: no files)."""
        table, key = partition
        folder = table_path(self.lake, *table)
        if key is not None:
            folder = folder / f"bucket={key}"
        files = sorted(parquet_files(folder), key=lambda p: p.path)
        if not files:
            return ""
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.path.removeprefix(folder.path).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()

    def snapshot(self, partitions: Iterable[Partition]) -> dict[str, str]:
        """Hashes of every partition, by `fingerprint_key`."""
        return {fingerprint_key(p): self.of(p) for p in partitions}

    def lake_partitions(self, layers: Iterable[str]) -> list[Partition]:
        """Every partition the lake holds in `layers`: each `bucket=` folder of a partitioned table, else
        the whole table."""
        found: list[Partition] = []
        for layer in layers:
            folder = self.lake / layer
            if not folder.exists():
                continue
            for table in sorted(
                p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
            ):
                buckets = sorted(
                    p.name.removeprefix("bucket=") for p in table.iterdir() if p.name.startswith("bucket=")
                )
                found += (
                    [((layer, table.name), b) for b in buckets] if buckets else [((layer, table.name), None)]
                )
        return found


def differing(
    partitions: Iterable[Partition], current: dict[str, str], recorded: dict[str, str]
) -> set[Partition]:
    """The partitions whose current hash is not the one recorded."""
    return {
        p for p in partitions if current.get(fingerprint_key(p), "") != recorded.get(fingerprint_key(p), "")
    }


def as_of_text(as_of: date) -> str:
    """The as-of day as the state file writes it."""
    return as_of.isoformat()


@dataclass(frozen=True)
class Upstream:
    """A table a job reads: `same_partition` when partition p reads only the table's partition p (an
    identity partition mapping), else every partition of it feeds every partition of the job."""

    table: tuple[str, str]
    same_partition: bool


Changed = dict[tuple[str, str], set[str | None]]


def partitions_to_run(
    upstream: Iterable[Upstream], changed: Changed, partitions: list[str | None]
) -> list[str | None]:
    """The job's partitions (`[None]` for an unpartitioned job) that read something that changed.

    Bronze tables are not partitioned as assets, but their rows sit in the patient buckets the per-bucket
    jobs use, so a bronze change reaches the same buckets (all of them through `shared`)."""
    needed: set[str | None] = set()
    for source in upstream:
        hit = changed.get(source.table)
        if not hit:
            continue
        if partitions == [None] or None in hit:  # a whole table that changed feeds every partition
            return list(partitions)
        if source.table[0] == BRONZE:
            needed |= set(buckets_to_rebuild((b for b in hit if b is not None), [p for p in partitions if p]))
        elif source.same_partition:
            needed |= hit
        else:
            return list(partitions)
    return [p for p in partitions if p in needed]
