"""The as-of day of gold computations, and why it is that day.

In order: configured (`PATIENT_INSIGHTS_AS_OF`); else the latest Bulk export `transactionTime` (the day the
source system answered for); else the latest clinical event in the data (encounters, observations,
procedures, immunizations, conditions recorded, medications ordered), so that an export of history that
ends in 2021 is measured as of 2021, not as of today, where every care gap would be open and every window
empty; else the latest `meta.lastUpdated`; else today. Never later than today.

Values from the future are not used (the one rule, pipelines/future_dates.py, against the run's clock: no
as-of applies yet): a Bulk manifest whose `transactionTime` lies in 2099, or an encounter typed 3021, would
otherwise make that the whole platform's as-of day (every person decades older, every window empty). Each
ignored value is counted in a warning, never quoted.

One as-of day serves the whole lake. A source whose data ends long before it (an old export beside a
current one) is named in a warning: its people are measured as of a day their data never reached.

A run asks for the as-of day in many steps. The answer is kept for as long as what it was read from is
unchanged (`_signature`), so each run reads and warns once, and a step after a rebuild of what it reads
gets the new answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import polars as pl
from upath import UPath

from pipelines.bronze.tables import BRONZE, FHIR_RESOURCES, INGEST_LOG
from pipelines.future_dates import future_reason, is_future, trusted
from pipelines.lake import parquet_files, scan_table, table_path
from pipelines.silver.build import SILVER

log = logging.getLogger(__name__)

CLINICAL_EVENTS: dict[str, tuple[str, ...]] = {
    "encounter": ("period_start",),
    "observation": ("effective_date_time",),
    "procedure": ("performed_date_time", "performed_start"),
    "immunization": ("occurrence_date_time",),
    "condition": ("recorded_date",),
    "medication_request": ("authored_on",),
}
"""Silver tables and columns whose dates say when something happened to a patient. Appointments, coverage
and consent periods are left out: they lie in the future by nature."""
STALE_DAYS = 90
"""Data whose last clinical event lies this many days or more before today gets a warning: the as-of day it
gives is right for the data, and likely not what someone expecting today's figures wants."""

CONFIGURED, TRANSACTION_TIME, CLINICAL, LAST_UPDATED, TODAY = (
    "configured",
    "transaction_time",
    "clinical_events",
    "last_updated",
    "today",
)


@dataclass(frozen=True)
class AsOf:
    """The as-of day, what it was taken from (`basis`), why in plain words, and the last clinical event."""

    day: date
    basis: str
    why: str
    data_ends: date | None = None
    warning: str | None = None  # for engineers: logs and the command line
    notice: str | None = None  # the same in words for a care manager's screen
    lagging: tuple[tuple[str, date], ...] = ()  # sources whose data ends STALE_DAYS or more before `day`


_KEPT: dict[tuple, AsOf] = {}


def as_of_record(decided: AsOf) -> dict[str, str | None]:
    """`decided` as plain JSON values, for the run record (the dashboard and the summary read it)."""
    return {
        "day": decided.day.isoformat(),
        "basis": decided.basis,
        "why": decided.why,
        "data_ends": decided.data_ends.isoformat() if decided.data_ends else None,
        "warning": decided.warning,
        "notice": decided.notice,
        "lagging_sources": {source: ends.isoformat() for source, ends in decided.lagging},
    }


def resolve_as_of(configured: date | None, lake: UPath, clock: datetime | None = None) -> date:
    """The as-of day (`decide_as_of(...).day`)."""
    return decide_as_of(configured, lake, clock).day


def decide_as_of(configured: date | None, lake: UPath, clock: datetime | None = None) -> AsOf:
    """The as-of day and why: `configured`, else the latest Bulk transaction time, else the latest clinical
    event, else the latest lastUpdated, else today; values past `clock` (the run's clock, default now) plus
    the tolerance are ignored, and no answer lies after today."""
    now = clock or datetime.now(UTC)
    key = (str(lake), configured, now.date(), clock is None, _signature(lake))
    if key not in _KEPT:
        _KEPT.clear()  # one answer at a time: a new signature makes the old one useless
        _KEPT[key] = _decide(configured, lake, now)
        decided = _KEPT[key]
        log.info("as-of day %s: %s", decided.day.isoformat(), decided.why)
        if decided.warning:
            log.warning(decided.warning)
    return _KEPT[key]


def _decide(configured: date | None, lake: UPath, now: datetime) -> AsOf:
    ends = _clinical_ends(lake, now)
    return _with_lagging_sources(_day(configured, lake, now, ends), _by_source(ends))


def _day(configured: date | None, lake: UPath, now: datetime, ends: pl.DataFrame | None) -> AsOf:
    today = now.date()
    data_ends = _latest_clinical_event(ends)
    if configured is not None:
        return AsOf(configured, CONFIGURED, "set by PATIENT_INSIGHTS_AS_OF", data_ends)
    transaction = _latest_transaction_time(lake, now)
    if transaction is not None:
        day = min(transaction, today)
        return AsOf(day, TRANSACTION_TIME, "the latest Bulk export's transaction time", data_ends)
    if data_ends is not None:
        day = min(data_ends, today)
        return AsOf(
            day,
            CLINICAL,
            "the latest clinical event in the data (no Bulk export transaction time is known)",
            data_ends,
            **_stale(day, today),
        )
    updated = _latest_last_updated(lake, now)
    if updated is not None:
        day = min(updated, today)
        return AsOf(
            day,
            LAST_UPDATED,
            "the latest lastUpdated of any resource (no transaction time, no dated clinical event)",
            None,
            **_stale(day, today),
        )
    return AsOf(today, TODAY, "today: the data carries no date to take it from")


def _stale(day: date, today: date) -> dict[str, str]:
    """The warning and the notice when the data ends long before today (`STALE_DAYS`), else nothing."""
    behind = (today - day).days
    if behind < STALE_DAYS:
        return {}
    ends = f"{day.isoformat()}, {behind:,} days before today"
    return {
        "warning": f"as-of day {day.isoformat()}: the data ends {behind:,} days before today, so care "
        "gaps, windows and ages are measured as of that day; set PATIENT_INSIGHTS_AS_OF for another day",
        "notice": f"The data ends on {ends}: care gaps, time windows and ages are measured as of that day, "
        "not as of today.",
    }


def _with_lagging_sources(decided: AsOf, ends: dict[str, date]) -> AsOf:
    """`decided` with the sources whose last clinical event lies `STALE_DAYS` or more before its day named
    in the warning and the notice (one source only: the lake's own staleness warning says it already)."""
    lagging = tuple(
        (source, day) for source, day in sorted(ends.items()) if (decided.day - day).days >= STALE_DAYS
    )
    if not lagging or len(ends) < 2:
        return decided
    listed = ", ".join(f"{source} ({day.isoformat()})" for source, day in lagging)
    warning = (
        f"as-of day {decided.day.isoformat()}: the data of {len(lagging)} source(s) ends {STALE_DAYS} days "
        f"or more before it: {listed}; their people's care gaps and windows are measured as of a day their "
        "data never reached (a missing delivery?)"
    )
    notice = (
        f"The data of {len(lagging)} source{'s' if len(lagging) > 1 else ''} ends long before the as-of day "
        f"({listed}): their patients' care gaps may show as open and their recent history as empty."
    )
    return replace(
        decided,
        warning="; ".join(filter(None, [decided.warning, warning])),
        notice=" ".join(filter(None, [decided.notice, notice])),
        lagging=lagging,
    )


def _latest_transaction_time(lake: UPath, now: datetime) -> date | None:
    if not parquet_files(table_path(lake, BRONZE, INGEST_LOG)):
        return None
    times = pl.col("manifest_transaction_time").str.to_datetime("%+", time_zone="UTC", strict=False)
    latest, ignored = (
        scan_table(lake, BRONZE, INGEST_LOG)
        .select(trusted(times, now).max().alias("latest"), is_future(times, now).sum().alias("ignored"))
        .collect()
        .row(0)
    )
    _report(ignored, "Bulk export transaction time")
    return latest.date() if latest is not None else None


def _latest_clinical_event(ends: pl.DataFrame | None) -> date | None:
    """The latest trusted day of a clinical event in silver (of `_clinical_ends`), or None."""
    if ends is None:
        return None
    _report(int(ends["ignored"].sum()), "clinical event date")
    return ends["latest"].max()


def _by_source(ends: pl.DataFrame | None) -> dict[str, date]:
    """Per source, the latest trusted day of a clinical event (sources with none left out)."""
    if ends is None:
        return {}
    per_source = ends.drop_nulls(["source", "latest"]).group_by("source").agg(pl.col("latest").max())
    return dict(per_source.iter_rows())


def _clinical_ends(lake: UPath, now: datetime) -> pl.DataFrame | None:
    """Per clinical table and source: the latest trusted day and how many values were from the future."""
    results = []
    for table, columns in CLINICAL_EVENTS.items():
        if not parquet_files(table_path(lake, SILVER, table)):
            continue
        try:
            results.extend(_latest_in(scan_table(lake, SILVER, table), columns, now))
        except (pl.exceptions.PolarsError, OSError):
            # a damaged file (a killed run, a disk fault): the step that owns the table rebuilds it, and the
            # next call, seeing a new file, reads it again; the as-of day must not stop that step first
            log.warning("as-of day: the clinical table %s could not be read and is left out this time", table)
    return pl.concat(results) if results else None


def _latest_in(scan: pl.LazyFrame, columns: tuple[str, ...], now: datetime) -> list[pl.DataFrame]:
    """[per source: the latest trusted day among `columns` of `scan`, and how many values were from the
    future]."""
    names = scan.collect_schema().names()
    present = [c for c in columns if c in names]
    if not present:
        return []
    # dateTime text: its first ten characters are the day in the record's own zone
    days = pl.concat_list(
        [pl.col(c).cast(pl.String).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False) for c in present]
    ).list.max()
    source = pl.col("source").cast(pl.String) if "source" in names else pl.lit(None, pl.String)
    found = (
        scan.group_by(source.alias("source"))
        .agg(trusted(days, now).max().alias("latest"), is_future(days, now).sum().alias("ignored"))
        .collect()
    )
    return [found.select("source", "latest", pl.col("ignored").cast(pl.Int64))]


def _latest_last_updated(lake: UPath, now: datetime) -> date | None:
    if not parquet_files(table_path(lake, BRONZE, FHIR_RESOURCES)):
        return None
    updated, ignored = (
        scan_table(lake, BRONZE, FHIR_RESOURCES)
        .select(
            trusted(pl.col("last_updated"), now).max().alias("latest"),
            is_future(pl.col("last_updated"), now).sum().alias("ignored"),
        )
        .collect()
        .row(0)
    )
    _report(ignored, "meta.lastUpdated")
    return updated.date() if updated is not None else None


def _signature(lake: UPath) -> tuple:
    """What the answer is read from, as (file, size, modified time): the ingest log, the clinical tables
    and the resources' lastUpdated. Listing costs far less than reading."""
    tables = [(BRONZE, INGEST_LOG), (BRONZE, FHIR_RESOURCES)] + [(SILVER, t) for t in CLINICAL_EVENTS]
    seen = []
    for layer, table in tables:
        for path in parquet_files(table_path(lake, layer, table)):
            try:
                info = path.stat()
            except FileNotFoundError:  # replaced meanwhile: the next call sees the new one
                continue
            seen.append((str(path), info.st_size, getattr(info, "st_mtime", None)))
    return tuple(seen)


def _report(ignored: int, what: str) -> None:
    if ignored:
        log.warning(
            "as-of day: %d %s value(s) ignored (future_date: %s)",
            ignored,
            what,
            future_reason("the run's clock"),
        )
