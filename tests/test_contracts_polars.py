"""The Polars contract evaluator against Great Expectations itself: every expectation of every shipped suite
on frames that satisfy and violate it, the edge cases of GE's pandas semantics, failing groups, and that
the evaluator needs neither GE nor pandas."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from pipelines.silver.expectations import (
    EXPECTATIONS_DIR,
    ContractOutcome,
    check_table,
    check_table_with_ge,
    load_suites,
    suite_columns,
)

ROWS = 8  # every generated case has this many rows, so that many cases share one wide frame
NAN = float("nan")
SUITE_FOLDERS = [EXPECTATIONS_DIR, *sorted(p for p in EXPECTATIONS_DIR.iterdir() if p.is_dir())]


# --- helpers


def label(expectation: dict[str, Any]) -> str:
    """The "<type>(<columns>)" an outcome's failure strings start with."""
    return f"{expectation['type']}({','.join(suite_columns({'expectations': [expectation]}))})"


def results(outcome: ContractOutcome) -> dict[str, str]:
    """Failure label -> the count it reports ("?" when unknown)."""
    return {f.rpartition(": ")[0]: f.rpartition(": ")[2].split(" ")[0] for f in outcome.failures}


def result(outcome: ContractOutcome, expectation: dict[str, Any]) -> str:
    """The count an expectation failed with, or "pass"."""
    return results(outcome).get(label(expectation), "pass")


def suite(*expectations: dict[str, Any]) -> dict[str, Any]:
    return {"name": "edge", "expectations": list(expectations)}


def expect(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": f"expect_{kind}", "kwargs": kwargs}


def agree(frame: pl.DataFrame, *expectations: dict[str, Any]) -> dict[str, str]:
    """Evaluate with Polars and with GE; both must give the same failures. Returns label -> result."""
    ours = check_table("edge", frame, suite(*expectations))
    theirs = check_table_with_ge("edge", frame, suite(*expectations))
    assert sorted(ours.failures) == sorted(theirs.failures)
    assert (ours.success, ours.evaluated) == (theirs.success, theirs.evaluated)
    return {label(e): result(ours, e) for e in expectations}


# --- cases derived from each shipped expectation's own kwargs


@dataclass(frozen=True)
class Case:
    """A frame of ROWS rows for one expectation; `intent` is whether GE must pass it (None: either)."""

    intent: bool | None
    columns: dict[str, pl.Series]


def _rows(values: list[Any]) -> list[Any]:
    """Values cycled or cut to ROWS."""
    return list(islice(cycle(values), ROWS))


def _text(*values: Any) -> pl.Series:
    return pl.Series(_rows(list(values)), dtype=pl.String)


def _float(*values: Any) -> pl.Series:
    return pl.Series(_rows(list(values)), dtype=pl.Float64)


REGEX_POOL = [
    "2024",
    "2024-02",
    "2024-02-29",
    "2024-02-29T10:11:12Z",
    "2024-02-29T10:11:12.5+01:00",
    "1999-12-31",
    "2024\n",  # Python's $ matches before a final newline
    "٢٠٢٤",  # Arabic-Indic digits are \d to Python
    "x2024",
    "2024-02-29 10:11:12",
    "",
    "24-02",
    "2024-2-29",
    "2024-02-29T10:11:12",
    "2024-02-29T10:11",
    "2024\n\n",
    # model versions (gold/risk_scores, gold/discharge_risk): a model's id, the clinical baseline, and near
    # misses
    "person_180d-0123456789ab",
    "person_180d-abcdef012345",
    "baseline:charlson",
    "person_180d-0123456789abc",
    "person_180d-0123456789AB",
    "baseline:charlson\n",
    "baseline:lace",
    "discharge_30d-0123456789ab",
    "discharge_30d-abcdef012345",
    "discharge_30d-0123456789abc",
    "discharge_30d-0123456789AB",
    "baseline:lace\n",
]


def cases(expectation: dict[str, Any]) -> list[Case]:
    """Frames that satisfy and that violate an expectation, derived from its kwargs."""
    kind, kwargs = expectation["type"], expectation["kwargs"]
    strict = "mostly" not in kwargs  # with `mostly`, whether a case passes depends on the share
    fails: bool | None = False if strict else None
    if kind == "expect_column_values_to_not_be_null":
        c = kwargs["column"]
        return [
            Case(True, {c: _text(*(f"v{i}" for i in range(ROWS)))}),
            Case(fails, {c: _text("a", None, "b", None, "c")}),
            Case(fails, {c: _float(1.0, NAN, None, 2.0, 3.0, 4.0, 5.0, 6.0)}),
        ]
    if kind == "expect_column_values_to_be_in_set":
        c, values = kwargs["column"], kwargs["value_set"]
        first = values[0]
        variant = first.upper() if first.upper() != first else f" {first}"
        return [
            Case(True, {c: _text(*_rows(values)[: ROWS - 1], None)}),
            Case(fails, {c: _text(*_rows(values)[:4], None, f"{first}-not-in-set", variant, values[-1])}),
        ]
    if kind == "expect_column_values_to_be_between":
        return _between_cases(kwargs, fails)
    if kind == "expect_column_values_to_match_regex":
        c, regex = kwargs["column"], kwargs["regex"]
        good = [v for v in REGEX_POOL if re.search(regex, v)]
        bad = [v for v in REGEX_POOL if not re.search(regex, v)]
        assert len(good) >= 4 and len(bad) >= 4, "extend REGEX_POOL for this regex"
        return [
            Case(True, {c: _text(*_rows(good)[: ROWS - 1], None)}),
            Case(fails, {c: _text(*good[:3], None, *bad[:4])}),
            Case(fails, {c: _text(*good[3:6], *bad[4:9])}),
        ]
    if kind == "expect_column_values_to_be_unique":
        c = kwargs["column"]
        return [
            Case(True, {c: _text("u0", "u1", "u2", "u3", "u4", "u5", None, None)}),
            Case(fails, {c: _text("a", "a", "b", None, None, "c", "d", "e")}),
            Case(fails, {c: _float(1.0, 1.0, NAN, NAN, None, 2.0, 0.0, -0.0)}),
        ]
    if kind == "expect_compound_columns_to_be_unique":
        names = kwargs["column_list"]
        rows_ok = [[f"k{i}", *([None] * (len(names) - 1))] for i in range(4)]
        rows_ok += [[None] * len(names)] * 2 + [[f"m{i}"] * len(names) for i in range(2)]
        rows_bad = [["a", *([None] * (len(names) - 1))]] * 2 + [["b"] * len(names)] * 2
        rows_bad += [[None] * len(names)] * 2 + [[f"n{i}"] * len(names) for i in range(2)]
        return [
            Case(True, {n: _text(*(r[i] for r in rows_ok)) for i, n in enumerate(names)}),
            Case(fails, {n: _text(*(r[i] for r in rows_bad)) for i, n in enumerate(names)}),
        ]
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = kwargs["column_A"], kwargs["column_B"]
        equal_ok = bool(kwargs.get("or_equal"))
        good = [(2.0, 1.0), (5.0, -1.0), (3.0, 3.0) if equal_ok else (3.0, 2.0), (0.0, -0.5)]
        if kwargs.get("ignore_row_if", "both_values_are_missing") == "either_value_is_missing":
            good += [(None, 1.0), (1.0, None), (NAN, 1.0), (None, None)]
        else:
            good += [(None, None), (7.0, 6.0), (9.0, 8.0), (1.0, 0.0)]
        bad = [
            (2.0, 1.0),
            (1.0, 1.0),
            (1.0, 2.0),
            (None, 1.0),
            (1.0, None),
            (None, None),
            (NAN, 1.0),
            (3.0, 3.5),
        ]
        return [
            Case(True, {a: _float(*(p[0] for p in good)), b: _float(*(p[1] for p in good))}),
            Case(fails, {a: _float(*(p[0] for p in bad)), b: _float(*(p[1] for p in bad))}),
            Case(
                None,
                {
                    a: _text("b", "a", "a", None, "c", "b", "", "a"),
                    b: _text("a", "b", "a", "a", None, "b", "a", ""),
                },
            ),
        ]
    if kind == "expect_column_pair_values_to_be_in_set":
        a, b = kwargs["column_A"], kwargs["column_B"]
        pairs = [tuple(p) for p in kwargs["value_pairs_set"]]
        allowed = set(pairs)
        wrong_b = next(y for _, y in pairs if (pairs[0][0], y) not in allowed)
        good = [*_rows(pairs)[: ROWS - 1], (None, None)]
        bad = [
            *pairs[:3],
            (pairs[0][0], wrong_b),
            (pairs[0][0], wrong_b),
            (pairs[0][1], pairs[0][0]),
            (pairs[0][0], None),
            (None, pairs[0][1]),
        ]
        return [
            Case(True, {a: _text(*(p[0] for p in good)), b: _text(*(p[1] for p in good))}),
            Case(fails, {a: _text(*(p[0] for p in bad)), b: _text(*(p[1] for p in bad))}),
        ]
    if kind == "expect_column_value_lengths_to_equal":
        c, n = kwargs["column"], kwargs["value"]
        return [
            Case(True, {c: _text(*(["x" * n] * (ROWS - 2)), "é" * n, None)}),
            Case(fails, {c: _text(*(["x" * n] * 4), "x" * (n + 1), "e\u0301" * n, None, "x" * (n - 1))}),
        ]
    raise AssertionError(f"no cases for {kind}: add them")


def _between_cases(kwargs: dict[str, Any], fails: bool | None) -> list[Case]:
    c, low, high = kwargs["column"], kwargs.get("min_value"), kwargs.get("max_value")
    lo = low if low is not None else high - 10
    hi = high if high is not None else low + 10
    mid = (lo + hi) / 2
    inside = [lo, hi, mid, (lo + mid) / 2, (mid + hi) / 2]
    out = [low - 0.5 if low is not None else mid, high + 0.5 if high is not None else mid]
    result = [
        Case(True, {c: _float(*inside, None, NAN, mid)}),
        Case(fails, {c: _float(*out, -math.inf, math.inf, None, NAN, mid, lo)}),
    ]
    if all(float(b).is_integer() for b in (lo, hi)):  # an integer column with nulls is floats in pandas
        ints = [int(lo) - 1, int(hi) + 1, None, int(lo), int(hi), int(mid), None, int(lo)]
        result.append(Case(fails, {c: pl.Series(ints, dtype=pl.Int64)}))
    return result


def signature(expectation: dict[str, Any]) -> bytes:
    """What an expectation's cases and result depend on: its type and kwargs, column names aside."""
    kwargs = {k: v for k, v in expectation["kwargs"].items() if k not in ("column", "column_A", "column_B")}
    if "column_list" in kwargs:
        kwargs["column_list"] = len(kwargs["column_list"])
    return orjson.dumps([expectation["type"], kwargs], option=orjson.OPT_SORT_KEYS)


def prefixed(expectation: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The expectation on columns renamed with a prefix (so that many share one wide frame)."""
    kwargs = dict(expectation["kwargs"])
    for key in ("column", "column_A", "column_B"):
        if key in kwargs:
            kwargs[key] = prefix + kwargs[key]
    if "column_list" in kwargs:
        kwargs["column_list"] = [prefix + c for c in kwargs["column_list"]]
    return {**expectation, "kwargs": kwargs}


def wide(parts: list[tuple[str, Case]]) -> pl.DataFrame:
    """The cases side by side, each one's columns prefixed."""
    return pl.DataFrame(
        [s.alias(prefix + name) for prefix, case in parts for name, s in case.columns.items()]
    )


def shipped() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(folder, table, suite) for every shipped suite."""
    for folder in SUITE_FOLDERS:
        for table, content in load_suites(folder).items():
            yield folder.name, table, content


SHIPPED = list(shipped())


@pytest.fixture(scope="module")
def ge_reference() -> dict[bytes, list[str]]:
    """GE's result for every distinct shipped expectation (by signature) on each of its cases, in one GE
    validation per case position (a wide frame holding every signature's case side by side)."""
    representatives: dict[bytes, dict[str, Any]] = {}
    for _, _, content in SHIPPED:
        for expectation in content["expectations"]:
            representatives.setdefault(signature(expectation), expectation)
    reference: dict[bytes, list[str]] = {key: [] for key in representatives}
    position = 0
    while True:
        parts, expectations, keys = [], [], []
        for i, (key, expectation) in enumerate(representatives.items()):
            generated = cases(expectation)
            if position < len(generated):
                parts.append((f"s{i}|", generated[position]))
                expectations.append(prefixed(expectation, f"s{i}|"))
                keys.append(key)
        if not parts:
            return reference
        outcome = check_table_with_ge("reference", wide(parts), suite(*expectations))
        for key, expectation, (_, case) in zip(keys, expectations, parts, strict=True):
            found = result(outcome, expectation)
            assert case.intent is None or case.intent == (found == "pass"), (expectation, position, found)
            reference[key].append(found)
        position += 1


def test_every_suite_folder_is_covered() -> None:
    assert {"devices", "feedback", "gold", "identity"} <= {folder.name for folder in SUITE_FOLDERS}
    kinds = {e["type"] for _, _, content in SHIPPED for e in content["expectations"]}
    assert kinds == {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_be_unique",
        "expect_compound_columns_to_be_unique",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_pair_values_to_be_in_set",
        "expect_column_value_lengths_to_equal",
    }


@pytest.mark.parametrize(("folder", "table", "content"), SHIPPED, ids=[f"{f}/{t}" for f, t, _ in SHIPPED])
def test_shipped_expectations_agree_with_ge(
    folder: str, table: str, content: dict[str, Any], ge_reference: dict[bytes, list[str]]
) -> None:
    """Each expectation of the suite, on each of its cases, fails or passes with the count GE gives."""
    expectations = content["expectations"]
    generated = [cases(e) for e in expectations]
    for position in range(max(len(g) for g in generated)):
        taking = [j for j, g in enumerate(generated) if position < len(g)]
        frame = wide([(f"e{j}|", generated[j][position]) for j in taking])
        renamed = [prefixed(expectations[j], f"e{j}|") for j in taking]
        outcome = check_table(table, frame, {**content, "expectations": renamed})
        assert outcome.evaluated == len(renamed)
        scanned = check_table(table, frame.lazy(), {**content, "expectations": renamed})  # a lake scan
        assert (scanned.success, scanned.failures, scanned.rows) == (
            outcome.success,
            outcome.failures,
            frame.height,
        )
        for j, expectation in zip(taking, renamed, strict=True):
            assert result(outcome, expectation) == ge_reference[signature(expectations[j])][position], (
                f"{folder}/{table}: {label(expectations[j])} on case {position}"
            )


# --- edge cases, each checked against GE


def test_null_and_nan_are_both_missing() -> None:
    frame = pl.DataFrame({"x": [1.0, NAN, None, 2.0, 2.0, 5.0]})
    found = agree(
        frame,
        expect("column_values_to_not_be_null", column="x"),
        expect("column_values_to_be_in_set", column="x", value_set=[1, 2]),
        expect("column_values_to_be_between", column="x", min_value=0, max_value=3),
        expect("column_values_to_be_unique", column="x"),
    )
    assert list(found.values()) == ["2", "1", "1", "2"]


def test_mostly_on_both_sides_of_the_threshold() -> None:
    # 10 rows, 2 null: not_null sees 8 of 10 expected; the others evaluate the 8 values, 1 unexpected (7/8)
    values = ["a", "a2", "b", "c", "d", "e", "f", "x", None, None]
    frame = pl.DataFrame({"c0": values, "c1": values, "n": [2, 3, 4, 5, 6, 7, 8, 0, None, None]})
    for share in (0.8, 0.81, 0.875, 0.876):
        found = agree(
            frame,
            expect("column_values_to_not_be_null", column="c0", mostly=share),
            expect("column_values_to_be_in_set", column="c1", value_set=values[:7], mostly=share),
            expect("column_values_to_match_regex", column="c0", regex="^[a-f]", mostly=share),
            expect("column_value_lengths_to_equal", column="c1", value=1, mostly=share),
            expect("column_values_to_be_between", column="n", min_value=1, mostly=share),
        )
        verdicts = [v == "pass" for v in found.values()]
        assert verdicts == [share <= 0.8] + [share <= 0.875] * 4
    # uniqueness and pairs: 6 rows considered (the all-missing one is not), 2 duplicated (4/6); b >= a
    # holds on 1 of the 6
    pairs = pl.DataFrame({"a": [1, 1, 2, 3, 4, 5, None], "b": [0, 0, 1, 9, 3, 4, None]})
    for share, greater_share in ((0.66, 0.16), (0.67, 0.17)):
        found = agree(
            pairs,
            expect("column_values_to_be_unique", column="a", mostly=share),
            expect("compound_columns_to_be_unique", column_list=["a", "b"], mostly=share),
            expect(
                "column_pair_values_a_to_be_greater_than_b",
                column_A="b",
                column_B="a",
                or_equal=True,
                mostly=greater_share,
            ),
        )
        assert {v == "pass" for v in found.values()} == {share == 0.66}


def test_between_bounds_strict_and_one_sided() -> None:
    frame = pl.DataFrame(
        {
            "f": [0.0, 0.5, 1.0, None, NAN, 2.0],
            "g": [0.0, 0.5, 1.0, None, NAN, 2.0],
            "i": [0, 1, 1, None, 2, 3],
            "b": [True, False, True, None, True, False],
        }
    )
    found = agree(
        frame,
        expect("column_values_to_be_between", column="f", min_value=0, max_value=1),
        expect("column_values_to_be_between", column="i", min_value=0, max_value=1, strict_min=True),
        expect(
            "column_values_to_be_between", column="g", min_value=0, max_value=1, strict_max=True, mostly=0.1
        ),
        expect("column_values_to_be_between", column="b", min_value=1, strict_min=False),
    )
    assert list(found.values()) == ["1", "3", "pass", "2"]
    assert agree(frame, expect("column_values_to_be_between", column="f", max_value=1, strict_max=True)) == {
        label(expect("column_values_to_be_between", column="f")): "2"
    }
    assert list(
        agree(frame, expect("column_values_to_be_between", column="i", min_value=1, strict_min=True)).values()
    ) == ["3"]


def test_between_on_dates_and_strings() -> None:
    """The suites bound numbers only; dates follow GE: datetime bounds compare, date-only bounds and bounds
    of another kind make GE's pandas engine raise, which fails the expectation with an unknown count."""
    frame = pl.DataFrame(
        {
            "d": [date(2020, 1, 1), date(2021, 6, 1), None],
            "t": [datetime(2020, 1, 1, 12), datetime(2021, 1, 1), None],
            "ns": pl.Series([datetime(2020, 1, 1), datetime(2022, 1, 1), None], dtype=pl.Datetime("ns")),
            "z": pl.Series([datetime(2020, 1, 1), datetime(2022, 1, 1), None]).dt.replace_time_zone("UTC"),
            "s": ["a", "b", None],
            "empty": pl.Series([None, None, None], dtype=pl.Date),
        }
    )
    found = agree(
        frame,
        expect("column_values_to_be_between", column="d", min_value="2020-06-01T00:00:00", max_value=None),
        expect("column_values_to_be_between", column="t", min_value="2020-01-01T12:00:00", strict_min=True),
        expect("column_values_to_be_between", column="ns", max_value="2021-01-01 00:00"),
        expect("column_values_to_be_between", column="z", max_value="2021-01-01T00:00:00Z"),
        expect("column_values_to_be_between", column="empty", min_value="2020-06-01"),
    )
    assert list(found.values()) == ["1", "1", "1", "1", "pass"]
    for column, bound in (
        ("d", "2020-06-01"),
        ("t", "2020-06-01"),
        ("ns", "2020-06-01"),
        ("d", 5),
        ("s", 0),
        ("z", "2021-01-01T00:00:00"),
    ):
        assert list(
            agree(frame, expect("column_values_to_be_between", column=column, min_value=bound)).values()
        ) == ["?"]


def test_between_contract_errors_raise() -> None:
    frame = pl.DataFrame({"x": [1.0]})
    for kwargs in (
        {"min_value": None, "max_value": None},
        {"min_value": 2, "max_value": 1},
        {"min_value": "soon"},
    ):
        with pytest.raises(ValueError, match="table 'edge'"):
            check_table("edge", frame, suite(expect("column_values_to_be_between", column="x", **kwargs)))


@pytest.mark.filterwarnings("ignore:Possible set intersection:FutureWarning")
def test_regex_uses_pythons_search_semantics() -> None:
    frame = pl.DataFrame(
        {
            "s": ["x2024y", "2024\n", "2024\n\n", "٢٠٢٤", "ab\x1c", "e\u0301", "{a}", "]", None],
            "c": pl.Series(["ab", "b", "a", "ba", "", "x", "aab", "aa", None], dtype=pl.Categorical),
        }
    )
    patterns = [
        r"\d{4}",
        r"^\d{4}$",
        r"^\d{4}\Z",
        r"^\w+$",
        r"\s$",
        r"\S\s",
        r"^[]a-z]+$",
        r"^\W",
        r"\{a\}|^{",
        r"(?i)^E",
        r"[\w&&x]",
        r"^(?:x|2)0\d",
    ]
    for column in ("s", "c"):
        agree(frame, *(expect("column_values_to_match_regex", column=column, regex=p) for p in patterns[:1]))
        for pattern in patterns:
            agree(frame, expect("column_values_to_match_regex", column=column, regex=pattern))


def test_regex_on_non_string_columns_matches_pandas_text() -> None:
    frame = pl.DataFrame(
        {
            "i": [1, 22, 333, 4, 5, 6],
            "j": [1, 22, None, -4, 10**15, 7],
            "f": [1e-7, 1e16, 0.1, -0.0, math.inf, NAN],
            "b": [True, False, None, True, True, False],
            "d": [date(2024, 2, 29), None, date(1999, 1, 1), date(2000, 1, 1), None, None],
        }
    )
    for column, regex in (
        ("i", r"^\d$"),
        ("j", r"\.0$"),
        ("j", r"^\d+$"),
        ("f", r"e-0"),
        ("f", r"^\d\.\d$"),
        ("b", "^T"),
        ("d", r"^\d{4}-\d\d-\d\d$"),
    ):
        agree(frame, expect("column_values_to_match_regex", column=column, regex=regex))
    for column, n in (("i", 1), ("j", 3), ("f", 3), ("b", 4), ("d", 10)):
        agree(frame, expect("column_value_lengths_to_equal", column=column, value=n))


def test_regexes_without_an_exact_polars_form_raise() -> None:
    frame = pl.DataFrame({"s": ["a"]})
    for pattern in (
        r"\bword",
        r"a(?=b)",
        r"(a)\1",
        r"(?m)^a$",
        r"(?x) a",
        r"a$b",
        "(",
        r"^a{,1}$",
        "[[:alpha:]]",
    ):
        with pytest.raises(ValueError, match="table 'edge'"):
            check_table(
                "edge", frame, suite(expect("column_values_to_match_regex", column="s", regex=pattern))
            )


def test_uniqueness_with_nulls() -> None:
    frame = pl.DataFrame(
        {
            "s": ["a", "a", None, None, "b", "c"],
            "f": [0.0, -0.0, NAN, NAN, None, 1.0],
            "i": [1, 2, 2, 2, None, None],
            "g": [1.0, 1.0, NAN, None, NAN, 2.0],
            "h": ["x", "x", "y", "y", None, None],
        }
    )
    found = agree(
        frame,
        expect("column_values_to_be_unique", column="s"),
        expect("column_values_to_be_unique", column="f"),
        expect("column_values_to_be_unique", column="i"),
        expect("compound_columns_to_be_unique", column_list=["g", "h"]),
    )
    # (NaN, y) and (None, y) are duplicates (both NaN in pandas); the all-missing (NaN, None) row is skipped
    assert list(found.values()) == ["2", "2", "3", "4"]
    for ignore in ("all_values_are_missing", "any_value_is_missing", "never"):
        agree(frame, expect("compound_columns_to_be_unique", column_list=["g", "h"], ignore_row_if=ignore))
        agree(frame, expect("compound_columns_to_be_unique", column_list=["s", "i"], ignore_row_if=ignore))


def test_uniqueness_over_a_scan_of_several_files(tmp_path: Path) -> None:
    # a key repeated in two files of one scan is a duplicate: the distinct hashes are counted over the scan
    pl.DataFrame({"k": ["a", "b", "c"], "n": [1.0, 2.0, 3.0]}).write_parquet(tmp_path / "1.parquet")
    pl.DataFrame({"k": ["c", "d", None], "n": [3.0, -0.0, 0.0]}).write_parquet(tmp_path / "2.parquet")
    scan = pl.scan_parquet(tmp_path / "*.parquet")
    one = expect("column_values_to_be_unique", column="k")
    both = expect("compound_columns_to_be_unique", column_list=["k", "n"])
    numbers = expect("column_values_to_be_unique", column="n")
    ours = check_table("edge", scan, suite(one, both, numbers))
    found = {label(e): result(ours, e) for e in (one, both, numbers)}
    assert list(found.values()) == ["2", "2", "4"]  # c twice; (c, 3.0) twice; 3.0 twice and ±0.0
    assert agree(scan.collect(), one, both, numbers) == found  # as for the frame, and as GE counts


def test_a_hash_collision_is_settled_on_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # fewer distinct hashes than rows is only a hint (two keys may share a hash): the keys decide
    import pipelines.silver.expectations as expectations

    monkeypatch.setattr(expectations, "_distinct_hashes", lambda frame, check: 1)
    unique = expect("column_values_to_be_unique", column="k")
    assert check_table("edge", pl.DataFrame({"k": ["a", "b", "c"]}), suite(unique)).success
    repeated = check_table("edge", pl.DataFrame({"k": ["a", "b", "a"]}), suite(unique))
    assert result(repeated, unique) == "2"


def test_pair_greater_honours_ignore_row_if() -> None:
    frame = pl.DataFrame(
        {
            "a": [2.0, 1.0, 1.0, None, 1.0, None, NAN, 3.0],
            "b": [1.0, 1.0, 2.0, 1.0, None, None, 1.0, 3.5],
            "i": [1, 1, 3, None, 0, None, 2, 4],
            "s": ["b", "a", "a", None, "c", None, "", "a"],
            "t": ["a", "a", "b", "a", None, None, "a", "a"],
        }
    )
    for ignore in ("both_values_are_missing", "either_value_is_missing", "neither"):
        for or_equal in (True, False):
            agree(
                frame,
                expect(
                    "column_pair_values_a_to_be_greater_than_b",
                    column_A="a",
                    column_B="b",
                    or_equal=or_equal,
                    ignore_row_if=ignore,
                ),
                expect(
                    "column_pair_values_a_to_be_greater_than_b",
                    column_A="i",
                    column_B="b",
                    or_equal=or_equal,
                    ignore_row_if=ignore,
                ),
                expect(
                    "column_pair_values_a_to_be_greater_than_b",
                    column_A="s",
                    column_B="t",
                    or_equal=or_equal,
                    ignore_row_if=ignore,
                ),
            )
    # numbers against strings: GE's pandas engine raises, the expectation fails
    assert list(
        agree(frame, expect("column_pair_values_a_to_be_greater_than_b", column_A="a", column_B="s")).values()
    ) == ["?"]


def test_pair_in_set_honours_ignore_row_if_and_counts_distinct_pairs() -> None:
    frame = pl.DataFrame(
        {
            "m": ["w", "w", "w", "w", "h", None, None, "h", "w"],
            "u": ["kg", "lb", "lb", None, "kg", None, "kg", "/min", "kg"],
        }
    )
    pairs = [["w", "kg"], ["h", "/min"], [None, "kg"]]
    for ignore in ("both_values_are_missing", "either_value_is_missing", "neither"):
        agree(
            frame,
            expect(
                "column_pair_values_to_be_in_set",
                column_A="m",
                column_B="u",
                value_pairs_set=pairs,
                ignore_row_if=ignore,
            ),
        )
    found = agree(
        frame,
        expect("column_pair_values_to_be_in_set", column_A="m", column_B="u", value_pairs_set=pairs[:2]),
    )
    assert list(found.values()) == ["4"]  # (w, lb) twice, (w, None), (h, kg), (None, kg): 4 distinct pairs
    # with mostly, GE counts rows; the evaluator keeps GE's verdict and still reports distinct pairs
    # (8 rows considered, 4 unexpected: (w, lb) twice, (w, None), (h, kg))
    for share in (0.5, 0.51):
        mostly = expect(
            "column_pair_values_to_be_in_set", column_A="m", column_B="u", value_pairs_set=pairs, mostly=share
        )
        ours = check_table("edge", frame, suite(mostly))
        theirs = check_table_with_ge("edge", frame, suite(mostly))
        assert ours.success == theirs.success == (share == 0.5)
        if share == 0.51:
            assert theirs.failures == [f"{label(mostly)}: 4 unexpected"]
            assert ours.failures == [f"{label(mostly)}: 3 unexpected pairs"]


def test_in_set_compares_like_python() -> None:
    frame = pl.DataFrame(
        {
            "s": ["1", "a", None, "b"],
            "i": [1, 2, None, 3],
            "k": [1, 2, 5, 3],
            "b": [True, False, None, True],
            "bb": [True, False, False, True],
            "d": [date(2020, 1, 1), None, date(2021, 1, 1), date(2020, 1, 1)],
            "c": pl.Series(["a", "b", None, "c"], dtype=pl.Categorical),
            "e": pl.Series(["a", "b", None, "c"], dtype=pl.Enum(["a", "b", "c"])),
            "f": [1.0, 2.5, NAN, None],
        }
    )
    agree(
        frame,
        expect("column_values_to_be_in_set", column="s", value_set=[1, "a", None]),
        expect("column_values_to_be_in_set", column="i", value_set=["1", 3, 2.0]),
        expect("column_values_to_be_in_set", column="k", value_set=[1, 2.5, 3]),
        expect("column_values_to_be_in_set", column="b", value_set=[1]),
        expect("column_values_to_be_in_set", column="bb", value_set=[0.0]),
        expect("column_values_to_be_in_set", column="d", value_set=["2020-01-01"]),
        expect("column_values_to_be_in_set", column="c", value_set=["a", "zz"]),
        expect("column_values_to_be_in_set", column="e", value_set=["a", "zz"]),
        expect("column_values_to_be_in_set", column="f", value_set=[2.5, 1]),
    )
    agree(frame, expect("column_values_to_be_in_set", column="s", value_set=[]))


def test_a_missing_column_fails_every_kind() -> None:
    frame = pl.DataFrame({"present": ["a", "b"]})
    found = agree(
        frame,
        expect("column_values_to_not_be_null", column="gone"),
        expect("column_values_to_be_in_set", column="gone", value_set=["a"]),
        expect("column_values_to_be_between", column="gone", min_value=0),
        expect("column_values_to_match_regex", column="gone", regex="a"),
        expect("column_values_to_be_unique", column="gone"),
        expect("column_value_lengths_to_equal", column="gone", value=1),
        expect("compound_columns_to_be_unique", column_list=["present", "gone"]),
        expect("column_pair_values_a_to_be_greater_than_b", column_A="present", column_B="gone"),
    )
    assert set(found.values()) == {"?"}
    pair = expect(
        "column_pair_values_to_be_in_set", column_A="present", column_B="gone", value_pairs_set=[["a", "b"]]
    )
    assert check_table("edge", frame, suite(pair)).failures == [f"{label(pair)}: ? unexpected pairs"]
    assert not check_table_with_ge("edge", frame, suite(pair)).success


def test_empty_frame_passes_but_a_broken_contract_still_raises() -> None:
    expectations = [
        expect("column_values_to_not_be_null", column="x"),
        expect("column_values_to_be_unique", column="y"),
    ]
    for frame in (pl.DataFrame(), pl.DataFrame({"x": []}, schema={"x": pl.String})):
        outcome = check_table("edge", frame, suite(*expectations))
        assert (outcome.success, outcome.evaluated, outcome.failures) == (True, 0, [])
        with pytest.raises(ValueError, match="expect_column_values_to_be_sparkly"):
            check_table(
                "edge", frame, suite(*expectations, expect("column_values_to_be_sparkly", column="x"))
            )


def test_unknown_types_and_arguments_raise() -> None:
    frame = pl.DataFrame({"x": [1]})
    with pytest.raises(ValueError, match=r"table 'vitals'.*expect_column_values_to_be_sparkly"):
        check_table("vitals", frame, suite(expect("column_values_to_be_sparkly", column="x")))
    with pytest.raises(ValueError, match=r"table 'vitals'.*row_condition"):
        check_table(
            "vitals", frame, suite(expect("column_values_to_not_be_null", column="x", row_condition="x>0"))
        )
    with pytest.raises(ValueError, match=r"table 'vitals'.*mostly"):
        check_table("vitals", frame, suite(expect("column_values_to_not_be_null", column="x", mostly=1.5)))
    # GE itself drops an unknown type from the suite and passes: the reason the evaluator raises
    assert check_table_with_ge(
        "vitals", frame, suite(expect("column_values_to_be_sparkly", column="x"))
    ).success


def test_failing_groups_name_the_groups_with_unexpected_rows() -> None:
    secret = "Zeppelina-Group-Probe"
    frame = pl.DataFrame(
        {
            "bucket": ["01", "01", "02", "03", "03", "04", None],
            "id": ["a", "b", "c", "a", "d", "e", "b"],
            "status": ["final", "final", secret, "final", "final", None, "final"],
            "value": [1.0, 2.0, 3.0, 4.0, NAN, 6.0, 7.0],
        }
    )
    expectations = [
        expect("column_values_to_be_unique", column="id"),
        expect("column_values_to_be_in_set", column="status", value_set=["final"]),
        expect("column_values_to_not_be_null", column="value"),
        expect("column_values_to_be_between", column="value", max_value=5),
        expect("column_values_to_not_be_null", column="status", mostly=0.5),
        expect("column_values_to_be_unique", column="gone"),
    ]
    outcome = check_table("edge", frame, suite(*expectations), group_column="bucket")
    groups = {f.rpartition(": ")[0]: g for f, g in outcome.failing_groups.items()}
    assert set(outcome.failing_groups) == set(outcome.failures)
    assert groups == {
        label(expectations[0]): ["01", "03"],  # a in 01 and 03, b in 01 and a null bucket
        label(expectations[1]): ["02"],
        label(expectations[2]): ["03"],
        label(expectations[3]): ["04"],
        label(expectations[5]): ["01", "02", "03", "04"],  # a missing column fails every group
    }
    assert secret not in repr(outcome)
    assert check_table("edge", frame, suite(*expectations)).failing_groups == {}
    assert (
        check_table("edge", frame.drop("bucket"), suite(*expectations[:5])).failures == outcome.failures[:4]
    )
    with pytest.raises(ValueError, match="group column"):
        check_table("edge", frame, suite(*expectations), group_column="nope")


def test_check_table_imports_neither_great_expectations_nor_pandas() -> None:
    script = textwrap.dedent(
        """
        import sys
        import polars as pl
        from pipelines.silver.expectations import check_table, load_suites, EXPECTATIONS_DIR
        frame = pl.DataFrame({"metric": ["heart_rate", "x"], "unit": ["/min", "kg"], "uploads": [1, 0]})
        readings = load_suites(EXPECTATIONS_DIR / "devices")["device_reading"]
        outcome = check_table("device_reading", frame, readings)
        assert not outcome.success and outcome.failures, outcome
        heavy = [m for m in ("great_expectations", "pandas") if m in sys.modules]
        assert not heavy, heavy
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
