"""The Dagster code location: every asset, check, job, sensor and schedule of patient-insights.

`dagster dev -w workspace.yaml` loads `defs`; the command line (`patient-insights ingest`) builds the
same definitions for explicit locations with `build_definitions` and launches the same `pipeline_job`
the schedule and the landing sensor launch.
"""

from __future__ import annotations

import logging
import os

import dagster as dg

from assets.bronze.assets import bronze_ingest
from assets.bronze.checks import (
    accounting_balanced,
    fhir_sample_valid,
    files_ingested_once,
    quarantine_has_reasons,
)
from assets.deid.assets import deidentified_export_job, deidentified_tables
from assets.devices.assets import device_gold, device_readings
from assets.feedback.assets import conversation_turns
from assets.gold.assets import care_gap_rates, person_tables
from assets.identity.assets import identity_tables
from assets.outreach.assets import outreach_list
from assets.outreach.closed_loop import campaign_assignment, campaign_effect_tables, outreach_responses
from assets.pipeline import landing_sensor, nightly_schedule, pipeline_job, pipeline_run_record
from assets.resources import (
    DeidResource,
    LakeResource,
    OutreachDatabaseResource,
    deid_resource_from_env,
    lake_resource_from_env,
    outreach_database_from_env,
)
from assets.risk.assets import risk_drift, risk_models
from assets.sentiment.assets import sentiment_model, sentiment_report, sentiment_reports
from assets.silver.assets import silver_tables
from pipelines.progress import progress_logger

PIPELINE_ASSETS = [
    bronze_ingest,
    silver_tables,
    device_readings,
    device_gold,
    conversation_turns,
    identity_tables,
    person_tables,
    care_gap_rates,
    risk_models,
    risk_drift,
    sentiment_model,
    sentiment_reports,
    sentiment_report,
    outreach_responses,
    outreach_list,
    campaign_assignment,
    campaign_effect_tables,
]
"""Every asset a pipeline pass materializes, landing to exports."""
RUN_RECORD = pipeline_run_record([key for a in PIPELINE_ASSETS for key in a.keys])
ASSETS = [*PIPELINE_ASSETS, RUN_RECORD, deidentified_tables]  # the de-identified export: on demand
ASSET_CHECKS = [accounting_balanced, files_ingested_once, quarantine_has_reasons, fhir_sample_valid]
PIPELINE_JOB_DEF = pipeline_job(dg.AssetSelection.assets(*PIPELINE_ASSETS, RUN_RECORD))


EXECUTOR_ENV = "PATIENT_INSIGHTS_EXECUTOR"


@dg.logger(description="The command line's live view of the steps (names, rows, seconds; no records).")
def _progress(_init_context: dg.InitLoggerContext) -> logging.Logger:
    return progress_logger()


def _executor() -> dg.ExecutorDefinition:
    """`in_process` (default: one process runs the steps one after another, each step using the cores for
    its buckets), `multiprocess` (independent steps side by side, each in a process of its own) or
    `k8s_job` (one pod per step, sized by the assets' `dagster-k8s/config` tags; needs the cluster of
    deploy/)."""
    choice = os.environ.get(EXECUTOR_ENV, "in_process").strip() or "in_process"
    if choice == "k8s_job":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    if choice == "multiprocess":
        return dg.multiprocess_executor
    if choice != "in_process":
        raise ValueError(f"{EXECUTOR_ENV} must be in_process, multiprocess or k8s_job, got {choice!r}")
    return dg.in_process_executor


def build_definitions(
    lake: LakeResource | None = None,
    outreach_database: OutreachDatabaseResource | None = None,
    deid: DeidResource | None = None,
) -> dg.Definitions:
    """All definitions, bound to `lake`, the outreach database and the de-identification salt (default:
    the environment's)."""
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=ASSET_CHECKS,
        jobs=[PIPELINE_JOB_DEF, deidentified_export_job],
        sensors=[landing_sensor(PIPELINE_JOB_DEF)],
        schedules=[nightly_schedule(PIPELINE_JOB_DEF)],
        resources={
            "lake": lake or lake_resource_from_env(),
            "outreach_database": outreach_database or outreach_database_from_env(),
            "deid": deid or deid_resource_from_env(),
        },
        executor=_executor(),
        loggers={"console": dg.colored_console_logger, "progress": _progress},
    )


defs = build_definitions()
