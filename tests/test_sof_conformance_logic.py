"""The conformance harness's judging, run against a tiny fake engine (no real SQL on FHIR engine needed).

The fake `run_view` ignores the resources and interprets a made-up view: `{"rows": [...]}` returns the
rows, `{"raise": "view"}` raises the fake ViewDefinitionError and `{"raise": "other"}` a KeyError.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.sof_conformance import (
    Case,
    Engine,
    Outcome,
    compare_columns,
    compare_rows,
    evaluate_case,
    load_cases,
    main,
    run_suite,
    summarize,
)


class FakeViewError(ValueError):
    """Stands in for pipelines.sof.ViewDefinitionError."""


class FakeViewSubError(FakeViewError):
    """A more specific invalid-view error."""


def fake_run_view(view: dict[str, Any], resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    errors: dict[str, Exception] = {
        "view": FakeViewError("bad view"),
        "sub": FakeViewSubError("bad column"),
        "other": KeyError("bug"),
    }
    if "raise" in view:
        raise errors[view["raise"]]
    return view["rows"]


ENGINE = Engine(run_view=fake_run_view, error_type=FakeViewError)


def judge(view: dict[str, Any], **expectation: Any) -> Outcome:
    return evaluate_case(Case("suite", "t", {"title": "t", "view": view, **expectation}, []), ENGINE)


# --- rows as multisets


def test_row_order_does_not_matter() -> None:
    assert compare_rows([{"a": 1}, {"a": 2}], [{"a": 2}, {"a": 1}]) is None


def test_key_order_does_not_matter_for_rows() -> None:
    assert compare_rows([{"a": 1, "b": 2}], [{"b": 2, "a": 1}]) is None


def test_duplicates_count() -> None:
    reason = compare_rows([{"a": 1}, {"a": 1}, {"a": 2}], [{"a": 1}, {"a": 2}, {"a": 2}])
    assert reason is not None
    assert reason == "expected 3 rows, got 3; missing 1: {'a': 2}; unexpected 1: {'a': 1}"


def test_missing_and_extra_rows() -> None:
    assert compare_rows([{"a": 1}], [{"a": 1}, {"a": 1}]) == "expected 2 rows, got 1; missing 1: {'a': 1}"
    many = compare_rows([{"a": i} for i in range(5)], [])
    assert many == "expected 0 rows, got 5; unexpected 5: {'a': 0}, {'a': 1}, {'a': 2} and 2 more"
    assert compare_rows([{"a": 1}], []) is not None
    assert compare_rows([], []) is None


def test_missing_key_differs_from_null() -> None:
    assert compare_rows([{"a": 1}], [{"a": 1, "b": None}]) is not None
    assert compare_rows([{"a": 1, "b": None}], [{"a": 1, "b": None}]) is None


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        (5.0, 5),  # a decimal column holding a whole number (fhirpath_numbers: "add": 5)
        (Decimal("5.00"), 5),
        (Decimal("0.95"), 0.95),  # fn_boundary: 1.0 lowBoundary
        (Decimal("1.10"), 1.1),  # JSON has no trailing zeros: 1.10 and 1.1 are the same number
        (-0.0, 0),
        (1e2, 100),
    ],
)
def test_equal_numbers(actual: object, expected: object) -> None:
    assert compare_rows([{"v": actual}], [{"v": expected}]) is None


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        (0.1 + 0.2, 0.3),  # no tolerance: the reference runner compares doubles exactly
        (Decimal("0.950000001"), 0.95),
        (True, 1),
        (False, 0),
        ("1", 1),
        ("0.95", 0.95),
        (None, 0),
        (None, ""),
        (["a", "b"], ["b", "a"]),  # collection values keep their order
        (["a"], "a"),
    ],
)
def test_unequal_values(actual: object, expected: object) -> None:
    assert compare_rows([{"v": actual}], [{"v": expected}]) is not None


def test_non_json_value_is_a_failure_not_a_crash() -> None:
    from datetime import date

    reason = compare_rows([{"d": date(2020, 1, 1)}], [{"d": "2020-01-01"}])
    assert reason is not None and "row.d: date" in reason


@given(st.permutations([{"a": 1}, {"a": 1}, {"a": 2.5}, {"a": None}, {"b": "x"}, {"a": [1, 2]}]))
def test_any_permutation_matches(rows: list[dict[str, Any]]) -> None:
    assert (
        compare_rows(rows, [{"a": 1}, {"a": 2.5}, {"a": [1, 2]}, {"a": None}, {"b": "x"}, {"a": 1}]) is None
    )


# --- expectError


def test_expect_error_passes_on_view_definition_error() -> None:
    assert judge({"raise": "view"}, expectError=True) == Outcome(True)
    assert judge({"raise": "sub"}, expectError=True) == Outcome(True)


def test_expect_error_fails_on_other_exceptions() -> None:
    outcome = judge({"raise": "other"}, expectError=True)
    assert not outcome.passed
    assert outcome.reason == "expected FakeViewError, got KeyError: 'bug'"


def test_expect_error_fails_when_nothing_is_raised() -> None:
    assert judge({"rows": []}, expectError=True) == Outcome(
        False, "expected FakeViewError, but run_view returned 0 rows"
    )


def test_expect_error_false_is_no_error_expectation() -> None:
    assert judge({"rows": [{"a": 1}]}, expectError=False, expect=[{"a": 1}]).passed


def test_errors_fail_tests_that_expect_rows() -> None:
    outcome = judge({"raise": "view"}, expect=[])
    assert outcome == Outcome(False, "raised FakeViewError: bad view")


# --- expectColumns and expectCount


def test_columns_in_order() -> None:
    rows = [{"a": 1, "b": 2}, {"a": 3, "b": 4}]
    assert judge({"rows": rows}, expect=rows[::-1], expectColumns=["a", "b"]).passed


def test_columns_out_of_order() -> None:
    rows = [{"b": 2, "a": 1}]
    outcome = judge({"rows": rows}, expect=rows, expectColumns=["a", "b"])
    assert outcome == Outcome(False, "row 0 has columns ['b', 'a'], expected ['a', 'b']")


def test_every_row_is_checked_for_column_order() -> None:
    rows = [{"a": 1, "b": 2}, {"b": 4, "a": 3}]
    assert compare_columns(rows, ["a", "b"]) == "row 1 has columns ['b', 'a'], expected ['a', 'b']"


def test_columns_must_match_exactly() -> None:
    assert compare_columns([{"a": 1, "b": 2, "c": 3}], ["a", "b"]) is not None
    assert compare_columns([{"a": 1}], ["a", "b"]) is not None


def test_columns_without_rows_are_not_checked() -> None:
    assert compare_columns([], ["a", "b"]) is None
    assert judge({"rows": []}, expect=[], expectColumns=["a"]).passed


def test_expect_count() -> None:
    assert judge({"rows": [{"a": 1}, {"a": 1}]}, expectCount=2).passed
    assert judge({"rows": []}, expectCount=0).passed
    assert judge({"rows": [{"a": 1}]}, expectCount=2) == Outcome(False, "expected 2 rows, got 1")


def test_all_problems_are_reported() -> None:
    outcome = judge({"rows": [{"b": 1, "a": 1}]}, expect=[{"a": 2, "b": 1}], expectColumns=["a", "b"])
    assert not outcome.passed and outcome.reason is not None
    assert outcome.reason.startswith("row 0 has columns") and "missing 1" in outcome.reason


def test_result_must_be_a_list_of_objects() -> None:
    assert not judge({"rows": ({"a": 1},)}, expect=[{"a": 1}]).passed
    assert not judge({"rows": [["a", 1]]}, expectCount=1).passed


def test_test_without_expectation_fails() -> None:
    assert judge({"rows": []}) == Outcome(False, "test has no expect, expectCount or expectError")


def test_engine_gets_copies() -> None:
    def mutating(view: dict[str, Any], resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        resources.clear()
        view.clear()
        return []

    test = {"title": "t", "view": {"resource": "Patient"}, "expect": []}
    resources = [{"resourceType": "Patient"}]
    assert evaluate_case(Case("f", "t", test, resources), Engine(mutating, FakeViewError)).passed
    assert resources == [{"resourceType": "Patient"}] and test["view"] == {"resource": "Patient"}


# --- the suite runner, report and command line


def write_suite(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suite_b = {
        "title": "b",
        "resources": [{"resourceType": "Patient", "id": "p1"}],
        "tests": [
            {"title": "rows", "view": {"rows": [{"id": "p1"}]}, "expect": [{"id": "p1"}]},
            {"title": "wrong", "view": {"rows": [{"id": "p2"}]}, "expect": [{"id": "p1"}]},
            {"title": "invalid", "view": {"raise": "view"}, "expectError": True},
        ],
    }
    suite_a = {
        "title": "a",
        "resources": [],
        "tests": [{"title": "n", "view": {"rows": []}, "expectCount": 0}],
    }
    (folder / "b.json").write_text(json.dumps(suite_b))
    (folder / "a.json").write_text(json.dumps(suite_a))
    return folder


def test_load_cases(tmp_path: Path) -> None:
    cases = load_cases(write_suite(tmp_path / "tests"))
    assert [c.case_id for c in cases] == ["a.json::n", "b.json::rows", "b.json::wrong", "b.json::invalid"]
    assert cases[1].resources == [{"resourceType": "Patient", "id": "p1"}]


def test_load_cases_rejects_other_json(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="not a SQL on FHIR test file"):
        load_cases(tmp_path)


def test_run_suite_report_shape(tmp_path: Path) -> None:
    report = run_suite(write_suite(tmp_path / "tests"), ENGINE)
    assert list(report) == ["a", "b"]
    assert report["a"] == {"tests": [{"name": "n", "result": {"passed": True}}]}
    assert [t["name"] for t in report["b"]["tests"]] == ["rows", "wrong", "invalid"]
    wrong = report["b"]["tests"][1]["result"]
    assert wrong["passed"] is False and wrong["reason"].startswith("expected 1 rows, got 1")
    assert summarize(report) == {"a": (1, 1), "b": (2, 3)}
    json.dumps(report)  # serializable as it is


def test_main_writes_report_and_prints_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reports" / "sof_test_report.json"
    tests_dir = write_suite(tmp_path / "tests")
    assert main(["--tests", str(tests_dir), "--out", str(out)], engine=ENGINE) == 0
    assert json.loads(out.read_text()) == run_suite(tests_dir, ENGINE)
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == ["a 1/1", "b 2/3"]
    assert printed[2].startswith("overall 3/4")


def test_main_rejects_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--tests", str(tmp_path), "--out", str(tmp_path / "r.json")], engine=ENGINE)
