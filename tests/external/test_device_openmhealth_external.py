"""The Open mHealth schemas' own test data (../shared/data/devices/openmhealth-schemas-test-data): each
shouldPass body of a supported schema version reads, through bronze, into readings whose values, units
and times match the JSON; each shouldFail body is rejected with the reason its defect calls for."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from pipelines.bronze.device_reader import read_omh_document
from pipelines.devices.contract import ROW, ReaderOutput
from pipelines.devices.openmhealth import SUPPORTED_SCHEMAS, read_openmhealth
from tests.external.conftest import SHARED_DATA, _require

pytestmark = pytest.mark.external

TEST_DATA = Path("devices") / "openmhealth-schemas-test-data" / "test-data" / "omh"

MEASURED = {
    "blood-pressure": ("systolic_blood_pressure", "diastolic_blood_pressure"),
    "body-weight": ("body_weight",),
    "blood-glucose": ("blood_glucose",),
    "heart-rate": ("heart_rate",),
    "step-count": ("step_count",),
    "oxygen-saturation": ("oxygen_saturation",),
    "body-temperature": ("body_temperature",),
    "sleep-duration": ("sleep_duration",),
}
"""Body members holding the measured values (each is read as the metric of the same name)."""

FAILURE_CODES = {
    "empty-document": "empty_data_point",
    "invalid-unit": "invalid_unit",
    "incorrect-unit": "invalid_unit",
    "invalid-oxygen-unit": "invalid_unit",
    "invalid-sleep-duration-unit": "invalid_unit",
    "missing-body-weight-unit": "missing_unit",
    "missing-body-weight-value": "missing_value",
    "missing-sleep-duration": "missing_measurement",
    "string-step-count-value": "non_numeric_value",
    # its unit is wrong too, but a string value breaks the JSON layout, which is checked first
    "invalid-unit-step-count": "non_numeric_value",
    "invalid-descriptive-statistic": "invalid_descriptive_statistic",
    "invalid-pa-value": "invalid_enum_value",
    "invalid-blood-specimen-type": "invalid_enum_value",
    "invalid-specimen-source": "invalid_enum_value",
    "invalid-temporal-relationship-to-meal": "invalid_enum_value",
    "invalid-temporal-relationship-to-sleep": "invalid_enum_value",
    "invalid-time-frame": "invalid_time_frame",
    "invalid-time-interval": "invalid_time_frame",
    "invalid-timeframe-format": "invalid_time_frame",
    "with-date-time": "invalid_time_frame",
    "missing-time-frame": "missing_time_frame",
    "missing-effective-time-frame": "missing_time_frame",
    "step-count-only": "missing_time_frame",
    "sleep-duration-only": "missing_time_frame",
}
"""Expected reason code by shouldFail file name."""
FAILURE_CODE_EXCEPTIONS = {
    # the file's unit ("km") is wrong as well as its statistic; units are checked before statistics
    "body-weight/1.0/shouldFail/invalid-descriptive-statistic.json": "invalid_unit",
}


def _files(kind: str) -> list[str]:
    """`<schema>/<version>/<kind>/<file>` of the supported schemas; a placeholder without the data, so
    that the parametrized tests are collected and skip."""
    root = SHARED_DATA / TEST_DATA
    found = sorted(
        path.relative_to(root).as_posix()
        for schema in SUPPORTED_SCHEMAS
        for path in (root / schema).glob(f"*/{kind}/*.json")
    )
    return found or [f"absent/0.0/{kind}/absent.json"]


@pytest.fixture(scope="module")
def omh_test_data(shared_data: Path) -> Path:
    """The omh test data folder (skips when absent, fails when PATIENT_INSIGHTS_REQUIRE_EXTERNAL=1)."""
    return _require(shared_data / TEST_DATA)


def data_point(root: Path, case: str) -> tuple[str, str, Any]:
    """(schema, version, body) of a test file."""
    schema, version, _, _ = case.split("/")
    return schema, version, json.loads((root / case).read_text(encoding="utf-8"))


def through_bronze(points: list[tuple[str, str, str, Any]]) -> tuple[pl.DataFrame, ReaderOutput]:
    """Wrap bodies as data points (header.id = the file's path), read them as one bronze document, and
    run the reader on the bronze records."""
    document = [
        {
            "header": {"id": case, "schema_id": {"namespace": "omh", "name": schema, "version": version}},
            "body": body,
        }
        for case, schema, version, body in points
    ]
    result = read_omh_document(orjson.dumps(document), "test-user")
    assert result.balanced and result.quarantine.is_empty()
    bronze = result.bronze.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))
    return bronze, read_openmhealth(bronze)


def _offset(moment: datetime) -> str:
    offset = moment.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def expected_time(body: dict[str, Any]) -> tuple[datetime | None, datetime | None, str | None]:
    """(effective start, effective end, offset) of a valid body, computed with the standard library."""
    frame = body.get("effective_time_frame")
    if frame is None:
        return None, None, None
    if "date_time" in frame:
        moment = datetime.fromisoformat(frame["date_time"])
        return moment.astimezone(UTC), None, _offset(moment)
    interval = frame["time_interval"]
    if "date" in interval:
        day = datetime.fromisoformat(interval["date"]).replace(tzinfo=UTC)
        return day, day + timedelta(days=1), None
    assert set(interval) == {"start_date_time", "end_date_time"}, "no other shape in the passing files"
    start = datetime.fromisoformat(interval["start_date_time"])
    end = datetime.fromisoformat(interval["end_date_time"])
    return start.astimezone(UTC), end.astimezone(UTC), _offset(start)


@pytest.mark.parametrize("case", _files("shouldPass"))
def test_should_pass_files_read_with_the_values_of_the_json(omh_test_data: Path, case: str) -> None:
    schema, version, body = data_point(omh_test_data, case)
    _, out = through_bronze([(case, schema, version, body)])
    assert out.rejects.is_empty(), out.rejects.rows()
    assert out.readings.height >= 1
    start, end, zone = expected_time(body)
    expected = []
    for member in MEASURED[schema]:
        measured = body[member]
        value, unit = (
            (measured["value"], measured["unit"]) if isinstance(measured, dict) else (measured, "{steps}")
        )
        expected.append(
            (member, float(value), unit, start, end, zone, body.get("descriptive_statistic"), case)
        )
    assert out.readings.drop(ROW).rows() == expected


@pytest.mark.parametrize("case", _files("shouldFail"))
def test_should_fail_files_are_rejected_with_their_reason(omh_test_data: Path, case: str) -> None:
    schema, version, body = data_point(omh_test_data, case)
    _, out = through_bronze([(case, schema, version, body)])
    assert out.readings.is_empty()
    assert out.rejects.height == 1
    code, reason = out.rejects.select("reason_code", "reason").row(0)
    name = case.rsplit("/", 1)[1].removesuffix(".json")
    assert name in FAILURE_CODES, f"a new shouldFail file: decide the reason {name} calls for"
    assert code == FAILURE_CODE_EXCEPTIONS.get(case, FAILURE_CODES[name]), reason
    assert reason


def test_all_files_in_one_batch_read_as_they_do_one_by_one(omh_test_data: Path) -> None:
    """One bronze batch holding every file (the malformed ones force the decoder's fallback) gives each
    data point the outcome it gets alone."""
    cases = _files("shouldPass") + _files("shouldFail")
    points = [(case, *data_point(omh_test_data, case)) for case in cases]
    bronze, out = through_bronze(points)
    assert set(out.readings[ROW]) | set(out.rejects[ROW]) == set(range(bronze.height))
    passing = {case for case in cases if "/shouldPass/" in case}
    assert set(out.readings["group_id"]) == passing
    rejected = bronze.select(ROW, "record_id").join(out.rejects, on=ROW)
    assert set(rejected["record_id"]) == set(cases) - passing
    for case, schema, version, body in points:
        _, alone = through_bronze([(case, schema, version, body)])
        if case in passing:
            assert out.readings.filter(pl.col("group_id") == case).drop(ROW).equals(alone.readings.drop(ROW))
        else:
            mine = rejected.filter(pl.col("record_id") == case).select("reason_code", "reason")
            assert mine.equals(alone.rejects.select("reason_code", "reason"))
