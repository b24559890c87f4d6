"""The SQL on FHIR v2 conformance suite (../shared/data/sql-on-fhir-v2/tests), one pytest test per test.

Judging is `pipelines.sof_conformance.evaluate_case`, the same code that writes the benchmark report.
Tests listed in `sof_known_failures.json` (`{"<file>.json::<title>": "<reason>"}`) are strict xfails:
one that starts passing fails the run until its entry is removed.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from pipelines.sof import ViewDefinitionError, run_view
from pipelines.sof_conformance import Case, Engine, evaluate_case, load_cases
from tests.external.conftest import SHARED_DATA, _require

pytestmark = pytest.mark.external

SUITE = Path("sql-on-fhir-v2") / "tests"
KNOWN_FAILURES: dict[str, str] = json.loads(
    (Path(__file__).with_name("sof_known_failures.json")).read_text(encoding="utf-8")
)
ENGINE = Engine(run_view=run_view, error_type=ViewDefinitionError)


@cache
def cases_by_id(tests_dir: Path) -> dict[str, Case]:
    """The suite's tests by `<file>.json::<title>` (read once per folder)."""
    return {case.case_id: case for case in load_cases(tests_dir)}


def _params() -> list[object]:
    """One parameter per suite test; a single placeholder when the suite is absent at collection."""
    tests_dir = SHARED_DATA / SUITE
    if not tests_dir.is_dir():
        return [pytest.param(None, id="suite-missing")]
    return [
        pytest.param(
            case_id,
            id=case_id,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[case_id])]
            if case_id in KNOWN_FAILURES
            else [],
        )
        for case_id in cases_by_id(tests_dir)
    ]


@pytest.fixture(scope="module")
def sof_tests(shared_data: Path) -> Path:
    """The suite's tests folder (skips when absent, fails when PATIENT_INSIGHTS_REQUIRE_EXTERNAL=1)."""
    return _require(shared_data / SUITE)


@pytest.mark.parametrize("case_id", _params())
def test_conformance(case_id: str | None, sof_tests: Path) -> None:
    cases = cases_by_id(sof_tests)
    assert case_id is not None, "the suite appeared after collection; run pytest again"
    outcome = evaluate_case(cases[case_id], ENGINE)
    if not outcome.passed:
        pytest.fail(outcome.reason or "failed", pytrace=False)


def test_known_failures_name_suite_tests(sof_tests: Path) -> None:
    stale = sorted(set(KNOWN_FAILURES) - set(cases_by_id(sof_tests)))
    assert not stale, f"sof_known_failures.json names tests that are not in the suite: {stale}"


def test_the_general_evaluator_alone_passes_the_same_tests(sof_tests: Path, monkeypatch) -> None:
    """Columns compiled to one expression (`pipelines.sof.compiled`) are only a faster route to the same
    rows: with that route switched off, the suite's results must not change."""
    cases = cases_by_id(sof_tests)
    fast = {case_id: evaluate_case(case, ENGINE).passed for case_id, case in cases.items()}
    monkeypatch.setattr("pipelines.sof.engine.compile_singleton", lambda *_: None)
    general = {case_id: evaluate_case(case, ENGINE).passed for case_id, case in cases.items()}
    assert general == fast
