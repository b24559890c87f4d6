"""The one rule for dates from the future (pipelines.future_dates)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from pipelines.future_dates import (
    FUTURE_TOLERANCE_ENV,
    future_reason,
    future_tolerance,
    is_future,
    latest_trusted,
    trusted,
)

AS_OF = date(2026, 6, 30)


def flags(values: list[object], dtype: pl.DataType, reference: date | datetime = AS_OF) -> list[bool]:
    frame = pl.DataFrame({"v": values}, schema={"v": dtype})
    return frame.select(is_future(pl.col("v"), reference))["v"].to_list()


def test_dates_within_the_tolerance_are_trusted_and_later_ones_are_not() -> None:
    days = [AS_OF, AS_OF + timedelta(days=1), AS_OF + timedelta(days=2), date(3000, 1, 1), None]
    assert flags(days, pl.Date()) == [False, False, True, True, False]


def test_datetimes_are_compared_in_utc_whatever_their_zone() -> None:
    last = datetime(2026, 7, 1, 23, 59, tzinfo=UTC)
    first_past = datetime(2026, 7, 2, 0, 0, 1, tzinfo=UTC)
    assert flags([last, first_past, None], pl.Datetime("us", "UTC")) == [False, True, False]
    paris = pl.DataFrame({"v": [last, first_past]}).select(pl.col("v").dt.convert_time_zone("Europe/Paris"))
    assert paris.select(is_future(pl.col("v"), AS_OF))["v"].to_list() == [False, True]
    naive = [last.replace(tzinfo=None), first_past.replace(tzinfo=None)]
    assert flags(naive, pl.Datetime("us")) == [False, True]


def test_the_run_clock_as_reference_counts_from_that_instant() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert latest_trusted(now) == now + timedelta(days=1)
    values = [now + timedelta(hours=23), now + timedelta(hours=25)]
    assert flags(values, pl.Datetime("us", "UTC"), now) == [False, True]


def test_trusted_nulls_only_future_values() -> None:
    frame = pl.DataFrame({"v": [AS_OF, date(2099, 1, 1), None]})
    assert frame.select(trusted(pl.col("v"), AS_OF))["v"].to_list() == [AS_OF, None, None]


def test_tolerance_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert future_tolerance() == timedelta(days=1)
    monkeypatch.setenv(FUTURE_TOLERANCE_ENV, "0")
    assert flags([AS_OF + timedelta(days=1)], pl.Date()) == [True]
    monkeypatch.setenv(FUTURE_TOLERANCE_ENV, "30")
    assert flags([AS_OF + timedelta(days=30), AS_OF + timedelta(days=31)], pl.Date()) == [False, True]
    reason = future_reason("the as-of day 2026-06-30")
    assert reason == "dated more than 30 days after the as-of day 2026-06-30"
    for bad in ("-1", "two", "1.5", "400"):
        monkeypatch.setenv(FUTURE_TOLERANCE_ENV, bad)
        with pytest.raises(ValueError, match=FUTURE_TOLERANCE_ENV):
            future_tolerance()
