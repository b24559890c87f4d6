"""Look for identifiers left in a de-identified table: the last line of defence before it is published.

Three kinds of check, all vectorized and all reporting counts only (a finding names the table, the column
and the check, never the value):

- the columns against the policy: every column named with a rule that exports it, no date or timestamp
  type, and each generalized column in its rule's format (pseudonyms, years, ZIP3, age groups);
- value patterns in the text columns: full dates, e-mail addresses, phone and SSN-like numbers, 5-digit
  ZIP codes, record numbers (MRN-like digit runs, UUIDs, person ids), URLs and IP addresses;
- exact matches of known identifying values (names, ids, contacts, birth dates from the identifiable
  source tables) in any text column, and of the specific ones (full names, e-mails, phones, ids) inside
  longer texts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import polars as pl

from pipelines.deid.rules import (
    OLDEST_AGE,
    OLDEST_AGE_GROUP,
    PSEUDONYM_HEX_DIGITS,
    RESTRICTED_ZIP3,
    Rule,
    TablePolicy,
)

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
PATTERNS: dict[str, str] = {
    "full_date": (
        rf"\b\d{{4}}-\d{{1,2}}-\d{{1,2}}\b|\b\d{{4}}/\d{{1,2}}/\d{{1,2}}\b|\b\d{{1,2}}/\d{{1,2}}/\d{{2,4}}\b"
        rf"|\b\d{{1,2}}\s+{_MONTH}\s+\d{{4}}\b|\b{_MONTH}\s+\d{{1,2}},?\s+\d{{4}}\b|\b\d{{8}}T\d{{4}}"
    ),
    "email": r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",
    "phone": r"(?:\+?1[\s.-]?)?(?:\(\d{3}\)|\b\d{3})[\s.-]?\d{3}[\s.-]\d{4}\b",
    "ssn": r"\b\d{3}-\d{2}-\d{4}\b|\b(?:ssn|social security)\b",
    "zip5": r"\b\d{5}(?:-\d{4})?\b",
    "record_number": (
        r"\b[a-z]{0,4}\d{7,}\b|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
        r"|\bpsn-[0-9a-f]{6,}|\bmrn\b"
    ),
    "url": r"\b(?:https?|ftp)://|\bwww\.[a-z0-9-]+\.",
    "ip": r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b",
}
"""Identifier-shaped text (case-insensitive)."""
NUMERIC_PATTERNS = frozenset({"zip5", "record_number", "ip"})
"""Not applied to `code` columns: terminology codes are digit runs (SNOMED CT, RxNorm) and OIDs."""
_CHECKED_RULES = {Rule.KEEP, Rule.CODE}
"""Text columns the value patterns read; generalized columns are checked against their own format."""
_FORMATS: dict[Rule, str] = {
    Rule.HASH: rf"^[0-9a-f]{{{PSEUDONYM_HEX_DIGITS}}}$",
    Rule.ZIP3: r"^\d{3}$",
    Rule.AGE_GROUP: rf"^(?:[0-9]|[1-8][0-9]|{re.escape(OLDEST_AGE_GROUP)})$",
}
MIN_EXACT_CHARS = 3
"""Shorter source values (initials, 2-letter names) are not looked for: they equal codes such as states."""
MIN_CONTAINED_CHARS = 6


@dataclass(frozen=True)
class Finding:
    """`count` values of `table.column` failed `check` (no value is kept)."""

    table: str
    column: str
    check: str
    count: int


@dataclass(frozen=True)
class IdentifyingValues:
    """Known identifying values (lower case) from the identifiable source tables: `exact` are looked for
    as whole values, `contained` (the specific ones: with a digit, '@' or a space) also inside texts."""

    exact: pl.Series
    contained: list[str]

    @classmethod
    def from_columns(cls, columns: Iterable[pl.Series]) -> IdentifyingValues:
        """From columns of identifying strings: names, full names, ids, MRNs, SSNs, phones, e-mails,
        street lines, birth dates."""
        values = [c.cast(pl.String) for c in columns if c.len()]
        if not values:
            return cls(pl.Series("value", [], dtype=pl.String), [])
        exact = _normalized(pl.concat(values))
        contained = exact.filter(
            (exact.str.len_chars() >= MIN_CONTAINED_CHARS) & exact.str.contains(r"[0-9@ ]")
        ).to_list()
        return cls(exact.rename("value"), contained)

    def __len__(self) -> int:
        return self.exact.len()


def scan(
    frame: pl.DataFrame | pl.LazyFrame,
    policy: TablePolicy,
    identifying: IdentifyingValues | None = None,
    as_of: date | None = None,
) -> list[Finding]:
    """Every residual identifier found in the de-identified `frame` of `policy.table`, as counts per column
    and check; empty when the table is clean. `as_of` (the export's) also checks that no birth year of a
    person of 90 or over is left."""
    lazy = frame.lazy()
    schema = lazy.collect_schema()
    findings: list[Finding] = []
    table = policy.table
    for column, dtype in schema.items():
        rule = policy.columns.get(column)
        if rule is None:
            findings.append(Finding(table, column, "unknown_column", 1))
            continue
        if rule is Rule.DROP:
            findings.append(Finding(table, column, "dropped_column_present", 1))
            continue
        if _temporal(dtype):  # the type itself is a finding, also in an empty table
            findings.append(Finding(table, column, "full_date", max(1, _non_null(lazy, column))))
            continue
        if isinstance(dtype, pl.Struct) or (isinstance(dtype, pl.List) and dtype.inner.is_nested()):
            findings.append(Finding(table, column, "not_scannable", 1))  # flatten it in the policy's table
            continue
        findings.extend(_format_findings(lazy, table, column, rule, dtype, as_of))
        if _is_text(dtype):
            findings.extend(_text_findings(lazy, table, column, rule, dtype, identifying))
    return [f for f in findings if f.count]


def _format_findings(
    lazy: pl.LazyFrame, table: str, column: str, rule: Rule, dtype: pl.DataType, as_of: date | None
) -> list[Finding]:
    if rule in (Rule.YEAR, Rule.BIRTH_YEAR):
        if not dtype.is_integer():
            return [Finding(table, column, "not_a_year", max(1, _non_null(lazy, column)))]
        if rule is Rule.BIRTH_YEAR and as_of is not None:
            over = (pl.lit(as_of.year) - pl.col(column) > OLDEST_AGE).sum()
            return [Finding(table, column, "birth_year_over_89", int(lazy.select(over).collect().item()))]
        return []
    if rule in _FORMATS:
        if dtype != pl.String:
            return [Finding(table, column, f"not_{rule.value}", max(1, _non_null(lazy, column)))]
        checks = [(~pl.col(column).str.contains(_FORMATS[rule])).sum().alias(f"not_{rule.value}")]
        if rule is Rule.ZIP3:
            checks.append(pl.col(column).is_in(sorted(RESTRICTED_ZIP3)).sum().alias("restricted_zip3"))
        counts = lazy.select(checks).collect().row(0, named=True)
        return [Finding(table, column, check, int(n or 0)) for check, n in counts.items()]
    return []


def _text_findings(
    lazy: pl.LazyFrame,
    table: str,
    column: str,
    rule: Rule,
    dtype: pl.DataType,
    identifying: IdentifyingValues | None,
) -> list[Finding]:
    """Patterns and known values over the column's distinct texts (list columns item by item), counted in
    rows; the distinct texts of a column are few next to its rows."""
    value = pl.col(column).explode() if isinstance(dtype, pl.List) else pl.col(column)
    texts = (
        lazy.select(value.alias("text")).drop_nulls().group_by("text").agg(pl.len().alias("rows")).collect()
    )
    if texts.is_empty():
        return []
    checks: dict[str, pl.Expr] = {}
    if rule in _CHECKED_RULES:
        for name, pattern in PATTERNS.items():
            if not (rule is Rule.CODE and name in NUMERIC_PATTERNS):
                checks[name] = pl.col("text").str.contains(f"(?i){pattern}")
    if identifying is not None and len(identifying):
        normalized = pl.col("text").str.strip_chars().str.to_lowercase()
        checks["identifying_value"] = normalized.is_in(identifying.exact.implode())
        if rule is Rule.KEEP and identifying.contained:  # codes and pseudonyms are too dense to search in
            checks["identifying_value_in_text"] = normalized.str.contains_any(identifying.contained)
    if not checks:
        return []
    counts = texts.select(pl.col("rows").filter(hit).sum().alias(name) for name, hit in checks.items())
    return [Finding(table, column, name, int(n or 0)) for name, n in counts.row(0, named=True).items()]


def _normalized(values: pl.Series) -> pl.Series:
    """Distinct, trimmed, lower-case values long enough to look for."""
    lowered = values.drop_nulls().str.strip_chars().str.to_lowercase().unique().sort()
    return lowered.filter(lowered.str.len_chars() >= MIN_EXACT_CHARS)


def _non_null(lazy: pl.LazyFrame, column: str) -> int:
    return int(lazy.select(pl.col(column).is_not_null().sum()).collect().item())


def _temporal(dtype: pl.DataType) -> bool:
    """A date, time or timestamp type, also inside a list or struct."""
    if isinstance(dtype, pl.List | pl.Array):
        return _temporal(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(_temporal(f.dtype) for f in dtype.fields)
    return dtype.is_temporal()


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or (isinstance(dtype, pl.List) and dtype.inner == pl.String)
