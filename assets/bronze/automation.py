"""When the pipeline runs: on new landing files (sensor) and nightly (schedule)."""

import hashlib

import dagster as dg
from upath import UPath

from assets.resources import LakeResource

PIPELINE_JOB = "patient_insights_pipeline"
NIGHTLY_CRON = "0 2 * * *"

pipeline_job = dg.define_asset_job(
    PIPELINE_JOB,
    selection=dg.AssetSelection.all(),
    description="The whole pipeline: landing → bronze (→ later layers as they are added).",
)

nightly_schedule = dg.ScheduleDefinition(
    name="nightly_pipeline",
    job=pipeline_job,
    cron_schedule=NIGHTLY_CRON,
    execution_timezone="UTC",
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


@dg.sensor(job=pipeline_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def landing_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    """Start a pipeline run when files in the landing folder were added or changed."""
    fingerprint = landing_fingerprint(lake.settings().landing)
    if fingerprint == context.cursor:
        return dg.SensorResult(skip_reason="no new or changed landing files")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=fingerprint)], cursor=fingerprint)
