"""The Dagster wiring: bronze assets and checks materialize, the sensor reacts, the location loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import orjson
import pytest
from upath import UPath

from assets.bronze.assets import bronze_ingest
from assets.bronze.checks import (
    ACCOUNTING_BALANCED,
    FHIR_SAMPLE_VALID,
    accounting_balanced,
    fhir_sample_valid,
    files_ingested_once,
    quarantine_has_reasons,
)
from assets.resources import LakeResource
from pipelines.definitions import defs
from tests.conftest import observation, patient, write_ndjson

SECRET_NAME = "Philomena-Metadata-Probe"


def small_landing(root: Path) -> None:
    write_ndjson(root / "ehr_a" / "Patient.000.ndjson", [patient("p1", family=SECRET_NAME), b"{oops"])
    write_ndjson(
        root / "ehr_a" / "Observation.000.ndjson", [observation("o1", "p1"), observation("o2", "p404")]
    )


def test_bronze_assets_and_checks_materialize(landing: UPath, lake: UPath) -> None:
    small_landing(Path(landing))
    resource = LakeResource(landing=str(landing), lake=str(lake), buckets=4)
    result = dg.materialize(
        [bronze_ingest, accounting_balanced, files_ingested_once, quarantine_has_reasons, fhir_sample_valid],
        resources={"lake": resource},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == {
        ACCOUNTING_BALANCED,
        "files_ingested_once",
        "quarantine_has_reasons",
        FHIR_SAMPLE_VALID,
    }
    assert all(e.passed for e in evaluations)
    materializations = result.get_asset_materialization_events()
    assert len(materializations) == 6  # fhir, device, feedback, outreach events, quarantine, ingest_log
    everything = repr([m.materialization.metadata for m in materializations]) + repr(
        [e.metadata for e in evaluations]
    )
    assert SECRET_NAME not in everything and "p404" not in everything  # counts only, no record content
    log = next(m for m in materializations if m.asset_key.path[-1] == "ingest_log").materialization.metadata
    assert log["records_in"].value == 4 and log["rows_quarantine"].value == 2


def test_sampled_validation_warns_about_malformed_elements(landing: UPath, lake: UPath) -> None:
    drifted = [patient(f"p{i}", family=SECRET_NAME, birthDate=19700101 + i) for i in range(20)]
    write_ndjson(Path(landing) / "ehr_a" / "Patient.000.ndjson", drifted)
    resource = LakeResource(landing=str(landing), lake=str(lake), buckets=4)
    result = dg.materialize(
        [bronze_ingest, fhir_sample_valid],
        resources={"lake": resource},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success  # a warning, not a failed run: the records are in bronze and in the lake
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["resources_invalid"].value == 20
    problems = repr(evaluation.metadata["top_problems"].value)
    assert "birthDate" in problems and SECRET_NAME not in problems and "19700101" not in problems


def test_sensor_requests_a_run_only_when_landing_changes(landing: UPath, lake: UPath) -> None:
    landing_sensor = defs.resolve_sensor_def("landing_sensor")
    resource = LakeResource(landing=str(landing), lake=str(lake))
    small_landing(Path(landing))
    first = landing_sensor(dg.build_sensor_context(resources={"lake": resource}))
    assert len(first.run_requests) == 1
    unchanged = landing_sensor(dg.build_sensor_context(cursor=first.cursor, resources={"lake": resource}))
    assert not unchanged.run_requests
    write_ndjson(Path(landing) / "ehr_a" / "Encounter.000.ndjson", [{"resourceType": "Encounter", "id": "e"}])
    changed = landing_sensor(dg.build_sensor_context(cursor=first.cursor, resources={"lake": resource}))
    assert len(changed.run_requests) == 1 and changed.cursor != first.cursor


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)
    assert {job.name for job in defs.resolve_all_job_defs()} >= {"pipeline_job", "deidentified_export_job"}
    assert defs.resolve_schedule_def("nightly_pipeline").cron_schedule == "0 2 * * *"
    assert defs.resolve_sensor_def("landing_sensor") is not None
    # every table the README promises is an asset of the code location
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    for table in (
        "silver/device_reading",
        "identity/person_link",
        "gold/patient_360",
        "gold/timeline",
        "gold/care_gaps",
        "gold/trigger_events",
        "gold/segment_membership",
        "exports/outreach_list",
        "deidentified/patient_360",
        "deidentified/device_daily",
    ):
        assert table in keys, table


def test_workspace_validates_with_the_dagster_cli(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    dagster = Path(sys.executable).parent / "dagster"
    completed = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "passed validation" in completed.stderr + completed.stdout


def test_command_line_ingest_runs_the_pipeline_and_reports(
    landing: UPath, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    monkeypatch.chdir(tmp_path)  # `exports` is relative: nothing lands in the working copy
    small_landing(Path(landing))
    env = {"DAGSTER_HOME": "", "PATIENT_INSIGHTS_BUCKETS": "4"}
    outcome = CliRunner().invoke(
        app,
        ["ingest", "--landing", str(landing), "--lake", str(tmp_path / "lake"), "--exports", "exports"],
        env=env,
    )
    assert outcome.exit_code == 0, outcome.output
    assert "fhir_resources" in outcome.output and "unknown_patient_reference" in outcome.output
    assert SECRET_NAME not in outcome.output
    assert (tmp_path / "lake" / "bronze" / "ingest_log").is_dir()
    records = list((tmp_path / "lake" / "meta" / "pipeline_runs").glob("*.json"))
    assert len(records) == 1
    record = orjson.loads(records[0].read_bytes())
    assert record["success"] is True and record["checks"]
    steps = [s["job"] for s in record["stages"]]
    assert steps[0] == "bronze_ingest" and steps.index("silver_tables") < steps.index("identity_tables")
    assert all(s["seconds"] >= 0 and s["status"] == "SUCCESS" for s in record["stages"])
    assert {"asset", "check", "passed", "severity"} == set(record["checks"][0])
    assert SECRET_NAME not in records[0].read_text()


# issue 25: a bad source.yaml refuses that source; the run goes on and says so ----------------------------
def test_a_refused_source_shows_in_the_bronze_metadata_and_the_run_succeeds(
    landing: UPath, lake: UPath
) -> None:
    small_landing(Path(landing))
    (Path(landing) / "typo").mkdir()
    (Path(landing) / "typo" / "source.yaml").write_text("format: fhirr\n")
    write_ndjson(Path(landing) / "typo" / "Patient.000.ndjson", [patient("t1", family=SECRET_NAME)])
    resource = LakeResource(landing=str(landing), lake=str(lake), buckets=4)
    result = dg.materialize(
        [bronze_ingest, accounting_balanced, files_ingested_once],
        resources={"lake": resource},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    log = next(
        m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "ingest_log"
    ).materialization.metadata
    refused = log["refused_sources"].value
    assert list(refused) == ["typo"] and "format must be one of" in refused["typo"]
    assert log["records_in"].value == 4  # ehr_a read in full, nothing of typo
    assert SECRET_NAME not in repr(log)


def test_the_exit_code_says_a_run_completed_with_sources_refused() -> None:
    from pipelines.run_record import EXIT_SOURCES_REFUSED, PipelineRun, exit_code, refused_sources

    refused = {"bronze/ingest_log": {"refused_sources": {"typo": "source.yaml of source typo: format ..."}}}
    assert exit_code(PipelineRun(True, "r", 1.0, [], [])) == 0
    assert exit_code(PipelineRun(True, "r", 1.0, [], [], assets=refused)) == EXIT_SOURCES_REFUSED == 3
    assert exit_code(PipelineRun(False, "r", 1.0, [], [], assets=refused)) == 1
    assert refused_sources(PipelineRun(True, "r", 1.0, [], [], assets=refused)) == {
        "typo": "source.yaml of source typo: format ..."
    }
