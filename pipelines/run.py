"""Run the whole pipeline in-process (the Dagster job the UI and schedules run); summarize the lake."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import orjson
import polars as pl
from upath import UPath

from pipelines.bronze.tables import BRONZE, QUARANTINE
from pipelines.config import Settings
from pipelines.lake import parquet_files, scan_table, write_bytes_atomic

LAYERS = ("bronze", "silver", "identity", "gold")
META, PIPELINE_RUNS = "meta", "pipeline_runs"


@dataclass(frozen=True)
class PipelineRun:
    """Outcome of one in-process pipeline run."""

    success: bool
    run_id: str
    seconds: float
    failed_checks: list[str]
    warnings: list[str]


def run_pipeline(settings: Settings) -> PipelineRun:
    """Materialize every asset (and run every check) for `settings`, in this process: the bronze
    ingest job, then the silver job for every bucket partition."""
    from assets.bronze.automation import BRONZE_JOB, SILVER_JOB  # Dagster imports are slow: only when running
    from assets.devices.automation import DEVICE_GOLD_JOB, DEVICE_SILVER_JOB
    from assets.feedback.assets import FEEDBACK_JOB
    from assets.gold.assets import PERSON_JOB, SUMMARY_JOB
    from assets.identity.assets import IDENTITY_JOB
    from assets.outreach.assets import OUTREACH_JOB, campaign_order
    from assets.partitions import patient_buckets, person_buckets
    from assets.resources import lake_resource_for
    from assets.risk.assets import RISK_JOB
    from assets.sentiment.assets import SENTIMENT_JOB
    from pipelines.definitions import build_definitions

    started = time.perf_counter()
    started_at = datetime.now(UTC).replace(microsecond=0)
    defs = build_definitions(lake_resource_for(settings))
    home = os.environ.get("DAGSTER_HOME")
    if home:
        os.makedirs(home, exist_ok=True)
        instance = dg.DagsterInstance.get()
    else:
        instance = dg.DagsterInstance.ephemeral()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    results = [
        defs.resolve_job_def(BRONZE_JOB).execute_in_process(
            instance=instance, raise_on_error=False, run_config=quiet
        )
    ]
    partitions = patient_buckets(settings.buckets).get_partition_keys()
    # each job for every bucket before the next: a derived device bucket reads readings from all buckets
    for job_name in (SILVER_JOB, FEEDBACK_JOB, DEVICE_SILVER_JOB, DEVICE_GOLD_JOB):
        if not all(r.success for r in results):
            break
        job = defs.resolve_job_def(job_name)
        for key in partitions:
            results.append(
                job.execute_in_process(
                    instance=instance, raise_on_error=False, run_config=quiet, partition_key=key
                )
            )
        if job_name == SILVER_JOB and all(r.success for r in results):  # identity reads all of silver
            identity = defs.resolve_job_def(IDENTITY_JOB)
            results.append(
                identity.execute_in_process(instance=instance, raise_on_error=False, run_config=quiet)
            )
    for model_job in (RISK_JOB, SENTIMENT_JOB):  # risk: identity, silver, device alerts; sentiment: surveys
        if all(r.success for r in results):
            job = defs.resolve_job_def(model_job)
            results.append(job.execute_in_process(instance=instance, raise_on_error=False, run_config=quiet))
    if all(r.success for r in results):  # the person tables read identity, silver, devices and the model
        person = defs.resolve_job_def(PERSON_JOB)
        for key in person_buckets(settings.buckets).get_partition_keys():
            results.append(
                person.execute_in_process(
                    instance=instance, raise_on_error=False, run_config=quiet, partition_key=key
                )
            )
    if all(r.success for r in results):  # rates over every person bucket
        summary = defs.resolve_job_def(SUMMARY_JOB)
        results.append(summary.execute_in_process(instance=instance, raise_on_error=False, run_config=quiet))
    if all(r.success for r in results):  # campaigns in priority order: earlier lists count in later caps
        outreach = defs.resolve_job_def(OUTREACH_JOB)
        for key in campaign_order():
            results.append(
                outreach.execute_in_process(
                    instance=instance, raise_on_error=False, run_config=quiet, partition_key=key
                )
            )
    failed, warnings, checks = [], [], []
    for result in results:
        for event in result.all_events:
            if event.event_type_value != "ASSET_CHECK_EVALUATION":
                continue
            evaluation = event.asset_check_evaluation_data
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            warn = evaluation.severity == dg.AssetCheckSeverity.WARN
            checks.append(
                {
                    "asset": evaluation.asset_key.to_user_string(),
                    "check": evaluation.check_name,
                    "partition": result.dagster_run.tags.get("dagster/partition"),
                    "passed": evaluation.passed,
                    "severity": "WARN" if warn else "ERROR",
                }
            )
            if not evaluation.passed:
                (warnings if warn else failed).append(name)
    success = all(r.success for r in results) and not failed
    run = PipelineRun(success, results[0].run_id, time.perf_counter() - started, failed, warnings)
    record_run(settings.lake, run, started_at, checks)
    return run


def record_run(lake: UPath, run: PipelineRun, started_at: datetime, checks: list[dict]) -> None:
    """`<lake>/meta/pipeline_runs/<start>_<run id>.json`: status, duration and every asset check's
    outcome (names and pass/fail only), for the dashboard's freshness and data-quality pages."""
    record = {
        "run_id": run.run_id,
        "started_at": started_at.isoformat(),
        "seconds": round(run.seconds, 1),
        "success": run.success,
        "failed_checks": run.failed_checks,
        "warnings": run.warnings,
        "checks": checks,
    }
    name = f"{started_at.strftime('%Y%m%dT%H%M%SZ')}_{run.run_id}.json"
    write_bytes_atomic(orjson.dumps(record, option=orjson.OPT_INDENT_2), lake / META / PIPELINE_RUNS / name)


def table_row_counts(lake: UPath) -> pl.DataFrame:
    """Rows per lake table, layer by layer."""
    rows: list[tuple[str, str, int]] = []
    for layer in LAYERS:
        folder = lake / layer
        if not folder.exists():
            continue
        for table in sorted(
            p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
        ):
            if parquet_files(folder / table):
                count = scan_table(lake, layer, table).select(pl.len()).collect().item()
                rows.append((layer, table, int(count)))
    return pl.DataFrame(rows, schema={"layer": pl.String, "table": pl.String, "rows": pl.Int64}, orient="row")


def quarantine_by_reason(lake: UPath) -> pl.DataFrame:
    """Quarantined records per target table and reason code."""
    if not parquet_files(lake / BRONZE / QUARANTINE):
        return pl.DataFrame(
            schema={"target_table": pl.String, "reason_code": pl.String, "records": pl.UInt32}
        )
    return (
        scan_table(lake, BRONZE, QUARANTINE)
        .group_by("target_table", "reason_code")
        .agg(pl.len().alias("records"))
        .sort("target_table", "records", descending=[False, True])
        .collect()
    )
