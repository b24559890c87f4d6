"""The one way the platform renders a table as CSV for people to open: spreadsheet formulas neutralized.

A CSV export is opened in a spreadsheet sooner or later (an outreach coordinator checks the list), and a
spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a formula; a leading tab or carriage
return hides such a cell from a quick look and some spreadsheets still run it. Text in our exports comes
from patients and source systems (names, e-mail addresses, address lines, identifiers), so a family name
`=HYPERLINK("http://x","y")` would run on the coordinator's machine. The rule is OWASP's (CSV Injection):
a text cell that starts with one of `= + - @`, tab or carriage return is written with a single quote `'`
in front of it. Spreadsheets show the text as it was. So that a program reading the CSV gets the exact
text back by removing one leading quote (`restore_formula_text`), a text that already starts with quotes
followed by a trigger (`'=x`) gets one more as well.

Only the CSV rendering changes: Parquet, the FHIR Group and every table in the lake keep the original text.
Every CSV written for people goes through `csv_bytes`; a hash or fingerprint that happens to use CSV bytes
internally (never opened by anyone) does not need to.
"""

from __future__ import annotations

import polars as pl

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP, CSV Injection)."""
NEUTRALIZING_PREFIX = "'"
_NEEDS_PREFIX = "^'*[=+\\-@\t\r]"
"""A trigger first, or after quotes (so that removing one quote is always exact)."""
_PREFIXED = "^'+[=+\\-@\t\r]"
_TEXT_TYPES = (pl.String, pl.Categorical, pl.Enum)


def neutralize_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with every text cell that starts with a formula trigger, or with quotes and then one, prefixed
    by `'` (other cells and non-text columns unchanged).

    Numeric, boolean and date columns are left as they are, on purpose: they are rendered by Polars from a
    typed value (digits, a sign, a point, an exponent, `inf`, `NaN`, an ISO date), which no spreadsheet
    runs as a formula, and a negative number such as `-0.4` must stay a number: quoted, it would become
    text that no longer sorts or adds up, and our own readers (the hold-out's `draw`) would no longer
    parse it. Patient-supplied text is never held in such a column.
    """
    text = [name for name, dtype in frame.schema.items() if isinstance(dtype, _TEXT_TYPES)]
    if not text:
        return frame
    return frame.with_columns(
        pl.when(pl.col(name).cast(pl.String).str.contains(_NEEDS_PREFIX))
        .then(pl.lit(NEUTRALIZING_PREFIX) + pl.col(name).cast(pl.String))
        .otherwise(pl.col(name).cast(pl.String))
        .alias(name)
        for name in text
    )


def csv_bytes(frame: pl.DataFrame, separator: str = ",") -> bytes:
    """`frame` as UTF-8 CSV for people to open: list columns joined with `;` (their elements as text,
    dates as YYYY-MM-DD), then formula-leading text cells neutralized. Equal frames give equal bytes."""
    flat = frame.with_columns(
        pl.col(name).list.eval(pl.element().cast(pl.String)).list.join(";")
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.List)
    )
    return neutralize_formulas(flat).write_csv(separator=separator).encode("utf-8")


def restore_formula_text(column: pl.Expr) -> pl.Expr:
    """The original text of a column read back from one of our CSV exports: the `'` that `csv_bytes` put in
    front of a formula-leading cell removed (a cell that starts with a quote for another reason is kept)."""
    return pl.when(column.str.contains(_PREFIXED)).then(column.str.slice(1)).otherwise(column)
