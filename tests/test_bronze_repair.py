"""A damaged bronze part is found before the next ingest, its batch taken out and read again from the
landing folder: bronze ends as it was, and nothing reads the damaged bytes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
from upath import UPath

from pipelines.bronze.ingest import ingest_landing
from pipelines.bronze.repair import repair_bronze
from pipelines.generate.landing import generate_landing

VOLATILE = ("ingest_run_id", "started_at", "finished_at")  # when and in which run, not what


def _bronze(lake: Path, table: str) -> pl.DataFrame:
    frame = pl.read_parquet(lake / "bronze" / table / "**" / "*.parquet", hive_partitioning=False)
    frame = frame.drop([c for c in VOLATILE if c in frame.columns])
    return frame.sort(frame.columns)


def test_a_damaged_bronze_part_is_reingested(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    generate_landing(landing, 40, seed=9, as_of=date(2026, 6, 30))
    ingest_landing(UPath(landing), UPath(lake), 2)
    before = {t: _bronze(lake, t) for t in ("fhir_resources", "ingest_log")}
    assert repair_bronze(UPath(lake)).damaged == []

    part = sorted((lake / "bronze" / "fhir_resources").rglob("*.parquet"))[0]
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])  # truncated: the footer is gone
    repair = repair_bronze(UPath(lake))
    assert repair.damaged == [str(part.relative_to(lake))] and repair.batches_removed == [part.name]
    assert not list((lake / "bronze").rglob(part.name))  # every part of the batch, its log part too

    report = ingest_landing(UPath(landing), UPath(lake), 2)
    assert report.files_ingested > 0
    for table, frame in before.items():
        assert (
            _bronze(lake, table)
            .drop("ingest_key", strict=False)
            .equals(frame.drop("ingest_key", strict=False))
        )
