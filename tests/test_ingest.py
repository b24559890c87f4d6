"""Landing → bronze end to end: accounting, idempotence, crash safety, buckets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import polars as pl
import pytest
from upath import UPath

from pipelines.bronze import discovery as d
from pipelines.bronze import writer as writer_module
from pipelines.bronze.accounting import accounting_discrepancies, duplicate_ingests
from pipelines.bronze.ingest import ingest_landing
from pipelines.bronze.tables import BRONZE, FHIR_RESOURCES, INGEST_LOG, QUARANTINE
from pipelines.buckets import bucket_of
from pipelines.lake import parquet_files, read_table
from tests.conftest import observation, patient, write_ndjson


def build_landing(root: Path) -> None:
    ehr = root / "ehr_a"
    write_ndjson(ehr / "Patient.000.ndjson", [patient(f"p{i}") for i in range(30)] + [b"{bad"])
    write_ndjson(
        ehr / "Observation.000.ndjson",
        [observation(f"o{i}", f"p{i % 30}") for i in range(90)] + [observation("orphan", "ghost")],
    )
    write_ndjson(ehr / "Practitioner.000.ndjson", [{"resourceType": "Practitioner", "id": "dr1"}])
    body = {
        "transactionTime": "2026-06-30T23:00:00Z",
        "output": [{"type": t, "url": f"{t}.000.ndjson"} for t in ("Patient", "Observation", "Practitioner")],
        "deleted": [],
        "error": [{"type": "OperationOutcome", "url": "error/OperationOutcome.000.ndjson"}],
    }
    (ehr / "manifest.json").write_bytes(orjson.dumps(body))
    outcome = {
        "resourceType": "OperationOutcome",
        "id": "e1",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": "Media export timed out"}],
    }
    write_ndjson(ehr / "error" / "OperationOutcome.000.ndjson", [outcome])
    write_ndjson(
        root / "service_center" / "conversations.000.ndjson",
        [
            {
                "conversation_id": "c1",
                "patient_source": "ehr_a",
                "patient_reference": "Patient/p3",
                "turns": [],
            }
        ],
    )


def bronze_snapshot(lake: UPath) -> dict[str, pl.DataFrame]:
    tables = {}
    for table in ("fhir_resources", "feedback_records", "quarantine", "ingest_log"):
        frame = read_table(lake, "bronze", table)
        drop = [c for c in ("ingest_run_id", "started_at", "finished_at") if c in frame.columns]
        tables[table] = frame.drop(drop).sort(pl.all().exclude("raw").cast(pl.String), nulls_last=True)
    return tables


def test_ingest_accounts_for_every_record(landing: UPath, lake: UPath) -> None:
    build_landing(Path(landing))
    report = ingest_landing(landing, lake, buckets=8)
    assert report.unbalanced_files == 0
    assert report.records_in == 31 + 91 + 1 + 1 + 1
    assert report.quarantine_by_reason == {"invalid_json": 1, "unknown_patient_reference": 1}
    assert accounting_discrepancies(lake).is_empty()
    log = read_table(lake, "bronze", "ingest_log")
    assert log.filter(pl.col("format") == "bulk_manifest")["manifest_transaction_time"].to_list() == [
        "2026-06-30T23:00:00Z"
    ]
    errors = log.filter(pl.col("format") == "fhir_error_ndjson")["manifest_errors"].to_list()
    assert orjson.loads(errors[0]) == ["Media export timed out"]


def test_buckets_are_the_stable_hash_of_the_patient_key(landing: UPath, lake: UPath) -> None:
    build_landing(Path(landing))
    ingest_landing(landing, lake, buckets=8)
    fhir = read_table(lake, "bronze", "fhir_resources")
    with_patient = fhir.filter(pl.col("patient_key").is_not_null())
    expected = [bucket_of("ehr_a", k, 8) for k in with_patient["patient_key"].to_list()]
    assert with_patient["bucket"].to_list() == expected
    assert set(fhir.filter(pl.col("patient_key").is_null())["bucket"].to_list()) == {"shared"}
    feedback = read_table(lake, "bronze", "feedback_records")
    assert feedback["bucket"].to_list() == [bucket_of("ehr_a", "Patient/p3", 8)]  # same bucket as the patient


def test_rerun_is_a_no_op_and_bronze_is_identical(landing: UPath, lake: UPath) -> None:
    build_landing(Path(landing))
    ingest_landing(landing, lake, buckets=8)
    before = bronze_snapshot(lake)
    files_before = sorted(str(p) for p in parquet_files(lake / "bronze"))
    again = ingest_landing(landing, lake, buckets=8)
    assert again.files_ingested == 0 and again.files_skipped_duplicate == 6
    assert sorted(str(p) for p in parquet_files(lake / "bronze")) == files_before
    for table, frame in bronze_snapshot(lake).items():
        assert frame.equals(before[table]), table


def test_same_content_under_another_name_is_not_ingested_twice(landing: UPath, lake: UPath) -> None:
    build_landing(Path(landing))
    ingest_landing(landing, lake, buckets=8)
    copy = Path(landing) / "service_center" / "conversations.copy.ndjson"
    copy.write_bytes((Path(landing) / "service_center" / "conversations.000.ndjson").read_bytes())
    report = ingest_landing(landing, lake, buckets=8)
    assert report.files_ingested == 0 and report.files_skipped_duplicate == 7
    assert duplicate_ingests(lake) == 0


def test_a_new_export_references_patients_ingested_before(landing: UPath, lake: UPath) -> None:
    build_landing(Path(landing))
    ingest_landing(landing, lake, buckets=8)
    write_ndjson(Path(landing) / "ehr_a_incremental" / "Observation.ndjson", [observation("later", "p1")])
    report = ingest_landing(landing, lake, buckets=8)
    # a different source folder has its own id space: p1 is unknown there
    assert report.quarantine_by_reason == {"unknown_patient_reference": 1}
    write_ndjson(Path(landing) / "ehr_a" / "Observation.001.ndjson", [observation("later-a", "p1")])
    manifest = orjson.loads((Path(landing) / "ehr_a" / "manifest.json").read_bytes())
    manifest["output"].append({"type": "Observation", "url": "Observation.001.ndjson"})
    (Path(landing) / "ehr_a" / "manifest.json").write_bytes(orjson.dumps(manifest))
    report = ingest_landing(landing, lake, buckets=8)
    assert report.rows["fhir_resources"] == 1 and not report.quarantine_by_reason


def test_a_crash_before_the_commit_leaves_nothing_visible(
    landing: UPath, lake: UPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_landing(Path(landing))
    real_write = writer_module.write_parquet_atomic

    def crash_on_log(frame, path, **options):  # the ingest_log part is the commit: die just before it
        if "ingest_log" in str(path):
            raise KeyboardInterrupt("killed")
        real_write(frame, path, **options)

    monkeypatch.setattr(writer_module, "write_parquet_atomic", crash_on_log)
    with pytest.raises(KeyboardInterrupt):
        ingest_landing(landing, lake, buckets=8)
    assert parquet_files(lake / "bronze" / "fhir_resources")  # parts were written …
    monkeypatch.setattr(writer_module, "write_parquet_atomic", real_write)
    report = ingest_landing(landing, lake, buckets=8)
    assert report.rolled_back_batches == 1  # … and rolled back before the re-run
    assert report.files_ingested == 6
    assert accounting_discrepancies(lake).is_empty()
    fhir = read_table(lake, "bronze", "fhir_resources")
    assert fhir.height == fhir.select("file_sha256", "line").n_unique()


def test_batches_and_threads_do_not_change_bronze(landing: UPath, lake: UPath, tmp_path: Path) -> None:
    build_landing(Path(landing))
    ingest_landing(landing, lake, buckets=8, workers=1)
    other = UPath(tmp_path / "lake-small-batches")
    ingest_landing(landing, other, buckets=8, batch_rows=10, workers=4)
    assert len(parquet_files(other / "bronze" / "ingest_log")) > 1
    first, second = bronze_snapshot(lake), bronze_snapshot(other)
    for table in first:
        assert first[table].equals(second[table]), table


def test_accounting_check_sees_a_lost_part(landing: UPath, lake: UPath) -> None:
    build_landing(Path(landing))
    ingest_landing(landing, lake, buckets=8)
    victim = next(
        p for p in parquet_files(lake / "bronze" / "fhir_resources") if "bucket=shared" not in str(p)
    )
    victim.unlink()
    assert not accounting_discrepancies(lake).is_empty()


def test_identical_payloads_of_two_vendor_users_are_both_ingested(landing: UPath, lake: UPath) -> None:
    payload = orjson.dumps({"BPDataList": [{"DataID": "same", "HP": 120, "LP": 80}], "BPUnit": 0})
    for user in ("user-a", "user-b"):
        folder = Path(landing) / "devices_ihealth" / user
        folder.mkdir(parents=True)
        (folder / "bp.json").write_bytes(payload)
    report = ingest_landing(landing, lake, buckets=8)
    assert report.files_ingested == 2 and report.files_skipped_duplicate == 0
    devices = read_table(lake, "bronze", "device_records")
    assert sorted(devices["patient_key"].to_list()) == ["user-a", "user-b"]
    assert accounting_discrepancies(lake).is_empty() and duplicate_ingests(lake) == 0
    assert ingest_landing(landing, lake, buckets=8).files_skipped_duplicate == 2


def test_a_reader_failure_quarantines_the_file_and_the_run_goes_on(
    landing: UPath, lake: UPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_landing(Path(landing))
    from pipelines.bronze import ingest as ingest_module

    def broken_reader(landing_file, data, known):
        raise ValueError(f"boom with content {data[:20]!r}")

    monkeypatch.setitem(ingest_module.READERS, d.CONVERSATIONS, broken_reader)
    report = ingest_landing(landing, lake, buckets=8)
    assert report.quarantine_by_reason["reader_error"] == 1
    quarantine = read_table(lake, "bronze", "quarantine").filter(pl.col("reason_code") == "reader_error")
    assert quarantine["target_table"].to_list() == ["feedback_records"]
    assert "ValueError" in quarantine["reason"][0] and "content" not in quarantine["reason"][0]
    original = Path(landing) / "service_center" / "conversations.000.ndjson"
    assert quarantine["raw"][0] == original.read_bytes()  # the whole file, byte for byte
    assert accounting_discrepancies(lake).is_empty()


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the landing files the readers are given (the reads still happen)."""
    import pipelines.bronze.ingest as ingest_module

    seen: list[str] = []
    real = ingest_module.read_unit

    def counting(unit, known, ingested):
        seen.extend(f.relative for f in unit)
        return real(unit, known, ingested)

    monkeypatch.setattr(ingest_module, "read_unit", counting)
    return seen


def test_unchanged_files_are_not_read_again(
    landing: UPath, lake: UPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_landing(Path(landing))
    ingest_landing(landing, lake, buckets=8)
    before = bronze_snapshot(lake)
    reads = _count_reads(monkeypatch)
    again = ingest_landing(landing, lake, buckets=8)
    assert reads == [] and again.files_skipped_duplicate == 6 and again.files_ingested == 0
    for table, frame in bronze_snapshot(lake).items():
        assert frame.equals(before[table]), table


def test_a_file_changed_in_place_or_touched_is_read_again(
    landing: UPath, lake: UPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_landing(Path(landing))
    ingest_landing(landing, lake, buckets=8)
    reads = _count_reads(monkeypatch)
    practitioner = Path(landing) / "ehr_a" / "Practitioner.000.ndjson"
    stat = practitioner.stat()
    # same size, same modification time as recorded: what the quick check trusts (documented)
    practitioner.write_bytes(practitioner.read_bytes().replace(b"dr1", b"dr2"))
    os.utime(practitioner, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert ingest_landing(landing, lake, buckets=8).files_ingested == 0 and reads == []
    # a later modification time: read and hashed again, and its new content ingested
    os.utime(practitioner, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    changed = ingest_landing(landing, lake, buckets=8)
    assert reads == ["ehr_a/Practitioner.000.ndjson"] and changed.files_ingested == 1
    # touched without a change of content: read, hashed, and skipped as already ingested
    reads.clear()
    patients = Path(landing) / "ehr_a" / "Patient.000.ndjson"
    os.utime(patients, ns=(patients.stat().st_atime_ns, patients.stat().st_mtime_ns + 1_000_000_000))
    touched = ingest_landing(landing, lake, buckets=8)
    assert reads == ["ehr_a/Patient.000.ndjson"] and touched.files_ingested == 0
    assert touched.files_skipped_duplicate == 6
    assert accounting_discrepancies(lake).is_empty() and duplicate_ingests(lake) == 0


def test_files_whose_content_bronze_lost_are_read_again_and_a_damaged_index_costs_only_reads(
    landing: UPath, lake: UPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_landing(Path(landing))
    ingest_landing(landing, lake, buckets=8)
    before = bronze_snapshot(lake)
    index = Path(lake) / "bronze" / "_landing_index.parquet"
    assert pl.read_parquet(index).height == 6
    saved = index.read_bytes()
    shutil.rmtree(Path(lake) / "bronze")  # bronze lost, the index restored: no ingest log vouches for it
    index.parent.mkdir(parents=True)
    index.write_bytes(saved)
    rebuilt = ingest_landing(landing, lake, buckets=8)
    assert rebuilt.files_ingested == 6
    for table, frame in bronze_snapshot(lake).items():
        assert frame.equals(before[table]), table
    index.write_bytes(b"not parquet")
    reads = _count_reads(monkeypatch)
    report = ingest_landing(landing, lake, buckets=8)
    assert len(reads) == 6 and report.files_ingested == 0 and report.files_skipped_duplicate == 6
    assert pl.read_parquet(index).height == 6  # rewritten whole


# issue 25: quarantined records released when their Patient arrives ------------------------------------
def test_records_quarantined_for_want_of_their_patient_are_released_when_it_arrives(
    landing: UPath, lake: UPath
) -> None:
    from pipelines import incremental as inc
    from pipelines.silver.build import build_partition, partition_keys

    root = Path(landing) / "ehr"
    write_ndjson(root / "observations.ndjson", [observation("o1", "p1"), observation("o2", "p1")])
    first = ingest_landing(landing, lake, buckets=2)
    assert first.quarantine_by_reason["unknown_patient_reference"] == 2 and first.records_released == 0
    processed = inc.ingested_keys(lake)

    write_ndjson(root / "patients.ndjson", [patient("p1")])
    second = ingest_landing(landing, lake, buckets=2)
    assert second.records_released == 2 and second.files_ingested == 1
    bronze = read_table(lake, BRONZE, FHIR_RESOURCES)
    assert sorted(bronze["resource_id"].to_list()) == ["o1", "o2", "p1"]
    assert set(bronze.filter(pl.col("resource_type") == "Observation")["file"]) == {"ehr/observations.ndjson"}
    log = read_table(lake, BRONZE, INGEST_LOG)
    released = log.filter(pl.col("status") == "released")
    assert released.select("file", "records_in", "records_bronze", "records_quarantined").rows() == [
        ("ehr/observations.ndjson", 0, 2, -2)
    ]
    assert log["records_in"].sum() == log["records_bronze"].sum() + log["records_quarantined"].sum() == 3
    assert accounting_discrepancies(lake).is_empty() and duplicate_ingests(lake) == 0
    from pipelines.lake_summary import quarantine_by_reason

    assert quarantine_by_reason(lake).select("reason_code", "records", "released").rows() == [
        ("unknown_patient_reference", 2, 2)
    ]
    # the released rows' bucket counts as changed for incremental runs and downstream assets
    bucket = bronze.filter(pl.col("resource_id") == "o1")["bucket"][0]
    assert bucket in second.buckets_touched(FHIR_RESOURCES)
    assert bucket in inc.unprocessed_buckets(lake, processed)[FHIR_RESOURCES]
    for key in partition_keys(2):
        build_partition(lake, key)
    silver = pl.read_parquet(str(Path(lake) / "silver" / "observation" / "**" / "*.parquet"))
    assert sorted(silver["id"].to_list() if "id" in silver.columns else silver["resource_id"].to_list()) == [
        "o1",
        "o2",
    ]

    third = ingest_landing(landing, lake, buckets=2)
    assert (third.records_released, third.files_ingested, third.touched) == (0, 0, set())
    assert read_table(lake, BRONZE, INGEST_LOG).height == log.height
    assert accounting_discrepancies(lake).is_empty() and duplicate_ingests(lake) == 0


def test_a_patient_file_not_named_patient_is_read_first(landing: UPath, lake: UPath) -> None:
    root = Path(landing) / "ehr"
    write_ndjson(root / "observations.ndjson", [observation("o1", "p1")])
    write_ndjson(root / "people.ndjson", [patient("p1")])
    report = ingest_landing(landing, lake, buckets=2)
    assert report.rows[QUARANTINE] == 0 and report.records_released == 0
