"""gold/discharge_risk as pure functions on a few hand-made stays (no Dagster, no lake): which discharges
are recent (the window's edges, stays still open, the dead), when a patient came back, LACE while no
discharge model is deployed, and the contract on what comes out. Scoring with a trained discharge model is
tested in tests/test_risk.py, where one is trained."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from upath import UPath

from models.risk.baselines import baseline_tier
from models.risk.config import risk_config
from models.risk.features import end_of_day
from models.risk.outcomes import discharge_points, recent_discharges
from models.risk.score import DISCHARGE_RISK_SCHEMA, LACE_BASELINE, score_discharges
from pipelines.gold.records import PersonRecords
from pipelines.silver.expectations import EXPECTATIONS_DIR, check_table, load_suites
from tests.test_fhir_record_rules import persons_frame

AS_OF = date(2026, 6, 30)
HORIZON = risk_config().discharge_horizon_days


def _at(day: date, clock: str = "10:00:00") -> str:
    return f"{day.isoformat()}T{clock}+00:00"


def _days_before(days: int) -> date:
    return AS_OF - timedelta(days=days)


def _records(tmp_path: Path, persons: pl.DataFrame, encounters: list[tuple]) -> PersonRecords:
    """Records of `persons` holding only these encounters: (person, id, class, admit source, start, end)."""
    records = PersonRecords(UPath(tmp_path / "lake"), persons, pl.DataFrame(schema={"person_id": pl.String}))
    records._tables[("silver", "encounter")] = pl.DataFrame(
        encounters,
        schema=["person_id", "id", "class_code", "admit_source_code", "period_start", "period_end"],
        orient="row",
    )
    return records


def _stay(person: str, stay: str, discharged: str | None, days: int = 3, source: str | None = None) -> tuple:
    """An inpatient stay of `days` days ending at `discharged` (None: still running, begun 3 days ago)."""
    if discharged is None:
        return (person, stay, "IMP", source, _at(_days_before(3)), None)
    end = date.fromisoformat(discharged[:10])
    return (person, stay, "IMP", source, _at(end - timedelta(days=days), discharged[11:19]), discharged)


@pytest.fixture
def window(tmp_path: Path) -> PersonRecords:
    """Stays around both edges of the window, one still running, one ending after the as-of day, an ED
    visit, and a recent stay of a person who died before the as-of day."""
    persons = persons_frame(
        [(p, "1950-01-01", None) for p in ("today", "d29", "d30", "later", "open", "ends_later", "ed")]
        + [("dead", "1950-01-01", _at(_days_before(1)))]
    )
    return _records(
        tmp_path,
        persons,
        [
            _stay("today", "s-today", _at(AS_OF, "23:59:59")),  # the last instant of the as-of day
            _stay("d29", "s-29", _at(_days_before(HORIZON - 1), "00:00:01")),
            _stay(
                "d30", "s-30", _at(_days_before(HORIZON), "23:59:59")
            ),  # window closed during the as-of day
            _stay("later", "s-later", _at(AS_OF + timedelta(days=1), "00:00:00")),
            _stay("open", "s-open", None),
            ("ends_later", "s-ends-later", "IMP", None, _at(_days_before(2)), _at(AS_OF + timedelta(days=3))),
            ("ed", "e-ed", "EMER", None, _at(_days_before(2)), _at(_days_before(2), "14:00:00")),
            _stay("dead", "s-dead", _at(_days_before(5))),
        ],
    )


def test_recent_discharges_are_those_whose_readmission_window_is_still_open(window) -> None:
    """Discharged on the as-of day or the HORIZON - 1 days before it; a stay discharged HORIZON days before
    has its whole window behind it by the end of the as-of day (a training discharge), a stay still running
    or ending after the as-of day is no discharge yet, and the dead are not scored."""
    recent = recent_discharges(window, AS_OF, HORIZON)
    assert recent["encounter_id"].to_list() == ["s-29", "s-today"]  # sorted by person, then discharge
    scores = score_discharges(window, AS_OF, None, risk_config())
    assert dict(scores.select("encounter_id", "days_since_discharge").iter_rows()) == {
        "s-29": HORIZON - 1,
        "s-today": 0,
    }
    assert (scores["as_of"] == AS_OF).all()
    assert dict(scores.select("encounter_id", "discharged_on").iter_rows()) == {
        "s-29": _days_before(HORIZON - 1),
        "s-today": AS_OF,
    }


def test_the_training_discharges_and_the_recent_ones_split_the_stays_without_overlap(window) -> None:
    """One stay selection: at the end of the as-of day, every discharge that happened is either a training
    discharge (outcome known) or a recent one (window still open), never both."""
    trained = set(discharge_points(window, end_of_day(AS_OF), HORIZON)["encounter_id"])
    recent = set(recent_discharges(window, AS_OF, HORIZON)["encounter_id"])
    assert trained == {"s-30"} and not trained & recent
    # a day later the 29-day-old discharge's window has closed too
    assert "s-29" in set(
        discharge_points(window, end_of_day(AS_OF + timedelta(days=1)), HORIZON)["encounter_id"]
    )
    assert "s-29" not in set(recent_discharges(window, AS_OF + timedelta(days=1), HORIZON)["encounter_id"])


def test_returned_on_is_the_first_ed_visit_or_unplanned_admission_after_the_discharge(tmp_path) -> None:
    """Up to the end of the as-of day: a planned admission is no return, a visit after the as-of day is not
    known yet; the outcome the model learns is the same first return, within the horizon."""
    persons = persons_frame([(p, "1950-01-01", None) for p in ("back", "planned", "not_yet", "same_day")])
    records = _records(
        tmp_path,
        persons,
        [
            _stay("back", "s-back", _at(_days_before(10))),
            ("back", "e-first", "EMER", None, _at(_days_before(5)), _at(_days_before(5), "12:00:00")),
            ("back", "e-second", "EMER", None, _at(_days_before(2)), _at(_days_before(2), "12:00:00")),
            _stay("planned", "s-planned", _at(_days_before(10))),
            ("planned", "s-elective", "IMP", "gp", _at(_days_before(4)), _at(_days_before(3))),
            _stay("not_yet", "s-not-yet", _at(_days_before(3))),
            ("not_yet", "e-tomorrow", "EMER", None, _at(AS_OF + timedelta(days=1)), None),
            _stay("same_day", "s-same-day", _at(_days_before(6), "09:00:00")),
            ("same_day", "e-evening", "EMER", None, _at(_days_before(6), "21:00:00"), None),
        ],
    )
    scores = score_discharges(records, AS_OF, None, risk_config())
    assert dict(scores.select("encounter_id", "returned_on").iter_rows()) == {
        "s-back": _days_before(5),
        "s-planned": None,  # the elective stay (planned, from a GP) is no return
        "s-not-yet": None,
        "s-same-day": _days_before(6),
        "s-elective": None,  # itself a recent discharge, with no return
    }
    later = discharge_points(records, end_of_day(AS_OF + timedelta(days=HORIZON + 1)), HORIZON)
    assert dict(later.select("encounter_id", "outcome").iter_rows()) == {
        "s-back": True,
        "s-planned": False,
        "s-not-yet": True,  # the visit the day after the as-of day is within its 30 days
        "s-same-day": True,
        "s-elective": False,
    }


def test_lace_scores_the_recent_discharges_while_no_discharge_model_is_deployed(tmp_path) -> None:
    """Points are the LACE index, tiers at the published cut-offs, reasons its components in words, no
    probability; the rows keep the table's schema and pass its contract."""
    persons = persons_frame([(p, "1950-01-01", None) for p in ("long", "short", "through_ed")])
    records = _records(
        tmp_path,
        persons,
        [
            _stay("long", "s-long", _at(_days_before(4)), days=15),
            ("long", "e-before", "EMER", None, _at(_days_before(60)), _at(_days_before(60), "12:00:00")),
            _stay("short", "s-short", _at(_days_before(2)), days=1, source="gp"),
            ("through_ed", "e-in", "EMER", None, _at(_days_before(12), "06:00:00"), _at(_days_before(12))),
            _stay("through_ed", "s-through-ed", _at(_days_before(7)), days=5),
        ],
    )
    scores = score_discharges(records, AS_OF, None, risk_config())
    assert scores.schema == pl.Schema(DISCHARGE_RISK_SCHEMA)
    rows = {r["encounter_id"]: r for r in scores.iter_rows(named=True)}
    # L 7 + E 1; L 1; L 4 + A 3 (an ED visit ending as the stay began)
    assert {k: r["points"] for k, r in rows.items()} == {"s-long": 8, "s-short": 1, "s-through-ed": 7}
    assert set(scores["model_version"]) == {LACE_BASELINE} and scores["score"].is_null().all()
    tiers = scores.select(baseline_tier(pl.col("points"), risk_config().lace_tiers))["tier"]
    assert (scores["tier"] == tiers).all()
    assert rows["s-through-ed"]["reasons"] == [
        "raises risk: a 5-day hospital stay (LACE 4 points)",
        "raises risk: admitted through the emergency department (LACE 3 points)",
    ]
    assert scores["reasons"].explode().str.contains(r"^raises risk: .+ \(LACE \d+ points?\)$").all()
    suite = load_suites(EXPECTATIONS_DIR / "gold")["discharge_risk"]
    outcome = check_table("discharge_risk", scores, suite)
    assert outcome.success, outcome.failures


def test_no_recent_discharge_gives_an_empty_table_with_its_columns(tmp_path) -> None:
    records = _records(tmp_path, persons_frame([("a", "1950-01-01", None)]), [])
    scores = score_discharges(records, AS_OF, None, risk_config())
    assert scores.height == 0 and scores.schema == pl.Schema(DISCHARGE_RISK_SCHEMA)


def test_the_contract_allows_exactly_the_days_of_the_configured_window() -> None:
    """The suite's bound on `days_since_discharge` is the model.yaml horizon less one (the window's last
    day is the as-of day itself): change them together."""
    path = EXPECTATIONS_DIR / "gold" / "discharge_risk.json"
    bounds = next(
        e["kwargs"]
        for e in json.loads(path.read_text())["expectations"]
        if e["kwargs"].get("column") == "days_since_discharge" and "max_value" in e["kwargs"]
    )
    assert (bounds["min_value"], bounds["max_value"]) == (0, HORIZON - 1)


def test_the_run_summary_counts_recent_stays_by_scorer_and_tier(tmp_path: Path) -> None:
    """`patient-insights ingest` ends with the readmission risk of recent stays beside the person tiers."""
    from models.risk.score import DISCHARGE_RISK_SCHEMA
    from pipelines import cli
    from pipelines.lake import write_parquet_atomic

    day = date(2026, 6, 30)
    stays = pl.DataFrame(
        {
            "person_id": ["p1", "p2", "p3"],
            "encounter_id": ["e1", "e2", "e3"],
            "as_of": [day] * 3,
            "discharged_on": [date(2026, 6, 20), date(2026, 6, 25), date(2026, 6, 29)],
            "days_since_discharge": [10, 5, 1],
            "score": [None, None, None],
            "points": [12, 11, 3],
            "tier": ["high", "high", "low"],
            "reasons": [["raises risk: a 9-day hospital stay (LACE 5 points)"], [], []],
            "model_version": ["baseline:lace"] * 3,
            "returned_on": [date(2026, 6, 28), None, None],
        },
        schema=DISCHARGE_RISK_SCHEMA,
    )
    lake = UPath(tmp_path / "lake")
    write_parquet_atomic(stays, lake / "gold" / "discharge_risk" / "bucket=00" / "data.parquet")
    with cli.console.capture() as captured:
        cli._print_risk_summary(lake)
    shown = captured.get()
    assert "Readmission risk of the stays discharged in the last 30 days" in " ".join(shown.split())
    assert "baseline:lace" in shown and "high" in shown and "low" in shown
    high = next(line for line in shown.splitlines() if "high" in line)
    assert high.split("│")[3:5] == ["     2 ", "         1 "]  # two stays, one came back
