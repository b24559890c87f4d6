"""The one rule for dates from the future: how far past its reference a value may lie and still be trusted.

A record cannot truthfully describe something that happened after it was delivered, nor can an analysis
"as of" a day use what happened after that day. Real feeds still carry such values (a clock set wrong, a
year typed 3026, a scheduled time mistaken for an observed one), and trusting them does harm: a `START`
reply dated 2030 cancels a real, earlier `STOP`; a `meta.lastUpdated` in 2099 pins a resource to that
version for ever; a future death date marks a living person deceased.

The rule: a value is *from the future* when it lies more than the tolerance past the end of its reference
day. The reference is the as-of day wherever a value is used as of a day (opt-outs, deaths, alerts, daily
device figures), and the run's clock where no as-of applies yet (the as-of day itself, the order of a
resource's versions). The tolerance, `PATIENT_INSIGHTS_FUTURE_TOLERANCE_DAYS` (default 1), absorbs time
zones and clocks a little fast. Such values are never trusted: each use quarantines or flags them with
the reason code `future_date` and a reason built by `future_reason`, never with the value itself (a date
about a person is PHI).
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

FUTURE_TOLERANCE_ENV = "PATIENT_INSIGHTS_FUTURE_TOLERANCE_DAYS"
DEFAULT_TOLERANCE_DAYS = 1
MAX_TOLERANCE_DAYS = 366
FUTURE_DATE = "future_date"
"""Reason code of a value the rule does not trust (quarantine rows, data-quality flags)."""


def future_tolerance() -> timedelta:
    """How far past the end of its reference day a value may lie: `PATIENT_INSIGHTS_FUTURE_TOLERANCE_DAYS`
    (a whole number of days, 0 to 366), else one day."""
    text = os.environ.get(FUTURE_TOLERANCE_ENV, "").strip()
    if not text:
        return timedelta(days=DEFAULT_TOLERANCE_DAYS)
    try:
        days = int(text)
    except ValueError:
        raise ValueError(f"{FUTURE_TOLERANCE_ENV} must be a whole number of days, got {text!r}") from None
    if not 0 <= days <= MAX_TOLERANCE_DAYS:
        raise ValueError(f"{FUTURE_TOLERANCE_ENV} must be between 0 and {MAX_TOLERANCE_DAYS}, got {days}")
    return timedelta(days=days)


def latest_trusted(reference: date | datetime, tolerance: timedelta | None = None) -> datetime:
    """The latest instant (UTC) a value may carry and still be trusted against `reference`.

    A date reference counts to the end of that day; a datetime reference (the run's clock) is taken as it
    is, a naive one as UTC.
    """
    if isinstance(reference, datetime):
        start = reference if reference.tzinfo else reference.replace(tzinfo=UTC)
    else:
        start = datetime.combine(reference + timedelta(days=1), time(), tzinfo=UTC)
    return start.astimezone(UTC) + (future_tolerance() if tolerance is None else tolerance)


def is_future(value: pl.Expr, reference: date | datetime, tolerance: timedelta | None = None) -> pl.Expr:
    """True where `value` (a Date, or a Datetime in UTC or naive-as-UTC) is from the future against
    `reference`; false where it is trusted or null (a missing value is never taken for a future one)."""
    cutoff = latest_trusted(reference, tolerance)
    as_instant = (
        pl.when(value.is_not_null())
        .then(value.cast(pl.Datetime("us")).dt.replace_time_zone(None))
        .otherwise(None)
    )
    # A time-zone aware value is compared in UTC (its naive form is UTC after the cast). A date becomes its
    # midnight, so `>=`: a date on the cutoff's day lies wholly past the cutoff, a datetime on it is noise.
    return (as_instant >= pl.lit(cutoff.replace(tzinfo=None), pl.Datetime("us"))).fill_null(False)


def trusted(value: pl.Expr, reference: date | datetime, tolerance: timedelta | None = None) -> pl.Expr:
    """`value` where the rule trusts it, null where it is from the future (for maxima, orderings, as-of)."""
    return pl.when(~is_future(value, reference, tolerance)).then(value)  # keeps the value's name


def future_reason(reference_name: str, tolerance: timedelta | None = None) -> str:
    """The reason text of a value from the future, e.g. "dated more than 1 day after the as-of day";
    `reference_name` names the reference ("the as-of day 2026-06-30", "the run's clock"), never the value."""
    days = (future_tolerance() if tolerance is None else tolerance).days
    return f"dated more than {days} day{'s' if days != 1 else ''} after {reference_name}"
