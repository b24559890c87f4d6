"""Wide device CSV mappings: one column per metric, several timestamp formats tried in order (issue 27).

The files here are written for the test in the shape of Fitbit's weight log and daily activity exports
(made-up ids and values). They go through bronze (`read_device_csv`), the silver reader, and once through
ingest and the device build with an enrolment file, so the units, days and patient links are the
platform's own.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from upath import UPath

from pipelines.bronze.device_reader import load_csv_mapping, parse_csv_mapping, read_device_csv
from pipelines.bronze.ingest import ingest_landing
from pipelines.devices.build import DEVICE_READING, DEVICE_READING_REJECTS, build_device_partition
from pipelines.devices.contract import REJECT_SCHEMA, SOURCE_READING_SCHEMA, ReaderOutput
from pipelines.devices.csv_readings import read_device_csv as read_readings
from pipelines.devices.csv_readings import read_device_csv_records
from pipelines.devices.derived import usable
from pipelines.lake import read_table
from pipelines.layout import patient_bucket_keys
from pipelines.silver.build import SILVER

WEIGHT_HEADER = "Id,Date,WeightKg,WeightPounds,Fat,BMI,IsManualReport,LogId\n"
WEIGHT_LOG = WEIGHT_HEADER + (
    "1000000001,5/2/2016 11:59:59 PM,52.6,115.96,22,22.65,True,1462233599000\n"  # 12-hour clock
    "1000000001,05/03/2016 23:59,,116.5,,22.7,True,1462319999000\n"  # 24-hour clock; pounds only
    "1000000001,4/12/2016,53.0,116.84,,22.8,False,1460419200000\n"  # a date alone: a day-level reading
    "1000000001,2016.04.13,53.1,117.06,,22.9,False,1460505600000\n"  # fits no format
    "1000000001,4/14/2016,,,,,False,1460592000000\n"  # no weight at all
    "1000000001,4/15/2016,heavy,,,,False,1460678400000\n"  # not a number
    "1000000001,4/16/2016,NaN,,,,False,1460764800000\n"  # a number no column may hold: rejected later
)
ACTIVITY_HEADER = (
    "Id,ActivityDate,TotalSteps,TotalDistance,TrackerDistance,LoggedActivitiesDistance,VeryActiveDistance,"
    "ModeratelyActiveDistance,LightActiveDistance,SedentaryActiveDistance,VeryActiveMinutes,"
    "FairlyActiveMinutes,LightlyActiveMinutes,SedentaryMinutes,Calories\n"
)
DAILY_ACTIVITY = ACTIVITY_HEADER + (
    "1000000001,4/12/2016,9120,6.1,6.1,0,1.2,0.5,4.4,0,20,11,300,740,1900\n"
    "1000000001,4/13/2016,0,0,0,0,0,0,0,0,0,0,0,1440,1400\n"  # a day not worn still says 0 steps
    "1000000002,2016-04-12,7005,4.9,4.9,0,0,0,4.9,0,0,0,280,800,1700\n"  # the second format
    "1000000002,12 April 2016,7005,4.9,4.9,0,0,0,4.9,0,0,0,280,800,1700\n"  # fits none
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def silver(data: str, mapping: str) -> ReaderOutput:
    """The file through bronze and then the silver reader of its mapping."""
    bronze = read_device_csv(data.encode(), load_csv_mapping(mapping))
    assert bronze.balanced and bronze.quarantine.is_empty()
    records = bronze.bronze.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    out = read_readings(records, load_csv_mapping(mapping))
    assert out.readings.schema == pl.Schema(SOURCE_READING_SCHEMA)
    assert out.rejects.schema == pl.Schema(REJECT_SCHEMA)
    assert not set(out.rejects["_row"]) & set(out.readings["_row"])
    return out


def test_a_weight_log_with_several_timestamp_formats_and_a_unit_per_column() -> None:
    out = silver(WEIGHT_LOG, "fitbit_weight_log")
    assert out.readings.select(
        "_row", "metric", "original_value", "original_unit", "effective_start", "effective_end", "time_zone"
    ).rows()[:3] == [
        (0, "body_weight", 52.6, "kg", utc(2016, 5, 2, 23, 59, 59), None, "+00:00"),
        (1, "body_weight", 116.5, "lb", utc(2016, 5, 3, 23, 59), None, "+00:00"),  # WeightKg was empty
        (2, "body_weight", 53.0, "kg", utc(2016, 4, 12), utc(2016, 4, 13), "+00:00"),  # the whole day
    ]
    # NaN is a number to the reader: the one check for values no column holds rejects it centrally
    assert out.readings["_row"][3] == 6 and out.readings["original_value"].is_nan()[3]
    assert dict(out.rejects.select("_row", "reason_code").iter_rows()) == {
        3: "invalid_time_frame",
        4: "missing_value",
        5: "invalid_value",
    }
    assert "matches none of the mapping's formats" in out.rejects.filter(pl.col("_row") == 3)["reason"][0]
    # the values of one row were taken together: they share a group (the log id)
    assert out.readings["group_id"][0] == "fitbit_weight_log:1000000001:1462233599000"


def test_a_daily_activity_file_gives_day_level_step_totals() -> None:
    out = silver(DAILY_ACTIVITY, "fitbit_daily_activity")
    assert out.readings.select(
        "_row", "metric", "original_value", "effective_start", "effective_end"
    ).rows() == [
        (0, "step_count", 9120.0, utc(2016, 4, 12), utc(2016, 4, 13)),
        (1, "step_count", 0.0, utc(2016, 4, 13), utc(2016, 4, 14)),
        (2, "step_count", 7005.0, utc(2016, 4, 12), utc(2016, 4, 13)),
    ]
    assert dict(out.rejects.select("_row", "reason_code").iter_rows()) == {3: "invalid_time_frame"}


def test_a_date_alone_covers_the_day_in_the_mapping_s_zone() -> None:
    mapping = parse_csv_mapping(
        "berlin_steps",
        {
            "version": 1,
            "columns": {"user_id": "Id", "timestamp": "Day"},
            "value_columns": {"Steps": {"metric": "step_count", "unit": "steps"}},
            "timestamp_formats": ["%d.%m.%Y %H:%M", "%d.%m.%Y"],
            "fixed_time_zone": "Europe/Berlin",
        },
    )
    bronze = read_device_csv(b"Id,Day,Steps\nu1,01.07.2026,5000\nu1,01.07.2026 08:30,120\n", mapping)
    records = bronze.bronze.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    out = read_readings(records, mapping)
    assert out.readings.select("effective_start", "effective_end", "time_zone").rows() == [
        (utc(2026, 6, 30, 22), utc(2026, 7, 1, 22), "Europe/Berlin"),  # local midnight to midnight
        (utc(2026, 7, 1, 6, 30), None, "Europe/Berlin"),  # a time of day: a point reading
    ]
    # daily figures count it for the Berlin day written, not the UTC day its start falls on
    linked = out.readings.with_columns(
        pl.lit(True).alias("plausible"),
        pl.lit("p1").alias("patient_id"),
        pl.col("original_value").alias("value"),
    )
    assert usable(linked)["day"].to_list() == [date(2026, 7, 1)]  # the 08:30 slot is not a daily total
    assert usable(linked.with_columns(pl.lit("+02:00").alias("time_zone")))["day"].to_list() == [
        date(2026, 7, 1)
    ]


def test_a_wide_file_missing_a_value_column_is_not_read_as_that_mapping() -> None:
    data = b"Id,Date,WeightKg,LogId\n1000000001,4/12/2016,53.0,1\n"
    read = read_device_csv(data, load_csv_mapping("fitbit_weight_log"))
    assert read.balanced and read.bronze.is_empty()
    assert read.quarantine["reason_code"].to_list() == ["unrecognized_format"]
    assert "WeightPounds" in read.quarantine["reason"][0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"value_columns": {"W": {"metric": "weight", "unit": "kg"}}}, "not a platform metric"),
        ({"value_columns": {"W": {"metric": "body_weight", "unit": "stones"}}}, "not one metrics.yaml"),
        ({"value_columns": {"W": {"metric": "body_weight"}}}, "must be {metric"),
        ({"value_columns": {"W": "body_weight"}}, "must be {metric"),
        ({"value_columns": []}, "value_columns must map"),
        ({"value_columns": {"Id": {"metric": "body_weight", "unit": "kg"}}}, "same CSV column"),
        ({"columns": {"user_id": "Id", "timestamp": "T", "value": "V"}}, "no metric, value or unit role"),
        ({"columns": {"user_id": "Id"}}, "missing roles"),
        ({"timestamp_formats": []}, "strftime"),
        ({"timestamp_formats": "%m/%d/%Y"}, "strftime"),
        ({"timestamp_format": "%m/%d/%Y"}, "timestamp_format or timestamp_formats"),
        ({"timestamp_formats": ["%Y-%m-%dT%H:%M%z", "%Y-%m-%d %H:%M"]}, "every timestamp format has %z"),
        ({"timestamp_formats": ["%Y-%m-%d%z"]}, "date-only timestamp format cannot carry an offset"),
        ({"fixed_time_zone": None}, "exactly one"),
    ],
)
def test_wide_mapping_validation(change: dict[str, Any], message: str) -> None:
    good: dict[str, Any] = {
        "version": 1,
        "columns": {"user_id": "Id", "timestamp": "T"},
        "value_columns": {"W": {"metric": "body_weight", "unit": "kg"}},
        "timestamp_formats": ["%m/%d/%Y %H:%M", "%m/%d/%Y"],
        "fixed_time_zone": "UTC",
    }
    assert parse_csv_mapping("x", good).wide
    broken = {k: v for k, v in {**good, **change}.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        parse_csv_mapping("x", broken)


def test_long_mappings_read_as_before() -> None:
    mapping = load_csv_mapping("generic_bp_csv")
    assert not mapping.wide and mapping.timestamp_formats == ("%Y-%m-%d %H:%M:%S",)
    data = (
        b"user_id,device_serial,row_id,measured_at,tz,measurement,value,unit,reading_id\n"
        b"u1,SN-1,r1,2026-03-01 08:00:00,+01:00,SYS,128,mmhg,g1\n"
        b"u1,SN-1,r2,2026-03-01,+01:00,DIA,81,mmhg,g1\n"
    )
    records = read_device_csv(data, mapping).bronze.with_row_index("_row")
    out = read_device_csv_records(records.with_columns(pl.col("_row").cast(pl.Int64)))
    assert out.readings.select("metric", "effective_start", "effective_end", "group_id").rows() == [
        ("systolic_blood_pressure", utc(2026, 3, 1, 7), None, "generic_bp_csv:u1:g1")
    ]
    assert out.rejects["reason_code"].to_list() == ["invalid_time_frame"]


ENROLMENT = (
    "vendor,vendor_user_id,device_id,device_type,patient_source,patient_id,enrolled_on,unenrolled_on\n"
    "fitbit,1000000001,aria-1,weight_scale,ehr_a,p1,2016-01-01,\n"
)


def test_wide_sources_through_ingest_and_the_device_build(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", UPath(tmp_path / "lake")
    for source, mapping, name, text in (
        ("fitbit_weight", "fitbit_weight_log", "weightLogInfo_merged.csv", WEIGHT_LOG),
        ("fitbit_activity", "fitbit_daily_activity", "dailyActivity_merged.csv", DAILY_ACTIVITY),
        ("enrolment", None, "enrolment.csv", ENROLMENT),
    ):
        folder = landing / source
        folder.mkdir(parents=True)
        declared = f"format: device_csv\nmapping: {mapping}\n" if mapping else "format: device_enrolment\n"
        (folder / "source.yaml").write_text(declared)
        (folder / name).write_text(text)
    report = ingest_landing(UPath(landing), lake, buckets=2, workers=1)
    assert report.unbalanced_files == 0 and report.rows["device_records"] == 7 + 4 + 1
    for key in patient_bucket_keys(2):
        build_device_partition(lake, key, 2, date(2026, 1, 1))
    readings = read_table(lake, SILVER, DEVICE_READING).sort("source", "vendor_user_id", "effective_start")
    weights = readings.filter(pl.col("metric") == "body_weight")
    assert weights.select("value", "unit", "patient_id", "link_method").rows() == [
        (53.0, "kg", "p1", "enrolment_user"),
        (52.6, "kg", "p1", "enrolment_user"),
        (pytest.approx(116.5 * 0.45359237), "kg", "p1", "enrolment_user"),  # pounds made kilograms
    ]
    steps = readings.filter(pl.col("metric") == "step_count")
    assert steps["patient_id"].to_list() == ["p1", "p1", None]  # the second account is not enrolled
    rejects = read_table(lake, SILVER, DEVICE_READING_REJECTS)
    assert sorted(rejects["reason_code"].to_list()) == [
        "invalid_time_frame",
        "invalid_time_frame",
        "invalid_value",
        "missing_value",
        "non_finite_value",
    ]
