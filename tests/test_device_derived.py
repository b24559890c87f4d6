"""Derived device tables: daily aggregates on local days, adherence, and every alert rule at its boundary."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from pipelines.devices.derived import adherence, daily_aggregates, device_alerts, heart_failure_patients
from pipelines.devices.units import metric_catalogue

NO_HF = pl.DataFrame(schema={"patient_source": pl.String, "patient_id": pl.String})
HF = pl.DataFrame({"patient_source": ["ehr_a"], "patient_id": ["p1"]})


def frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Readings of patient p1 with defaults for what a test does not care about."""
    full = []
    for i, row in enumerate(rows):
        metric = str(row["metric"])
        full.append(
            {
                "reading_id": f"r{i}",
                "patient_source": "ehr_a",
                "patient_id": "p1",
                "metric": metric,
                "unit": metric_catalogue()[metric].unit,
                "value": float(row["value"]),  # type: ignore[arg-type]
                "effective_start": row.get("at", datetime(2026, 6, 1, 9, tzinfo=UTC)),
                "time_zone": row.get("tz", "+00:00"),
                "statistic": row.get("statistic"),
                "group_id": row.get("group", f"g{i}"),
                "plausible": row.get("plausible", True),
                "effective_end": row.get("end"),
            }
        )
    return pl.DataFrame(
        full,
        schema_overrides={
            "statistic": pl.String,
            "effective_start": pl.Datetime("us", "UTC"),
            "effective_end": pl.Datetime("us", "UTC"),
        },
    )


def bp(systolic: float, diastolic: float, at: datetime, group: str) -> list[dict[str, object]]:
    return [
        {"metric": "systolic_blood_pressure", "value": systolic, "at": at, "group": group},
        {"metric": "diastolic_blood_pressure", "value": diastolic, "at": at, "group": group},
    ]


def alerts_of(readings: pl.DataFrame, hf: pl.DataFrame = NO_HF) -> list[str]:
    return device_alerts(readings, hf)["alert"].to_list()


def test_daily_aggregates_use_the_local_day_and_skip_implausible_and_statistics() -> None:
    late_evening = datetime(2026, 6, 2, 3, 30, tzinfo=UTC)  # 23:30 on June 1st at -04:00
    readings = frame(
        [
            {"metric": "body_weight", "value": 80, "at": late_evening, "tz": "-04:00"},
            {
                "metric": "body_weight",
                "value": 82,
                "at": datetime(2026, 6, 1, 12, tzinfo=UTC),
                "tz": "-04:00",
            },
            {"metric": "body_weight", "value": 5, "plausible": False},
            {"metric": "body_weight", "value": 90, "statistic": "average"},
        ]
    )
    daily = daily_aggregates(readings)
    assert daily.select("day", "readings", "mean", "min", "max").rows() == [
        (date(2026, 6, 1), 2, 81.0, 80.0, 82.0)
    ]


@pytest.mark.parametrize(
    ("systolic", "diastolic", "fires"),
    [(180, 100, True), (179, 119, False), (150, 120, True), (179.9, 119.9, False)],
)
def test_hypertensive_urgency_boundary(systolic: float, diastolic: float, fires: bool) -> None:
    readings = frame(bp(systolic, diastolic, datetime(2026, 6, 1, 8, tzinfo=UTC), "cuff"))
    assert ("hypertensive_urgency" in alerts_of(readings)) is fires


def test_hypertensive_urgency_lists_both_readings_of_the_cuff_reading() -> None:
    alerts = device_alerts(frame(bp(185, 95, datetime(2026, 6, 1, 8, tzinfo=UTC), "cuff")), NO_HF)
    urgency = alerts.filter(pl.col("alert") == "hypertensive_urgency").row(0, named=True)
    assert urgency["reading_ids"] == ["r0", "r1"]


def _week(systolic: float, diastolic: float, days: int) -> pl.DataFrame:
    rows: list[dict[str, object]] = []
    for d in range(days):
        rows += bp(systolic, diastolic, datetime(2026, 6, 1, 8, tzinfo=UTC) + timedelta(days=d), f"c{d}")
    return frame(rows)


@pytest.mark.parametrize(
    ("systolic", "diastolic", "days", "fires"),
    [
        (140, 80, 7, True),
        (139, 89, 7, False),
        (130, 90, 7, True),
        (150, 95, 2, False),  # not enough days in the window
        (150, 95, 3, True),
    ],
)
def test_sustained_hypertension_boundary(systolic: float, diastolic: float, days: int, fires: bool) -> None:
    found = alerts_of(_week(systolic, diastolic, days))
    assert (found.count("sustained_hypertension") == 1) is fires  # raised once per run, not every day


@pytest.mark.parametrize(
    ("value", "alert"),
    [(53.9, "hypoglycemia"), (54, None), (300, None), (300.1, "hyperglycemia")],
)
def test_glucose_boundaries(value: float, alert: str | None) -> None:
    found = alerts_of(frame([{"metric": "blood_glucose", "value": value}]))
    assert found == ([alert] if alert else [])


@pytest.mark.parametrize(("value", "fires"), [(89.9, True), (90, False)])
def test_low_oxygen_saturation_boundary(value: float, fires: bool) -> None:
    assert alerts_of(frame([{"metric": "oxygen_saturation", "value": value}])) == (
        ["low_oxygen_saturation"] if fires else []
    )


@pytest.mark.parametrize(
    ("gain", "days_apart", "heart_failure", "fires"),
    [(2.1, 3, True, True), (2.0, 3, True, False), (2.1, 4, True, False), (3.0, 1, False, False)],
)
def test_weight_gain_in_heart_failure_boundary(
    gain: float, days_apart: int, heart_failure: bool, fires: bool
) -> None:
    start = datetime(2026, 6, 1, 7, tzinfo=UTC)
    readings = frame(
        [
            {"metric": "body_weight", "value": 80, "at": start},
            {"metric": "body_weight", "value": 80 + gain, "at": start + timedelta(days=days_apart)},
        ]
    )
    found = device_alerts(readings, HF if heart_failure else NO_HF)
    assert ("weight_gain_heart_failure" in found["alert"].to_list()) is fires
    if fires:
        assert found.row(0, named=True)["reading_ids"] == ["r0", "r1"]


def test_implausible_readings_never_fire_alerts() -> None:
    readings = frame([{"metric": "blood_glucose", "value": 900, "plausible": False}])
    assert alerts_of(readings) == []


def test_adherence_counts_distinct_days_in_the_window_for_active_enrolments() -> None:
    as_of = date(2026, 6, 30)
    rows = [
        {
            "metric": "systolic_blood_pressure",
            "value": 120,
            "at": datetime(2026, 6, 30, 8, tzinfo=UTC) - timedelta(days=d),
        }
        for d in range(0, 40, 2)  # every other day: 15 days inside the 30-day window
    ]
    enrolment = pl.DataFrame(
        {
            "patient_source": ["ehr_a", "ehr_a", "ehr_a"],
            "patient_id": ["p1", "p2", "p3"],
            "device_type": ["blood_pressure_monitor", "weight_scale", "glucometer"],
            "enrolled_on": [date(2026, 1, 1), date(2026, 1, 1), date(2026, 1, 1)],
            "unenrolled_on": [None, None, date(2026, 5, 1)],
        }
    )
    result = adherence(frame(rows), enrolment, as_of)
    assert result.select("patient_id", "metric", "days_with_readings", "adherent").rows() == [
        ("p1", "systolic_blood_pressure", 15, False),
        ("p2", "body_weight", 0, False),
    ]


def test_heart_failure_patients_from_snomed_and_icd10_codes() -> None:
    conditions = pl.LazyFrame(
        {
            "source": ["ehr_a", "ehr_a", "ehr_b"],
            "patient_id": ["p1", "p2", "q1"],
            "code": ["84114007", "44054006", "I50.9"],
            "code_system": [
                "http://snomed.info/sct",
                "http://snomed.info/sct",
                "http://hl7.org/fhir/sid/icd-10-cm",
            ],
        }
    )
    assert sorted(heart_failure_patients(conditions).rows()) == [("ehr_a", "p1"), ("ehr_b", "q1")]


def test_intraday_step_slots_do_not_count_beside_the_daily_total() -> None:
    day = datetime(2026, 6, 1, 4, tzinfo=UTC)
    readings = frame(
        [
            {"metric": "step_count", "value": 9000, "at": day, "end": day + timedelta(hours=23, minutes=59)},
            {
                "metric": "step_count",
                "value": 400,
                "at": day + timedelta(hours=5),
                "end": day + timedelta(hours=6),
            },
        ]
    )
    assert daily_aggregates(readings).select("readings", "mean").rows() == [(1, 9000.0)]
