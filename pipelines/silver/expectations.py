"""The data contracts: Great Expectations suites in data_contracts/expectations, evaluated in Polars.

The suites stay GE 1.x suites, the declared contracts. `check_table` evaluates them with vectorized Polars
expressions (every count in one `select`; a second only when a uniqueness check has duplicates to count)
with the semantics of GE's pandas engine, which `check_table_with_ge` still runs: the tests in
tests/test_contracts_polars.py hold the two to the same answers on every expectation of every shipped
suite. GE's import alone took seconds, and the pandas conversion and GE's row-by-row evaluation took
longer than building the tables.

GE's pandas semantics, as evaluated here:

- Missing means null or float NaN (a Polars NaN becomes a pandas NaN, which pandas treats as missing).
- Column-map expectations other than not_null evaluate the non-missing values only; `mostly` compares the
  share of expected values among the evaluated ones (not_null: among all rows); nothing evaluated passes.
- Regexes use search semantics (`re.search` on the value's text). They are translated to the Rust regex
  dialect where the two differ (`$` also matches before a final newline, `\\Z`, `\\s`, `\\w`); a construct
  without an exact translation (word boundaries, look-around, back-references, the m/x/a/L flags, and
  `{,n}` and `[[:`, which pandas hands to pyarrow's RE2 with another meaning than Python's) raises
  ValueError instead of quietly meaning something else.
- Regex and length expectations see pandas' `astype(str)` text: strings as they are, integers as digits
  (as "7.0" when the column has nulls, which make it float in pandas), floats as Python's repr, booleans
  as True/False, dates as YYYY-MM-DD; other types raise ValueError.
- Uniqueness counts every row of a duplicated value as unexpected; compound uniqueness skips the rows whose
  values are all missing by default (`ignore_row_if`), and treats missing values as equal to each other.
- Pair expectations drop rows per `ignore_row_if` (default both_values_are_missing); in a kept row a
  missing value never satisfies a > b, and is None for the pair-in-set lookup.
- Values and set members of different kinds never match (the string "1" is not the number 1); True and 1
  do, as in Python. Bounds are parsed as GE's pydantic model does (number, then date, then datetime).
- A missing column, or a comparison GE's pandas engine cannot make (numbers against strings, a date-only
  bound against timestamps), fails the expectation as GE does, with "?" for the count.

Failure strings read "<type>(<columns>): <n> unexpected". The pair-in-set expectation counts distinct
unexpected (A, B) pairs, "<n> unexpected pairs", as it did when GE ran it on the distinct pairs (a wrong
unit shows once however many readings carry it); its verdict, `mostly` included, stays GE's row-wise one.
With a group column, `failing_groups` names per failure the groups of its unexpected rows (for a "?"
failure, of the rows it would have evaluated: every row when a column is missing); rows whose group is
null count but are not named.

Contract errors that need no data to see (an unknown expectation type or argument, an invalid regex,
bounds both null or reversed) raise ValueError naming the table, so a broken contract never passes.

Outcomes carry expectation types, columns and counts only, never values: values may be patient data.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import orjson
import polars as pl

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "data_contracts" / "expectations"


@dataclass
class ContractOutcome:
    """Result of one table's suite on one frame (a partition, or the partitions a run rebuilt)."""

    table: str
    success: bool = True
    evaluated: int = 0  # expectations evaluated
    rows: int = 0  # rows checked
    failures: list[str] = field(default_factory=list)  # "<expectation>(<columns>): <n> unexpected"
    # failure string -> sorted distinct values of the group column among that failure's unexpected rows
    failing_groups: dict[str, list[str]] = field(default_factory=dict)


@lru_cache(maxsize=16)
def load_suites(folder: Path = EXPECTATIONS_DIR) -> dict[str, dict[str, Any]]:
    """Every suite in the folder by table name."""
    return {path.stem: orjson.loads(path.read_bytes()) for path in sorted(folder.glob("*.json"))}


def suite_columns(suite: dict[str, Any]) -> list[str]:
    """The columns a suite's expectations name, in first-use order."""
    named: dict[str, None] = {}
    for expectation in suite["expectations"]:
        kwargs = expectation["kwargs"]
        for key in ("column", "column_A", "column_B"):
            if key in kwargs:
                named[kwargs[key]] = None
        named.update(dict.fromkeys(kwargs.get("column_list") or []))
    return list(named)


# ---------------------------------------------------------------------------------------------------------
# The Polars evaluator


class ContractError(ValueError):
    """A contract that cannot be evaluated as written (found without looking at any data)."""


@dataclass(frozen=True)
class _Spec:
    """One expectation, checked against what the evaluator supports (no data needed)."""

    type: str
    columns: tuple[str, ...]
    kwargs: dict[str, Any]
    mostly: float

    @property
    def label(self) -> str:
        return f"{self.type}({','.join(self.columns)})"

    @property
    def unit(self) -> str:
        return _PAIRS_UNIT if self.type == _PAIRS_IN_SET else "unexpected"


# Pair-in-set failures count distinct (A, B) pairs rather than rows, as they always have: a wrong unit for a
# metric shows up once however many readings carry it. Whether the expectation passes (with `mostly` too)
# is GE's row-wise answer; only the reported count is in distinct pairs.
_PAIRS_IN_SET = "expect_column_pair_values_to_be_in_set"
_PAIRS_UNIT = "unexpected pairs"

_COLUMN = {"column", "mostly"}
_PAIR = {"column_A", "column_B", "ignore_row_if", "mostly"}
# The kwargs each supported expectation accepts; anything else (a row_condition, say) would change the
# answer in a way this evaluator does not model, so it is refused rather than ignored.
_KWARGS: dict[str, set[str]] = {
    "expect_column_values_to_not_be_null": _COLUMN,
    "expect_column_values_to_be_in_set": _COLUMN | {"value_set"},
    "expect_column_values_to_be_between": _COLUMN | {"min_value", "max_value", "strict_min", "strict_max"},
    "expect_column_values_to_match_regex": _COLUMN | {"regex"},
    "expect_column_values_to_be_unique": _COLUMN,
    "expect_column_value_lengths_to_equal": _COLUMN | {"value"},
    "expect_compound_columns_to_be_unique": {"column_list", "ignore_row_if", "mostly"},
    "expect_column_pair_values_a_to_be_greater_than_b": _PAIR | {"or_equal"},
    _PAIRS_IN_SET: _PAIR | {"value_pairs_set"},
}
_REQUIRED: dict[str, set[str]] = {
    "expect_column_values_to_be_in_set": {"value_set"},
    "expect_column_values_to_match_regex": {"regex"},
    "expect_column_value_lengths_to_equal": {"value"},
    _PAIRS_IN_SET: {"value_pairs_set"},
}
_PAIR_IGNORE = ("both_values_are_missing", "either_value_is_missing", "neither")
_MULTI_IGNORE = ("all_values_are_missing", "any_value_is_missing", "never")


def _parse(table: str, expectation: dict[str, Any]) -> _Spec:
    """An expectation as a _Spec, or ContractError naming the table and what is wrong."""
    kind = expectation.get("type")
    if kind not in _KWARGS:
        raise ContractError(
            f"table {table!r}: unknown expectation type {kind!r} (supported: {sorted(_KWARGS)})"
        )
    kwargs = dict(expectation.get("kwargs") or {})
    where = f"table {table!r}, {kind}"
    if unknown := set(kwargs) - _KWARGS[kind]:
        raise ContractError(f"{where}: unsupported arguments {sorted(unknown)}")
    if missing := _REQUIRED.get(kind, set()) - set(kwargs):
        raise ContractError(f"{where}: missing arguments {sorted(missing)}")
    if "column_list" in _KWARGS[kind]:
        columns = tuple(kwargs.get("column_list") or ())
        if not columns:
            raise ContractError(f"{where}: column_list is empty")
    elif "column_A" in _KWARGS[kind]:
        columns = (kwargs.get("column_A"), kwargs.get("column_B"))
    else:
        columns = (kwargs.get("column"),)
    if not all(isinstance(c, str) and c for c in columns):
        raise ContractError(f"{where}: every column must be named")
    mostly = kwargs.get("mostly", 1.0)
    if isinstance(mostly, bool) or not isinstance(mostly, int | float) or not 0 <= mostly <= 1:
        raise ContractError(f"{where}: mostly must be a number between 0 and 1")
    spec = _Spec(kind, columns, kwargs, float(mostly))
    _check_arguments(spec, where)
    return spec


def _check_arguments(spec: _Spec, where: str) -> None:
    """The argument checks GE's pydantic models make when a suite is built, plus the regex's dialect."""
    kwargs = spec.kwargs
    if spec.type == "expect_column_values_to_be_between":
        low, high = (_bound(kwargs.get(key), where) for key in ("min_value", "max_value"))
        if low is None and high is None:
            raise ContractError(f"{where}: min_value and max_value cannot both be null")
        try:
            reversed_bounds = low is not None and high is not None and low > high
        except TypeError:  # a number against a date, a date against a datetime: GE's engine raises too
            raise ContractError(f"{where}: min_value and max_value are of different kinds") from None
        if reversed_bounds:  # GE's engine raises on every batch
            raise ContractError(f"{where}: min_value is above max_value")
    elif spec.type == "expect_column_values_to_match_regex":
        _rust_regex(kwargs["regex"], where)
    elif spec.type == "expect_column_value_lengths_to_equal":
        if isinstance(kwargs["value"], bool) or not isinstance(kwargs["value"], int):
            raise ContractError(f"{where}: value must be an integer")
    elif spec.type == "expect_column_values_to_be_in_set":
        if kwargs["value_set"] is not None and not isinstance(kwargs["value_set"], list):
            raise ContractError(f"{where}: value_set must be a list")
    elif spec.type == _PAIRS_IN_SET:
        pairs = kwargs["value_pairs_set"]
        if pairs is not None and not all(isinstance(p, list | tuple) and len(p) == 2 for p in pairs):
            raise ContractError(f"{where}: value_pairs_set must be a list of pairs")
    if "ignore_row_if" in kwargs:
        allowed = _MULTI_IGNORE if spec.type == "expect_compound_columns_to_be_unique" else _PAIR_IGNORE
        if kwargs["ignore_row_if"] not in allowed:
            raise ContractError(f"{where}: ignore_row_if must be one of {allowed}")


@dataclass(frozen=True)
class _Check:
    """How one expectation is evaluated on one frame's schema.

    `considered` marks the rows the expectation evaluates (None: every row); `unexpected` marks, among them,
    the rows that fail it (None: GE's pandas engine raises on any considered row, so the expectation fails
    with an unknown count as soon as there is one). `missing_column` fails it outright, as GE does.
    `duplicates` is the key of a uniqueness check: its unexpected rows are those whose key is duplicated.
    """

    spec: _Spec
    considered: pl.Expr | None = None
    unexpected: pl.Expr | None = None
    missing_column: bool = False
    pairs: pl.Expr | None = None  # pair-in-set: the (A, B) struct whose distinct unexpected values count
    duplicates: pl.Expr | None = None


def check_table(
    table: str,
    frame: pl.DataFrame | pl.LazyFrame,
    suite: dict[str, Any],
    group_column: str | None = None,
) -> ContractOutcome:
    """Evaluate `table`'s suite on a frame, vectorized in Polars, with GE's pandas-engine semantics.

    A LazyFrame (a scan of the table's files) is evaluated without materializing its columns where the
    counts allow (the streaming engine): a whole large table is checked in bounded memory. With
    `group_column` (a bucket, a source), `failing_groups` names, per failure, the groups whose rows were
    unexpected; the group column itself is not evaluated. Raises ContractError (a ValueError) for a
    contract that cannot be evaluated, even on an empty frame.
    """
    specs = [_parse(table, expectation) for expectation in suite["expectations"]]
    outcome = ContractOutcome(table)
    if isinstance(frame, pl.DataFrame) and frame.is_empty():  # every expectation would pass vacuously
        return outcome
    lazy = frame.lazy()
    schema = lazy.collect_schema()
    if group_column is not None and group_column not in schema:
        raise ValueError(f"table {table!r}: group column {group_column!r} is not in the frame")
    checks = [_plan(table, spec, schema) for spec in specs]

    # One streaming pass for every count that is a sum (the masks several checks share computed once):
    # it holds a few batches of rows at a time. Distinct counts do not stream (Polars gathers a whole
    # column for them, and one of them in the pass gathers every column: 1.9 GiB for 6 million device
    # readings), so each is taken apart, over its own columns only.
    aggregates: list[pl.Expr] = [pl.len().alias("rows")]
    for i, check in enumerate(checks):
        if check.missing_column:
            continue
        considered = check.considered
        aggregates.append((pl.len() if considered is None else considered.sum()).alias(f"{i}.considered"))
        if check.duplicates is None and check.unexpected is not None:
            aggregates.append(_rows(check).sum().alias(f"{i}.unexpected"))
    counts = lazy.select(aggregates).collect(engine="streaming").row(0, named=True)
    outcome.rows = int(counts["rows"])
    if not outcome.rows:  # an empty scan: nothing to evaluate, as for an empty frame
        return outcome
    # Marking every duplicated row costs several times counting distinct keys, so only a uniqueness check
    # with fewer distinct key hashes than rows (a duplicate, or rarely a collision) pays for it, in a second
    # pass that compares the keys themselves.
    recount: list[pl.Expr] = []
    for i, check in enumerate(checks):
        if check.duplicates is not None and not check.missing_column:
            if _distinct_hashes(lazy, check) == counts[f"{i}.considered"]:
                counts[f"{i}.unexpected"] = 0
            else:
                recount.append(_rows(check).sum().alias(f"{i}.unexpected"))
    if recount:
        counts.update(lazy.select(recount).collect(engine="streaming").row(0, named=True))
    for i, check in enumerate(checks):
        # the distinct pairs a pair-in-set check reports are only shown when it fails
        if check.pairs is not None and not check.missing_column and counts[f"{i}.unexpected"]:
            pairs = check.pairs.filter(_rows(check)).n_unique().alias("pairs")
            counts[f"{i}.pairs"] = lazy.select(pairs).collect(engine="streaming").item()

    failed: list[tuple[str, _Check]] = []
    for i, check in enumerate(checks):
        outcome.evaluated += 1
        message = _failure(check, counts, i)
        if message is not None:
            outcome.failures.append(message)
            failed.append((message, check))
    outcome.success = not outcome.failures
    if group_column is not None and failed:
        outcome.failing_groups = _failing_groups(lazy, group_column, failed)
    return outcome


def _failure(check: _Check, counts: dict[str, Any], i: int) -> str | None:
    """The failure string of a check given the counts, or None when it passed."""
    prefix = f"{check.spec.label}: "
    if check.missing_column:
        return f"{prefix}? {check.spec.unit}"
    considered = counts[f"{i}.considered"]
    if check.unexpected is None:
        return f"{prefix}? {check.spec.unit}" if considered else None
    unexpected = counts[f"{i}.unexpected"]
    if considered == 0 or _mostly_success(considered, unexpected, check.spec.mostly):
        return None
    shown = counts[f"{i}.pairs"] if check.pairs is not None else unexpected
    return f"{prefix}{shown} {check.spec.unit}"


def _mostly_success(considered: int, unexpected: int, mostly: float) -> bool:
    """GE's `_mostly_success`, float arithmetic included (a threshold's edge must land the same side)."""
    return (float(considered) - float(unexpected)) / float(considered) >= mostly


def _rows(check: _Check) -> pl.Expr:
    """The rows a check counts against it: its unexpected rows, or for a check that cannot be evaluated
    (missing column, incomparable types) every row it would have evaluated."""
    considered = pl.lit(True) if check.considered is None else check.considered
    if check.missing_column or check.unexpected is None:
        return considered
    return considered & check.unexpected


def _distinct_hashes(frame: pl.LazyFrame, check: _Check) -> int:
    """How many distinct 64-bit hashes the considered keys of a uniqueness check have: as many as there are
    considered rows proves the keys unique (equal keys hash equal). The hashes stream out of the scan and
    take 8 bytes a row, where the keys themselves took 2 GiB for 6 million device readings."""
    assert check.duplicates is not None
    considered = frame if check.considered is None else frame.filter(check.considered)
    hashes = considered.select(check.duplicates.hash().alias("hash")).collect(engine="streaming")
    return hashes["hash"].n_unique()


def _failing_groups(
    frame: pl.LazyFrame, group_column: str, failed: list[tuple[str, _Check]]
) -> dict[str, list[str]]:
    """Per failure, the sorted distinct non-null values of the group column among its unexpected rows."""
    group = pl.col(group_column)
    selected = frame.lazy().select(
        group.filter(_rows(check)).drop_nulls().unique().sort().cast(pl.String).implode().alias(str(i))
        for i, (_, check) in enumerate(failed)
    )
    row = selected.collect().row(0)
    return {message: list(row[i]) for i, (message, _) in enumerate(failed)}


# --- planning: one expectation on one schema


_STRINGS = (pl.String, pl.Categorical, pl.Enum)
_TEMPORAL = (pl.Date, pl.Datetime)


def _is(dtype: pl.DataType, kinds: tuple[type[pl.DataType], ...]) -> bool:
    return any(isinstance(dtype, kind) or dtype == kind for kind in kinds)


def _numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() and not isinstance(dtype, pl.Decimal)


def _missing(name: str, dtype: pl.DataType) -> pl.Expr:
    """Missing as pandas sees it: null, or NaN in a float column."""
    column = pl.col(name)
    return column.is_null() | column.is_nan() if dtype.is_float() else column.is_null()


def _normalized(name: str, dtype: pl.DataType) -> pl.Expr:
    """A column with NaN as null: the two kinds of missing compare equal, as both are NaN in pandas."""
    return pl.col(name).fill_nan(None) if dtype.is_float() else pl.col(name)


def _plan(table: str, spec: _Spec, schema: pl.Schema) -> _Check:
    """The expressions that evaluate one expectation on a frame with this schema."""
    if any(column not in schema for column in spec.columns):
        return _Check(spec, missing_column=True)
    where = f"table {table!r}, {spec.label}"
    dtypes = [schema[column] for column in spec.columns]
    if spec.type == "expect_column_values_to_not_be_null":
        return _Check(spec, unexpected=_missing(spec.columns[0], dtypes[0]))
    if spec.type == "expect_column_values_to_be_unique":
        name, dtype = spec.columns[0], dtypes[0]
        _hashable(dtype, where)
        # Over all rows rather than the present ones: a missing value never equals a present one, so a
        # present value is duplicated among all rows exactly when it is among the present ones.
        key = pl.col(name)
        return _Check(spec, ~_missing(name, dtype), key.is_duplicated(), duplicates=key)
    if spec.type in _COLUMN_CONDITIONS:
        name, dtype = spec.columns[0], dtypes[0]
        present = ~_missing(name, dtype)
        if dtype == pl.Null:  # no value to evaluate
            return _Check(spec, considered=present, unexpected=pl.lit(False))
        condition = _COLUMN_CONDITIONS[spec.type](spec, name, dtype, where)
        return _Check(spec, considered=present, unexpected=None if condition is None else ~condition)
    if spec.type == "expect_compound_columns_to_be_unique":
        return _compound_unique(spec, dtypes, where)
    return _pair(spec, dtypes, where)


def _in_set(spec: _Spec, name: str, dtype: pl.DataType, where: str) -> pl.Expr:
    values = spec.kwargs["value_set"]
    if values is None:  # GE: vacuously true
        return pl.lit(True)
    return _matches_any(pl.col(name), dtype, values, where)


def _matches_any(column: pl.Expr, dtype: pl.DataType, values: list[Any], where: str) -> pl.Expr:
    """Whether a column's value equals one of `values`, as Python's == would (pandas `isin`)."""
    kept = [m for v in values if (m := _member(dtype, v, where)) is not _NEVER]
    key = column.cast(pl.String) if _is(dtype, _STRINGS) else column
    return key.is_in(kept) if kept else pl.lit(False)


_NEVER = object()


def _member(dtype: pl.DataType, value: Any, where: str) -> Any:
    """A set member as a value of the column's type, or _NEVER when no value of the column equals it in
    Python (the string "1" never equals 1; True equals 1; a JSON value never equals a timestamp, which GE
    confirms). Members of a string-like column are compared as strings."""
    if _is(dtype, _STRINGS):
        return value if isinstance(value, str) else _NEVER
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        if _is(dtype, (*_TEMPORAL, pl.Boolean, pl.Null)) or dtype.is_integer() or dtype.is_float():
            return _NEVER
        raise ContractError(f"{where}: column of type {dtype} is not supported")
    if dtype == pl.Boolean:
        return bool(value) if value in (0, 1) else _NEVER
    if dtype.is_integer():
        low, high = _INT_RANGES[dtype.base_type()]
        return int(value) if _integral(value) and low <= value <= high else _NEVER
    if dtype.is_float():
        try:
            return float(value)
        except OverflowError:  # an integer beyond any float: no float equals it
            return _NEVER
    if _is(dtype, (*_TEMPORAL, pl.Null)):
        return _NEVER
    raise ContractError(f"{where}: column of type {dtype} is not supported")


# members outside a column's range cannot match, and Polars would refuse them as the column's type
_SIGNED = {pl.Int8: 8, pl.Int16: 16, pl.Int32: 32, pl.Int64: 64, pl.Int128: 128}
_UNSIGNED = {pl.UInt8: 8, pl.UInt16: 16, pl.UInt32: 32, pl.UInt64: 64, pl.UInt128: 128}
_INT_RANGES = {kind: (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) for kind, bits in _SIGNED.items()} | {
    kind: (0, 2**bits - 1) for kind, bits in _UNSIGNED.items()
}


def _integral(value: int | float) -> bool:
    return not isinstance(value, float) or value.is_integer()


def _between(spec: _Spec, name: str, dtype: pl.DataType, where: str) -> pl.Expr | None:
    low = _bound(spec.kwargs.get("min_value"), where)
    high = _bound(spec.kwargs.get("max_value"), where)
    bounds = [b for b in (low, high) if b is not None]
    column = pl.col(name)
    if _numeric(dtype) or dtype == pl.Boolean:
        if not all(isinstance(b, float) for b in bounds):
            return None  # a number against a timestamp: GE's pandas engine raises
        column = column.cast(pl.Float64) if dtype == pl.Boolean else column
    elif _is(dtype, _TEMPORAL):
        # pandas compares its timestamps with datetimes only (a date-only bound raises), and an aware
        # column with aware bounds only.
        aware = isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
        if not all(type(b) is datetime and (b.tzinfo is not None) == aware for b in bounds):
            return None
        if aware:
            column = column.dt.convert_time_zone("UTC")
            low, high = (None if b is None else b.astimezone(UTC) for b in (low, high))
    elif _is(dtype, _STRINGS):
        return None  # GE's pandas engine compares strings with no bound it accepts (numbers, dates)
    else:
        raise ContractError(f"{where}: column of type {dtype} is not supported")
    condition = pl.lit(True)
    if low is not None:
        condition &= column > low if spec.kwargs.get("strict_min") else column >= low
    if high is not None:
        condition &= column < high if spec.kwargs.get("strict_max") else column <= high
    return condition


_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})$")
_DATETIME = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,6})\d{0,6})?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?$"
)


def _bound(value: Any, where: str) -> float | date | datetime | None:
    """A between bound as GE's pydantic model reads it: a float, else a date, else a datetime."""
    if value is None:
        return None
    if isinstance(value, int | float):
        parsed: float | date | datetime = float(value)
    elif isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            parsed = _temporal(value, where)
    else:
        raise ContractError(f"{where}: a bound must be a number, a date or a datetime")
    if isinstance(parsed, float) and math.isnan(parsed):
        raise ContractError(f"{where}: a bound cannot be NaN")
    return parsed


def _temporal(text: str, where: str) -> date | datetime:
    """A date or datetime string as pydantic v1 parses it."""
    if match := _DATE.match(text):
        return date(*map(int, match.groups()))
    match = _DATETIME.match(text)
    if not match:
        raise ContractError(f"{where}: a bound must be a number, a date or a datetime")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    tzinfo = None
    if zone == "Z":
        tzinfo = UTC
    elif zone:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
        tzinfo = timezone(sign * offset)
    return datetime(
        *map(int, (year, month, day, hour, minute, second or 0)),
        int((fraction or "").ljust(6, "0")),
        tzinfo=tzinfo,
    )


def _match_regex(spec: _Spec, name: str, dtype: pl.DataType, where: str) -> pl.Expr:
    return _text(name, dtype, where).str.contains(_rust_regex(spec.kwargs["regex"], where))


def _length_equals(spec: _Spec, name: str, dtype: pl.DataType, where: str) -> pl.Expr:
    return _text(name, dtype, where).str.len_chars() == spec.kwargs["value"]


def _text(name: str, dtype: pl.DataType, where: str) -> pl.Expr:
    """The text GE's pandas engine matches or measures: pandas' `astype(str)` of the column."""
    column = pl.col(name)
    if _is(dtype, _STRINGS):
        return column.cast(pl.String)
    if dtype == pl.Boolean:
        return pl.when(column).then(pl.lit("True")).otherwise(pl.lit("False"))
    if dtype == pl.Date:  # a pandas datetime column of midnights prints as dates
        return column.cast(pl.String)
    if dtype.is_integer():
        # an integer column with nulls arrives in pandas as floats, and prints as one ("7.0")
        as_float = _float_text(column.cast(pl.Float64))
        return pl.when(column.null_count() > 0).then(as_float).otherwise(column.cast(pl.String))
    if dtype.is_float():
        return _float_text(column)
    raise ContractError(f"{where}: text of a {dtype} column is not supported")


def _float_text(column: pl.Expr) -> pl.Expr:
    """Python's repr of a float: Polars prints the same digits, but "1e-7" where Python has "1e-07"."""
    return column.cast(pl.String).str.replace(r"e([+-])(\d)$", "e${1}0${2}")


def _hashable(dtype: pl.DataType, where: str) -> None:
    if dtype.is_nested() or dtype == pl.Object:  # arrays in pandas: unhashable
        raise ContractError(f"{where}: uniqueness of a {dtype} column is not supported")


_COLUMN_CONDITIONS: dict[str, Callable[[_Spec, str, pl.DataType, str], pl.Expr | None]] = {
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_match_regex": _match_regex,
    "expect_column_value_lengths_to_equal": _length_equals,
}


def _compound_unique(spec: _Spec, dtypes: list[pl.DataType], where: str) -> _Check:
    for dtype in dtypes:
        _hashable(dtype, where)
    missing = [_missing(c, d) for c, d in zip(spec.columns, dtypes, strict=True)]
    ignore = spec.kwargs.get("ignore_row_if", "all_values_are_missing")
    considered = {
        "all_values_are_missing": ~pl.all_horizontal(missing),
        "any_value_is_missing": ~pl.any_horizontal(missing),
        "never": None,
    }[ignore]
    # As for one column, duplicates among all rows are duplicates among the considered ones: an ignored row
    # (all missing, or some missing) can never equal a considered one.
    key = pl.struct([_normalized(c, d) for c, d in zip(spec.columns, dtypes, strict=True)])
    return _Check(spec, considered=considered, unexpected=key.is_duplicated(), duplicates=key)


def _pair(spec: _Spec, dtypes: list[pl.DataType], where: str) -> _Check:
    (a, b), (a_type, b_type) = spec.columns, dtypes
    a_missing, b_missing = _missing(a, a_type), _missing(b, b_type)
    ignore = spec.kwargs.get("ignore_row_if", "both_values_are_missing")
    considered = {
        "both_values_are_missing": ~(a_missing & b_missing),
        "either_value_is_missing": ~(a_missing | b_missing),
        "neither": None,
    }[ignore]
    if spec.type == _PAIRS_IN_SET:
        pairs = spec.kwargs["value_pairs_set"]
        expected = pl.lit(True) if pairs is None else _pair_in_set(spec, dtypes, pairs, where)
        key = pl.struct(_normalized(a, a_type).alias("a"), _normalized(b, b_type).alias("b"))
        return _Check(spec, considered=considered, unexpected=~expected, pairs=key)
    greater = _greater(spec, dtypes, where)
    if greater is None:
        return _Check(spec, considered=considered)
    # pandas compares a missing value as False: a kept row with one never satisfies a > b
    return _Check(spec, considered=considered, unexpected=~(~a_missing & ~b_missing & greater))


def _pair_in_set(spec: _Spec, dtypes: list[pl.DataType], pairs: list[Any], where: str) -> pl.Expr:
    """Whether (A, B) is one of the pairs, a missing value taken as None (as GE's pandas engine does)."""
    fields = {}
    keys = []
    for field_name, column, dtype in zip(("a", "b"), spec.columns, dtypes, strict=True):
        text = _is(dtype, _STRINGS)
        fields[field_name] = pl.String if text else dtype
        keys.append(
            (pl.col(column).cast(pl.String) if text else _normalized(column, dtype)).alias(field_name)
        )
    members = []
    for pair in pairs:
        member = [None if v is None else _member(d, v, where) for v, d in zip(pair, dtypes, strict=True)]
        if _NEVER not in member:
            members.append(dict(zip(fields, member, strict=True)))
    if not members:
        return pl.lit(False)
    # One hashed lookup of the pair; nulls in a struct compare equal, as None does in GE's tuples
    return pl.struct(keys).is_in(pl.Series(members, dtype=pl.Struct(fields)).implode())


def _greater(spec: _Spec, dtypes: list[pl.DataType], where: str) -> pl.Expr | None:
    """A > B (or >=) where pandas can compare the two columns, else None (GE's engine raises)."""
    (a, b), (a_type, b_type) = spec.columns, dtypes
    left, right = pl.col(a), pl.col(b)

    def kind(dtype: pl.DataType) -> str:
        if _numeric(dtype) or dtype == pl.Boolean:
            return "number"
        if dtype == pl.String:
            return "string"
        if _is(dtype, _TEMPORAL):
            return "aware" if isinstance(dtype, pl.Datetime) and dtype.time_zone else "naive"
        if _is(dtype, (pl.Categorical, pl.Enum)):
            return "categorical"  # unordered categoricals in pandas: > raises
        if dtype == pl.Null:
            return "null"
        raise ContractError(f"{where}: column of type {dtype} is not supported")

    kinds = {kind(a_type), kind(b_type)}
    if "null" in kinds:  # every row has a missing value: never greater
        return pl.lit(False)
    if len(kinds) != 1 or kinds == {"categorical"}:
        return None
    if kinds == {"number"}:
        left, right = (
            c.cast(pl.Float64) if d == pl.Boolean else c for c, d in ((left, a_type), (right, b_type))
        )
    elif kinds == {"aware"}:
        left, right = left.dt.convert_time_zone("UTC"), right.dt.convert_time_zone("UTC")
    return left >= right if spec.kwargs.get("or_equal") else left > right


# --- regexes: Python's `re` (what pandas runs) in the Rust dialect (what Polars runs)

# Python's \s (str.isspace) and \w (str.isalnum or "_"); Rust's own \s misses \x1c-\x1f and its \w also
# takes combining marks. The Unicode tables still differ on characters assigned after Python's Unicode
# version (14.0 in Python 3.11).
_PY_SPACE = (
    r"\t\n\x0B\x0C\r\x1C-\x20\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}"
)
_PY_WORD = r"\p{L}\p{N}_"
_QUANTIFIER = re.compile(r"\{(\d*)(?:(,)(\d*))?\}")
_INLINE_FLAGS = re.compile(r"\(\?([aiLmsux]*)(?:-([imsx]+))?[:)]")


@lru_cache(maxsize=256)
def _rust_regex(pattern: str, where: str) -> str:
    """A Python regex rewritten for Polars with the same search semantics, or ContractError when it is
    invalid in Python or uses a construct with no exact Rust equivalent."""
    try:
        # quiet Python's "possible nested set" warnings: what matters is what the pattern means today
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            re.compile(pattern)
    except re.error as exc:
        raise ContractError(f"{where}: invalid regex ({exc})") from None

    def unsupported(construct: str) -> ContractError:
        return ContractError(f"{where}: the regex cannot be evaluated exactly as GE does: {construct}")

    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escaped = pattern[i + 1]
            i += 2
            if escaped in "sSwW":
                members = _PY_SPACE if escaped in "sS" else _PY_WORD
                out.append(f"[{'^' if escaped.isupper() else ''}{members}]")  # Rust nests classes
            elif escaped == "Z":
                out.append(r"\z")
            elif escaped in "bB":
                if not (in_class and escaped == "b"):
                    raise unsupported("\\b or \\B (Rust's word boundaries differ from Python's)")
                out.append(r"\x08")  # backspace inside a class
            else:
                out.append("\\" + escaped)
            continue
        i += 1
        if in_class:
            if char == "]":
                in_class = False
                out.append(char)
            elif char == "[" and pattern[i : i + 1] in (":", ".", "="):
                raise unsupported("'[:', which pandas' pyarrow path reads as a POSIX class")
            elif char in "[&~":  # literals in a Python class, set syntax in a Rust one
                out.append("\\" + char)
            elif char == "-" and pattern[i : i + 1] == "-":
                raise unsupported("'--' in a class (a set difference in Rust)")
            else:
                out.append(char)
        elif char == "[":
            in_class = True
            out.append(char)
            if pattern[i : i + 1] == "^":
                out.append("^")
                i += 1
            if pattern[i : i + 1] == "]":  # a leading ] is a literal in Python
                out.append(r"\]")
                i += 1
        elif char == "$":
            if pattern[i : i + 1] not in ("", ")", "|"):
                raise unsupported("'$' followed by more pattern")
            out.append(r"(?:\n?\z)")  # Python's $ also matches before a final newline
        elif char == "(" and (flags := _INLINE_FLAGS.match(pattern, i - 1)):
            if set("".join(f for f in flags.groups() if f)) & set("amxL"):
                raise unsupported("the a, m, x or L flag")
            out.append(char)
        elif char == "{":
            quantifier = _QUANTIFIER.match(pattern, i - 1)
            if quantifier is None or not (quantifier.group(1) or quantifier.group(2)):
                out.append(r"\{")  # not a quantifier: a literal in Python
            elif not quantifier.group(1):
                raise unsupported("'{,n}', which Python reads as {0,n} but pandas' pyarrow path as text")
            else:
                out.append(quantifier.group(0))
                i = quantifier.end()
        elif char == "}":
            out.append(r"\}")
        else:
            out.append(char)
    translated = "".join(out)
    try:
        pl.select(pl.lit("").str.contains(translated))
    except pl.exceptions.ComputeError:
        raise unsupported("look-around, back-references or another construct Rust lacks") from None
    return translated


# ---------------------------------------------------------------------------------------------------------
# Great Expectations itself: the reference the Polars evaluator is tested against


# GE's pandas engine checks a column pair against its allowed set row by row in Python (14 s for 300,000
# device readings). The answer only depends on which distinct pairs occur, so these run on the distinct
# pairs and count their failures as distinct pairs.
_ON_DISTINCT_PAIRS = _PAIRS_IN_SET


def check_table_with_ge(table: str, frame: pl.DataFrame, suite: dict[str, Any]) -> ContractOutcome:
    """Validate a frame against its suite with Great Expectations' pandas engine (seconds to import).

    The reference for `check_table` (tests/test_contracts_polars.py) and a way to see GE's own answer;
    the pipeline uses `check_table`. Pair-in-set expectations without `mostly` run on the distinct pairs.
    """
    outcome = ContractOutcome(table)
    if frame.is_empty():
        return outcome
    per_row, on_pairs = [], []
    for expectation in suite["expectations"]:
        distinct = expectation["type"] == _ON_DISTINCT_PAIRS and "mostly" not in expectation["kwargs"]
        (on_pairs if distinct else per_row).append(expectation)
    batches = [(per_row, frame, "unexpected")]
    batches += [
        (
            [pair],
            frame.select(pair["kwargs"]["column_A"], pair["kwargs"]["column_B"]).unique(),
            _PAIRS_UNIT,
        )
        for pair in on_pairs
        if {pair["kwargs"]["column_A"], pair["kwargs"]["column_B"]} <= set(frame.columns)
    ]
    # A pair expectation on a missing column goes through GE with the full frame, which reports it failed.
    batches[0][0].extend(
        pair
        for pair in on_pairs
        if not {pair["kwargs"]["column_A"], pair["kwargs"]["column_B"]} <= set(frame.columns)
    )
    for expectations, rows, unit in batches:
        if expectations:
            _validate(table, rows, {**suite, "expectations": expectations}, unit, outcome)
    outcome.success = not outcome.failures
    return outcome


def _validate(
    table: str, frame: pl.DataFrame, suite: dict[str, Any], unit: str, outcome: ContractOutcome
) -> None:
    import great_expectations as gx

    # Every expectation here is column-scoped, so only the columns a suite names cross into pandas.
    checked = frame.select(column for column in suite_columns(suite) if column in frame.columns)
    batch = _batch_definition(table).get_batch(batch_parameters={"dataframe": checked.to_pandas()})
    result = batch.validate(gx.ExpectationSuite(**suite))
    for item in result.results:
        outcome.evaluated += 1
        if item.success:
            continue
        config = item.expectation_config
        columns = ",".join(suite_columns({"expectations": [{"kwargs": config.kwargs}]}))
        unexpected = item.result.get("unexpected_count", "?")
        outcome.failures.append(f"{config.type}({columns}): {unexpected} {unit}")


@cache
def _batch_definition(table: str) -> Any:
    source = _context().data_sources.get("silver")
    asset = source.add_dataframe_asset(name=table)
    return asset.add_batch_definition_whole_dataframe(f"{table}_partition")


@lru_cache(maxsize=1)
def _context() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.data_sources.add_pandas("silver")
    return context
