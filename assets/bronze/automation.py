"""When the pipeline runs: on new landing files (sensor), nightly (schedule), and silver after bronze."""

import hashlib

import dagster as dg
from upath import UPath

from assets.bronze.assets import BRONZE_GROUP, FHIR_RESOURCES_KEY
from assets.partitions import patient_buckets
from assets.resources import LakeResource
from assets.silver.assets import SILVER_GROUP
from pipelines.incremental import buckets_to_rebuild

BRONZE_JOB = "bronze_ingest_job"
SILVER_JOB = "silver_build_job"
NIGHTLY_CRON = "0 2 * * *"

bronze_job = dg.define_asset_job(
    BRONZE_JOB,
    selection=dg.AssetSelection.groups(BRONZE_GROUP),
    description="Landing → bronze: ingest every new landing file.",
)
silver_job = dg.define_asset_job(
    SILVER_JOB,
    selection=dg.AssetSelection.groups(SILVER_GROUP),
    description="Bronze → silver for one patient bucket (partition).",
)

nightly_schedule = dg.ScheduleDefinition(
    name="nightly_pipeline",
    job=bronze_job,
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


@dg.sensor(job=bronze_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def landing_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    """Start an ingest run when files in the landing folder were added or changed."""
    fingerprint = landing_fingerprint(lake.settings().landing)
    if fingerprint == context.cursor:
        return dg.SensorResult(skip_reason="no new or changed landing files")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=fingerprint)], cursor=fingerprint)


def partitions_to_rebuild(touched: str, all_partitions: list[str]) -> list[str]:
    """Silver partitions an ingest affects: the buckets it wrote, or all of them when `shared` changed
    (deletions of non-patient-specific records live there and can apply to any bucket)."""
    return buckets_to_rebuild((b for b in touched.split(",") if b), all_partitions)


@dg.asset_sensor(
    asset_key=FHIR_RESOURCES_KEY,
    job=silver_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def silver_after_bronze(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    """After an ingest, rebuild only the silver buckets it touched."""
    materialization = asset_event.asset_materialization
    touched = materialization.metadata.get("buckets_touched") if materialization else None
    text = getattr(touched, "value", "") or ""
    for key in partitions_to_rebuild(str(text), patient_buckets().get_partition_keys()):
        yield dg.RunRequest(run_key=f"{asset_event.storage_id}-{key}", partition_key=key)
