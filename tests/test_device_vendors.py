"""Vendor API payloads (iHealth, Withings, Fitbit) and device CSV: bronze splitting and silver readers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal
from upath import UPath

from pipelines.bronze import discovery as d
from pipelines.bronze.device_reader import (
    CsvMapping,
    load_csv_mapping,
    parse_csv_mapping,
    read_device_csv,
    read_fitbit_payload,
    read_fitbit_payloads,
    read_withings_payload,
)
from pipelines.bronze.ingest import ingest_landing
from pipelines.devices import vendors
from pipelines.devices.contract import REJECT_SCHEMA, SOURCE_READING_SCHEMA, ReaderOutput
from pipelines.devices.csv_readings import read_device_csv as read_csv_readings
from pipelines.devices.csv_readings import read_device_csv_records
from pipelines.devices.vendors import read_fitbit, read_ihealth, read_withings
from pipelines.lake import read_table

METRICS_FILE = Path(__file__).resolve().parents[1] / "data_contracts" / "devices" / "metrics.yaml"


def records(record_type: str, items: list[Any], context: dict[str, Any] | None = None) -> pl.DataFrame:
    """Bronze-like records of one list: items given as objects, or as raw text when they are str."""
    return pl.DataFrame(
        {
            "_row": list(range(len(items))),
            "record_type": [record_type] * len(items),
            "payload_context": [None if context is None else orjson.dumps(context).decode()] * len(items),
            "raw": [i if isinstance(i, str) else orjson.dumps(i).decode() for i in items],
            "device_id": [None] * len(items),
        },
        schema={
            "_row": pl.Int64,
            "record_type": pl.String,
            "payload_context": pl.String,
            "raw": pl.String,
            "device_id": pl.String,
        },
    )


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def rows(out: ReaderOutput, *columns: str) -> list[tuple[Any, ...]]:
    return out.readings.select(columns).rows()


def reject_codes(out: ReaderOutput) -> dict[int, str]:
    return dict(out.rejects.select("_row", "reason_code").iter_rows())


def assert_contract(out: ReaderOutput) -> None:
    """Contract columns, accepted unit spellings, and one outcome per record at most as a reject."""
    assert out.readings.schema == pl.Schema(SOURCE_READING_SCHEMA)
    assert out.rejects.schema == pl.Schema(REJECT_SCHEMA)
    accepted = {
        name: set(spec["units"]) for name, spec in yaml.safe_load(METRICS_FILE.read_text())["metrics"].items()
    }
    for metric, unit in out.readings.select("metric", "original_unit").unique().iter_rows():
        assert unit in accepted[metric], (metric, unit)
    assert out.rejects["_row"].is_unique().all()
    assert not set(out.rejects["_row"]) & set(out.readings["_row"])


# --- bronze: Withings and Fitbit payloads ------------------------------------------------------------------
def test_withings_payload_items_keyed_series_and_context() -> None:
    payload = {
        "status": 0,
        "body": {
            "measuregrps": [{"grpid": 11, "date": 1, "measures": []}, {"date": 2, "measures": []}, "oops"],
            "timezone": "Europe/Paris",
            "updatetime": 5,
        },
    }
    result = read_withings_payload(orjson.dumps(payload), "w-user")
    assert result.balanced and result.records_in == 3
    bronze = result.bronze.sort("entry")
    assert bronze["record_id"][0] == "11"  # the vendor's grpid
    assert bronze["record_id"][1].endswith("/measuregrps/1")  # no grpid: file hash and position
    assert set(bronze["record_format"]) == {"withings"} and set(bronze["patient_key"]) == {"w-user"}
    assert orjson.loads(bronze["payload_context"][0]) == {
        "status": 0,
        "timezone": "Europe/Paris",
        "updatetime": 5,
    }
    assert result.quarantine["reason_code"].to_list() == ["not_an_object"]
    # the same content yields the same ids: they are stable across re-deliveries
    assert read_withings_payload(orjson.dumps(payload), "w-user").bronze["record_id"].to_list() == (
        result.bronze["record_id"].to_list()
    )

    intraday = {
        "status": 0,
        "body": {"series": {"1434758640": {"steps": 21, "duration": 60}, "1434758700": {}}},
    }
    result = read_withings_payload(orjson.dumps(intraday), None)
    assert result.records_in == 2 and result.bronze["record_type"].to_list() == ["series", "series"]
    assert [orjson.loads(c)["item_key"] for c in result.bronze["payload_context"]] == [
        "1434758640",
        "1434758700",
    ]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"status": 401, "error": "invalid token"}, "vendor_error"),
        ({"status": 0}, "unrecognized_format"),
        ({"status": 0, "body": {"more": False}}, "unrecognized_format"),
        ([1, 2], "unrecognized_format"),
    ],
)
def test_withings_payloads_of_the_wrong_shape_are_quarantined(payload: object, code: str) -> None:
    result = read_withings_payload(orjson.dumps(payload), "u")
    assert result.records_in == 1 and result.bronze.is_empty() and result.balanced
    assert result.quarantine["reason_code"].to_list() == [code]
    assert "token" not in result.quarantine["reason"][0]


def test_withings_member_of_the_wrong_type_and_empty_lists() -> None:
    result = read_withings_payload(orjson.dumps({"status": 0, "body": {"activities": {"x": 1}}}), "u")
    assert result.quarantine["reason_code"].to_list() == ["invalid_field_type"] and result.balanced
    empty = read_withings_payload(orjson.dumps({"status": 0, "body": {"activities": [], "series": {}}}), "u")
    assert (
        empty.records_in == 0 and empty.balanced and empty.bronze.is_empty() and empty.quarantine.is_empty()
    )


def test_fitbit_payload_lists_intraday_context_and_ids() -> None:
    payload = {
        "activities-heart": [{"dateTime": "2015-08-21", "value": {"restingHeartRate": 60}}],
        "activities-heart-intraday": {
            "dataset": [{"time": "00:01:00", "value": 64}, {"time": "00:02:00", "value": 63}],
            "datasetInterval": 1,
            "datasetType": "minute",
        },
        "timezone": "Europe/Berlin",
    }
    result = read_fitbit_payload(orjson.dumps(payload), "fb-user")
    assert result.balanced and result.records_in == 3
    bronze = result.bronze.sort("entry")
    assert bronze["record_type"].to_list() == [
        "activities-heart",
        "activities-heart-intraday",
        "activities-heart-intraday",
    ]
    assert orjson.loads(bronze["payload_context"][1]) == {
        "dateTime": "2015-08-21",
        "datasetInterval": 1,
        "datasetType": "minute",
        "timezone": "Europe/Berlin",
    }
    assert bronze["entry"].to_list() == [0, 1, 2]  # numbered across the file's lists
    weights = read_fitbit_payload(orjson.dumps({"weight": [{"logId": 1431541739000, "weight": 56.7}]}), "u")
    assert weights.bronze["record_id"].to_list() == ["1431541739000"]
    bad_id = read_fitbit_payload(orjson.dumps({"weight": [{"logId": {"x": 1}, "weight": 56.7}]}), "u")
    assert bad_id.quarantine["reason_code"].to_list() == ["invalid_field_type"] and bad_id.balanced


def test_fitbit_batch_keeps_files_apart() -> None:
    results = read_fitbit_payloads(
        [
            (orjson.dumps({"sleep": []}), "a"),
            (b"{not json", "b"),
            (orjson.dumps({"errors": [{"errorType": "expired_token"}], "success": False}), "c"),
            (orjson.dumps({"lifetime": {"steps": 1}}), "d"),
            (orjson.dumps({"activities-steps-intraday": {"dataset": "x"}}), "e"),
            (orjson.dumps({"activities-steps": [{"dateTime": "2015-08-23", "value": "175"}]}), "f"),
        ]
    )
    assert [r.records_in for r in results] == [0, 1, 1, 1, 1, 1]
    assert [r.quarantine["reason_code"].to_list() for r in results] == [
        [],
        ["invalid_json"],
        ["vendor_error"],
        ["unrecognized_format"],
        ["invalid_field_type"],
        [],
    ]
    assert all(r.balanced for r in results) and results[5].bronze["patient_key"].to_list() == ["f"]


# --- bronze: device CSV ----------------------------------------------------------------------------------
CSV_HEADER = b"user_id,device_serial,row_id,measured_at,tz,measurement,value,unit,reading_id\n"


def test_device_csv_rows_keys_and_defects() -> None:
    mapping = load_csv_mapping("generic_bp_csv")
    data = (
        CSV_HEADER
        + b"u1,dev-1,r1,2026-03-01 08:00:00,Europe/Berlin,SYS,128,mmHg,g1\n"
        + b"u1,,,2026-03-01 08:00:00,+01:00,DIA,81,mmHg,g1\n"
        + b"u1,dev-1,r3,2026-03-01 08:00:00\n"
        + b" ,dev-1,r4,2026-03-01 08:00:00,+01:00,PULSE,60,bpm,g1\n"
    )
    result = read_device_csv(data, mapping)
    assert result.balanced and result.records_in == 4
    assert result.bronze.select(
        "line", "record_format", "record_type", "device_id", "patient_key"
    ).rows() == [
        (2, "device_csv", "generic_bp_csv", "dev-1", "u1"),
        (3, "device_csv", "generic_bp_csv", None, "u1"),
    ]
    assert result.bronze["record_id"][0] == "r1" and result.bronze["record_id"][1].endswith("/3")
    assert orjson.loads(result.bronze["raw"][0])["measurement"] == "SYS"
    assert dict(zip(result.quarantine["line"], result.quarantine["reason_code"], strict=True)) == {
        4: "malformed_csv_row",
        5: "missing_id",
    }
    missing = read_device_csv(b"user_id,value\nu1,3\n", mapping)
    assert missing.quarantine["reason_code"].to_list() == ["unrecognized_format"] and missing.balanced


def test_csv_mapping_validation() -> None:
    good = {
        "version": 1,
        "columns": {"user_id": "u", "timestamp": "t", "metric": "m", "value": "v"},
        "timestamp_format": "%Y-%m-%dT%H:%M:%S%z",
    }
    assert parse_csv_mapping("x", good).fixed_time_zone is None
    for broken, message in [
        ({**good, "version": 2}, "version"),
        ({**good, "columns": {"user_id": "u"}}, "missing roles"),
        ({**good, "columns": {**good["columns"], "colour": "c"}}, "unknown column roles"),
        ({**good, "columns": {**good["columns"], "unit": "v"}}, "same CSV column"),
        ({**good, "timestamp_format": "%Y-%m-%d %H:%M"}, "exactly one"),
        ({**good, "fixed_time_zone": "Mars/Olympus"}, "fixed_time_zone"),
        ({**good, "metrics": ["SYS"]}, "metrics"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_csv_mapping("x", broken)
    with pytest.raises(ValueError, match="not found"):
        load_csv_mapping("no_such_mapping")
    with pytest.raises(ValueError, match="must be letters"):
        load_csv_mapping("../metrics")


# --- discovery and ingest --------------------------------------------------------------------------------
def test_discovery_of_declared_vendor_and_csv_sources(landing: UPath) -> None:
    root = Path(landing)
    for source, fmt, path in [
        ("wi", "withings", "user-1/measures.json"),
        ("fb", "fitbit", "user-2/weight.json"),
        ("csv", "device_csv", "export.csv"),
    ]:
        (root / source / path).parent.mkdir(parents=True, exist_ok=True)
        (root / source / path).write_bytes(b"{}")
        extra = "mapping: generic_bp_csv\n" if fmt == "device_csv" else ""
        (root / source / "source.yaml").write_text(f"format: {fmt}\n{extra}")
    found = {f.relative: (f.format, f.folder_user, f.mapping) for f in d.discover(landing).files}
    assert found == {
        "wi/user-1/measures.json": (d.WITHINGS, "user-1", None),
        "fb/user-2/weight.json": (d.FITBIT, "user-2", None),
        "csv/export.csv": (d.DEVICE_CSV, None, "generic_bp_csv"),
    }
    # a wrong mapping refuses that source only (issue 25): the others are still planned
    (root / "csv" / "source.yaml").write_text("format: device_csv\n")
    plan = d.discover(landing)
    assert "needs mapping" in plan.refused_sources["csv"] and len(plan.files) == 2
    (root / "csv" / "source.yaml").write_text("format: device_csv\nmapping: nope\n")
    assert "not found" in d.discover(landing).refused_sources["csv"]


def test_ingest_vendor_payloads_and_device_csv(landing: UPath, lake: UPath) -> None:
    root = Path(landing)
    withings = {"status": 0, "body": {"measuregrps": [{"grpid": 1, "date": 1, "measures": []}]}}
    for user in ("w1", "w2"):
        (root / "withings" / user).mkdir(parents=True)
        (root / "withings" / user / "measures.json").write_bytes(orjson.dumps(withings))
    (root / "withings" / "source.yaml").write_text("format: withings\n")
    (root / "fitbit" / "f1").mkdir(parents=True)
    (root / "fitbit" / "f1" / "sleep.json").write_bytes(orjson.dumps({"sleep": []}))
    (root / "fitbit" / "f1" / "steps.json").write_bytes(
        orjson.dumps({"activities-steps": [{"dateTime": "2015-08-23", "value": "175"}]})
    )
    (root / "fitbit" / "source.yaml").write_text("format: fitbit\n")
    (root / "csv").mkdir()
    (root / "csv" / "export.csv").write_bytes(
        CSV_HEADER + b"u1,d1,r1,2026-03-01 08:00:00,+01:00,SYS,128,mmHg,g\n"
    )
    (root / "csv" / "source.yaml").write_text("format: device_csv\nmapping: generic_bp_csv\n")
    report = ingest_landing(landing, lake, buckets=4)
    assert report.files_ingested == 5 and report.files_empty == 1 and report.unbalanced_files == 0
    devices = read_table(lake, "bronze", "device_records")
    assert sorted(devices.select("record_format", "patient_key").rows()) == [
        ("device_csv", "u1"),
        ("fitbit", "f1"),
        ("withings", "w1"),
        ("withings", "w2"),  # identical bytes in another user's folder are another user's records
    ]
    log = read_table(lake, "bronze", "ingest_log")
    assert log.filter(pl.col("file") == "fitbit/f1/sleep.json")["records_in"].to_list() == [0]


# --- silver: iHealth -------------------------------------------------------------------------------------
def bp(**extra: object) -> dict[str, object]:
    return {"DataID": "d1", "HP": 120, "LP": 80, "HR": 70, "MDate": 1442491463, "TimeZone": "-0800", **extra}


def test_ihealth_bp_local_time_units_and_group() -> None:
    out = read_ihealth(records("BPDataList", [bp(), bp(DataID="d2", HR=0, TimeZone=-8)], {"BPUnit": 0}))
    assert_contract(out)
    # MDate is the local wall clock (12:04:23 at -08:00) written as epoch seconds
    assert rows(out, "_row", "metric", "original_value", "original_unit", "effective_start", "time_zone") == [
        (0, "systolic_blood_pressure", 120.0, "mmHg", utc(2015, 9, 17, 20, 4, 23), "-08:00"),
        (0, "diastolic_blood_pressure", 80.0, "mmHg", utc(2015, 9, 17, 20, 4, 23), "-08:00"),
        (0, "heart_rate", 70.0, "/min", utc(2015, 9, 17, 20, 4, 23), "-08:00"),
        (1, "systolic_blood_pressure", 120.0, "mmHg", utc(2015, 9, 17, 20, 4, 23), "-08:00"),
        (1, "diastolic_blood_pressure", 80.0, "mmHg", utc(2015, 9, 17, 20, 4, 23), "-08:00"),
    ]
    assert out.readings.group_by("_row").agg(pl.col("group_id").n_unique())["group_id"].to_list() == [1, 1]
    assert out.readings["group_id"].n_unique() == 2 and out.rejects.is_empty()
    kpa = read_ihealth(records("BPDataList", [bp(HP=16.0, LP=10.7)], {"BPUnit": 1}))
    assert set(kpa.readings.filter(pl.col("metric") != "heart_rate")["original_unit"]) == {"kPa"}
    assert kpa.readings["original_value"].to_list()[:2] == [16.0, 10.7]  # never converted here


@pytest.mark.parametrize(
    ("zone", "expected_utc", "label"),
    [
        ("-0800", utc(2015, 9, 17, 20, 4, 23), "-08:00"),
        ("+0530", utc(2015, 9, 17, 6, 34, 23), "+05:30"),
        ("+05:30", utc(2015, 9, 17, 6, 34, 23), "+05:30"),
        (1, utc(2015, 9, 17, 11, 4, 23), "+01:00"),
        ("+0000", utc(2015, 9, 17, 12, 4, 23), "+00:00"),
    ],
)
def test_ihealth_time_zones(zone: object, expected_utc: datetime, label: str) -> None:
    out = read_ihealth(
        records("BGDataList", [{"BG": 5.4, "MDate": 1442491463, "TimeZone": zone}], {"BGUnit": 1})
    )
    assert rows(out, "effective_start", "time_zone", "original_unit") == [(expected_utc, label, "mmol/L")]


def test_ihealth_unit_codes_partial_items_and_unusable_times() -> None:
    weights = [
        {"DataID": "a", "WeightValue": 77.5, "MDate": 1442491449, "TimeZone": "-0800"},
        {"DataID": "b", "WeightValue": 0, "MDate": 1442491449, "TimeZone": "-0800"},
        {"DataID": "c", "WeightValue": 70, "MDate": 1442491449},
        {"DataID": "d", "WeightValue": 70, "MDate": 1442491449, "TimeZone": "Mars"},
    ]
    for code, unit in [(0, "kg"), (1, "lb"), (2, "st"), ("1", "lb")]:
        out = read_ihealth(records("WeightDataList", weights, {"WeightUnit": code}))
        assert rows(out, "_row", "original_unit") == [(0, unit)]
        assert reject_codes(out) == {1: "missing_value", 2: "invalid_time_frame", 3: "invalid_time_frame"}
    for context in ({"WeightUnit": 7}, None):
        out = read_ihealth(records("WeightDataList", weights[:1], context))
        assert out.readings.is_empty() and reject_codes(out) == {0: "unknown_unit"}
    glucose = read_ihealth(
        records("BGDataList", [{"BG": 60, "MDate": 1, "TimeZone": "+0000"}], {"BGUnit": 0})
    )
    assert rows(glucose, "metric", "original_value", "original_unit") == [("blood_glucose", 60.0, "mg/dL")]


def test_ihealth_spo2_activity_sleep_and_unkept_lists() -> None:
    spo2 = read_ihealth(
        records(
            "BODataList",
            [
                {"DataID": "s1", "BO": 99, "HR": 80, "MDate": 1443023160, "TimeZone": "-0600"},
                {"DataID": "s2", "BO": 0, "HR": 0, "MDate": 1443023160, "TimeZone": "-0600"},
                {"DataID": "s3", "Result": 97, "HR": 0, "MDate": 1443023160, "TimeZone": "-0600"},
            ],
        )
    )
    assert_contract(spo2)
    assert rows(spo2, "_row", "metric", "original_value", "group_id") == [
        (0, "oxygen_saturation", 99.0, "ihealth:s1"),
        (0, "heart_rate", 80.0, "ihealth:s1"),
        (2, "oxygen_saturation", 97.0, "ihealth:s3"),
    ]
    assert reject_codes(spo2) == {1: "missing_value"}
    # an activity report is the day's total: midnight to midnight in the item's zone
    activity = read_ihealth(
        records(
            "ARDataList", [{"Steps": 21, "MDate": 1447698000, "TimeZone": "+0500"}, {"Steps": 0, "MDate": 1}]
        )
    )
    assert rows(activity, "original_value", "effective_start", "effective_end") == [
        (21.0, utc(2015, 11, 15, 19), utc(2015, 11, 16, 19))
    ]
    assert reject_codes(activity) == {1: "missing_value"}
    sleep = read_ihealth(
        records(
            "SRDataList",
            [
                {"HoursSlept": 345, "StartTime": 1447552260, "EndTime": 1447578960, "TimeZone": "-0700"},
                {"HoursSlept": 300, "StartTime": 1447578960, "EndTime": 1447552260, "TimeZone": "-0700"},
            ],
        )
    )
    assert rows(sleep, "original_value", "original_unit", "effective_start", "effective_end") == [
        (345.0, "min", utc(2015, 11, 15, 8, 51), utc(2015, 11, 15, 16, 16))
    ]
    assert reject_codes(sleep) == {1: "invalid_time_frame"}
    unkept = pl.concat([records("SPORTDataList", [{"Calories": 221.5}]), records("FoodDataList", [{}])])
    out = read_ihealth(unkept.with_columns(pl.Series("_row", [0, 1])))
    assert reject_codes(out) == {0: "no_supported_metric", 1: "no_supported_metric"}


def _broken_items() -> pl.DataFrame:
    items: list[Any] = [bp(DataID=f"d{i}") for i in range(40)]
    items[3] = '{"HP": 1'  # not JSON
    items[17] = bp(HP="one hundred and twenty")  # wrong JSON type: the batch decode fails on it
    items[30] = "[1, 2]"
    frame = records("BPDataList", items, {"BPUnit": 0})
    return frame.with_columns(
        pl.when(pl.col("_row") == 35)
        .then(pl.lit("{"))
        .otherwise(pl.col("payload_context"))
        .alias("payload_context")
    )


def test_broken_items_are_isolated_and_the_rest_is_read() -> None:
    out = read_ihealth(_broken_items())
    assert reject_codes(out) == {
        3: "invalid_json",
        17: "invalid_field_type",
        30: "not_an_object",
        35: "invalid_field_type",
    }
    assert out.readings["_row"].n_unique() == 36
    assert "hundred" not in " ".join(out.rejects["reason"])


@pytest.mark.parametrize("decode_rows", [1, 7, 16])
def test_items_decoded_a_slice_at_a_time_give_the_same_readings_and_rejects(
    monkeypatch: pytest.MonkeyPatch, decode_rows: int
) -> None:
    """A large frame is decoded `DECODE_ROWS` records per call (memory); a bad record in any slice is still
    isolated, and the outcome is the same as one call's."""
    whole = read_ihealth(_broken_items())
    monkeypatch.setattr(vendors, "DECODE_ROWS", decode_rows)
    sizes: list[int] = []
    decode = vendors._decode

    def spy(frame: pl.DataFrame, *args: Any) -> tuple[pl.DataFrame, pl.DataFrame]:
        sizes.append(frame.height)
        return decode(frame, *args)

    monkeypatch.setattr(vendors, "_decode", spy)
    sliced = read_ihealth(_broken_items())
    assert max(sizes) <= decode_rows  # no call decoded more than a slice
    assert_frame_equal(sliced.readings, whole.readings)
    assert_frame_equal(sliced.rejects, whole.rejects)


def test_epoch_values_in_the_wrong_unit_are_not_kept() -> None:
    items = [
        {"BG": 90, "MDate": 1442491407000, "TimeZone": "-0800"},
        {"BG": 90, "MDate": 9 * 10**18, "TimeZone": "+0000"},
    ]
    out = read_ihealth(records("BGDataList", items, {"BGUnit": 0}))
    assert out.readings.is_empty() and reject_codes(out) == {0: "invalid_time_frame", 1: "invalid_time_frame"}


def test_reasons_carry_no_values() -> None:
    out = read_ihealth(
        records(
            "WeightDataList", [{"WeightValue": 0, "MDate": 987654321, "TimeZone": "+0333"}], {"WeightUnit": 0}
        )
    )
    assert reject_codes(out) == {0: "missing_value"}
    assert not any(ch.isdigit() for ch in out.rejects["reason"][0])


# --- silver: Withings ------------------------------------------------------------------------------------
def group(grpid: int, *measures: tuple[int, int, int], **extra: object) -> dict[str, object]:
    return {
        "grpid": grpid,
        "date": 1433052383,
        "category": 1,
        "attrib": 0,
        "measures": [{"type": t, "unit": u, "value": v} for t, u, v in measures],
        **extra,
    }


def test_withings_measure_groups() -> None:
    items = [
        group(1, (9, 0, 68), (10, 0, 104), (11, 0, 41), (18, -3, -1000), (1, -3, 74126)),
        group(2, (54, 0, 97), (71, -1, 372), (1, 1, 7)),
        group(3, (1, -3, 74128), category=2),
        group(4, (1, -3, 74128), attrib=1),
        group(5, (4, -3, 1930)),
        group(6),
        group(7, (1, -3, 70000), date=None),
    ]
    out = read_withings(records("measuregrps", items, {"timezone": "America/Los_Angeles", "status": 0}))
    assert_contract(out)
    assert rows(out, "_row", "metric", "original_value", "original_unit", "group_id") == [
        (0, "diastolic_blood_pressure", 68.0, "mmHg", "withings:1"),
        (0, "systolic_blood_pressure", 104.0, "mmHg", "withings:1"),
        (0, "heart_rate", 41.0, "/min", "withings:1"),
        (0, "body_weight", 74.126, "kg", "withings:1"),
        (1, "oxygen_saturation", 97.0, "%", "withings:2"),
        (1, "body_temperature", 37.2, "Cel", "withings:2"),
        (1, "body_weight", 70.0, "kg", "withings:2"),
    ]
    assert set(out.readings["effective_start"]) == {utc(2015, 5, 31, 6, 6, 23)}
    assert set(out.readings["time_zone"]) == {"America/Los_Angeles"}
    assert reject_codes(out) == {
        2: "not_a_measurement",
        3: "ambiguous_attribution",
        4: "no_supported_metric",
        5: "missing_value",
        6: "invalid_time_frame",
    }


def test_withings_activity_days_in_their_zone_and_series_shapes() -> None:
    days = [
        {"date": "2015-03-08", "steps": 1798, "timezone": "America/Los_Angeles"},  # 23-hour day (DST)
        {"date": "2015-06-18", "steps": 2934},  # the body's zone
        {"date": "2015-06-18", "calories": 3},
        {"date": "2015-06-18", "steps": 5, "timezone": "Mars/Base"},
    ]
    out = read_withings(records("activities", days, {"timezone": "Europe/London"}))
    assert_contract(out)
    assert rows(out, "original_value", "effective_start", "effective_end", "time_zone") == [
        (1798.0, utc(2015, 3, 8, 8), utc(2015, 3, 9, 7), "America/Los_Angeles"),
        (2934.0, utc(2015, 6, 17, 23), utc(2015, 6, 18, 23), "Europe/London"),
    ]
    assert reject_codes(out) == {2: "missing_value", 3: "invalid_time_frame"}

    summary = {
        "id": 1,
        "timezone": "Europe/London",
        "startdate": 1504307700,
        "enddate": 1504319100,
        "data": {"lightsleepduration": 3360, "deepsleepduration": 7800, "wakeupcount": 4},
    }
    series = [
        summary,
        {**summary, "data": {"total_sleep_time": 20000, "lightsleepduration": 1}},
        {**summary, "data": {"wakeupcount": 4}},
        {"startdate": 1417550400, "state": 0, "enddate": 1417551300},
    ]
    out = read_withings(records("series", series))
    assert rows(out, "metric", "original_value", "original_unit", "effective_end") == [
        ("sleep_duration", 11160.0, "s", utc(2017, 9, 2, 2, 25)),
        ("sleep_duration", 20000.0, "s", utc(2017, 9, 2, 2, 25)),
    ]
    assert reject_codes(out) == {2: "missing_value", 3: "no_supported_metric"}


def test_withings_intraday_slots() -> None:
    frame = pl.concat(
        [
            records("series", [{"steps": 21, "duration": 60}], {"item_key": "1434758640"}),
            records("series", [{"duration": 1440}], {"item_key": "1434758700"}),
            records("series", [{"heart_rate": 61, "duration": 60}], {"item_key": "1434760140"}),
        ]
    ).with_columns(pl.Series("_row", [0, 1, 2]))
    out = read_withings(frame)
    assert rows(out, "_row", "metric", "effective_start", "effective_end") == [
        (0, "step_count", utc(2015, 6, 20, 0, 4), utc(2015, 6, 20, 0, 5)),
        (2, "heart_rate", utc(2015, 6, 20, 0, 29), None),
    ]
    assert reject_codes(out) == {1: "no_supported_metric"}


# --- silver: Fitbit --------------------------------------------------------------------------------------
def test_fitbit_weight_units_and_time_zones() -> None:
    logs = [{"logId": 1, "date": "2015-05-13", "time": "18:28:59", "weight": 56.7}]
    default = read_fitbit(records("weight", logs))
    assert_contract(default)
    # no zone anywhere: the wall clock is read as UTC and time_zone stays null
    assert rows(default, "original_unit", "effective_start", "time_zone") == [
        ("kg", utc(2015, 5, 13, 18, 28, 59), None)
    ]
    for context, unit in [
        ({"weightUnit": "en_US"}, "lb"),
        ({"weightUnit": "en_GB"}, "st"),
        ({"weightUnit": "METRIC"}, "kg"),
    ]:
        assert read_fitbit(records("weight", logs, context)).readings["original_unit"].to_list() == [unit]
    assert reject_codes(read_fitbit(records("weight", logs, {"weightUnit": "imperial"}))) == {
        0: "unknown_unit"
    }
    assert reject_codes(read_fitbit(records("weight", [{**logs[0], "weight": 0}]))) == {0: "missing_value"}
    berlin = read_fitbit(records("weight", logs, {"timezone": "Europe/Berlin"}))
    assert rows(berlin, "effective_start", "time_zone") == [(utc(2015, 5, 13, 16, 28, 59), "Europe/Berlin")]
    offset = read_fitbit(records("weight", logs, {"offsetFromUTCMillis": -25200000}))
    assert rows(offset, "effective_start", "time_zone") == [(utc(2015, 5, 14, 1, 28, 59), "-07:00")]
    given = read_fitbit(records("weight", logs), time_zone="America/New_York")
    assert rows(given, "effective_start", "time_zone") == [(utc(2015, 5, 13, 22, 28, 59), "America/New_York")]
    payload_wins = read_fitbit(records("weight", logs, {"timezone": "UTC"}), time_zone="America/New_York")
    assert rows(payload_wins, "time_zone") == [("+00:00",)]


def test_fitbit_sleep_steps_heart_and_activities() -> None:
    sleep = read_fitbit(
        records(
            "sleep",
            [
                {
                    "startTime": "2016-12-13T01:16:00.000",
                    "endTime": "2016-12-13T03:14:00.000",
                    "minutesAsleep": 112,
                    "duration": 7080000,
                },
                {"startTime": "2016-12-13T09:59:00.000", "duration": 3780000},
                {"startTime": "2016-12-13T09:59:00.000"},
            ],
        )
    )
    assert_contract(sleep)
    assert rows(sleep, "original_value", "original_unit", "effective_end") == [
        (112.0, "min", utc(2016, 12, 13, 3, 14)),
        (3780000.0, "ms", utc(2016, 12, 13, 11, 2)),
    ]
    assert reject_codes(sleep) == {2: "missing_value"}
    steps = read_fitbit(
        records(
            "activities-steps",
            [{"dateTime": "2015-08-23", "value": "175"}, {"dateTime": "2015-08-24", "value": "n/a"}],
        )
    )
    assert rows(steps, "original_value", "effective_start", "effective_end") == [
        (175.0, utc(2015, 8, 23), utc(2015, 8, 24))
    ]
    assert reject_codes(steps) == {1: "missing_value"}
    heart = read_fitbit(
        records(
            "activities-heart",
            [
                {"dateTime": "2015-08-21", "value": {"restingHeartRate": 58, "heartRateZones": []}},
                {"dateTime": "2015-08-21", "value": "64.2"},
            ],
        )
    )
    assert rows(heart, "metric", "original_value") == [("heart_rate", 58.0)]
    assert reject_codes(heart) == {1: "no_supported_metric"}
    logged = read_fitbit(
        records(
            "activities",
            [
                {
                    "startDate": "2015-06-23",
                    "startTime": "11:55",
                    "hasStartTime": True,
                    "duration": 1440000,
                    "steps": 6761,
                },
                {"startDate": "2015-06-23", "startTime": "15:00", "hasStartTime": False, "steps": 8481},
                {"startDate": "2015-06-23", "startTime": "10:00", "calories": 3},
            ],
        )
    )
    assert rows(logged, "original_value", "effective_start", "effective_end") == [
        (6761.0, utc(2015, 6, 23, 11, 55), utc(2015, 6, 23, 12, 19)),
        (8481.0, utc(2015, 6, 23), utc(2015, 6, 24)),
    ]
    assert reject_codes(logged) == {2: "no_supported_metric"}


def test_fitbit_intraday_points() -> None:
    context = {
        "dateTime": "2015-08-21",
        "datasetInterval": 15,
        "datasetType": "minute",
        "timezone": "Europe/Berlin",
    }
    steps = read_fitbit(
        records(
            "activities-steps-intraday", [{"time": "14:15:00", "value": 52}, {"time": "14:30:00"}], context
        )
    )
    assert rows(steps, "metric", "effective_start", "effective_end", "time_zone") == [
        ("step_count", utc(2015, 8, 21, 12, 15), utc(2015, 8, 21, 12, 30), "Europe/Berlin")
    ]
    assert reject_codes(steps) == {1: "missing_value"}
    heart = read_fitbit(
        records("activities-heart-intraday", [{"time": "00:01:00", "value": 64}], {"datasetType": "minute"})
    )
    assert heart.readings.is_empty() and reject_codes(heart) == {0: "invalid_time_frame"}
    heart = read_fitbit(
        records("activities-heart-intraday", [{"time": "00:01:00", "value": 64}], {"dateTime": "2015-08-21"})
    )
    assert rows(heart, "metric", "original_value", "effective_start", "effective_end") == [
        ("heart_rate", 64.0, utc(2015, 8, 21, 0, 1), None)
    ]
    unkept = read_fitbit(records("activities-calories", [{"dateTime": "2015-08-21", "value": "1892"}]))
    assert reject_codes(unkept) == {0: "no_supported_metric"}


# --- silver: device CSV ----------------------------------------------------------------------------------
def csv_records(rows_: list[dict[str, str]], mapping: str = "generic_bp_csv") -> pl.DataFrame:
    return records(mapping, rows_)


def csv_row(**values: str) -> dict[str, str]:
    base = {
        "user_id": "u1",
        "device_serial": "dev-1",
        "row_id": "r",
        "measured_at": "2026-03-01 08:00:00",
        "tz": "Europe/Berlin",
        "measurement": "SYS",
        "value": "128",
        "unit": "mmhg",
        "reading_id": "g1",
    }
    return {**base, **values}


def test_device_csv_readings() -> None:
    out = read_csv_readings(
        csv_records(
            [
                csv_row(),
                csv_row(measurement="DIA", value="81", tz="-05:00"),
                csv_row(measurement="PULSE", value="60", unit="bpm", reading_id=""),
                csv_row(measurement="body_weight", value="80.5", unit="kg", tz="+0100"),
                csv_row(measurement="STEPS"),
                csv_row(value=""),
                csv_row(value="12O"),
                csv_row(measured_at="01/03/2026 08:00"),
                csv_row(tz="Mars/Base"),
                csv_row(tz=""),
            ]
        ),
        load_csv_mapping("generic_bp_csv"),
    )
    assert_contract(out)
    assert rows(
        out, "_row", "metric", "original_value", "original_unit", "effective_start", "time_zone", "group_id"
    ) == [
        (
            0,
            "systolic_blood_pressure",
            128.0,
            "mmHg",
            utc(2026, 3, 1, 7),
            "Europe/Berlin",
            "generic_bp_csv:u1:g1",
        ),
        (1, "diastolic_blood_pressure", 81.0, "mmHg", utc(2026, 3, 1, 13), "-05:00", "generic_bp_csv:u1:g1"),
        (2, "heart_rate", 60.0, "/min", utc(2026, 3, 1, 7), "Europe/Berlin", None),
        (3, "body_weight", 80.5, "kg", utc(2026, 3, 1, 7), "+01:00", "generic_bp_csv:u1:g1"),
    ]
    assert reject_codes(out) == {
        4: "no_supported_metric",
        5: "missing_value",
        6: "invalid_value",
        7: "invalid_time_frame",
        8: "invalid_time_frame",
        9: "invalid_time_frame",
    }


def test_device_csv_fixed_zone_offset_in_timestamp_and_unknown_mappings() -> None:
    columns = {"user_id": "u", "timestamp": "t", "metric": "m", "value": "v", "unit": "unit"}
    fixed = CsvMapping("fixed", columns, "%Y-%m-%d %H:%M", fixed_time_zone="+02:00")
    out = read_csv_readings(
        records("fixed", [{"u": "a", "t": "2026-01-01 10:00", "m": "heart_rate", "v": "70", "unit": "bpm"}]),
        fixed,
    )
    assert rows(out, "effective_start", "time_zone") == [(utc(2026, 1, 1, 8), "+02:00")]
    stamped = CsvMapping("stamped", columns, "%Y-%m-%dT%H:%M:%S%z")
    out = read_csv_readings(
        records("stamped", [{"u": "a", "t": "2026-01-01T10:00:00-0330", "m": "heart_rate", "v": "70"}]),
        stamped,
    )
    assert rows(out, "effective_start", "time_zone", "original_unit") == [
        (utc(2026, 1, 1, 13, 30), "-03:30", None)
    ]
    with pytest.raises(ValueError, match="not platform metrics"):
        read_csv_readings(records("x", []), CsvMapping("x", columns, "%z", metrics={"SYS": "systolic"}))
    mixed = pl.concat([csv_records([csv_row()]), records("no_such_mapping", [{}])]).with_columns(
        pl.Series("_row", [0, 1])
    )
    out = read_device_csv_records(mixed)
    assert rows(out, "_row", "metric") == [(0, "systolic_blood_pressure")]
    assert reject_codes(out) == {1: "unknown_mapping"}
