"""Where the platform reads and writes, taken from the environment with laptop defaults.

Every location is a universal-pathlib path so that `s3://bucket/lake` works by configuration alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date

from upath import UPath

DEFAULT_LANDING = "./landing"
DEFAULT_LAKE = "./lake"
DEFAULT_EXPORTS = "./exports"


@dataclass(frozen=True)
class Settings:
    """The platform's storage locations and the number of patient buckets."""

    landing: UPath
    lake: UPath
    exports: UPath
    buckets: int | None = None  # None: the lake's own count, decided by the data's volume (pipelines.layout)
    as_of: date | None = None  # the day analytics are "as of"; None: the data's own (pipelines.gold.as_of)

    @classmethod
    def from_env(cls) -> Settings:
        """Read `PATIENT_INSIGHTS_*` variables, falling back to the documented defaults."""
        text = os.environ.get("PATIENT_INSIGHTS_BUCKETS", "").strip()
        return cls(
            landing=UPath(os.environ.get("PATIENT_INSIGHTS_LANDING", DEFAULT_LANDING)),
            lake=UPath(os.environ.get("PATIENT_INSIGHTS_LAKE", DEFAULT_LAKE)),
            exports=UPath(os.environ.get("PATIENT_INSIGHTS_EXPORTS", DEFAULT_EXPORTS)),
            buckets=validate_bucket_count(int(text)) if text else None,
            as_of=parse_as_of(os.environ.get("PATIENT_INSIGHTS_AS_OF", "")),
        )


def parse_as_of(text: str) -> date | None:
    """`PATIENT_INSIGHTS_AS_OF` (YYYY-MM-DD) as a date; empty means: as of the data's latest transaction."""
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"PATIENT_INSIGHTS_AS_OF must be a date like 2026-06-30, got {text!r}") from None


def validate_bucket_count(buckets: int) -> int:
    """Reject bucket counts that cannot partition anything (and those too large for two-digit keys)."""
    if not 1 <= buckets <= 100:
        raise ValueError(f"PATIENT_INSIGHTS_BUCKETS must be between 1 and 100, got {buckets}")
    return buckets
