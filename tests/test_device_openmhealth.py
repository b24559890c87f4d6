"""Open mHealth reader: data points of each supported schema version → source readings, and rejects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import pytest

from pipelines.devices import openmhealth
from pipelines.devices.contract import METRICS, REJECT_SCHEMA, ROW, SOURCE_READING_SCHEMA, ReaderOutput
from pipelines.devices.openmhealth import (
    DECODE_CHUNK,
    RULES,
    SUPPORTED_SCHEMAS,
    body_layout,
    json_type_problems,
    read_openmhealth,
)

AT = {"date_time": "2020-02-05T07:25:00-08:00"}
AT_UTC = datetime(2020, 2, 5, 15, 25, tzinfo=UTC)
SECRET = "SECRET-4711"  # a value that must never show up in a reason
HR = {"heart_rate": {"value": 60, "unit": "beats/min"}}


def uv(value: Any, unit: Any) -> dict[str, Any]:
    """A unit-value member."""
    return {"value": value, "unit": unit}


def interval(**members: Any) -> dict[str, Any]:
    """An effective time frame holding a time interval."""
    return {"time_interval": members}


def bp(systolic: Any = 120, diastolic: Any = 80, **members: Any) -> dict[str, Any]:
    """A blood pressure body."""
    return {
        "systolic_blood_pressure": uv(systolic, "mmHg"),
        "diastolic_blood_pressure": uv(diastolic, "mmHg"),
        **members,
    }


HOUR = interval(start_date_time="2016-02-05T06:25:00Z", end_date_time="2016-02-05T07:25:00Z")
START = "2013-02-05T07:25:00Z"


def point(
    schema: str, version: str | None, body: Any, point_id: str | None = "dp-1", **schema_id: Any
) -> str:
    """One data point as JSON text (the bronze `raw`)."""
    header: dict[str, Any] = {
        "schema_id": {"namespace": "omh", "name": schema, "version": version, **schema_id},
        "creation_date_time": "2020-02-05T08:00:00Z",
    }
    if point_id is not None:
        header["id"] = point_id
    return orjson.dumps({"header": header, "body": body}).decode()


def read(*raws: str | None, record_type: str | None = "infer") -> ReaderOutput:
    """Run the reader on data points (rows numbered from 0); record_type from each header unless given."""
    types = []
    for raw in raws:
        if record_type != "infer":
            types.append(record_type)
            continue
        try:
            types.append(orjson.loads(raw or "null")["header"]["schema_id"]["name"])
        except (orjson.JSONDecodeError, TypeError, KeyError):
            types.append(None)
    records = pl.DataFrame(
        {ROW: list(range(len(raws))), "record_type": types, "raw": list(raws)},
        schema={ROW: pl.Int64, "record_type": pl.String, "raw": pl.String},
    )
    out = read_openmhealth(records)
    assert out.readings.schema == pl.Schema(SOURCE_READING_SCHEMA)
    assert out.rejects.schema == pl.Schema(REJECT_SCHEMA)
    accounted = set(out.readings[ROW]) | set(out.rejects[ROW])
    assert accounted == set(range(len(raws))), "every record is a reading or a reject"
    assert not set(out.readings[ROW]) & set(out.rejects[ROW]), "no record is both"
    assert out.rejects[ROW].is_unique().all(), "one reject per record"
    return out


def reject(raw: str | None, record_type: str | None = "infer") -> tuple[str, str]:
    """(reason_code, reason) of a single rejected data point."""
    out = read(raw, record_type=record_type)
    assert out.readings.is_empty()
    code, reason = out.rejects.select("reason_code", "reason").row(0)
    assert SECRET not in reason
    return code, reason


def only_reading(raw: str) -> dict[str, Any]:
    out = read(raw)
    assert out.rejects.is_empty(), out.rejects.rows()
    assert out.readings.height == 1
    return out.readings.row(0, named=True)


# --- readings --------------------------------------------------------------------------------------


def test_blood_pressure_gives_two_readings_sharing_the_data_point_id() -> None:
    body = bp(
        125,
        81.5,
        effective_time_frame=AT,
        body_posture="sitting",
        measurement_location="left wrist",
        temporal_relationship_to_physical_activity="at rest",
    )
    out = read(point("blood-pressure", "4.0", body, point_id="bp-7"))
    assert out.rejects.is_empty()
    assert out.readings.drop(ROW).rows() == [
        ("systolic_blood_pressure", 125.0, "mmHg", AT_UTC, None, "-08:00", None, "bp-7"),
        ("diastolic_blood_pressure", 81.5, "mmHg", AT_UTC, None, "-08:00", None, "bp-7"),
    ]


def test_group_id_without_a_header_id_is_made_from_the_row() -> None:
    out = read(point("heart-rate", "1.0", HR), point("blood-pressure", "1.0", bp(), point_id=None))
    assert out.readings["group_id"].to_list() == ["dp-1", "omh-row-1", "omh-row-1"]


SINGLE_METRIC_CASES = [
    ("body-weight", "1.0", {"body_weight": uv(50, "kg")}, "body_weight", 50.0, "kg"),
    (
        "body-weight",
        "3.0",
        {"body_weight": uv(115.5, "lb"), "effective_time_frame": AT},
        "body_weight",
        115.5,
        "lb",
    ),
    (
        "blood-glucose",
        "2.0",
        {"blood_glucose": uv(5.4, "mmol/L"), "specimen_source": "capillary blood"},
        "blood_glucose",
        5.4,
        "mmol/L",
    ),
    (
        "blood-glucose",
        "4.0",
        {
            "blood_glucose": uv(95, "mg/dL"),
            "effective_time_frame": AT,
            "temporal_relationship_to_meal": "fasting",
        },
        "blood_glucose",
        95.0,
        "mg/dL",
    ),
    (
        "heart-rate",
        "1.1",
        {"heart_rate": uv(50, "beats/min"), "temporal_relationship_to_sleep": "on waking"},
        "heart_rate",
        50.0,
        "beats/min",
    ),
    ("heart-rate", "2.0", {**HR, "effective_time_frame": AT}, "heart_rate", 60.0, "beats/min"),
    ("step-count", "1.0", {"step_count": 6000}, "step_count", 6000.0, "{steps}"),
    ("step-count", "2.0", {"step_count": 0, "effective_time_frame": HOUR}, "step_count", 0.0, "{steps}"),
    (
        "step-count",
        "3.0",
        {"step_count": uv(10600, "steps"), "effective_time_frame": HOUR},
        "step_count",
        10600.0,
        "steps",
    ),
    (
        "oxygen-saturation",
        "1.0",
        {
            "oxygen_saturation": uv(95, "%"),
            "supplemental_oxygen_flow_rate": uv(2, "LPM"),
            "system": "peripheral",
        },
        "oxygen_saturation",
        95.0,
        "%",
    ),
    (
        "oxygen-saturation",
        "2.0",
        {
            "oxygen_saturation": uv(93, "%"),
            "effective_time_frame": AT,
            "measurement_method": "pulse oximetry",
        },
        "oxygen_saturation",
        93.0,
        "%",
    ),
    (
        "body-temperature",
        "1.0",
        {"body_temperature": uv(37.2, "C"), "measurement_location": "oral"},
        "body_temperature",
        37.2,
        "C",
    ),
    (
        "body-temperature",
        "4.0",
        {"body_temperature": uv(310.1, "K"), "effective_time_frame": AT, "measurement_location": "tympanic"},
        "body_temperature",
        310.1,
        "K",
    ),
    ("sleep-duration", "1.0", {"sleep_duration": uv(420, "min")}, "sleep_duration", 420.0, "min"),
    (
        "sleep-duration",
        "2.0",
        {"sleep_duration": uv(7.5, "h"), "effective_time_frame": HOUR},
        "sleep_duration",
        7.5,
        "h",
    ),
]


@pytest.mark.parametrize(("schema", "version", "body", "metric", "value", "unit"), SINGLE_METRIC_CASES)
def test_each_schema_version_reads_its_metric_and_unit_as_given(
    schema: str, version: str, body: dict[str, Any], metric: str, value: float, unit: str
) -> None:
    reading = only_reading(point(schema, version, body))
    assert (reading["metric"], reading["original_value"], reading["original_unit"]) == (metric, value, unit)


def test_every_supported_schema_is_covered_and_maps_to_contract_metrics() -> None:
    assert {case[0] for case in SINGLE_METRIC_CASES} | {"blood-pressure"} == set(SUPPORTED_SCHEMAS)
    assert {m.metric for rules in RULES.values() for m in rules.measures} == set(METRICS)


def test_extra_columns_and_empty_input() -> None:
    empty = read_openmhealth(pl.DataFrame(schema={ROW: pl.Int64, "record_type": pl.String, "raw": pl.String}))
    assert empty.readings.is_empty() and empty.rejects.is_empty()
    raw = point("heart-rate", "1.0", {"heart_rate": {"value": 60, "unit": "beats/min"}})
    records = pl.DataFrame({ROW: [5], "record_type": ["heart-rate"], "raw": [raw], "file": ["a.json"]})
    assert read_openmhealth(records).readings[ROW].to_list() == [5]


# --- time frames ----------------------------------------------------------------------------------


def heart_rate_at(time_frame: Any, version: str = "1.0") -> str:
    return point(
        "heart-rate",
        version,
        {"heart_rate": {"value": 60, "unit": "beats/min"}, "effective_time_frame": time_frame},
    )


@pytest.mark.parametrize(
    ("time_frame", "start", "end", "zone"),
    [
        ({"date_time": "2013-02-05T07:25:00Z"}, datetime(2013, 2, 5, 7, 25, tzinfo=UTC), None, "+00:00"),
        (
            {"date_time": "2013-02-05T07:25:00.123+03:00"},
            datetime(2013, 2, 5, 4, 25, 0, 123000, tzinfo=UTC),
            None,
            "+03:00",
        ),
        (
            interval(start_date_time="2020-02-05T06:00:00+01:00", end_date_time="2020-02-06T06:00:00+01:00"),
            datetime(2020, 2, 5, 5, tzinfo=UTC),
            datetime(2020, 2, 6, 5, tzinfo=UTC),
            "+01:00",
        ),
        (  # an end before the start is not the schema's concern (its test data passes it)
            interval(start_date_time="2013-02-05T07:35:00Z", end_date_time="2013-02-05T07:25:00Z"),
            datetime(2013, 2, 5, 7, 35, tzinfo=UTC),
            datetime(2013, 2, 5, 7, 25, tzinfo=UTC),
            "+00:00",
        ),
        (
            interval(start_date_time="2013-02-05T07:25:00-05:00", duration=uv(90, "min")),
            datetime(2013, 2, 5, 12, 25, tzinfo=UTC),
            datetime(2013, 2, 5, 13, 55, tzinfo=UTC),
            "-05:00",
        ),
        (
            interval(end_date_time="2013-02-05T07:35:00Z", duration=uv(10, "d")),
            datetime(2013, 1, 26, 7, 35, tzinfo=UTC),
            datetime(2013, 2, 5, 7, 35, tzinfo=UTC),
            "+00:00",
        ),
        (
            interval(start_date_time="2013-02-05T00:00:00Z", duration=uv(1.5, "sec")),
            datetime(2013, 2, 5, tzinfo=UTC),
            datetime(2013, 2, 5, 0, 0, 1, 500000, tzinfo=UTC),
            "+00:00",
        ),
        (
            interval(date="2013-02-05", part_of_day="evening"),
            datetime(2013, 2, 5, tzinfo=UTC),
            datetime(2013, 2, 6, tzinfo=UTC),
            None,
        ),
    ],
)
def test_time_frames_become_utc_start_end_and_the_recorded_offset(
    time_frame: dict[str, Any], start: datetime, end: datetime | None, zone: str | None
) -> None:
    reading = only_reading(heart_rate_at(time_frame))
    assert (reading["effective_start"], reading["effective_end"], reading["time_zone"]) == (start, end, zone)


def test_no_time_frame_where_the_version_allows_it() -> None:
    reading = only_reading(point("body-weight", "1.0", {"body_weight": {"value": 50, "unit": "kg"}}))
    assert reading["effective_start"] is None and reading["time_zone"] is None


@pytest.mark.parametrize(
    ("time_frame", "reason_part"),
    [
        ({"date_time": "2013-02-05T07:25:00"}, "date_time is not an RFC 3339"),
        ({"date_time": "2013-02-05"}, "date_time is not an RFC 3339"),
        ({"date_time": "2013-02-30T07:25:00Z"}, "date_time is not an RFC 3339"),
        ({"date_time": 1360049100}, "date_time is not an RFC 3339"),
        (
            {"date_time": START, "time_interval": {"date": "2013-02-05", "part_of_day": "night"}},
            "exactly one of date_time and time_interval",
        ),
        ({"start_date_time": START}, "exactly one of date_time and time_interval"),
        ({}, "exactly one of date_time and time_interval"),
        (interval(start_date_time=START), "time_interval must hold exactly one of"),
        (interval(duration=uv(1, "h")), "time_interval must hold exactly one of"),
        (interval(part_of_day="morning"), "time_interval must hold exactly one of"),
        (
            interval(start_date_time=START, end_date_time="2013-02-05T08:25:00Z", duration=uv(1, "h")),
            "time_interval must hold exactly one of",
        ),
        (interval(start_date_time="yesterday", end_date_time=START), "start_date_time is not an RFC 3339"),
        (interval(start_date_time=START, end_date_time="today"), "end_date_time is not an RFC 3339"),
        (interval(start_date_time=START, duration=uv(1, "fortnight")), "duration needs a numeric value"),
        (interval(start_date_time=START, duration={"unit": "h"}), "duration needs a numeric value"),
        (interval(start_date_time=START, duration=uv(-1, "h")), "duration must not be negative"),
        (interval(start_date_time=START, duration=uv(1e300, "yr")), "duration is too long"),
        (interval(date="2013-02-31", part_of_day="evening"), "date is not a full date"),
        (interval(date="2013-02-05", part_of_day="MORNING"), "part_of_day is not one of"),
        (START, "effective_time_frame must be a JSON object"),
        ({"time_interval": [START]}, "time_interval must be a JSON object"),
        (interval(start_date_time=START, duration=uv("1", "h")), "duration.value must be a JSON number"),
    ],
)
def test_invalid_time_frames(time_frame: Any, reason_part: str) -> None:
    code, reason = reject(heart_rate_at(time_frame))
    assert code == "invalid_time_frame"
    assert reason_part in reason


def test_time_frame_rules_by_version() -> None:
    assert only_reading(point("heart-rate", "1.0", HR))["effective_start"] is None
    assert reject(point("heart-rate", "2.0", HR))[0] == "missing_time_frame"
    # date + part_of_day: omh time-interval 1.x, not the IEEE 1752.1 time frame of blood-pressure 4.x
    by_day = interval(date="2013-02-05", part_of_day="morning")
    assert read(point("blood-pressure", "3.0", bp(effective_time_frame=by_day))).readings.height == 2
    code, reason = reject(point("blood-pressure", "4.0", bp(effective_time_frame=by_day)))
    assert code == "invalid_time_frame" and "part_of_day" not in reason
    # durations (step counts, sleep) need a time interval from version 2 on
    steps = {"step_count": 10, "effective_time_frame": {"date_time": START}}
    assert only_reading(point("step-count", "1.0", steps))["original_value"] == 10
    assert reject(point("step-count", "2.0", steps)) == (
        "invalid_time_frame",
        "body.effective_time_frame must be a time_interval in step-count 2.x",
    )


# --- values, units and value sets ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "version", "body", "code", "reason_part"),
    [
        ("body-weight", "1.0", {"body_weight": uv(50, "km")}, "invalid_unit", "body.body_weight.unit"),
        (
            "body-weight",
            "2.0",
            {"body_weight": uv(50, SECRET), "effective_time_frame": AT},
            "invalid_unit",
            "body.body_weight.unit",
        ),
        ("heart-rate", "1.0", {"heart_rate": uv(60, "beat/min")}, "invalid_unit", "heart-rate 1.x"),
        ("heart-rate", "1.0", {"heart_rate": uv(60, 60)}, "invalid_unit", "body.heart_rate.unit"),
        ("heart-rate", "1.0", {"heart_rate": uv(60, ["beats/min"])}, "invalid_unit", "must be a string"),
        ("sleep-duration", "1.0", {"sleep_duration": uv(7, "s")}, "invalid_unit", "body.sleep_duration.unit"),
        (
            "step-count",
            "3.0",
            {"step_count": uv(6000, "step"), "effective_time_frame": HOUR},
            "invalid_unit",
            "body.step_count.unit",
        ),
        (
            "oxygen-saturation",
            "2.0",
            {
                "oxygen_saturation": uv(95, "%"),
                "effective_time_frame": AT,
                "supplemental_oxygen_flow_rate": uv(2.5, "dL/min"),
            },
            "invalid_unit",
            "body.supplemental_oxygen_flow_rate.unit",
        ),
        (
            "oxygen-saturation",
            "1.0",
            {"oxygen_saturation": uv(95, "%"), "supplemental_oxygen_flow_rate": {"value": 2.5}},
            "missing_unit",
            "supplemental_oxygen_flow_rate.unit",
        ),
        (
            "body-weight",
            "1.0",
            {"body_weight": {"value": 50}},
            "missing_unit",
            "body.body_weight.unit is missing",
        ),
        (
            "body-weight",
            "1.0",
            {"body_weight": {"unit": "kg"}},
            "missing_value",
            "body.body_weight.value is missing",
        ),
        (
            "body-weight",
            "1.0",
            {"body_weight": uv(None, "kg")},
            "missing_value",
            "body.body_weight.value is missing",
        ),
        (
            "body-weight",
            "1.0",
            {"body_weight": uv("50", "kg")},
            "non_numeric_value",
            "body.body_weight.value must",
        ),
        (
            "body-weight",
            "1.0",
            {"body_weight": uv(True, "kg")},
            "non_numeric_value",
            "body.body_weight.value must",
        ),
        (
            "body-weight",
            "1.0",
            {"body_weight": uv({"kg": 50}, "kg")},
            "non_numeric_value",
            "body.body_weight.value",
        ),
        (
            "body-weight",
            "1.0",
            {"body_weight": 50},
            "invalid_measurement",
            "body.body_weight must be a JSON object",
        ),
        (
            "step-count",
            "1.0",
            {"step_count": "6000"},
            "non_numeric_value",
            "body.step_count must be a JSON number",
        ),
        (
            "step-count",
            "1.0",
            {"step_count": uv(6000, "steps")},
            "non_numeric_value",
            "body.step_count must be a",
        ),
        (
            "body-weight",
            "1.0",
            {"body_weight": uv(-50, "kg")},
            "negative_value",
            "body.body_weight.value is negative",
        ),
        ("step-count", "1.0", {"step_count": -1}, "negative_value", "body.step_count.value is negative"),
        ("body-temperature", "1.0", {"body_temperature": uv(-1, "K")}, "negative_value", "body_temperature"),
        (
            "blood-pressure",
            "1.0",
            {"systolic_blood_pressure": uv(120, "mmHg")},
            "missing_measurement",
            "body.diastolic_blood_pressure is required",
        ),
        (
            "sleep-duration",
            "1.0",
            {"user_notes": SECRET, "effective_time_frame": AT},
            "missing_measurement",
            "body.sleep_duration is required by sleep-duration 1.x",
        ),
        (
            "body-weight",
            "1.0",
            {"body_weight": uv(50, "kg"), "descriptive_statistic": "minmum"},
            "invalid_descriptive_statistic",
            "body.descriptive_statistic",
        ),
        (  # an IEEE 1752.1 statistic, unknown to the omh statistics of blood-pressure 1.x
            "blood-pressure",
            "1.0",
            bp(descriptive_statistic="20th percentile"),
            "invalid_descriptive_statistic",
            "blood-pressure 1.x",
        ),
        (
            "blood-pressure",
            "3.1",
            bp(effective_time_frame=AT, temporal_relationship_to_physical_activity="rest"),
            "invalid_enum_value",
            "body.temporal_relationship_to_physical_activity",
        ),
        ("blood-pressure", "2.0", bp(body_posture="stnding"), "invalid_enum_value", "body.body_posture"),
        (
            "blood-glucose",
            "1.0",
            {"blood_glucose": uv(95, "mg/dL"), "blood_specimen_type": "plsma"},
            "invalid_enum_value",
            "body.blood_specimen_type",
        ),
        (
            "blood-glucose",
            "3.0",
            {"blood_glucose": uv(95, "mg/dL"), "effective_time_frame": AT, "specimen_source": "capillary"},
            "invalid_enum_value",
            "body.specimen_source",
        ),
        (
            "blood-glucose",
            "2.0",
            {"blood_glucose": uv(95, "mg/dL"), "temporal_relationship_to_meal": ["fasting"]},
            "invalid_enum_value",
            "must be a string",
        ),
        (
            "body-temperature",
            "2.0",
            {"body_temperature": uv(36.6, "C"), "effective_time_frame": AT, "measurement_location": "chest"},
            "invalid_enum_value",
            "body.measurement_location",
        ),
    ],
)
def test_value_unit_and_value_set_rules(
    schema: str, version: str, body: dict[str, Any], code: str, reason_part: str
) -> None:
    got_code, reason = reject(point(schema, version, body))
    assert (got_code, reason_part in reason) == (code, True), reason


def test_values_that_are_valid_at_the_edges() -> None:
    assert only_reading(point("body-temperature", "1.0", {"body_temperature": uv(-1, "F")}))
    assert only_reading(point("step-count", "1.0", {"step_count": 0}))["original_value"] == 0
    # 1 and 0 decode like true/false: with a boolean elsewhere in the body they must still be numbers
    body = {"heart_rate": uv(1, "beats/min"), "flag": False}
    assert only_reading(point("heart-rate", "1.0", body))["original_value"] == 1
    # a member the version does not define is not judged (body_posture came with blood-pressure 2.0)
    assert read(point("blood-pressure", "1.0", bp(body_posture="handstand"))).rejects.is_empty()
    statistics = read(point("blood-pressure", "1.0", bp(descriptive_statistic="maximum"))).readings
    assert statistics["statistic"].to_list() == ["maximum", "maximum"]


# --- broken records ---------------------------------------------------------------------------------


NO_VERSION = orjson.dumps({"header": {"schema_id": {"name": "heart-rate"}}, "body": HR}).decode()
NO_BODY = orjson.dumps({"header": {"schema_id": {"name": "heart-rate", "version": "1.0"}}}).decode()


@pytest.mark.parametrize(
    ("raw", "record_type", "code"),
    [
        ("{not json", "heart-rate", "invalid_json"),
        ("null", "heart-rate", "not_a_data_point"),
        ("[1, 2]", "heart-rate", "not_a_data_point"),
        ('"a string"', "heart-rate", "not_a_data_point"),
        (None, "heart-rate", "not_a_data_point"),
        ('{"body": {}}', "heart-rate", "not_a_data_point"),
        ('{"header": "heart-rate", "body": {}}', "heart-rate", "not_a_data_point"),
        ('{"header": {"schema_id": "omh:heart-rate:1.0"}, "body": {}}', "heart-rate", "invalid_header"),
        ('{"header": {"schema_id": {"version": ["1.0"]}}, "body": {}}', "heart-rate", "invalid_header"),
        (point("heart-rate", "1.0", HR), None, "missing_schema_id"),
        (point("acceleration", "1.0", {"acceleration": 1}), "acceleration", "unsupported_schema"),
        (point("heart-rate", "1.0", HR, namespace="granola"), "heart-rate", "unsupported_schema"),
        (point("heart-rate", "9.0", HR), "heart-rate", "unsupported_schema_version"),
        (point("heart-rate", "two", HR), "heart-rate", "invalid_schema_version"),
        (point("heart-rate", "1", HR), "heart-rate", "invalid_schema_version"),
        (NO_VERSION, "heart-rate", "missing_schema_version"),
        (point("heart-rate", None, HR), "heart-rate", "missing_schema_version"),
        (point("heart-rate", "1.0", "heart rate 60"), "heart-rate", "invalid_body"),
        (point("heart-rate", "1.0", [HR]), "heart-rate", "invalid_body"),
        (point("heart-rate", "1.0", 60), "heart-rate", "invalid_body"),
        (point("heart-rate", "1.0", None), "heart-rate", "missing_body"),
        (NO_BODY, "heart-rate", "missing_body"),
        (point("heart-rate", "1.0", {}), "heart-rate", "empty_data_point"),
        (point("heart-rate", "1.0", {"user_notes": "fine"}), "heart-rate", "empty_data_point"),
        (point("heart-rate", "1.0", {"heart_rate": None}), "heart-rate", "empty_data_point"),
        (point("heart-rate", "1.0", {"heart_rate": ["60"]}), "heart-rate", "invalid_measurement"),
    ],
)
def test_broken_records_are_rejected_with_a_reason(
    raw: str | None, record_type: str | None, code: str
) -> None:
    assert reject(raw, record_type=record_type)[0] == code


def test_a_large_batch_with_broken_records_accounts_for_every_row_without_values_in_reasons() -> None:
    good = [
        point("blood-pressure", "2.0", bp(100 + i % 50, 70), point_id=f"bp-{i}")
        for i in range(3 * DECODE_CHUNK)
    ]
    broken = {
        7: point("blood-pressure", "2.0", {"systolic_blood_pressure": uv(SECRET, "mmHg")}),
        1500: "{" + SECRET,
        1501: point("blood-pressure", "2.0", {**bp(), "systolic_blood_pressure": uv(1, SECRET)}),
        2900: point("blood-pressure", "2.0", {"systolic_blood_pressure": [SECRET]}),
        3000: point("blood-pressure", "2.0", bp(True, 1)),
    }
    raws = [broken.get(i, raw) for i, raw in enumerate(good)]
    out = read(*raws, record_type="blood-pressure")
    assert dict(zip(out.rejects[ROW], out.rejects["reason_code"], strict=True)) == {
        7: "non_numeric_value",
        1500: "invalid_json",
        1501: "invalid_unit",
        2900: "invalid_measurement",
        3000: "non_numeric_value",
    }
    assert not out.rejects["reason"].str.contains(SECRET).any()
    assert out.readings.height == 2 * (len(raws) - len(broken))
    # the good records read the same whether or not a broken one shares their batch
    alone = read(*(raw for i, raw in enumerate(raws) if i not in broken), record_type="blood-pressure")
    assert out.readings.drop(ROW).equals(alone.readings.drop(ROW))


def test_mixed_schemas_and_step_count_versions_in_one_batch() -> None:
    raws = [
        point("step-count", "2.0", {"step_count": 100, "effective_time_frame": HOUR}),
        point("step-count", "3.0", {"step_count": uv(200, "steps"), "effective_time_frame": HOUR}),
        point("heart-rate", "2.0", {**HR, "effective_time_frame": AT}),
        point("step-count", "3.0", {"step_count": 300, "effective_time_frame": HOUR}),
        point("step-count", "1.0", {"step_count": uv(400, "steps")}),
    ]
    out = read(*raws)
    assert out.readings.select(ROW, "metric", "original_value", "original_unit").rows() == [
        (0, "step_count", 100.0, "{steps}"),
        (1, "step_count", 200.0, "steps"),
        (2, "heart_rate", 60.0, "beats/min"),
    ]
    assert out.rejects.select(ROW, "reason_code").rows() == [
        (3, "invalid_measurement"),
        (4, "non_numeric_value"),
    ]


# --- JSON type checks --------------------------------------------------------------------------------


def test_json_type_checks_tell_json_types_apart() -> None:
    """The fallback's JSON path filters must keep telling numbers, strings and containers apart."""
    layout = body_layout(RULES[("body-weight", 1)])
    bodies = {
        "number": {"body_weight": {"value": 1, "unit": "kg"}},
        "negative": {"body_weight": {"value": -1.5e300, "unit": "kg"}},
        "numeric string": {"body_weight": {"value": "1", "unit": "kg"}},
        "boolean": {"body_weight": {"value": False, "unit": "kg"}},
        "null": {"body_weight": {"value": None, "unit": None}},
        "list": {"body_weight": {"value": [1], "unit": "kg"}},
        "unit object": {"body_weight": {"value": 1, "unit": {}}},
        "unit number": {"body_weight": {"value": 1, "unit": 5}},
        "brace string": {"body_weight": {"value": 1, "unit": "{kg}"}, "effective_time_frame": "{}"},
    }
    texts = pl.Series([orjson.dumps({"body": b}).decode() for b in bodies.values()])
    codes = json_type_problems(texts, layout).struct.field("code").to_list()
    assert dict(zip(bodies, codes, strict=True)) == {
        "number": None,
        "negative": None,
        "numeric string": "non_numeric_value",
        "boolean": "non_numeric_value",
        "null": None,
        "list": "non_numeric_value",
        "unit object": "invalid_unit",
        "unit number": None,  # decodes as text; the unit's value set rejects it afterwards
        "brace string": "invalid_time_frame",  # a string is not an object, even when it looks like one
    }


def test_decode_isolates_what_the_json_type_checks_let_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """The halving safety net: a text the checks pass but the decoder refuses is still rejected alone."""
    raws = [point("heart-rate", "1.0", {**HR, "user_notes": str(i)}) for i in range(5)]
    raws[3] = point("heart-rate", "1.0", {"heart_rate": {"value": "60", "unit": "beats/min"}})
    empty = pl.Series([None] * 5, dtype=openmhealth.PROBLEM)
    monkeypatch.setattr(openmhealth, "json_type_problems", lambda texts, layout: empty.head(texts.len()))
    out = read(*raws)
    assert out.rejects.select(ROW, "reason_code").rows() == [(3, "invalid_field_type")]
    assert out.readings[ROW].to_list() == [0, 1, 2, 4]
