"""One declared job runs a pass: the command line, the schedule and the landing sensor launch the same
selection; a pass is one Dagster run whatever the bucket count; checks report per table per run; the
bucket count follows the data; the models are retrained only when it pays."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import orjson
import pytest
from upath import UPath

from assets.pipeline import PIPELINE_JOB
from assets.steps import INCREMENTAL, MODE_TAG
from models.registry import deployment, registry_of
from models.retraining import MAX_AGE_ENV, retraining_reason
from pipelines.config import Settings
from pipelines.generate.landing import generate_landing
from pipelines.layout import (
    BYTES_PER_BUCKET,
    BucketCountChanged,
    buckets_for_volume,
    lake_buckets,
    resolve_buckets,
)
from pipelines.run import run_pipeline

PEOPLE, SEED, AS_OF = 40, 11, date(2026, 6, 30)
MAX_RUNS_PER_PASS = 1


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("orchestration")
    generate_landing(root / "landing", PEOPLE, seed=SEED, as_of=AS_OF)
    with pytest.MonkeyPatch.context() as patch:  # hand-labelled texts: enough for a sentiment model
        patch.setenv(
            "PATIENT_INSIGHTS_SENTIMENT_LABELS", str(root / "ground_truth" / "conversation_turns.csv")
        )
        patch.delenv("PATIENT_INSIGHTS_WORKERS", raising=False)
        yield root


def _pass(root: Path, name: str, buckets: int | None, **options: object) -> tuple[object, dg.DagsterInstance]:
    """One pipeline pass on a fresh lake under `root/name`, recorded in a persistent instance there."""
    home = root / name / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    storage = {  # the event log `make setup` configures
        "module": "pipelines.dagster_storage",
        "class": "PooledSqliteEventLogStorage",
        "config": {"base_dir": str(home / "history" / "runs")},
    }
    with dg.instance_for_test(temp_dir=str(home), overrides={"event_log_storage": storage}) as instance:
        assert type(instance.event_log_storage).__name__ == "PooledSqliteEventLogStorage"
        import pipelines.run as launcher

        original = launcher.instance_for_runs
        launcher.instance_for_runs = lambda: instance
        try:
            settings = Settings(
                UPath(root / "landing"),
                UPath(root / name / "lake"),
                UPath(root / name / "exports"),
                buckets,
                AS_OF,
            )
            run = run_pipeline(settings, **options)
        finally:
            launcher.instance_for_runs = original
        runs = instance.get_runs()
        checks = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        materializations = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
    return run, {"runs": runs, "checks": len(checks), "materializations": len(materializations)}


def test_a_pass_is_one_run_and_its_events_follow_the_tables_not_the_buckets(generated: Path) -> None:
    one, counted_one = _pass(generated, "one_bucket", 1)
    four, counted_four = _pass(generated, "four_buckets", 4)
    assert one.success and four.success, (one.failed_checks, four.failed_checks)
    for counted in (counted_one, counted_four):
        assert len(counted["runs"]) <= MAX_RUNS_PER_PASS
        assert {r.job_name for r in counted["runs"]} == {PIPELINE_JOB}
    # one check evaluation per table per run, one materialization per table: the same with 4 buckets as 1
    assert counted_one["checks"] == counted_four["checks"]
    assert counted_one["materializations"] == counted_four["materializations"]
    silver = next(s for s in four.stages if s["job"] == "silver_tables")
    assert silver["buckets_rebuilt"] == 5  # 00..03 and shared, in the one step
    assert lake_buckets(UPath(generated / "four_buckets" / "lake")) == 4
    records = sorted((generated / "four_buckets" / "lake" / "meta" / "pipeline_runs").glob("*.json"))
    record = orjson.loads(records[-1].read_bytes())
    assert record["success"] and record["run_id"] == four.run_id and record["checks"]


def test_the_cli_the_schedule_and_the_sensor_run_the_same_job() -> None:
    from pipelines.definitions import PIPELINE_JOB_DEF, build_definitions

    defs = build_definitions()
    (schedule,) = defs.schedules
    (sensor,) = defs.sensors
    assert schedule.job_name == sensor.job_name == PIPELINE_JOB == PIPELINE_JOB_DEF.name
    assert schedule.tags[MODE_TAG] == INCREMENTAL
    job = defs.resolve_job_def(PIPELINE_JOB)
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    # the whole pass, landing to exports, and the run record last; the on-demand export is not in it
    assert {"bronze/ingest_log", "silver/patient", "identity/person_link", "gold/patient_360"} <= keys
    assert {"exports/outreach_list", "gold/campaign_effect", "meta/pipeline_run"} <= keys
    assert not any(k.startswith("deidentified/") for k in keys)


def test_the_sensor_asks_for_an_incremental_run_of_new_files(tmp_path: Path) -> None:
    from assets.resources import LakeResource
    from pipelines.definitions import build_definitions

    landing = tmp_path / "landing"
    (landing / "ehr_a").mkdir(parents=True)
    (landing / "ehr_a" / "Patient.000.ndjson").write_bytes(b"{}\n")
    resource = LakeResource(landing=str(landing), lake=str(tmp_path / "lake"))
    defs = build_definitions(resource)
    (sensor,) = defs.sensors
    with dg.build_sensor_context(resources={"lake": resource}) as context:
        result = sensor(context)
    (request,) = result.run_requests
    assert request.tags[MODE_TAG] == INCREMENTAL


def test_the_bucket_count_follows_the_volume_and_is_kept_per_lake(tmp_path: Path) -> None:
    assert buckets_for_volume(0) == 1
    assert buckets_for_volume(BYTES_PER_BUCKET) == 1
    assert buckets_for_volume(BYTES_PER_BUCKET + 1) == 2
    assert buckets_for_volume(100 * BYTES_PER_BUCKET) == 64
    landing, lake = UPath(tmp_path / "landing"), UPath(tmp_path / "lake")
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "a.ndjson").write_bytes(b"{}\n" * 100)
    assert lake_buckets(lake) is None
    assert resolve_buckets(lake, landing, None) == 1
    assert resolve_buckets(lake, landing, None) == 1 and resolve_buckets(lake, landing, 1) == 1
    with pytest.raises(BucketCountChanged, match="full rebuild"):
        resolve_buckets(lake, landing, 8)
    other = UPath(tmp_path / "other")
    assert resolve_buckets(other, landing, 8) == 8  # the setting decides a new lake's count
    assert lake_buckets(other) == 8


def test_a_lake_written_before_counts_were_recorded_keeps_its_bronze_layout(tmp_path: Path) -> None:
    lake = UPath(tmp_path / "lake")
    for bucket in ("00", "07", "shared"):
        (tmp_path / "lake" / "bronze" / "fhir_resources" / f"bucket={bucket}").mkdir(parents=True)
    assert lake_buckets(lake) == 16  # the fixed count of those days
    assert resolve_buckets(lake, UPath(tmp_path), None) == 16 and (tmp_path / "lake" / "meta").exists()


def test_models_are_retrained_only_when_it_pays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = UPath(tmp_path)
    assert retraining_reason(registry, "m", None, asked=False) == "no version is deployed yet"
    assert retraining_reason(registry, "m", "m-1", asked=True) == "retraining was asked for"
    assert "drift" in str(retraining_reason(registry, "m", "m-1", asked=False, drifted=["score"]))
    folder = tmp_path / "m"
    folder.mkdir()
    deployed_at = datetime(2026, 1, 1, tzinfo=UTC)
    (folder / "deployed.json").write_text(
        orjson.dumps({"version": "m-1", "deployed_at": deployed_at.isoformat()}).decode()
    )
    assert retraining_reason(registry, "m", "m-1", asked=False, now=deployed_at + timedelta(days=30)) is None
    old = retraining_reason(registry, "m", "m-1", asked=False, now=deployed_at + timedelta(days=91))
    assert old and "91 days old" in old
    monkeypatch.setenv(MAX_AGE_ENV, "200")
    assert retraining_reason(registry, "m", "m-1", asked=False, now=deployed_at + timedelta(days=91)) is None
    monkeypatch.setenv(MAX_AGE_ENV, "soon")
    with pytest.raises(ValueError, match=MAX_AGE_ENV):
        retraining_reason(registry, "m", "m-1", asked=False, now=deployed_at + timedelta(days=91))


def test_a_second_pass_scores_with_the_deployed_models_and_retrains_when_asked(generated: Path) -> None:
    lake = UPath(generated / "one_bucket" / "lake")
    if not lake.exists():
        _pass(generated, "one_bucket", 1)
    registry = registry_of(lake)
    before = deployment(registry, "sentiment")
    assert before is not None  # the first pass trained and deployed one
    versions = sorted(p.name for p in Path(registry).glob("*/*") if p.is_dir())
    settings = Settings(
        UPath(generated / "landing"),
        lake,
        UPath(generated / "one_bucket" / "exports"),
        None,
        AS_OF + timedelta(1),
    )
    kept = run_pipeline(settings)
    assert kept.success
    assert deployment(registry, "sentiment") == before  # a new as-of day alone retrains nothing
    assert sorted(p.name for p in Path(registry).glob("*/*") if p.is_dir()) == versions
    assert kept.assets["models/sentiment"]["status"] == "deployed version kept"
    risk = kept.assets["models/risk"]
    assert risk.get("person_180d_kept") == "deployed version kept" or (
        risk["person_180d_why"] == "no version is deployed yet"  # too few outcomes in 40 people to train one
    )
    asked = run_pipeline(settings, retrain=True)
    assert asked.success
    assert asked.assets["models/risk"]["person_180d_why"] == "retraining was asked for"
    assert "version" in asked.assets["models/sentiment"]


def test_the_progress_display_follows_the_steps() -> None:
    from rich.console import Console

    from pipelines.progress import StepProgress

    display = StepProgress()
    display.on_event("STEP_START", "silver_tables", None)
    display.on_event("ASSET_MATERIALIZATION", "silver_tables", 120)
    display.on_event("ASSET_MATERIALIZATION", "silver_tables", 30)
    display.on_event("STEP_SUCCESS", "silver_tables", None)
    display.on_event("STEP_START", "identity_tables", None)
    display.on_event("STEP_FAILURE", "identity_tables", None)
    display.on_event("RUN_START", None, None)  # not a step's: ignored
    console = Console(width=100, record=True)
    console.print(display.table())
    text = console.export_text()
    assert "silver_tables" in text and "done" in text and "150" in text
    assert "identity_tables" in text and "failed" in text
    assert list(display.steps) == ["silver_tables", "identity_tables"]
