"""The as-of day from the data (`pipelines/gold/as_of.py`): the latest clinical event when no Bulk
transaction time is known, never a future one, never after today, said why, warned when the data is old,
and read once while what it is read from is unchanged."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from upath import UPath

from pipelines.gold import as_of
from pipelines.gold.as_of import CLINICAL, CONFIGURED, TODAY, TRANSACTION_TIME, decide_as_of
from pipelines.lake import table_path, write_parquet_atomic

CLOCK = datetime(2026, 12, 7, 12, tzinfo=UTC)


def _silver(
    lake: UPath,
    table: str,
    column: str,
    values: list[str | None],
    bucket: str = "00",
    sources: list[str] | None = None,
) -> None:
    frame = pl.DataFrame({"id": [f"r{i}" for i in range(len(values))], column: values})
    if sources is not None:
        frame = frame.with_columns(pl.Series("source", sources))
    write_parquet_atomic(frame, table_path(lake, "silver", table) / f"bucket={bucket}" / "data.parquet")


@pytest.fixture
def lake(tmp_path: Path) -> UPath:
    as_of._KEPT.clear()
    return UPath(tmp_path / "lake")


def test_no_data_means_today(lake: UPath) -> None:
    decided = decide_as_of(None, lake, CLOCK)
    assert (decided.day, decided.basis) == (date(2026, 12, 7), TODAY)


def test_history_that_ends_in_2021_is_measured_as_of_2021(
    lake: UPath, caplog: pytest.LogCaptureFixture
) -> None:
    _silver(lake, "encounter", "period_start", ["2019-01-02T10:00:00-05:00", "2021-03-31T09:00:00-04:00"])
    _silver(lake, "observation", "effective_date_time", ["2021-03-30", None, "not a date"], bucket="01")
    _silver(lake, "immunization", "occurrence_date_time", ["2020-10-01T00:00:00Z"])
    caplog.set_level(logging.INFO)
    decided = decide_as_of(None, lake, CLOCK)
    assert (decided.day, decided.basis, decided.data_ends) == (date(2021, 3, 31), CLINICAL, date(2021, 3, 31))
    assert "clinical event" in decided.why
    # the data ends long before today: a warning for the engineer, a notice in plain words for the screen
    assert decided.warning and "PATIENT_INSIGHTS_AS_OF" in decided.warning
    assert decided.notice and "2021-03-31" in decided.notice and "PATIENT_INSIGHTS" not in decided.notice
    assert caplog.text.count("the data ends") == 1


def test_a_future_event_is_not_the_as_of_day(lake: UPath, caplog: pytest.LogCaptureFixture) -> None:
    # an appointment-like typo (3021) and tomorrow's scheduled procedure: ignored, counted, never quoted
    _silver(lake, "encounter", "period_start", ["2026-11-30T10:00:00Z", "3021-01-01T00:00:00Z"])
    _silver(lake, "procedure", "performed_date_time", ["2026-12-20T08:00:00Z"])
    caplog.set_level(logging.WARNING)
    decided = decide_as_of(None, lake, CLOCK)
    assert decided.day == date(2026, 11, 30) and decided.warning is None
    assert "2 clinical event date value(s) ignored" in caplog.text and "3021" not in caplog.text


def test_never_after_today(lake: UPath) -> None:
    # within the tolerance (tomorrow, a clock a little fast) the event is trusted, the day still today
    _silver(lake, "encounter", "period_start", ["2026-12-08T01:00:00Z"])
    assert decide_as_of(None, lake, CLOCK).day == date(2026, 12, 7)


def test_configured_and_transaction_time_come_first(lake: UPath) -> None:
    _silver(lake, "encounter", "period_start", ["2021-03-31"])
    configured = decide_as_of(date(2020, 1, 1), lake, CLOCK)
    assert (configured.day, configured.basis, configured.data_ends) == (
        date(2020, 1, 1),
        CONFIGURED,
        date(2021, 3, 31),
    )
    log = pl.DataFrame({"manifest_transaction_time": ["2021-04-02T00:00:00Z", None]})
    write_parquet_atomic(log, table_path(lake, "bronze", "ingest_log") / "data.parquet")
    decided = decide_as_of(None, lake, CLOCK)
    assert (decided.day, decided.basis) == (date(2021, 4, 2), TRANSACTION_TIME)


def test_read_once_while_unchanged_and_again_after_a_rebuild(
    lake: UPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    _silver(lake, "encounter", "period_start", ["2026-06-30"])
    reads = []
    real = as_of._latest_clinical_event
    monkeypatch.setattr(as_of, "_latest_clinical_event", lambda *a: reads.append(1) or real(*a))
    for _ in range(5):  # the steps of one run
        assert decide_as_of(None, lake, CLOCK).day == date(2026, 6, 30)
    assert len(reads) == 1
    _silver(lake, "encounter", "period_start", ["2026-06-30", "2026-07-15"])  # silver rebuilt
    assert decide_as_of(None, lake, CLOCK).day == date(2026, 7, 15)
    assert len(reads) == 2


def test_a_damaged_clinical_file_does_not_stop_the_run(lake: UPath, caplog: pytest.LogCaptureFixture) -> None:
    _silver(lake, "encounter", "period_start", ["2026-06-30"])
    _silver(lake, "observation", "effective_date_time", ["2026-07-02"])
    damaged = table_path(lake, "silver", "observation") / "bucket=00" / "data.parquet"
    Path(str(damaged)).write_bytes(b"PAR1" + bytes(range(256)) * 8 + b"PAR1")
    caplog.set_level(logging.WARNING)
    assert decide_as_of(None, lake, CLOCK).day == date(2026, 6, 30)  # the readable tables still count
    assert "could not be read" in caplog.text


def test_a_source_whose_data_ends_long_before_the_as_of_day_is_named(
    lake: UPath, caplog: pytest.LogCaptureFixture
) -> None:
    """One as-of day serves the lake: an old export beside a current one is measured as of a day its data
    never reached, and the warning says which source (a missing delivery is the usual cause)."""
    _silver(
        lake,
        "encounter",
        "period_start",
        ["2021-03-31T09:00:00Z", "2026-11-30T10:00:00Z", "2026-10-01T10:00:00Z", "2026-06-01T10:00:00Z"],
        sources=["old_export", "clinic", "lab", "lab"],
    )
    _silver(lake, "observation", "effective_date_time", ["2026-12-01"], bucket="01", sources=["lab"])
    caplog.set_level(logging.WARNING)
    decided = decide_as_of(None, lake, CLOCK)
    assert decided.day == date(2026, 12, 1) and decided.lagging == (("old_export", date(2021, 3, 31)),)
    assert decided.warning and "old_export (2021-03-31)" in decided.warning and "lab" not in decided.warning
    assert decided.notice and "old_export" in decided.notice
    assert as_of.as_of_record(decided)["lagging_sources"] == {"old_export": "2021-03-31"}
    assert caplog.text.count("old_export") == 1
    # the same day set by hand: still said; one source alone: the lake's own staleness warning says it
    as_of._KEPT.clear()
    assert decide_as_of(date(2026, 12, 1), lake, CLOCK).lagging == (("old_export", date(2021, 3, 31)),)


def test_one_old_source_alone_gets_the_lakes_warning_only(lake: UPath) -> None:
    _silver(lake, "encounter", "period_start", ["2021-03-31T09:00:00Z"], sources=["old_export"])
    decided = decide_as_of(None, lake, CLOCK)
    assert decided.lagging == () and decided.warning and decided.warning.count("2021-03-31") == 1
