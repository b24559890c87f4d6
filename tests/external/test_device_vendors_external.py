"""The vendor API sample payloads (../shared/data/devices/vendor-api-samples): every iHealth, Withings and
Fitbit file through bronze and its silver reader, with values checked against the raw JSON."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from upath import UPath

from pipelines.bronze.device_reader import read_fitbit_payload, read_ihealth_payload, read_withings_payload
from pipelines.bronze.ingest import ingest_landing
from pipelines.bronze.tables import ReadResult
from pipelines.devices.contract import REJECT_SCHEMA, SOURCE_READING_SCHEMA, ReaderOutput
from pipelines.devices.vendors import read_fitbit, read_ihealth, read_withings
from pipelines.lake import read_table

pytestmark = pytest.mark.external

VENDORS: dict[
    str, tuple[Callable[[bytes, str | None], ReadResult], Callable[[pl.DataFrame], ReaderOutput]]
] = {
    "ihealth": (read_ihealth_payload, read_ihealth),
    "withings": (read_withings_payload, read_withings),
    "fitbit": (read_fitbit_payload, read_fitbit),
}
SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "devices" / "vendor-api-samples"
SAMPLE_FILES = sorted(
    (vendor, path.name) for vendor in VENDORS for path in (SAMPLES / vendor).glob("*.json")
) or [("ihealth", "absent.json")]  # keeps the parametrized tests collectable (they skip) without the data


def items_in(vendor: str, payload: dict[str, Any]) -> int:
    """How many records a payload holds, counted straight from the JSON."""
    if vendor == "ihealth":
        return sum(len(v) for k, v in payload.items() if k.endswith("DataList"))
    if vendor == "withings":
        return sum(len(v) for v in payload["body"].values() if isinstance(v, list | dict))
    lists = sum(len(v) for v in payload.values() if isinstance(v, list))
    return lists + sum(len(v["dataset"]) for k, v in payload.items() if k.endswith("-intraday"))


def read_sample(vendor: str, name: str) -> tuple[dict[str, Any], ReadResult, pl.DataFrame, ReaderOutput]:
    data = (SAMPLES / vendor / name).read_bytes()
    bronze_reader, reader = VENDORS[vendor]
    result = bronze_reader(data, "sample-user")
    bronze = result.bronze.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    return json.loads(data), result, bronze, reader(bronze)


@pytest.mark.parametrize(("vendor", "name"), SAMPLE_FILES)
def test_every_sample_reads_with_exact_accounting(shared_data: Path, vendor: str, name: str) -> None:
    payload, result, bronze, out = read_sample(vendor, name)
    assert result.balanced and result.quarantine.is_empty()
    assert result.records_in == bronze.height == items_in(vendor, payload)
    if "empty" in name:
        assert result.records_in == 0 and out.readings.is_empty() and out.rejects.is_empty()
    assert out.readings.schema == pl.Schema(SOURCE_READING_SCHEMA)
    assert out.rejects.schema == pl.Schema(REJECT_SCHEMA)
    # every record yields readings or exactly one reject, never both and never nothing
    read, rejected = set(out.readings["_row"]), out.rejects["_row"].to_list()
    assert len(rejected) == len(set(rejected)) and not read & set(rejected)
    assert read | set(rejected) == set(range(bronze.height))
    assert out.readings["effective_start"].null_count() == 0
    assert set(bronze["patient_key"]) <= {"sample-user"} and set(bronze["record_format"]) <= {vendor}


def test_ihealth_values_match_the_raw_json(shared_data: Path) -> None:
    payload, _, bronze, out = read_sample("ihealth", "ihealth-bp.json")
    first = payload["BPDataList"][0]
    row = bronze.filter(pl.col("record_id") == first["DataID"])["_row"].item()
    values = dict(out.readings.filter(pl.col("_row") == row).select("metric", "original_value").iter_rows())
    assert values == {
        "systolic_blood_pressure": first["HP"],
        "diastolic_blood_pressure": first["LP"],
        "heart_rate": first["HR"],
    }
    # MDate is local wall-clock time: the instant is MDate minus the offset, just before LastChangeTime
    start = out.readings.filter(pl.col("_row") == row)["effective_start"][0].timestamp()
    assert start == first["MDate"] + 8 * 3600 and 0 <= first["LastChangeTime"] - start < 60
    _, _, _, no_pulse = read_sample("ihealth", "ihealth-bp-no-heart-rate.json")
    assert sorted(no_pulse.readings["metric"]) == ["diastolic_blood_pressure", "systolic_blood_pressure"]
    for name in ("ihealth-weight-no-weight-value.json", "ihealth-spo2-no-oxygen-saturation.json"):
        _, _, _, partial = read_sample("ihealth", name)
        assert partial.readings.is_empty() and partial.rejects["reason_code"].to_list() == ["missing_value"]
    payload, _, _, weights = read_sample("ihealth", "ihealth-weight.json")
    assert weights.readings["original_value"].to_list() == [
        i["WeightValue"] for i in payload["WeightDataList"]
    ]
    _, _, _, sport = read_sample("ihealth", "ihealth-sport.json")
    assert set(sport.rejects["reason_code"]) == {"no_supported_metric"}


def test_withings_values_match_the_raw_json(shared_data: Path) -> None:
    payload, _, bronze, out = read_sample("withings", "withings-body-measures.json")
    expected = {
        str(g["grpid"]): m["value"] * 10 ** m["unit"]
        for g in payload["body"]["measuregrps"]
        for m in g["measures"]
        if m["type"] == 1
    }
    weights = out.readings.filter(pl.col("metric") == "body_weight").join(
        bronze.select("_row", "record_id"), on="_row"
    )
    assert dict(weights.select("record_id", "original_value").iter_rows()) == pytest.approx(expected)
    assert set(weights["original_unit"]) == {"kg"}
    first = payload["body"]["measuregrps"][0]
    cuff = out.readings.filter(pl.col("_row") == 0)
    assert dict(cuff.select("metric", "original_value").iter_rows())["systolic_blood_pressure"] == next(
        m["value"] for m in first["measures"] if m["type"] == 10
    )
    assert cuff["group_id"].n_unique() == 1 and cuff["effective_start"][0].timestamp() == first["date"]
    _, _, _, goal = read_sample("withings", "withings-body-measures-only-goal.json")
    assert goal.readings.is_empty() and goal.rejects["reason_code"].to_list() == ["not_a_measurement"]
    payload, _, _, sleep = read_sample("withings", "withings-sleep-summary.json")
    assert sleep.readings["original_value"].to_list() == [
        s["data"]["lightsleepduration"] + s["data"]["deepsleepduration"] for s in payload["body"]["series"]
    ]
    payload, _, _, days = read_sample("withings", "withings-activity-measures.json")
    assert days.readings["original_value"].sum() == sum(a["steps"] for a in payload["body"]["activities"])
    payload, _, _, slots = read_sample("withings", "withings-intraday-activity.json")
    assert slots.readings["original_value"].sum() == sum(
        s.get("steps", 0) for s in payload["body"]["series"].values()
    )


def test_fitbit_values_match_the_raw_json(shared_data: Path) -> None:
    payload, _, _, series = read_sample("fitbit", "fitbit-activities-steps-timeseries.json")
    assert series.readings["original_value"].sum() == sum(
        int(d["value"]) for d in payload["activities-steps"]
    )
    payload, _, bronze, intraday = read_sample("fitbit", "fitbit-activities-steps-1d-1m-intraday.json")
    by_type = intraday.readings.join(bronze.select("_row", "record_type"), on="_row")
    totals = dict(by_type.group_by("record_type").agg(pl.col("original_value").sum()).iter_rows())
    assert totals == {
        "activities-steps": int(payload["activities-steps"][0]["value"]),
        "activities-steps-intraday": sum(p["value"] for p in payload["activities-steps-intraday"]["dataset"]),
    }
    payload, _, _, weights = read_sample("fitbit", "fitbit-body-log-weight.json")
    assert weights.readings["original_value"].to_list() == [w["weight"] for w in payload["weight"]]
    assert set(weights.readings["original_unit"]) == {"kg"}  # no unit system stated: kilograms
    payload, _, _, sleep = read_sample("fitbit", "fitbit-sleep-date.json")
    assert sleep.readings["original_value"].to_list() == [s["minutesAsleep"] for s in payload["sleep"]]
    payload, _, _, heart = read_sample("fitbit", "fitbit-activities-heart-1d-1m-intraday.json")
    assert heart.readings["original_value"].to_list() == [
        p["value"] for p in payload["activities-heart-intraday"]["dataset"]
    ]


def test_samples_through_ingest_count_empty_payloads(shared_data: Path, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    expected_empty = 0
    expected_records = 0
    for vendor in VENDORS:
        folder = landing / vendor / "user-1"
        folder.mkdir(parents=True)
        (landing / vendor / "source.yaml").write_text(f"format: {vendor}\n")
        for path in sorted((SAMPLES / vendor).glob("*.json")):
            shutil.copy(path, folder / path.name)
            count = items_in(vendor, json.loads(path.read_bytes()))
            expected_records += count
            expected_empty += count == 0
    report = ingest_landing(UPath(landing), UPath(tmp_path / "lake"), buckets=4)
    assert report.files_ingested == len(SAMPLE_FILES) and report.files_unrecognized == 0
    assert report.files_empty == expected_empty > 0 and report.records_in == expected_records
    assert report.unbalanced_files == 0 and report.rows["quarantine"] == 0
    devices = read_table(UPath(tmp_path / "lake"), "bronze", "device_records")
    for vendor, (_, reader) in VENDORS.items():
        of_vendor = devices.filter(pl.col("record_format") == vendor).with_row_index("_row")
        out = reader(of_vendor.with_columns(pl.col("_row").cast(pl.Int64)))
        assert out.readings["_row"].n_unique() + out.rejects.height == of_vendor.height > 0
