"""How many patient buckets a lake is split into: decided once per lake, by the data's volume.

Buckets bound the memory of one build step and let a step's buckets run side by side; they cost a little
per bucket, so small data gets one and large data as many as pay off. The count is decided when bronze
first takes data in (from the landing folder's size, or `PATIENT_INSIGHTS_BUCKETS` / `ingest --buckets`)
and recorded in `<lake>/meta/layout.json`; every later step reads it from there, so the command line, the
Dagster UI, the schedule and the sensors agree on it.

Changing the count of a lake is a full rebuild: bronze rows sit in the buckets of the old count, so a
request for another count on an existing lake is refused with the way out (move the lake aside and ingest
the landing folder again: bronze is re-read from landing, nothing is lost).
"""

from __future__ import annotations

import math
import re

import orjson
from upath import UPath

from pipelines.buckets import SHARED_BUCKET, bucket_keys
from pipelines.lake import write_bytes_atomic

LAYOUT_FILE = ("meta", "layout.json")
BYTES_PER_BUCKET = 512 * 1024 * 1024
"""Landing bytes per bucket: about 7,000 generated people. At this size one bucket's build stays well under
a gigabyte of memory, and a bucket takes long enough (tens of seconds) that its fixed cost is noise."""
MAX_BUCKETS = 64
LEGACY_BUCKETS = 16
"""The fixed count every lake had before the count followed the data."""


class BucketCountChanged(ValueError):
    """A bucket count was asked for that is not the one the lake is laid out in."""


def buckets_for_volume(landing_bytes: int) -> int:
    """The bucket count that pays off for this much landing data: 1 up to 512 MiB, one more per 512 MiB."""
    return max(1, min(MAX_BUCKETS, math.ceil(landing_bytes / BYTES_PER_BUCKET)))


def landing_bytes(landing: UPath) -> int:
    """The size of every regular file under the landing folder (0 when it does not exist)."""
    if not landing.exists():
        return 0
    return sum(p.stat().st_size for p in landing.rglob("*") if p.is_file() and not p.is_symlink())


def layout_path(lake: UPath) -> UPath:
    """Where the lake records its bucket count."""
    return lake.joinpath(*LAYOUT_FILE)


def lake_buckets(lake: UPath) -> int | None:
    """The lake's bucket count: as recorded, else (a lake written before counts were recorded) as its
    bronze folders show, else None (no data yet)."""
    path = layout_path(lake)
    if path.exists():
        try:
            return int(orjson.loads(path.read_bytes())["buckets"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ValueError(f"{path} is damaged: restore it or rebuild the lake") from None
    bronze = lake / "bronze"
    seen = set()
    if bronze.exists():
        for table in bronze.iterdir():
            if table.is_dir():
                for folder in table.iterdir():
                    match = re.fullmatch(r"bucket=(\d+)", folder.name)
                    if match:
                        seen.add(int(match.group(1)))
    if not seen:
        return None
    return LEGACY_BUCKETS if max(seen) < LEGACY_BUCKETS else max(seen) + 1


def resolve_buckets(lake: UPath, landing: UPath, requested: int | None) -> int:
    """The lake's bucket count, deciding and recording it when the lake has none yet: `requested`
    (the setting) if given, else from the landing folder's volume. A request for another count than an
    existing lake's is refused (`BucketCountChanged`)."""
    existing = lake_buckets(lake)
    if existing is not None:
        if requested is not None and requested != existing:
            raise BucketCountChanged(
                f"the lake at {lake} is split into {existing} patient buckets, not {requested}: changing "
                "the count is a full rebuild. Move the lake aside and ingest again (bronze is re-read from "
                "the landing folder), or unset PATIENT_INSIGHTS_BUCKETS / --buckets to keep the lake's count"
            )
        if not layout_path(lake).exists():
            _record(lake, existing, "existing bronze folders")
        return existing
    count = requested if requested is not None else buckets_for_volume(landing_bytes(landing))
    _record(lake, count, "setting" if requested is not None else "landing volume")
    return count


def _record(lake: UPath, buckets: int, decided_by: str) -> None:
    write_bytes_atomic(
        orjson.dumps({"buckets": buckets, "decided_by": decided_by}, option=orjson.OPT_INDENT_2),
        layout_path(lake),
    )


def required_buckets(lake: UPath) -> int:
    """The lake's bucket count for steps after bronze (bronze decides it; a lake without one is empty)."""
    count = lake_buckets(lake)
    return 1 if count is None else count


def patient_bucket_keys(buckets: int) -> list[str]:
    """Source-patient buckets of bronze and silver: '00'..'NN' plus `shared` (records of no patient)."""
    return [*bucket_keys(buckets), SHARED_BUCKET]


def person_bucket_keys(buckets: int) -> list[str]:
    """Person buckets of gold: '00'..'NN' (every gold row belongs to a person)."""
    return bucket_keys(buckets)
