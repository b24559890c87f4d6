"""Apply a table's de-identification policy to a frame: column by column, vectorized Polars.

Pure functions: frames in, frames out; the salt comes in as bytes (read from `PATIENT_INSIGHTS_DEID_SALT`
by the caller, checked by `require_salt`) and is never part of a message.
"""

from __future__ import annotations

import hmac
from datetime import date

import polars as pl

from pipelines.deid.rules import (
    LINK_COLUMNS,
    MIN_SALT_CHARS,
    OLDEST_AGE,
    OLDEST_AGE_GROUP,
    PERSON_ID,
    PSEUDONYM_HEX_DIGITS,
    RESTRICTED_ZIP3,
    RESTRICTED_ZIP3_VALUE,
    SALT_ENV,
    DeidError,
    PolicyError,
    Rule,
    TablePolicy,
    check_columns,
)

_ZIP = r"^\s*(\d{3})\d{2}(?:-?\d{4})?\s*$"
"""A US ZIP or ZIP+4; anything else (a foreign postal code, a typo) cannot be generalized and is removed."""
_YEAR_TEXT = r"^\s*(\d{4})(?:[-/T]|\s*$)"
"""The year of an ISO date, partial date or timestamp written as text (FHIR birthDate may be '1960')."""


def require_salt(value: str | None) -> bytes:
    """The salt as key bytes; refuses a missing or short one (the message never shows the value)."""
    if not value or not value.strip():
        raise DeidError(
            f"{SALT_ENV} is not set: the de-identified export needs a secret salt for its pseudonyms (at "
            f"least {MIN_SALT_CHARS} characters, e.g. from `openssl rand -hex 32`), kept out of the export"
        )
    if len(value) < MIN_SALT_CHARS:
        raise DeidError(f"{SALT_ENV} is shorter than {MIN_SALT_CHARS} characters: use a longer secret")
    return value.encode()


def pseudonym(value: str, key: bytes) -> str:
    """The keyed pseudonym of one value: HMAC-SHA-256 under `key`, the first 32 hex digits."""
    return hmac.digest(key, value.encode(), "sha256").hex()[:PSEUDONYM_HEX_DIGITS]


def pseudonymize(frame: pl.DataFrame, columns: list[str], key: bytes) -> pl.DataFrame:
    """`frame` with the values of `columns` replaced by their pseudonyms (nulls stay null).

    Polars has no keyed cryptographic hash, so the HMAC runs once per distinct value (a C call each, about
    a microsecond); the replacement itself is one vectorized lookup per column."""
    if not columns:
        return frame
    distinct = pl.concat([frame.get_column(c).cast(pl.String).drop_nulls() for c in columns]).unique()
    if distinct.is_empty():
        return frame.with_columns(pl.col(c).cast(pl.String) for c in columns)
    digests = pl.Series([pseudonym(v, key) for v in distinct.to_list()], dtype=pl.String)
    return frame.with_columns(
        pl.col(c).cast(pl.String).replace_strict(distinct, digests, default=None, return_dtype=pl.String)
        for c in columns
    )


def link_persons(frame: pl.DataFrame, person_link: pl.DataFrame) -> pl.DataFrame:
    """Add `person_id` to a table keyed by source patient (`patient_source`, `patient_id`) from
    identity/person_link, so device rows carry the same pseudonymous person as the person tables (null
    for a patient no person is linked to)."""
    if PERSON_ID in frame.columns:
        raise PolicyError(f"a table linked to persons already has a {PERSON_ID} column")
    source, patient = LINK_COLUMNS
    links = (
        person_link.select(
            pl.col("source").alias(source), pl.col("source_patient_id").alias(patient), PERSON_ID
        )
        .sort(source, patient, PERSON_ID)
        .unique([source, patient], keep="first", maintain_order=True)
    )
    return frame.join(links, on=[source, patient], how="left", maintain_order="left")


def deidentify(frame: pl.DataFrame, policy: TablePolicy, key: bytes, as_of: date) -> pl.DataFrame:
    """`frame` with `policy` applied: every column kept, generalized, pseudonymized or dropped by its rule,
    rows grouped by pseudonymous person. A column the policy does not name raises `PolicyError`.

    `as_of` is the day ages are computed for: birth years of persons who are or turn 90 that year go."""
    check_columns(frame.columns, policy)
    out = frame.select(
        _apply(policy.rule(c), c, dtype, as_of).alias(c)
        for c, dtype in frame.schema.items()
        if policy.rule(c) is not Rule.DROP
    )
    out = pseudonymize(out, [c for c in out.columns if policy.rule(c) is Rule.HASH], key)
    if policy.columns.get(PERSON_ID) is Rule.HASH and PERSON_ID in out.columns:
        # source order is the order of the real ids (and of the bucket they hash to): order by pseudonym
        out = out.sort(PERSON_ID, maintain_order=True, nulls_last=True)
    return out


def export_schema(source: pl.Schema, policy: TablePolicy, as_of: date) -> pl.Schema:
    """The schema `deidentify` gives a frame of schema `source` (every file of a table is cast to it)."""
    return deidentify(pl.DataFrame(schema=source), policy, b"schema", as_of).schema


def _apply(rule: Rule, column: str, dtype: pl.DataType, as_of: date) -> pl.Expr:
    value = pl.col(column)
    if rule in (Rule.KEEP, Rule.CODE):
        return value
    if rule is Rule.HASH:
        return value.cast(pl.String)  # pseudonymized once the frame is selected (distinct values)
    if rule is Rule.YEAR:
        return _year(value, dtype, column)
    if rule is Rule.BIRTH_YEAR:
        year = _year(value, dtype, column)
        return pl.when(pl.lit(as_of.year, pl.Int32) - year > OLDEST_AGE).then(None).otherwise(year)
    if rule is Rule.ZIP3:
        zip3 = value.cast(pl.String).str.extract(_ZIP, 1)
        return pl.when(zip3.is_in(list(RESTRICTED_ZIP3))).then(pl.lit(RESTRICTED_ZIP3_VALUE)).otherwise(zip3)
    if rule is Rule.AGE_GROUP:
        if not dtype.is_numeric():
            raise PolicyError(f"{column}: age_group needs a number, the column is {dtype}")
        years = value.cast(pl.Float64).floor()
        return (
            pl.when(years < 0)
            .then(None)
            .when(years > OLDEST_AGE)
            .then(pl.lit(OLDEST_AGE_GROUP))
            .otherwise(years.cast(pl.Int64).cast(pl.String))
        )
    raise PolicyError(f"{column}: rule {rule} cannot be applied")  # DROP never gets here


def _year(value: pl.Expr, dtype: pl.DataType, column: str) -> pl.Expr:
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return value.dt.year().cast(pl.Int32)
    if dtype == pl.String:
        return value.str.extract(_YEAR_TEXT, 1).cast(pl.Int32)
    if dtype == pl.Null:
        return value.cast(pl.Int32)
    raise PolicyError(f"{column}: year needs a date, timestamp or ISO text, the column is {dtype}")
