"""Run the whole pipeline in-process (the Dagster job the UI and schedules run); summarize the lake."""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
import orjson
import polars as pl
from upath import UPath

from pipelines import incremental as inc
from pipelines.bronze.tables import BRONZE, QUARANTINE
from pipelines.config import Settings
from pipelines.gold.as_of import resolve_as_of
from pipelines.lake import parquet_files, scan_table, write_bytes_atomic
from pipelines.locks import exclusive, remove_stale_temporaries

LAYERS = ("bronze", "silver", "identity", "gold")
_log = logging.getLogger(__name__)
META, PIPELINE_RUNS = "meta", "pipeline_runs"
QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class PipelineRun:
    """Outcome of one in-process pipeline run."""

    success: bool
    run_id: str
    seconds: float
    failed_checks: list[str]
    warnings: list[str]
    stages: list[dict] = field(default_factory=list)  # per job: runs, skipped, wall seconds, peak RSS so far
    mode: str = "full"  # or "incremental": only what the new bronze rows reach
    damaged: int = 0  # partitions an incremental run found not as the last run left them (rebuilt)


@dataclass(frozen=True)
class JobRun:
    """What the pipeline keeps of one Dagster run: success and every asset check's outcome."""

    job: str
    partition: str | None
    run_id: str
    success: bool
    checks: list[dict]
    seconds: float


def pipeline_workers() -> int:
    """Processes for the partitions of a job: `PATIENT_INSIGHTS_WORKERS` (`auto`: the machine's cores),
    default 1 - worker processes cost seconds to start, which small data never wins back."""
    text = os.environ.get("PATIENT_INSIGHTS_WORKERS", "").strip()
    workers = (os.cpu_count() or 1) if text == "auto" else int(text) if text else 1
    if workers < 1:
        raise ValueError(f"PATIENT_INSIGHTS_WORKERS must be at least 1, got {workers}")
    return workers


class _Jobs:
    """The code location's jobs for `settings`, run in this process on one Dagster instance (DAGSTER_HOME's,
    else an ephemeral one)."""

    def __init__(self, settings: Settings) -> None:
        from assets.resources import lake_resource_for  # Dagster imports are slow: only when running
        from pipelines.definitions import build_definitions

        self.defs = build_definitions(lake_resource_for(settings))
        home = os.environ.get("DAGSTER_HOME")
        if home:
            os.makedirs(home, exist_ok=True)
            self.instance = dg.DagsterInstance.get()
        else:
            self.instance = dg.DagsterInstance.ephemeral()

    def outputs(self, job: str) -> list[tuple[str, str]]:
        """The lake tables (layer, name) `job` writes."""
        keys = self.defs.resolve_job_def(job).asset_layer.executable_asset_keys
        return sorted((key.path[0], key.path[-1]) for key in keys)

    def upstream(self, job: str) -> list[inc.Upstream]:
        """The tables `job`'s assets read that other jobs write, each with how its partitions map."""
        graph = self.defs.resolve_asset_graph()
        own = self.defs.resolve_job_def(job).asset_layer.executable_asset_keys
        found: dict[tuple[str, str], bool] = {}
        for key in own:
            for parent in graph.get(key).parent_keys:
                if parent in own:
                    continue
                same = isinstance(graph.get_partition_mapping(key, parent), dg.IdentityPartitionMapping)
                table = (parent.path[0], parent.path[-1])
                found[table] = found.get(table, True) and same
        return [inc.Upstream(table, same) for table, same in sorted(found.items())]

    def run(self, job: str, partition: str | None = None) -> JobRun:
        """One run of `job` (for one partition), summarized."""
        started = time.perf_counter()
        result = self.defs.resolve_job_def(job).execute_in_process(
            instance=self.instance, raise_on_error=False, run_config=QUIET_RUN, partition_key=partition
        )
        checks = []
        for event in result.all_events:
            if event.event_type_value != "ASSET_CHECK_EVALUATION":
                continue
            evaluation = event.asset_check_evaluation_data
            checks.append(
                {
                    "asset": evaluation.asset_key.to_user_string(),
                    "check": evaluation.check_name,
                    "partition": partition,
                    "passed": evaluation.passed,
                    "severity": "WARN" if evaluation.severity == dg.AssetCheckSeverity.WARN else "ERROR",
                }
            )
        return JobRun(job, partition, result.run_id, result.success, checks, time.perf_counter() - started)


_worker_jobs: _Jobs | None = None


def _start_worker(settings: Settings) -> None:
    global _worker_jobs
    _worker_jobs = _Jobs(settings)


def _run_in_worker(job: str, partition: str) -> JobRun:
    assert _worker_jobs is not None, "the worker was not started"
    return _worker_jobs.run(job, partition)


def run_pipeline(
    settings: Settings, workers: int | None = None, incremental: bool = False, retrain: bool = True
) -> PipelineRun:
    """Materialize every asset (and run every check) for `settings`: bronze, then each per-bucket job for
    every bucket (`workers` processes run the buckets of a job side by side), identity, the models, the
    gold person buckets, the summaries and the campaigns in priority order.

    `incremental`: after bronze, run only the partitions that what bronze received since the last
    successful run reaches (see `pipelines.incremental`), with the deployed models (no retraining); with
    no such run recorded, or a different bucket count, as-of day or model, every partition is rebuilt.
    `retrain=False` keeps the deployed models (or none) in a full run too."""
    # one run per lake at a time: a second one waits, then starts from the lake the first left
    with exclusive(settings.lake, "pipeline") as waited:
        if waited:
            _log.info("started after waiting for another pipeline run on the same lake")
        remove_stale_temporaries(settings.lake)
        return _run_pipeline(settings, workers, incremental, retrain)


def _run_pipeline(settings: Settings, workers: int | None, incremental: bool, retrain: bool) -> PipelineRun:
    """`run_pipeline` under the lake's lock."""
    from assets.bronze.automation import BRONZE_JOB, SILVER_JOB
    from assets.devices.automation import DEVICE_GOLD_JOB, DEVICE_SILVER_JOB
    from assets.feedback.assets import FEEDBACK_JOB
    from assets.gold.assets import PERSON_JOB, SUMMARY_JOB
    from assets.identity.assets import IDENTITY_JOB
    from assets.outreach.assets import OUTREACH_JOB, campaign_order
    from assets.outreach.closed_loop import EFFECT_JOB, RESPONSES_JOB
    from assets.partitions import patient_buckets, person_buckets
    from assets.risk.assets import RISK_JOB
    from assets.sentiment.assets import SENTIMENT_JOB

    started = time.perf_counter()
    started_at = datetime.now(UTC).replace(microsecond=0)
    workers = workers or pipeline_workers()
    jobs = _Jobs(settings)
    previous = inc.read_state(settings.lake) if incremental else None
    pool = (
        ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),  # no fork of a process holding threads
            initializer=_start_worker,
            initargs=(settings,),
        )
        if workers > 1
        else None
    )
    runs: list[JobRun] = []
    stages: list[dict] = []
    partitions: list[str | None] = list(patient_buckets(settings.buckets).get_partition_keys())
    derived = {  # the jobs whose lake partitions an incremental run tracks, with their partition keys
        SILVER_JOB: partitions,
        IDENTITY_JOB: [None],
        FEEDBACK_JOB: partitions,
        DEVICE_SILVER_JOB: partitions,
        DEVICE_GOLD_JOB: partitions,
        PERSON_JOB: list(person_buckets(settings.buckets).get_partition_keys()),
        SUMMARY_JOB: [None],
        RESPONSES_JOB: [None],
        EFFECT_JOB: [None],
    }
    tracked = {job: [(t, k) for t in jobs.outputs(job) for k in keys] for job, keys in derived.items()}
    fingerprints = inc.Fingerprints(settings.lake)
    changes: inc.Changed | None = None  # None: rebuild every partition
    recorded: dict[str, str] = {}  # the partitions' hashes when the last successful run ended
    damaged: set[inc.Partition] = set()  # no longer as that run left them: rebuilt whatever else happens

    def ok() -> bool:
        return all(r.success for r in runs)

    def step(job: str, keys: list[str | None], one_at_a_time: bool = False) -> None:
        """Run `job` for those of `keys` that need it (all of them in a full run), note its wall time and
        peak memory so far, and in an incremental run which of its partitions now differ."""
        todo = keys
        if changes is not None:
            needed = set(inc.partitions_to_run(jobs.upstream(job), changes, keys))
            needed |= {key for _, key in damaged.intersection(tracked.get(job, []))}
            todo = [key for key in keys if key in needed]
        if not todo:
            stages.append({"job": job, "runs": 0, "skipped": len(keys), "seconds": 0.0, **_peak_rss()})
            return
        began = time.perf_counter()
        if todo == [None]:
            done = [jobs.run(job)]
        elif pool is None or one_at_a_time:
            done = [jobs.run(job, key) for key in todo]
        else:
            done = list(pool.map(_run_in_worker, [job] * len(todo), todo))
        runs.extend(done)
        if changes is not None:
            rebuilt = [(table, key) for table, key in tracked.get(job, []) if key in todo]
            for table, key in inc.differing(rebuilt, fingerprints.snapshot(rebuilt), recorded):
                changes.setdefault(table, set()).add(key)
            for table in jobs.outputs(job):  # outside the lake (the exports): re-made means changed
                if table[0] == "exports":
                    changes.setdefault(table, set()).update(todo)
        stages.append(
            {
                "job": job,
                "runs": len(done),
                "skipped": len(keys) - len(todo),
                "seconds": round(time.perf_counter() - began, 2),
                **_peak_rss(),
            }
        )

    mode = "full"
    try:
        step(BRONZE_JOB, [None])
        as_of = resolve_as_of(settings.as_of, settings.lake)
        models = _deployed_models(settings.lake)
        if ok() and previous is not None:
            same = (previous.buckets, previous.as_of, previous.models) == (
                settings.buckets,
                inc.as_of_text(as_of),
                models,
            )
            if same:
                mode = "incremental"
                changes = {
                    (BRONZE, t): set(b)
                    for t, b in inc.unprocessed_buckets(settings.lake, previous.ingest_keys).items()
                }
                recorded = previous.fingerprints
                every = [partition for job_partitions in tracked.values() for partition in job_partitions]
                damaged = inc.differing(every, fingerprints.snapshot(every), recorded)
        for job_name in (SILVER_JOB, FEEDBACK_JOB, DEVICE_SILVER_JOB, DEVICE_GOLD_JOB):
            if not ok():
                break
            step(job_name, partitions)
            if job_name == SILVER_JOB and ok():  # identity reads all of silver
                step(IDENTITY_JOB, [None])
        # risk: identity, silver, device alerts; sentiment: surveys. Trained in a full run unless told to
        # keep the deployed versions; an incremental run on a lake never run before is a first, full run.
        train = (retrain and not incremental) or (incremental and previous is None)
        for model_job in (RISK_JOB, SENTIMENT_JOB) if train else ():
            if ok():
                step(model_job, [None])
        if ok():  # the person tables read identity, silver, devices and the models
            step(PERSON_JOB, derived[PERSON_JOB])
        if ok():  # rates over every person bucket
            step(SUMMARY_JOB, [None])
        if ok():  # answers from outreach systems: opt-outs and bounced contact points the lists honour
            step(RESPONSES_JOB, [None])
        if ok():  # campaigns one after another in priority order: earlier lists count in later caps
            step(OUTREACH_JOB, list(campaign_order()), one_at_a_time=True)
        if ok():  # who each run assigned to which arm, and the effect on care gaps
            step(EFFECT_JOB, [None])
    finally:
        if pool is not None:
            pool.shutdown()
    checks = [c for r in runs for c in r.checks]
    failed = [f"{c['asset']}:{c['check']}" for c in checks if not c["passed"] and c["severity"] == "ERROR"]
    warnings = [f"{c['asset']}:{c['check']}" for c in checks if not c["passed"] and c["severity"] == "WARN"]
    success = ok() and not failed
    run = PipelineRun(
        success, runs[0].run_id, time.perf_counter() - started, failed, warnings, stages, mode, len(damaged)
    )
    record_run(settings.lake, run, started_at, checks)
    if success:
        state = inc.LakeState(
            inc.ingested_keys(settings.lake),
            inc.as_of_text(resolve_as_of(settings.as_of, settings.lake)),
            settings.buckets,
            _deployed_models(settings.lake),
            fingerprints.snapshot(
                partition for job_partitions in tracked.values() for partition in job_partitions
            ),
        )
        inc.write_state(settings.lake, state)
    return run


def _deployed_models(lake: UPath) -> dict[str, str | None]:
    """The model versions the person tables are scored with."""
    from models.registry import registry_of
    from models.risk.registry import deployed_risk_version
    from models.risk.score import PERSON_MODEL
    from models.sentiment.registry import NAME, deployed_sentiment_version

    return {
        PERSON_MODEL: deployed_risk_version(lake, PERSON_MODEL),
        NAME: deployed_sentiment_version(registry_of(lake)),
    }


def _peak_rss() -> dict[str, float]:
    """Peak resident memory so far of this process and of its largest child that has ended (MiB; the
    worker processes end with the pipeline, so their peak shows in the last stages)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mib": round(own, 1), "peak_worker_rss_mib": round(workers, 1)}


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
        "stages": run.stages,
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
