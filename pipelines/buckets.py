"""Patient buckets: a stable hash of (source, patient key) decides which partition a record belongs to.

Polars' own `hash` is explicitly not stable across versions, and a bucket must never move when the
library is upgraded, so the bucket is CRC-32 of the UTF-8 key. CRC-32 runs on the *unique* keys of a
batch only (a few per thousand records), then is joined back, which keeps the hot path vectorized.
"""

from __future__ import annotations

import zlib

import polars as pl

SHARED_BUCKET = "shared"
"""Bucket of records that belong to no patient (Practitioner, Organization, Location, unlinked devices)."""


def bucket_keys(buckets: int) -> list[str]:
    """The partition keys of the per-patient buckets: '00', '01', … (two digits so they sort)."""
    return [f"{i:02d}" for i in range(buckets)]


def bucket_of(source: str, patient_key: str, buckets: int) -> str:
    """The bucket of one patient key (used by tests and by code that routes a single patient)."""
    return f"{zlib.crc32(f'{source}|{patient_key}'.encode()) % buckets:02d}"


def patient_bucket_of(source: str, patient_id: str, buckets: int) -> str:
    """The bucket of a source patient given its bare id (bronze keys patients as 'Patient/<id>')."""
    return bucket_of(source, f"Patient/{patient_id}", buckets)


def assign_buckets(frame: pl.DataFrame, source_col: str, key_col: str, buckets: int) -> pl.DataFrame:
    """Add a `bucket` column: the patient bucket, or `shared` where the key is null."""
    keys = frame.select(source_col, key_col).unique().drop_nulls()
    codes = [
        bucket_of(source, key, buckets)
        for source, key in zip(keys[source_col].to_list(), keys[key_col].to_list(), strict=True)
    ]
    lookup = keys.with_columns(pl.Series("bucket", codes, dtype=pl.String))
    return frame.join(lookup, on=[source_col, key_col], how="left", maintain_order="left").with_columns(
        pl.col("bucket").fill_null(SHARED_BUCKET)
    )
