"""Apple Health exports as a device source (issue 27): bronze reading of export.xml and the Health app's
zip, the silver reader, hostile exports, and one pass through discovery, ingest and the device build.

The exports are written for the tests (tests/apple_health_samples.py) from Apple's documented format.
"""

from __future__ import annotations

import os
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from upath import UPath

from pipelines.bronze import apple_health
from pipelines.bronze import discovery as d
from pipelines.bronze.apple_health import read_apple_health_export
from pipelines.bronze.compression import DecompressionLimits
from pipelines.bronze.ingest import ingest_landing
from pipelines.bronze.tables import ReadResult
from pipelines.devices.apple_health import read_apple_health
from pipelines.devices.build import DEVICE_READING, DEVICE_READING_REJECTS, build_device_partition
from pipelines.devices.contract import REJECT_SCHEMA, SOURCE_READING_SCHEMA, ReaderOutput
from pipelines.devices.units import normalize_units
from pipelines.lake import read_table
from pipelines.layout import patient_bucket_keys
from pipelines.silver.build import SILVER
from tests.apple_health_samples import (
    CUFF,
    body,
    entity_expansion,
    external_entity,
    pressure,
    record,
    several_metrics,
    zip_bomb,
    zip_with_traversal,
    zipped,
)
from tests.corpus.cases import MARKERS

USER = "ah-person-1"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def bronze(data: bytes, name: str = "export.xml", user: str | None = USER, **limits: int) -> ReadResult:
    read = read_apple_health_export(data, user, name, DecompressionLimits(**limits) if limits else None)
    assert read.balanced
    assert not [r for r in read.quarantine["reason"].to_list() if any(m in r for m in MARKERS)]
    assert not any(m in str(read.skipped) for m in MARKERS)
    return read


def silver(data: bytes) -> ReaderOutput:
    read = bronze(data)
    records = read.bronze.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    out = read_apple_health(records)
    assert out.readings.schema == pl.Schema(SOURCE_READING_SCHEMA)
    assert out.rejects.schema == pl.Schema(REJECT_SCHEMA)
    assert not set(out.rejects["_row"]) & set(out.readings["_row"])
    assert not [r for r in out.rejects["reason"].to_list() if any(m in r for m in MARKERS)]
    return out


# --- bronze ----------------------------------------------------------------------------------------------
def test_every_element_of_an_export_is_a_record_or_counted_as_skipped() -> None:
    read = bronze(several_metrics())
    assert (read.records_in, read.bronze.height, read.quarantine.height) == (10, 10, 0)
    assert sum(read.skipped.values()) == 10  # 20 top-level elements in all
    assert read.skipped == {
        "ActivitySummary": 1,
        "Correlation HKCorrelationTypeIdentifierFood": 1,
        "ExportDate": 1,
        "Me": 1,
        "Record HKCategoryTypeIdentifierSleepAnalysis": 1,
        "Record HKQuantityTypeIdentifierActiveEnergyBurned": 1,
        "Record HKQuantityTypeIdentifierBloodPressureDiastolic (read with its blood-pressure correlation)": 1,
        "Record HKQuantityTypeIdentifierBloodPressureSystolic (read with its blood-pressure correlation)": 1,
        "Record HKQuantityTypeIdentifierRestingHeartRate": 1,
        "Workout": 1,
    }
    rows = read.bronze
    assert set(rows["record_format"]) == {"apple_health"} and set(rows["patient_key"]) == {USER}
    assert rows["entry"].to_list() == [2, 3, 4, 5, 6, 7, 8, 9, 12, 13]  # positions among the elements
    assert rows["line"].is_null().all() and rows["record_id"].is_unique().all()
    assert rows["device_id"][0] == f"{USER}/Zorblax Quuxley's iPhone"  # sourceName, within the person
    assert rows["device_id"][8] == f"{USER}/{CUFF}"
    correlation = orjson.loads(rows["raw"][8])
    assert correlation["attributes"]["type"] == "HKCorrelationTypeIdentifierBloodPressure"
    assert [c["attributes"].get("type") for c in correlation["children"]] == [
        None,  # its MetadataEntry
        "HKQuantityTypeIdentifierBloodPressureSystolic",
        "HKQuantityTypeIdentifierBloodPressureDiastolic",
    ]
    # the owner's characteristics (birth date, sex) are not kept anywhere
    assert not rows["raw"].str.contains("1950-01-01").any()


def test_the_health_app_zip_gives_the_same_records_whatever_the_export_is_called() -> None:
    plain = bronze(several_metrics())
    for member in ("apple_health_export/export.xml", "apple_health_export/exportar.xml", "导出.xml"):
        packed = bronze(zipped(several_metrics(), member), "export.zip")
        assert packed.bronze["raw"].to_list() == plain.bronze["raw"].to_list(), member
        assert packed.skipped == plain.skipped
    only_cda = bronze(zipped(several_metrics(), "apple_health_export/export_cda_copy.txt"), "export.zip")
    assert only_cda.quarantine["reason_code"].to_list() == ["unrecognized_format"]


def test_a_loose_blood_pressure_record_is_a_reading_of_its_own() -> None:
    read = bronze(body(pressure("120", "80", "2026-05-03 08:00:00 -0700", copies=False)))
    assert read.bronze["record_type"].to_list() == ["HKCorrelationTypeIdentifierBloodPressure"]
    copied = bronze(body(pressure("120", "80", "2026-05-03 08:00:00 -0700")))
    assert copied.bronze.height == 1 and sum(copied.skipped.values()) == 2 + 2  # ExportDate, Me, 2 copies


@pytest.mark.parametrize("name", ["export.xml", "export.zip"])
def test_records_are_in_export_order_whatever_the_chunks_and_frames(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The reader turns its records into columns a frame at a time as the document streams in; a loose
    systolic or diastolic record, known to be a reading of its own only at the end, goes back in its place
    among the frames (the last element included)."""
    parts = []
    for i in range(40):
        parts.append(record("HeartRate", "count/min", str(60 + i), f"2026-05-03 08:{i:02d}:00 -0700"))
        if i % 7 == 3:  # a loose systolic record: a reading of its own
            parts.append(record("BloodPressureSystolic", "mmHg", "121", f"2026-05-03 09:{i:02d}:00 -0700"))
        if i % 11 == 5:  # a correlation, its members written again before it
            parts.append(pressure("130", "85", f"2026-05-04 08:{i:02d}:00 -0700"))
    parts.append(record("BloodPressureDiastolic", "mmHg", "79", "2026-05-05 08:00:00 -0700"))
    export = body(*parts)
    data = zipped(export) if name.endswith(".zip") else export
    whole = bronze(data, name)
    entries = whole.bronze["entry"].to_list()
    assert whole.bronze.height == 40 + 6 + 4 + 1 and entries == sorted(entries)
    assert whole.bronze["record_id"].is_unique().all()
    for chunk_bytes, frame_rows in ((64, 1), (500, 3), (4096, 7)):
        monkeypatch.setattr(apple_health, "CHUNK_BYTES", chunk_bytes)
        monkeypatch.setattr(apple_health, "FRAME_ROWS", frame_rows)
        framed = bronze(data, name)
        assert_frame_equal(framed.bronze, whole.bronze)
        assert framed.skipped == whole.skipped


@pytest.mark.parametrize(
    ("make", "name", "code"),
    [
        (entity_expansion, "export.xml", "xml_entity_declaration"),
        (external_entity, "export.xml", "xml_entity_declaration"),
        (zip_with_traversal, "export.zip", "unsafe_archive"),
        (lambda: b"PK\x03\x04 not really a zip", "export.zip", "invalid_compression"),
        (lambda: zipped(several_metrics())[:-200], "export.zip", "invalid_compression"),
        (lambda: b"<?xml version='1.0'?><ClinicalDocument/>", "export.xml", "unrecognized_format"),
        (lambda: b"", "export.xml", "invalid_xml"),
        (lambda: b"\x00\x01 not xml", "export.xml", "invalid_xml"),
    ],
)
def test_hostile_exports_are_refused_whole_with_a_reason(make: object, name: str, code: str) -> None:
    assert callable(make)
    read = bronze(make(), name)
    assert (read.records_in, read.bronze.height) == (1, 0)
    assert read.quarantine["reason_code"].to_list() == [code]


@pytest.mark.parametrize("user", [None, "apple_health_export"])
def test_an_export_outside_a_person_folder_is_not_read(user: str | None) -> None:
    """Directly in the source folder, or the Health app's zip unpacked there (its folder is no person)."""
    read = bronze(several_metrics(), user=user)
    assert read.quarantine["reason_code"].to_list() == ["missing_id"]
    assert "folder per person" in read.quarantine["reason"][0]


def test_a_zip_bomb_is_refused_by_its_declared_size_before_it_inflates() -> None:
    bomb = zip_bomb(8 << 20)
    assert len(bomb) < 100_000
    read = bronze(bomb, "export.zip", max_bytes=4 << 20)
    assert read.quarantine["reason_code"].to_list() == ["decompression_limit"]
    ratio = bronze(bomb, "export.zip", max_ratio=20, ratio_floor=1 << 20)
    assert ratio.quarantine["reason_code"].to_list() == ["decompression_limit"]
    assert bronze(bomb, "export.zip").quarantine.is_empty()  # within the default limits: an empty export


def test_truncated_xml_keeps_what_came_before_and_quarantines_the_rest() -> None:
    whole = several_metrics()
    cut = whole[: whole.index(b'<Correlation type="HKCorrelationTypeIdentifierBloodPressure"') + 40]
    read = bronze(cut)
    # the eight records before the correlation, and the top-level copies of its members, which are
    # readings of their own now that the correlation is lost
    assert read.bronze.height == 8 + 2
    ((line, entry, code, reason),) = read.quarantine.select("line", "entry", "reason_code", "reason").rows()
    assert code == "invalid_xml" and entry == 12 and line == cut.count(b"\n") + 1
    assert "not well-formed from line" in reason
    assert read.quarantine["raw"][0].endswith(cut[-40:])
    assert sum(read.skipped.values()) == 2  # ExportDate and Me


def test_deep_nesting_and_huge_attributes_cost_only_their_record() -> None:
    deep = "<x>" * 50_000 + "</x>" * 50_000
    nested = record("HeartRate", "count/min", "70", "2026-05-03 08:00:00 -0700").replace(
        "/>\n", f">{deep}</Record>\n"
    )
    huge = record("HeartRate", "count/min", "7" * 1_000_000, "2026-05-03 08:01:00 -0700")
    read = bronze(body(nested, huge))
    assert read.bronze.height == 2 and read.quarantine.is_empty()
    assert len(read.bronze["raw"][0]) < 1000  # children deeper than a record's metadata are not kept


# --- silver ----------------------------------------------------------------------------------------------
def test_readings_units_zones_and_the_blood_pressure_pair() -> None:
    out = silver(several_metrics())
    assert out.rejects.is_empty()
    got = out.readings.select(
        "_row", "metric", "original_value", "original_unit", "effective_start", "effective_end", "time_zone"
    ).rows()
    assert got == [
        (0, "body_weight", 182.6, "lb", utc(2016, 5, 2, 15), None, "-07:00"),
        (1, "body_weight", 82.4, "kg", utc(2016, 5, 9, 6, 5), None, "+02:00"),
        (2, "heart_rate", 71.0, "/min", utc(2026, 5, 3, 15, 1), None, "-07:00"),
        (3, "blood_glucose", 6.1, "mmol/L", utc(2026, 5, 3, 2), None, "+05:30"),
        (4, "blood_glucose", 104.0, "mg/dL", utc(2026, 5, 4, 2), None, "+05:30"),
        (5, "oxygen_saturation", 0.97, "1", utc(2026, 5, 3, 10), None, "-07:00"),
        (6, "step_count", 412.0, "count", utc(2026, 5, 3, 16), utc(2026, 5, 3, 16, 10), "-07:00"),
        (7, "body_temperature", 98.6, "degF", utc(2026, 5, 4, 4), None, "-07:00"),
        (8, "systolic_blood_pressure", 128.0, "mmHg", utc(2026, 5, 3, 15, 15), None, "-07:00"),
        (8, "diastolic_blood_pressure", 82.0, "mmHg", utc(2026, 5, 3, 15, 15), None, "-07:00"),
        (9, "diastolic_blood_pressure", 79.0, "mmHg", utc(2026, 5, 4, 15, 15), None, "-07:00"),
    ]
    groups = out.readings["group_id"].to_list()
    assert groups[8] == groups[9] and groups[8].startswith("apple_health:") and groups[10] is None
    normalized, rejects = normalize_units(out.readings)
    assert rejects.is_empty()
    values = dict(zip(normalized["_row"], normalized["value"], strict=False))
    assert values[0] == pytest.approx(82.826, abs=1e-3)  # pounds made kilograms
    assert values[5] == pytest.approx(97.0)  # a fraction made a percentage
    assert values[3] == pytest.approx(6.1 * 18.0182)
    assert values[7] == pytest.approx(37.0)


def test_values_and_times_that_cannot_be_readings_are_rejects_with_a_reason() -> None:
    out = silver(
        body(
            record("HeartRate", "count/min", "", "2026-05-03 08:00:00 -0700"),
            record("HeartRate", "count/min", "fast", "2026-05-03 08:01:00 -0700"),
            record("HeartRate", "count/min", "NaN", "2026-05-03 08:02:00 -0700"),
            record("HeartRate", "count/min", "1e309", "2026-05-03 08:03:00 -0700"),
            record("HeartRate", "count/min", "72", "2026-05-03 08:04:00"),  # no offset: no instant
            record("StepCount", "count", "10", "2026-05-03 09:00:00 -0700", "2026-05-03 08:00:00 -0700"),
            record("StepCount", "count", "10", "2026-05-03 09:00:00 -0700", "tomorrow"),
            record("OxygenSaturation", "ppm", "0.97", "2026-05-03 08:05:00 -0700"),
            ' <Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="Cuff"'
            ' startDate="2026-05-03 08:00:00 -0700" endDate="2026-05-03 08:00:00 -0700"/>\n',
            pressure("high", "80", "2026-05-03 08:10:00 -0700", copies=False),
        )
    )
    assert dict(out.rejects.select("_row", "reason_code").iter_rows()) == {
        0: "missing_value",
        1: "invalid_value",
        4: "invalid_time_frame",
        5: "invalid_time_frame",
        6: "invalid_time_frame",
        8: "missing_value",
        9: "invalid_value",
    }
    normalized, rejects = normalize_units(out.readings)
    assert dict(rejects.select("_row", "reason_code").iter_rows()) == {
        2: "non_finite_value",
        3: "non_finite_value",
        7: "unknown_unit",
    }
    assert normalized.is_empty()


# --- discovery, ingest and the device build --------------------------------------------------------------
ENROLMENT = (
    "vendor,vendor_user_id,device_id,device_type,patient_source,patient_id,enrolled_on,unenrolled_on\n"
    f"apple_health,{USER},iphone,weight_scale,ehr_a,p1,2016-01-01,\n"
)


def _landing(root: Path) -> Path:
    landing = root / "landing"
    source = landing / "apple"
    (source / USER).mkdir(parents=True)
    (source / "source.yaml").write_text("format: apple_health_export\n")
    future = record("HeartRate", "count/min", "64", "3000-01-01 08:00:00 +0000", source="Watch")
    inverted = pressure("70", "90", "2026-05-05 08:00:00 -0700", copies=False)
    export = several_metrics().replace(b"</HealthData>", (future + inverted).encode() + b"</HealthData>")
    (source / USER / "export.zip").write_bytes(zipped(export))
    unpacked = source / "ah-person-2" / "apple_health_export"
    (unpacked / "electrocardiograms").mkdir(parents=True)
    (unpacked / "eksport.xml").write_bytes(body(record("BodyMass", "kg", "70", "2026-05-03 08:00:00 +0100")))
    (unpacked / "export_cda.xml").write_bytes(b"<?xml version='1.0'?><ClinicalDocument/>")
    (unpacked / "electrocardiograms" / "ecg_2026-05-03.csv").write_bytes(b"Name,Zorblax\n")
    (root / "outside.xml").write_bytes(body(record("BodyMass", "kg", "70", "2026-05-03 08:00:00 +0100")))
    os.symlink(root / "outside.xml", source / USER / "linked_out.xml")  # a link out: refused
    os.symlink(source / USER / "export.zip", source / "ah-person-3.zip")  # inside, but no person folder
    enrolment = landing / "enrolment"
    enrolment.mkdir()
    (enrolment / "source.yaml").write_text("format: device_enrolment\n")
    (enrolment / "enrolment.csv").write_text(ENROLMENT)
    return landing


def test_discovery_reads_the_export_of_each_person_folder(tmp_path: Path) -> None:
    plan = d.discover(UPath(_landing(tmp_path)))
    planned = {f.relative: (f.format, f.folder_user) for f in plan.files if f.source == "apple"}
    assert planned == {
        f"apple/{USER}/export.zip": ("apple_health_export", USER),
        "apple/ah-person-2/apple_health_export/eksport.xml": ("apple_health_export", "ah-person-2"),
        "apple/ah-person-3.zip": ("apple_health_export", None),
    }
    not_read = {n.relative: (n.status, n.reason) for n in plan.not_read if n.source == "apple"}
    assert not_read["apple/ah-person-2/apple_health_export/export_cda.xml"][0] == "skipped"
    assert "clinical-document copy" in not_read["apple/ah-person-2/apple_health_export/export_cda.xml"][1]
    ecg = not_read["apple/ah-person-2/apple_health_export/electrocardiograms/ecg_2026-05-03.csv"]
    assert ecg[0] == "skipped" and "not an Apple Health export" in ecg[1]
    assert not_read[f"apple/{USER}/linked_out.xml"][0] == "refused"


def test_an_export_through_ingest_and_the_device_build(tmp_path: Path) -> None:
    landing, lake = _landing(tmp_path), UPath(tmp_path / "lake")
    report = ingest_landing(UPath(landing), lake, buckets=2, workers=1)
    assert report.unbalanced_files == 0
    log = read_table(lake, "bronze", "ingest_log").filter(pl.col("source") == "apple")
    export = log.filter(pl.col("file") == f"apple/{USER}/export.zip").row(0, named=True)
    detail = orjson.loads(export["detail"])
    assert export["records_in"] == export["records_bronze"] == 12  # 10 + the future and inverted readings
    assert detail["elements"] == export["records_in"] + detail["skipped"] == 22
    assert log.filter(pl.col("file") == "apple/ah-person-3.zip")["records_quarantined"].to_list() == [1]
    for key in patient_bucket_keys(2):
        build_device_partition(lake, key, 2, date(2026, 6, 1))
    readings = read_table(lake, SILVER, DEVICE_READING).filter(pl.col("source") == "apple")
    mine = readings.filter(pl.col("vendor_user_id") == USER)
    assert set(mine["link_method"]) == {"enrolment_user"} and set(mine["patient_id"]) == {"p1"}
    assert mine.height == 13  # 11 readings and the inverted pair; the future one is a reject
    spo2 = mine.filter(pl.col("metric") == "oxygen_saturation")
    assert spo2.select("value", "unit").row(0) == (pytest.approx(97.0), "%")
    inverted = mine.filter(pl.col("effective_start") == utc(2026, 5, 5, 15))
    assert set(inverted["implausible_reason"]) == {"systolic_not_above_diastolic"}
    assert set(readings.filter(pl.col("vendor_user_id") == "ah-person-2")["link_method"]) == {"unlinked"}
    rejects = read_table(lake, SILVER, DEVICE_READING_REJECTS).filter(pl.col("source") == "apple")
    assert rejects["reason_code"].to_list() == ["future_date"]
    assert not readings["device_id"].drop_nulls().str.contains("1950-01-01").any()


def test_a_second_export_of_the_same_person_adds_uploads_not_readings(tmp_path: Path) -> None:
    """Exports are cumulative: the next one repeats every earlier record."""
    landing, lake = _landing(tmp_path), UPath(tmp_path / "lake")
    ingest_landing(UPath(landing), lake, buckets=2, workers=1)
    later = several_metrics().replace(
        b"</HealthData>",
        record("BodyMass", "kg", "81", "2026-05-20 08:00:00 +0000").encode() + b"</HealthData>",
    )
    with zipfile.ZipFile(landing / "apple" / USER / "export-2.zip", "w") as archive:
        archive.writestr("apple_health_export/export.xml", later)
    ingest_landing(UPath(landing), lake, buckets=2, workers=1)
    for key in patient_bucket_keys(2):
        build_device_partition(lake, key, 2, date(2026, 6, 1))
    mine = read_table(lake, SILVER, DEVICE_READING).filter(pl.col("vendor_user_id") == USER)
    assert mine.height == 14  # the 13 of the first export and the new weight
    assert mine.filter(pl.col("uploads") == 2).height == 11  # the repeated readings, received twice
