"""Device readings: unit conversions, plausibility flags, de-duplication and patient linking."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from pipelines.devices.linking import enrolment_from_raw, fhir_device_links, link_readings
from pipelines.devices.quality import deduplicate, flag_plausibility
from pipelines.devices.units import metric_catalogue, normalize_units


def readings(*rows: tuple[str, float | None, str | None]) -> pl.DataFrame:
    return pl.DataFrame(
        [(i, metric, value, unit) for i, (metric, value, unit) in enumerate(rows)],
        schema={
            "_row": pl.Int64,
            "metric": pl.String,
            "original_value": pl.Float64,
            "original_unit": pl.String,
        },
        orient="row",
    )


@pytest.mark.parametrize(
    ("metric", "value", "unit", "expected", "canonical"),
    [
        ("systolic_blood_pressure", 120, "mmHg", 120.0, "mm[Hg]"),
        ("diastolic_blood_pressure", 10.666, "kPa", 80.0, "mm[Hg]"),
        ("body_weight", 150, "lb", 68.0389, "kg"),
        ("body_weight", 150, "[lb_av]", 68.0389, "kg"),
        ("body_weight", 12, "st", 76.2035, "kg"),
        ("body_weight", 70500, "g", 70.5, "kg"),
        ("blood_glucose", 5.5, "mmol/L", 99.1, "mg/dL"),
        ("blood_glucose", 99, "mg/dL", 99.0, "mg/dL"),
        ("heart_rate", 72, "beats/min", 72.0, "/min"),
        ("oxygen_saturation", 97, "%", 97.0, "%"),
        ("body_temperature", 98.6, "[degF]", 37.0, "Cel"),
        ("body_temperature", 310.15, "K", 37.0, "Cel"),
        ("step_count", 8000, "steps", 8000.0, "{steps}"),
        ("sleep_duration", 7.5, "h", 450.0, "min"),
        ("sleep_duration", 3_600_000, "ms", 60.0, "min"),
    ],
)
def test_each_conversion_reaches_the_metric_unit(metric, value, unit, expected, canonical) -> None:
    normalized, rejects = normalize_units(readings((metric, value, unit)))
    assert rejects.is_empty()
    row = normalized.row(0, named=True)
    assert row["value"] == pytest.approx(expected, abs=0.05)
    assert row["unit"] == canonical == metric_catalogue()[metric].unit
    assert (row["original_value"], row["original_unit"]) == (value, unit)
    assert row["loinc"] == metric_catalogue()[metric].loinc


def test_unknown_missing_or_foreign_units_are_rejected_never_guessed() -> None:
    normalized, rejects = normalize_units(
        readings(
            ("body_weight", 50, "km"),
            ("heart_rate", 60, "beat/min"),
            ("oxygen_saturation", 0.97, None),
            ("blood_glucose", None, "mg/dL"),
            ("blood_glucose", 100, "mmHg"),
            ("made_up_metric", 1, "kg"),
        )
    )
    assert normalized.is_empty()
    assert rejects.sort("_row")["reason_code"].to_list() == [
        "unknown_unit",
        "unknown_unit",
        "missing_unit",
        "missing_value",
        "unknown_unit",
        "unknown_metric",
    ]
    assert not rejects["reason"].str.contains("50|km|0.97|made_up").any()


def _normalized(rows: list[tuple[str, str | None, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"metric": pl.String, "group_id": pl.String, "value": pl.Float64}, orient="row"
    ).with_columns(pl.lit(None, pl.String).alias("statistic"))


@pytest.mark.parametrize(
    ("metric", "value", "plausible", "reason"),
    [
        ("body_weight", 0.0, False, "below_range"),
        ("body_weight", 700.0, False, "above_range"),
        ("body_weight", 20.0, True, None),
        ("body_weight", 400.0, True, None),
        ("oxygen_saturation", 100.0, True, None),
        ("oxygen_saturation", 101.0, False, "above_range"),
        ("blood_glucose", 900.0, False, "above_range"),
        ("heart_rate", 250.0, False, "above_range"),
    ],
)
def test_plausibility_bounds(metric: str, value: float, plausible: bool, reason: str | None) -> None:
    flagged = flag_plausibility(_normalized([(metric, None, value)]))
    assert flagged.row(0, named=True)["plausible"] is plausible
    assert flagged.row(0, named=True)["implausible_reason"] == reason


def test_systolic_not_above_diastolic_flags_both_values_of_the_cuff_reading() -> None:
    flagged = flag_plausibility(
        _normalized(
            [
                ("systolic_blood_pressure", "g1", 80),
                ("diastolic_blood_pressure", "g1", 90),
                ("systolic_blood_pressure", "g2", 120),
                ("diastolic_blood_pressure", "g2", 80),
            ]
        )
    )
    assert flagged["plausible"].to_list() == [False, False, True, True]
    assert flagged["implausible_reason"].to_list()[:2] == ["systolic_not_above_diastolic"] * 2


def test_duplicate_uploads_keep_the_first_received_copy_and_count_the_uploads() -> None:
    at = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "source": ["omh"] * 4,
            "vendor_user_id": ["u1"] * 4,
            "device_id": ["d1"] * 4,
            "metric": ["body_weight"] * 4,
            "effective_start": [at, at, at, at],
            "effective_end": [None] * 4,
            "statistic": [None] * 4,
            "value": [80.0, 80.0000001, 80.0, 81.0],
            "received_order": ["2", "1", "3", "4"],
            "raw_ref": ["b", "a", "c", "d"],
        },
        schema_overrides={"effective_end": pl.Datetime("us", "UTC"), "statistic": pl.String},
    )
    deduped = deduplicate(frame).sort("raw_ref")
    assert deduped["raw_ref"].to_list() == ["a", "d"]
    assert deduped["uploads"].to_list() == [3, 1]


def test_linking_by_device_in_its_enrolment_period_then_by_account_then_fhir_device() -> None:
    enrolment = enrolment_from_raw(
        pl.Series(
            [
                '{"vendor":"ihealth","vendor_user_id":"u1","device_id":"D1","device_type":"weight_scale",'
                '"patient_source":"ehr_a","patient_id":"p1","enrolled_on":"2026-01-01","unenrolled_on":"2026-03-31"}',
                '{"vendor":"ihealth","vendor_user_id":"u2","device_id":"D1","device_type":"weight_scale",'
                '"patient_source":"ehr_a","patient_id":"p2","enrolled_on":"2026-04-01","unenrolled_on":""}',
                '{"vendor":"omh","vendor_user_id":"shared","device_id":"D9","device_type":"glucometer",'
                '"patient_source":"ehr_a","patient_id":"p3","enrolled_on":"","unenrolled_on":""}',
                '{"vendor":"omh","vendor_user_id":"shared","device_id":"D8","device_type":"glucometer",'
                '"patient_source":"ehr_b","patient_id":"q4","enrolled_on":"","unenrolled_on":""}',
            ]
        )
    )
    assert enrolment["enrolled_on"].to_list()[:2] == [date(2026, 1, 1), date(2026, 4, 1)]
    devices = fhir_device_links(
        pl.DataFrame(
            {
                "source": ["ehr_b"],
                "id": ["dev-1"],
                "patient_id": ["q9"],
                "serial_number": ["SER-7"],
                "udi_device_identifier": [None],
            },
            schema_overrides={"udi_device_identifier": pl.String},
        )
    )

    def at(day: int, month: int) -> datetime:
        return datetime(2026, month, day, 12, tzinfo=UTC)

    frame = pl.DataFrame(
        {
            "vendor_user_id": ["zz", "zz", "u1", "shared", "nobody", None],
            "device_id": ["D1", "D1", "X", None, "SER-7", None],
            "effective_start": [at(15, 2), at(15, 5), at(1, 6), at(1, 6), at(1, 6), at(1, 6)],
            "patient_source": [None, None, None, None, None, "ehr_a"],
            "patient_id": [None, None, None, None, None, "p5"],
            "link_method": [None, None, None, None, None, "fhir_subject"],
        }
    )
    linked = link_readings(frame, enrolment, devices)
    assert linked["patient_id"].to_list() == ["p1", "p2", "p1", None, "q9", "p5"]
    assert linked["link_method"].to_list() == [
        "enrolment_device",
        "enrolment_device",
        "enrolment_user",
        "unlinked",  # the account is enrolled for two people: never guessed
        "fhir_device",
        "fhir_subject",
    ]
