"""Birth dates that cannot give an age: the rule silver's data-quality record and gold's `age` share.

Real EHRs carry placeholder and mistyped birth dates (`1900-01-01` for "unknown", `0000-01-01`, a year
typed 2096). Trusting them makes a person 2026 or 126 years old, which breaks every age rule downstream;
dropping the person would be worse (their care gaps, contacts and opt-outs would vanish). So such a birth
date makes the age *unknown* (null), with a reason code saying why; the person and the date itself stay.

The rule, checked in this order (the first that applies gives the code):
- `future_date`: after the reference day plus the tolerance (pipelines/future_dates.py, the one rule);
- `placeholder_birth_date`: one of `PLACEHOLDER_BIRTH_DATES`;
- `birth_date_too_early`: before `EARLIEST_BIRTH_DATE` (1900), or more than `MAX_AGE_YEARS` years before
  the reference day (older than anyone has lived; patient_360's contract allows ages up to 125);
- `birth_date_not_a_full_date`: text that is not a full `YYYY-MM-DD` date (a FHIR partial date such as
  `1970` or `1970-05`, or garbage): no age in whole years can be told from it.
A missing birth date is simply unknown (no code).
"""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from pipelines.future_dates import FUTURE_DATE, is_future

PLACEHOLDER_BIRTH_DATES: tuple[str, ...] = ("1900-01-01",)
"""Birth dates systems write for "unknown" that fall inside the plausible range (the placeholders before
1900, such as 1800-01-01, 1753-01-01 or 0001-01-01, are caught by the range itself). 1970-01-01 is not
listed: real people are born on it."""
EARLIEST_BIRTH_DATE = date(1900, 1, 1)
MAX_AGE_YEARS = 125
"""Matches the patient_360 contract's upper bound for `age`."""
PLACEHOLDER_BIRTH_DATE = "placeholder_birth_date"
BIRTH_DATE_TOO_EARLY = "birth_date_too_early"
BIRTH_DATE_NOT_A_FULL_DATE = "birth_date_not_a_full_date"
BIRTH_DATE_CODES = (FUTURE_DATE, PLACEHOLDER_BIRTH_DATE, BIRTH_DATE_TOO_EARLY, BIRTH_DATE_NOT_A_FULL_DATE)


def parsed_birth_date(text: pl.Expr) -> pl.Expr:
    """A FHIR birthDate text as a Date; null when it is not a full `YYYY-MM-DD` date."""
    return text.str.to_date("%Y-%m-%d", strict=False)


def birth_date_problem(text: pl.Expr, reference: date | datetime) -> pl.Expr:
    """The reason code (see the module) why the birth date `text` gives no age against `reference` (the
    as-of day, or the run's clock where no as-of applies); null when it is usable or missing."""
    born = parsed_birth_date(text)
    day = reference.date() if isinstance(reference, datetime) else reference
    try:  # born on or before this day, a person is older than MAX_AGE_YEARS
        too_old = day.replace(year=day.year - MAX_AGE_YEARS - 1)
    except ValueError:  # 29 February
        too_old = day.replace(year=day.year - MAX_AGE_YEARS - 1, day=28)
    return (
        pl.when(text.is_null())
        .then(pl.lit(None, pl.String))
        .when(born.is_null())
        .then(pl.lit(BIRTH_DATE_NOT_A_FULL_DATE))
        .when(is_future(born, reference))
        .then(pl.lit(FUTURE_DATE))
        .when(text.is_in(list(PLACEHOLDER_BIRTH_DATES)))
        .then(pl.lit(PLACEHOLDER_BIRTH_DATE))
        .when((born < pl.lit(EARLIEST_BIRTH_DATE)) | (born <= pl.lit(too_old)))
        .then(pl.lit(BIRTH_DATE_TOO_EARLY))
        .otherwise(pl.lit(None, pl.String))
    )


def unusable_birth_date(text: pl.Expr) -> pl.Expr:
    """True where the birth date `text` gives no age whatever the reference day (a placeholder, before
    1900, not a full date); for callers whose reference varies per row, which then apply the future and
    `MAX_AGE_YEARS` rules themselves. False for a missing birth date."""
    born = parsed_birth_date(text)
    return text.is_not_null() & (
        born.is_null() | text.is_in(list(PLACEHOLDER_BIRTH_DATES)) | (born < pl.lit(EARLIEST_BIRTH_DATE))
    )
