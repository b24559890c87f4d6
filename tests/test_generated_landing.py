"""The generator's landing folder through bronze: every injected defect is quarantined with its reason."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import orjson
import polars as pl
import pytest
from upath import UPath

from assets.bronze.assets import bronze_ingest
from assets.resources import LakeResource
from assets.silver.assets import silver_tables
from pipelines.bronze.accounting import accounting_discrepancies
from pipelines.bronze.ingest import ingest_landing
from pipelines.definitions import ASSET_CHECKS
from pipelines.generate import generate_landing
from pipelines.lake import read_table


@pytest.fixture(scope="module")
def defective(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, UPath]:
    """120 people with 5 % defects, generated and ingested once for the module."""
    root = tmp_path_factory.mktemp("defective")
    generate_landing(root / "landing", 120, seed=11, defects=0.05)
    lake = UPath(root / "lake")
    report = ingest_landing(UPath(root / "landing"), lake, buckets=16)
    assert report.unbalanced_files == 0
    return root / "landing", root / "ground_truth", lake


def test_every_defect_is_quarantined_with_its_expected_reason(defective: tuple[Path, Path, UPath]) -> None:
    _, truth, lake = defective
    defects = pl.read_csv(truth / "defects.csv", schema_overrides={"line": pl.Int64, "entry": pl.Int64})
    expected = defects.filter(pl.col("expected_reason") != "kept_newer_version")
    assert expected.height > 50  # the generator really injected defects of many kinds
    assert expected["expected_reason"].n_unique() >= 8
    quarantine = read_table(lake, "bronze", "quarantine").select("file", "line", "entry", "reason_code")
    matched = expected.join(quarantine, on=["file", "line", "entry"], how="left", nulls_equal=True)
    wrong = matched.filter(
        pl.col("reason_code").is_null() | (pl.col("reason_code") != pl.col("expected_reason"))
    )
    assert wrong.is_empty(), wrong.head(10)
    unexpected = quarantine.join(expected, on=["file", "line", "entry"], how="anti", nulls_equal=True)
    assert unexpected.is_empty(), unexpected.head(10)  # nothing valid was quarantined


def test_newer_versions_are_kept_beside_the_originals(defective: tuple[Path, Path, UPath]) -> None:
    _, truth, lake = defective
    duplicates = orjson.loads((truth / "summary.json").read_bytes())["duplicate_versions"]
    assert duplicates
    fhir = read_table(lake, "bronze", "fhir_resources")
    versions = fhir.group_by("resource_type", "resource_id").agg(pl.col("version_id").sort())
    by_key = {(r, i): v for r, i, v in versions.iter_rows()}
    for duplicate in duplicates:
        assert by_key[(duplicate["type"], duplicate["id"])] == sorted(duplicate["versions"])


def test_counts_add_up_per_file(defective: tuple[Path, Path, UPath]) -> None:
    _, truth, lake = defective
    summary = orjson.loads((truth / "summary.json").read_bytes())
    log = read_table(lake, "bronze", "ingest_log").filter(pl.col("format") != "bulk_manifest")
    assert dict(zip(log["file"], log["records_in"], strict=True)) == summary["files"]
    assert accounting_discrepancies(lake).is_empty()
    deleted = read_table(lake, "bronze", "fhir_resources").filter(pl.col("operation") == "delete")
    assert sorted(deleted.select("resource_type", "resource_id").rows()) == sorted(
        (d["type"], d["id"]) for d in summary["deleted_ids"]
    )


def test_links_from_devices_and_conversations_reach_the_patients(defective: tuple[Path, Path, UPath]) -> None:
    _, _, lake = defective
    fhir = read_table(lake, "bronze", "fhir_resources")
    patients = fhir.filter(pl.col("resource_type") == "Patient").select("source", "patient_key", "bucket")
    feedback = read_table(lake, "bronze", "feedback_records")
    linked = feedback.join(
        patients, left_on=["patient_source", "patient_key"], right_on=["source", "patient_key"], how="inner"
    )
    assert linked.height == feedback.height > 0
    assert (linked["bucket"] == linked["bucket_right"]).all()  # a conversation sits in its patient's bucket


def test_pipeline_assets_materialize_on_generated_data(tmp_path: Path) -> None:
    generate_landing(tmp_path / "landing", 40, seed=5)
    resource = LakeResource(landing=str(tmp_path / "landing"), lake=str(tmp_path / "lake"), buckets=16)
    bronze = [bronze_ingest, *ASSET_CHECKS]
    result = dg.materialize(bronze, resources={"lake": resource}, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    fhir = next(
        m.materialization.metadata
        for m in result.get_asset_materialization_events()
        if m.asset_key.path[-1] == "fhir_resources"
    )
    touched = fhir["buckets_touched"].value.split(",")
    assert "shared" in touched and len(touched) > 5
    silver = dg.materialize(
        [bronze_ingest, silver_tables],
        selection=dg.AssetSelection.groups("silver"),
        resources={"lake": resource},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert silver.success
    rows = {
        m.asset_key.path[-1]: m.materialization.metadata["rows"].value
        for m in silver.get_asset_materialization_events()
        if "rows" in m.materialization.metadata
    }
    assert rows and all(count >= 0 for count in rows.values())
    again = dg.materialize(bronze, resources={"lake": resource}, instance=dg.DagsterInstance.ephemeral())
    log = next(
        m.materialization.metadata
        for m in again.get_asset_materialization_events()
        if m.asset_key.path[-1] == "ingest_log"
    )
    assert log["files_ingested"].value == 0  # the re-run finds nothing new
