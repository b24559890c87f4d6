"""Damaged bronze files: found before an ingest and re-ingested from the landing folder, never read.

Every bronze batch is one Parquet part per table and bucket plus its `ingest_log` part, all named
`part-<batch id>.parquet`. A part whose footer cannot be read (truncated, overwritten) makes the whole batch
suspect: all its parts go, its `ingest_log` part with them, so the batch's landing files count as new and
the next ingest reads them again. Their records come back as they were (bronze keeps records as
delivered), and silver, rebuilt from bronze, follows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pyarrow.parquet as pq
from upath import UPath

from pipelines.bronze.tables import BRONZE
from pipelines.lake import is_local, parquet_files, remove_files

logger = logging.getLogger(__name__)


@dataclass
class BronzeRepair:
    """What a check of the bronze parts found (paths relative to the lake; no content)."""

    parts_checked: int = 0
    damaged: list[str] = field(default_factory=list)  # unreadable parts
    batches_removed: list[str] = field(default_factory=list)  # batch part names taken out for re-ingest


def unreadable(path: UPath) -> bool:
    """Whether the Parquet file's footer cannot be read (a truncated or overwritten file)."""
    try:
        with path.open("rb") as handle:
            pq.read_metadata(handle)
    except Exception:  # any failure to parse means readers would fail (or worse) on it
        return True
    return False


def repair_bronze(lake: UPath) -> BronzeRepair:
    """Check every bronze part of a local lake; remove each batch that has an unreadable part (all
    tables, its log part) so that its landing files are ingested again. Object stores are not checked:
    a part appears there in one finished upload, and reading every footer would cost a request each."""
    report = BronzeRepair()
    if not is_local(lake):
        return report
    parts = parquet_files(lake / BRONZE)
    by_name: dict[str, list[UPath]] = {}
    for part in parts:
        by_name.setdefault(part.name, []).append(part)
    for part in parts:
        report.parts_checked += 1
        if unreadable(part):
            report.damaged.append(part.path.removeprefix(lake.path).lstrip("/"))
            if part.name not in report.batches_removed:
                report.batches_removed.append(part.name)
    for name in report.batches_removed:
        remove_files(by_name[name])
        logger.warning(
            "bronze batch %s had an unreadable part: removed, its files will be ingested again", name
        )
    return report
