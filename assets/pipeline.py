"""The pipeline as one Dagster job: every asset from landing to the exports in one run, in the order their
declared dependencies give, ending with the run record (and, after a success, the incremental state).

The command line (`patient-insights ingest`), the nightly schedule and the landing sensor all launch this
one job; only the run's tags differ (`patient-insights/mode`: full or incremental; `patient-insights/
retrain`). A run is the unit of restart: a failed or killed run records no state, so the next run redoes
what it did not finish (`assets.steps`).
"""

import hashlib
from datetime import UTC, datetime

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from upath import UPath

from assets.resources import LakeResource
from assets.steps import BUCKETS_REBUILT, FULL, INCREMENTAL, MODE_TAG, wants_incremental
from models.sentiment.provenance import written_by_generator
from pipelines.gold.as_of import as_of_record, decide_as_of
from pipelines.gold.build import deployed_model_versions
from pipelines.run_record import PipelineRun, outcome_of_checks, record_run, record_state

PIPELINE_JOB = "pipeline_job"
PIPELINE_GROUP = "pipeline"
RUN_RECORD_KEY = dg.AssetKey(["meta", "pipeline_run"])
NIGHTLY_CRON = "0 2 * * *"
INCREMENTAL_TAGS = {MODE_TAG: INCREMENTAL}
PIPELINE_TAG = "patient-insights/pipeline"
"""Job tag the run queue limits to one run at a time (dagster.yaml `tag_concurrency_limits`): two pipeline
runs on one lake would both rebuild it."""


def run_checks(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    """Every asset check evaluated in a run: asset, check, passed, severity (names only, no values)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    checks = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.asset_check_evaluation_data
        checks.append(
            {
                "asset": evaluation.asset_key.to_user_string(),
                "check": evaluation.check_name,
                "passed": evaluation.passed,
                "severity": "WARN" if evaluation.severity == dg.AssetCheckSeverity.WARN else "ERROR",
            }
        )
    return checks


def run_stages(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    """Per step of a run that has ended: seconds, rows written and buckets rebuilt (from its
    materializations' metadata: counts and bucket keys only)."""
    rows: dict[str, int] = {}
    rebuilt: dict[str, set[str]] = {}
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    for record in records:
        entry = record.event_log_entry
        step = entry.step_key or ""
        metadata = entry.asset_materialization.metadata if entry.asset_materialization else {}
        value = getattr(metadata.get("rows"), "value", None)
        if isinstance(value, int):
            rows[step] = rows.get(step, 0) + value
        buckets = getattr(metadata.get(BUCKETS_REBUILT), "value", None)
        if buckets:
            rebuilt.setdefault(step, set()).update(str(buckets).split(","))
    stages = []
    for stat in sorted(instance.get_run_step_stats(run_id), key=lambda s: s.start_time or 0):
        if stat.start_time is None or stat.end_time is None:
            continue
        stages.append(
            {
                "job": stat.step_key,
                "status": stat.status.value if stat.status else "unknown",
                "seconds": round(stat.end_time - stat.start_time, 2),
                "rows": rows.get(stat.step_key, 0),
                "buckets_rebuilt": len(rebuilt.get(stat.step_key, ())),
            }
        )
    return stages


def pipeline_run_record(upstream: list[dg.AssetKey]) -> dg.AssetsDefinition:
    """The run record asset, after every asset of the pipeline: writes the run record and, when no
    error-severity check failed, the incremental state the next run starts from."""

    @dg.asset(key=RUN_RECORD_KEY, group_name=PIPELINE_GROUP, deps=upstream)
    def pipeline_run(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        """Record the run for the dashboard (status, steps, every check's outcome) and, after a run whose
        checks all passed, the state incremental runs compare against."""
        settings = lake.settings()
        record = context.instance.get_run_record_by_id(context.run.run_id)
        started = record.start_time if record and record.start_time else datetime.now(UTC).timestamp()
        checks = run_checks(context.instance, context.run.run_id)
        failed, warnings = outcome_of_checks(checks)
        success = not failed
        if success:
            record_state(
                settings.lake,
                decide_as_of(settings.as_of, settings.lake).day,
                lake.buckets_of_lake(),
                deployed_model_versions(settings.lake, written_by_generator(settings.landing)),
            )
        decided = decide_as_of(settings.as_of, settings.lake)
        run = PipelineRun(
            success,
            context.run.run_id,
            datetime.now(UTC).timestamp() - started,
            failed,
            warnings,
            run_stages(context.instance, context.run.run_id),
            INCREMENTAL if wants_incremental(context) else FULL,
            checks,
            as_of=as_of_record(decided),
        )
        record_run(settings.lake, run, datetime.fromtimestamp(started, UTC).replace(microsecond=0))
        return dg.MaterializeResult(
            metadata={
                "success": success,
                "checks": len(checks),
                "failed_checks": ", ".join(failed) or "none",
                "warnings": ", ".join(warnings) or "none",
                "state_recorded": success,
                "as_of": decided.day.isoformat(),
                "as_of_basis": decided.basis,
            }
        )

    return pipeline_run


def pipeline_job(selection: dg.AssetSelection) -> UnresolvedAssetJobDefinition:
    """The job of a whole pass: `selection` (every pipeline asset) in one run."""
    return dg.define_asset_job(
        PIPELINE_JOB,
        selection=selection,
        description="Landing → bronze → silver → identity → models → gold → exports, in one run: a full "
        "rebuild, or with the tag patient-insights/mode=incremental only what changed since the last "
        "successful run.",
        tags={PIPELINE_TAG: "lake"},
    )


def nightly_schedule(job: UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    """The nightly incremental run (stopped until turned on)."""
    return dg.ScheduleDefinition(
        name="nightly_pipeline",
        job=job,
        cron_schedule=NIGHTLY_CRON,
        execution_timezone="UTC",
        tags=INCREMENTAL_TAGS,
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )


def landing_fingerprint(landing: UPath) -> str:
    """A hash of every landing file's path, size and modification time (no content is read)."""
    digest = hashlib.sha256()
    if landing.exists():
        visible = (p for p in landing.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
        for path in sorted(visible):
            stat = path.stat()
            digest.update(f"{path.relative_to(landing)}\0{stat.st_size}\0{stat.st_mtime}\n".encode())
    return digest.hexdigest()


def landing_sensor(job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """An incremental run of the pipeline when files in the landing folder were added or changed."""

    @dg.sensor(
        name="landing_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        """Start an incremental pipeline run when files in the landing folder were added or changed."""
        fingerprint = landing_fingerprint(lake.settings().landing)
        if fingerprint == context.cursor:
            return dg.SensorResult(skip_reason="no new or changed landing files")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=fingerprint, tags=INCREMENTAL_TAGS)], cursor=fingerprint
        )

    return sensor
