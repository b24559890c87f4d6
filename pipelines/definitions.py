"""The Dagster code location: every asset, check, job, sensor and schedule of patient-insights.

`dagster dev -w workspace.yaml` loads `defs`; the command line (`patient-insights ingest`) builds the
same definitions for explicit locations with `build_definitions`.
"""

from __future__ import annotations

import os

import dagster as dg

from assets.bronze.assets import bronze_ingest
from assets.bronze.automation import (
    bronze_job,
    landing_sensor,
    nightly_schedule,
    silver_after_bronze,
    silver_job,
)
from assets.bronze.checks import (
    accounting_balanced,
    fhir_sample_valid,
    files_ingested_once,
    quarantine_has_reasons,
)
from assets.deid.assets import deidentified_export_job, deidentified_tables
from assets.devices.assets import device_gold, device_readings
from assets.devices.automation import device_gold_job, device_silver_job
from assets.feedback.assets import conversation_turns, feedback_job
from assets.gold.assets import care_gap_rates, person_job, person_tables, summary_job
from assets.identity.assets import identity_job, identity_tables
from assets.outreach.assets import outreach_job, outreach_list
from assets.outreach.closed_loop import (
    campaign_assignment,
    campaign_effect_tables,
    outreach_effect_job,
    outreach_responses,
    outreach_responses_job,
)
from assets.resources import (
    DeidResource,
    LakeResource,
    OutreachDatabaseResource,
    deid_resource_from_env,
    lake_resource_from_env,
    outreach_database_from_env,
)
from assets.risk.assets import risk_drift, risk_job, risk_models
from assets.sentiment.assets import sentiment_job, sentiment_model, sentiment_report, sentiment_reports
from assets.silver.assets import silver_tables

ASSETS = [
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
    deidentified_tables,  # on demand (deidentified_export_job), not part of the pipeline run
]
ASSET_CHECKS = [accounting_balanced, files_ingested_once, quarantine_has_reasons, fhir_sample_valid]


EXECUTOR_ENV = "PATIENT_INSIGHTS_EXECUTOR"


def _executor() -> dg.ExecutorDefinition:
    """`multiprocess` (default: the steps of a run share its machine's cores) or `k8s_job` (one pod per
    step, sized by the assets' `dagster-k8s/config` tags; needs the cluster of deploy/)."""
    choice = os.environ.get(EXECUTOR_ENV, "multiprocess").strip() or "multiprocess"
    if choice == "k8s_job":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    if choice != "multiprocess":
        raise ValueError(f"{EXECUTOR_ENV} must be multiprocess or k8s_job, got {choice!r}")
    return dg.multiprocess_executor


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
        jobs=[
            bronze_job,
            silver_job,
            device_silver_job,
            device_gold_job,
            feedback_job,
            identity_job,
            risk_job,
            sentiment_job,
            person_job,
            summary_job,
            outreach_responses_job,
            outreach_job,
            outreach_effect_job,
            deidentified_export_job,
        ],
        sensors=[landing_sensor, silver_after_bronze],
        schedules=[nightly_schedule],
        resources={
            "lake": lake or lake_resource_from_env(),
            "outreach_database": outreach_database or outreach_database_from_env(),
            "deid": deid or deid_resource_from_env(),
        },
        executor=_executor(),
    )


defs = build_definitions()
