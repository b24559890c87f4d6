"""Launch the pipeline from the command line: the same `pipeline_job` the Dagster UI, the schedule and the
landing sensor run, in this process, as one Dagster run; then read back what it did.

Job order, dependencies and the incremental rules live in the Dagster definitions (`assets.pipeline`,
`assets.steps`); this module only picks the run's tags, holds the lake's lock, shows progress and
summarizes the run from its events.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from datetime import UTC, datetime

import dagster as dg
from rich.console import Console

from pipelines.config import Settings
from pipelines.locks import exclusive, remove_stale_temporaries
from pipelines.parallel import worker_pool
from pipelines.progress import live_progress
from pipelines.run_record import PipelineRun, outcome_of_checks, record_run

_log = logging.getLogger(__name__)
QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
"""Run configuration that keeps Dagster's own console output to warnings (the summary says the rest)."""
PROGRESS_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}, "progress": {}}}


def instance_for_runs() -> dg.DagsterInstance:
    """DAGSTER_HOME's instance (runs then show in `make dev`), else an ephemeral one."""
    home = os.environ.get("DAGSTER_HOME")
    if home:
        os.makedirs(home, exist_ok=True)
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def run_pipeline(
    settings: Settings,
    workers: int | None = None,
    incremental: bool = False,
    retrain: bool = False,
    console: Console | None = None,
) -> PipelineRun:
    """Run every pipeline asset and check for `settings` as one Dagster run of `pipeline_job`.

    `incremental`: rebuild only what changed since the last successful run (everything when there is
    none, or its bucket count or as-of day differ). `retrain`: train the models whatever the retraining
    policy says (`models.retraining`). `workers`: processes per step for its buckets (default: by the
    data's size, `PATIENT_INSIGHTS_WORKERS`). `console`: where to show the steps as they run."""
    # one run per lake at a time: a second one waits, then starts from the lake the first left
    with exclusive(settings.lake, "pipeline") as waited:
        if waited:
            _log.info("started after waiting for another pipeline run on the same lake")
        remove_stale_temporaries(settings.lake)
        previous = os.environ.get("PATIENT_INSIGHTS_WORKERS")
        if workers is not None:
            os.environ["PATIENT_INSIGHTS_WORKERS"] = str(workers)
        try:
            with worker_pool():
                return _run(settings, incremental, retrain, console)
        finally:
            if workers is not None:
                if previous is None:
                    os.environ.pop("PATIENT_INSIGHTS_WORKERS", None)
                else:
                    os.environ["PATIENT_INSIGHTS_WORKERS"] = previous


def _run(settings: Settings, incremental: bool, retrain: bool, console: Console | None) -> PipelineRun:
    from assets.pipeline import PIPELINE_JOB, RUN_RECORD_KEY, run_checks, run_stages
    from assets.resources import lake_resource_for
    from assets.steps import FULL, INCREMENTAL, MODE_TAG, RETRAIN_TAG
    from pipelines.definitions import build_definitions

    started = time.perf_counter()
    started_at = datetime.now(UTC).replace(microsecond=0)
    instance = instance_for_runs()
    job = build_definitions(lake_resource_for(settings)).resolve_job_def(PIPELINE_JOB)
    # The modules and definitions loaded so far live as long as the run: out of the collector's sight,
    # every full collection no longer walks them. Steps that build many Python objects (a Bundle decoded
    # whole, Dagster's events) triggered collections that did: decoding 79 Synthea Bundles took 1.26 s
    # with Dagster loaded and 0.30 s with this.
    gc.freeze()
    tags = {MODE_TAG: INCREMENTAL if incremental else FULL}
    if retrain:
        tags[RETRAIN_TAG] = "true"
    with live_progress(console):
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config=PROGRESS_RUN if console is not None else QUIET_RUN,
            tags=tags,
        )
    checks = run_checks(instance, result.run_id)
    failed, warnings = outcome_of_checks(checks)
    assets = {
        m.asset_key.to_user_string(): {k: v.value for k, v in m.materialization.metadata.items()}
        for m in result.get_asset_materialization_events()
    }
    modes = {str(metadata.get("mode", "")) for metadata in assets.values()}
    run = PipelineRun(
        result.success and not failed,
        result.run_id,
        time.perf_counter() - started,
        failed,
        warnings,
        run_stages(instance, result.run_id),
        INCREMENTAL if INCREMENTAL in modes else FULL,
        checks,
        assets,
    )
    recorded = RUN_RECORD_KEY.to_user_string() in assets
    if not recorded:  # the run stopped before its last step: record the failure for the dashboard
        record_run(settings.lake, run, started_at)
    return run
