"""Bronze ingest of real exports: exact accounting and resolved references."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import polars as pl
from upath import UPath

from pipelines.bronze.accounting import accounting_discrepancies
from pipelines.bronze.ingest import ingest_landing
from pipelines.lake import read_table


def non_blank_lines(path: Path) -> int:
    return sum(1 for line in path.read_bytes().split(b"\n") if line.strip())


def test_fhir_bulk_10_patients(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "fhir-bulk-10-patients"
    landing = tmp_path / "landing"
    landing.mkdir()
    # copied, not linked: a source folder that is a link leading out of the landing folder is refused
    shutil.copytree(source, landing / "bulk10")
    lake = UPath(tmp_path / "lake")
    report = ingest_landing(UPath(landing), lake, buckets=16)

    expected_lines = {f"bulk10/{p.name}": non_blank_lines(p) for p in source.glob("*.ndjson")}
    everything = read_table(lake, "bronze", "ingest_log")
    log = everything.filter(pl.col("status") == "ingested")
    assert dict(zip(log["file"], log["records_in"], strict=True)) == expected_lines
    # the licence and the README shipped beside the data are listed as skipped, not read
    skipped = everything.filter(pl.col("status") == "skipped")
    assert sorted(skipped["file"]) == ["bulk10/LICENSE.apache2", "bulk10/README.md"]
    assert report.records_in == sum(expected_lines.values())
    assert accounting_discrepancies(lake).is_empty()
    # the export client's event log is not FHIR: its 4 lines are quarantined, nothing else is
    quarantine = read_table(lake, "bronze", "quarantine")
    assert quarantine["file"].unique().to_list() == ["bulk10/log.ndjson"]
    assert quarantine["reason_code"].unique().to_list() == ["missing_resource_type"]
    fhir = read_table(lake, "bronze", "fhir_resources")
    assert fhir.select("file_sha256", "line").n_unique() == fhir.height  # each line once
    patients = set(fhir.filter(pl.col("resource_type") == "Patient")["patient_key"].to_list())
    assert len(patients) == 13
    referenced = set(fhir["patient_key"].drop_nulls().to_list())
    assert referenced == patients
    per_type = fhir.group_by("resource_type").agg(pl.col("patient_key").null_count().alias("nulls"), pl.len())
    clinical = per_type.filter(
        pl.col("resource_type").is_in(["Condition", "Encounter", "Procedure", "Immunization"])
    )
    assert clinical["nulls"].sum() == 0


def test_bulk_manifest_example_as_delivered(shared_data: Path, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    shutil.copytree(shared_data / "bulk-manifest-example", landing / "example")
    lake = UPath(tmp_path / "lake")
    report = ingest_landing(UPath(landing), lake, buckets=16)
    # every url is on example.com and none of those files was downloaded: all five are reported missing,
    # the Patient file beside the manifest is not listed and so not read, and nothing is fetched
    assert report.manifest_missing == 5 and report.manifest_refused == 0
    assert report.files_unlisted == 1 and report.records_in == 0
    log = read_table(lake, "bronze", "ingest_log").filter(pl.col("status") != "skipped")
    detail = orjson.loads(log.filter(pl.col("format") == "bulk_manifest")["detail"][0])
    assert len(detail["missing"]) == 5 and detail["unlisted_files"] == ["example/patients.ndjson"]
    assert log["manifest_transaction_time"].to_list() == ["2021-01-01T00:00:00Z"]


def test_bulk_manifest_example_with_its_output_downloaded(shared_data: Path, tmp_path: Path) -> None:
    source = tmp_path / "landing" / "example"
    source.mkdir(parents=True)
    shutil.copy(shared_data / "bulk-manifest-example" / "bulk_export_response.json", source / "manifest.json")
    shutil.copy(shared_data / "bulk-manifest-example" / "patients.ndjson", source / "patient_file_1.ndjson")
    lake = UPath(tmp_path / "lake")
    report = ingest_landing(UPath(tmp_path / "landing"), lake, buckets=16)
    assert report.manifest_missing == 4
    fhir = read_table(lake, "bronze", "fhir_resources")
    assert fhir.height == non_blank_lines(source / "patient_file_1.ndjson") == 3
    assert set(fhir["file"].to_list()) == {"example/patient_file_1.ndjson"}
    assert accounting_discrepancies(lake).is_empty()


def test_synthea_79_patient_bundles(synthea_bundles: Path, tmp_path: Path) -> None:
    bundles = sorted(synthea_bundles.rglob("*.json"))
    entries = {p: len(orjson.loads(p.read_bytes()).get("entry", [])) for p in bundles}
    lake = UPath(tmp_path / "lake")
    report = ingest_landing(UPath(synthea_bundles), lake, buckets=16)
    assert report.records_in == sum(entries.values())
    assert report.rows["quarantine"] == 0
    assert accounting_discrepancies(lake).is_empty()
    fhir = read_table(lake, "bronze", "fhir_resources")
    assert fhir.height == sum(entries.values())
    assert fhir.select("file_sha256", "entry").n_unique() == fhir.height  # each entry once
    # every urn:uuid reference pointed inside its Bundle, so none may remain
    assert fhir.filter(pl.col("raw").str.contains('"reference":"urn:uuid:', literal=True)).is_empty()
    observations = fhir.filter(pl.col("resource_type") == "Observation")
    assert observations["patient_key"].null_count() == 0
    patients = set(fhir.filter(pl.col("resource_type") == "Patient")["patient_key"].to_list())
    assert len(patients) == 79
    assert set(fhir["patient_key"].drop_nulls().to_list()) == patients
