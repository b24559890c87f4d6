"""FHIR date, dateTime and instant text as Polars timestamps (silver keeps them as text)."""

from __future__ import annotations

import polars as pl

FHIR_TIME = "%Y-%m-%dT%H:%M:%S%.f%:z"


def fhir_timestamp(text: pl.Expr) -> pl.Expr:
    """UTC timestamp of a FHIR dateTime/instant; a date alone is midnight UTC; anything else is null."""
    with_offset = text.str.to_datetime(FHIR_TIME, time_zone="UTC", time_unit="us", strict=False)
    zulu = text.str.replace(r"Z$", "+00:00").str.to_datetime(
        FHIR_TIME, time_zone="UTC", time_unit="us", strict=False
    )
    date_only = text.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return pl.coalesce(with_offset, zulu, date_only)


def fhir_offset(text: pl.Expr) -> pl.Expr:
    """The UTC offset written in a FHIR dateTime ('+HH:MM'; 'Z' becomes '+00:00'), or null."""
    return text.str.extract(r"(Z|[+-]\d{2}:\d{2})$").replace("Z", "+00:00")
