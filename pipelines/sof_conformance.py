"""Run the SQL on FHIR v2 conformance suite against `pipelines.sof.run_view` and report the results.

Each suite file holds `resources` and `tests[]`; a test has a `view` and one expectation: `expect`
(rows), `expectCount` (number of rows) or `expectError` (true), optionally with `expectColumns`.
The semantics follow the suite's reference runner:

* rows are compared as multisets (order-insensitive, duplicates count); a missing key differs from a
  key whose value is null, and collection values are compared element by element, in order;
* numbers are compared as JSON numbers (IEEE doubles): `5`, `5.0` and `Decimal("5.00")` are equal,
  `0.1 + 0.2` and `0.3` are not, and booleans and strings never equal numbers;
* `expectError: true` passes only when the engine raises the engine's `ViewDefinitionError`;
* `expectColumns` must equal the key order of every row; with no rows there is nothing to check.

Where the reference runner is looser or accidental it is not copied: it skips `expectColumns`, treats
`expectCount: 0` as absent and compares object values by identity; here all three are checked.

The report has the reference runner's shape: `{file stem: {"tests": [{"name", "result"}]}}`.
`python -m pipelines.sof_conformance --tests DIR --out FILE` writes it and prints a summary.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

Row = dict[str, Any]
Runner = Callable[[dict[str, Any], list[dict[str, Any]]], list[Row]]
DEFAULT_OUT = Path("bench/reports/sof_test_report.json")
_SHOWN = 3  # rows quoted in a failure reason


@dataclass(frozen=True)
class Engine:
    """The function under test and the exception it raises for an invalid view."""

    run_view: Runner
    error_type: type[BaseException]


@dataclass(frozen=True)
class Case:
    """One test of one suite file, with the file's resources."""

    file: str  # file name without ".json"
    title: str
    test: dict[str, Any]
    resources: list[dict[str, Any]]

    @property
    def case_id(self) -> str:
        """`<file>.json::<title>`, the id used by pytest and the known-failures list."""
        return f"{self.file}.json::{self.title}"


@dataclass(frozen=True)
class Outcome:
    """Whether a test passed and, if not, why."""

    passed: bool
    reason: str | None = None

    def as_report(self) -> dict[str, Any]:
        """The `result` object of the report."""
        return {"passed": True} if self.passed else {"passed": False, "reason": self.reason or "failed"}


def default_engine() -> Engine:
    """The project's engine (imported here so the comparison logic does not depend on it)."""
    from pipelines.sof import ViewDefinitionError, run_view

    return Engine(run_view=run_view, error_type=ViewDefinitionError)


def load_cases(tests_dir: Path) -> list[Case]:
    """Every test of every `*.json` file in `tests_dir`, files in name order, tests in file order."""
    cases = []
    for path in sorted(Path(tests_dir).glob("*.json")):
        suite = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(suite, dict) or not isinstance(suite.get("tests"), list):
            raise ValueError(f"{path} is not a SQL on FHIR test file (no 'tests' list)")
        resources = suite.get("resources", [])
        cases.extend(Case(path.stem, test["title"], test, resources) for test in suite["tests"])
    return cases


def _canonical(value: Any, where: str) -> Any:
    """`value` as plain JSON data with every number as a float (a JSON number is a double)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float | Decimal):
        try:
            number = float(value)
        except OverflowError:
            return str(value)
        return 0.0 if number == 0 else number  # -0 equals 0
    if isinstance(value, list | tuple):
        return [_canonical(item, where) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _canonical(item, f"{where}.{key}") for key, item in value.items()}
    raise TypeError(f"{where}: {type(value).__name__} value {value!r} is not JSON data")


def canonical_row(row: Row) -> str:
    """A string that is equal for two rows exactly when they have the same keys with equal JSON values."""
    if not isinstance(row, dict):
        raise TypeError(f"row is a {type(row).__name__}, not an object")
    return json.dumps(_canonical(row, "row"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _tally(rows: Sequence[Row]) -> tuple[Counter[str], dict[str, Row]]:
    """Rows counted by canonical form, and one original row per form (for messages)."""
    keyed = [(canonical_row(row), row) for row in rows]
    return Counter(key for key, _ in keyed), dict(keyed)


def _quote(keys: Counter[str], originals: dict[str, Row]) -> str:
    shown = [repr(originals[key]) for key in list(keys.elements())[:_SHOWN]]
    more = keys.total() - len(shown)
    return f"{keys.total()}: " + ", ".join(shown) + (f" and {more} more" if more else "")


def compare_rows(actual: Sequence[Row], expected: Sequence[Row]) -> str | None:
    """None when the rows are the same multiset, otherwise a short description of the difference."""
    want, expected_rows = _tally(expected)  # a malformed test file raises
    try:
        got, actual_rows = _tally(actual)
    except TypeError as error:
        return f"result is not JSON data: {error}"
    if got == want:
        return None
    parts = [f"expected {len(expected)} rows, got {len(actual)}"]
    if missing := want - got:
        parts.append(f"missing {_quote(missing, expected_rows)}")
    if extra := got - want:
        parts.append(f"unexpected {_quote(extra, actual_rows)}")
    return "; ".join(parts)


def compare_columns(actual: Sequence[Row], expected_columns: Sequence[str]) -> str | None:
    """None when every row's keys are `expected_columns` in that order (vacuously true with no rows)."""
    for index, row in enumerate(actual):
        columns = list(row)
        if columns != list(expected_columns):
            return f"row {index} has columns {columns}, expected {list(expected_columns)}"
    return None


def _error_name(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def evaluate_case(case: Case, engine: Engine) -> Outcome:
    """Run one test through `engine` and judge the result (engine exceptions become failures)."""
    test = case.test
    view, resources = copy.deepcopy(test["view"]), copy.deepcopy(case.resources)
    if test.get("expectError") is True:
        try:
            rows = engine.run_view(view, resources)
        except engine.error_type:
            return Outcome(True)
        except Exception as error:
            return Outcome(False, f"expected {engine.error_type.__name__}, got {_error_name(error)}")
        got = f"{len(rows)} rows" if isinstance(rows, list) else f"a {type(rows).__name__}"
        return Outcome(False, f"expected {engine.error_type.__name__}, but run_view returned {got}")
    if "expect" not in test and "expectCount" not in test:
        return Outcome(False, "test has no expect, expectCount or expectError")
    try:
        rows = engine.run_view(view, resources)
    except Exception as error:
        return Outcome(False, f"raised {_error_name(error)}")
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        return Outcome(False, f"result is not a list of row objects: {type(rows).__name__}")
    problems = []
    if "expectColumns" in test:
        problems.append(compare_columns(rows, test["expectColumns"]))
    if "expectCount" in test and len(rows) != test["expectCount"]:
        problems.append(f"expected {test['expectCount']} rows, got {len(rows)}")
    if "expect" in test:
        problems.append(compare_rows(rows, test["expect"]))
    reasons = [problem for problem in problems if problem]
    return Outcome(not reasons, "; ".join(reasons) or None)


def run_suite(tests_dir: Path, engine: Engine | None = None) -> dict[str, Any]:
    """Run every test in `tests_dir` and return the report keyed by file name without `.json`."""
    engine = engine or default_engine()
    report: dict[str, Any] = {path.stem: {"tests": []} for path in sorted(Path(tests_dir).glob("*.json"))}
    for case in load_cases(tests_dir):
        outcome = evaluate_case(case, engine)
        report[case.file]["tests"].append({"name": case.title, "result": outcome.as_report()})
    return report


def summarize(report: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(passed, total) per file of a report."""
    return {
        name: (sum(test["result"]["passed"] for test in entry["tests"]), len(entry["tests"]))
        for name, entry in report.items()
    }


def main(argv: Sequence[str] | None = None, engine: Engine | None = None) -> int:
    """Command line: run the suite, write the report and print passed/total per file and overall."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.sof_conformance", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--tests", type=Path, required=True, help="folder of the suite's *.json test files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report file (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if not args.tests.is_dir() or not any(args.tests.glob("*.json")):
        parser.error(f"no *.json test files in {args.tests}")
    report = run_suite(args.tests, engine)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    console = Console()
    counts = summarize(report)
    for name, (passed, total) in counts.items():
        console.print(f"[{'green' if passed == total else 'red'}]{escape(name)}[/] {passed}/{total}")
    passed, total = sum(p for p, _ in counts.values()), sum(t for _, t in counts.values())
    console.print(f"[bold]overall[/] {passed}/{total}; report written to {escape(str(args.out))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
