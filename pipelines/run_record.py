"""What the lake keeps of each pipeline run: a run record for the dashboard, and after a successful run
the incremental state the next run starts from (`pipelines.incremental`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import orjson
from upath import UPath

from pipelines import incremental as inc
from pipelines.lake import write_bytes_atomic

META, PIPELINE_RUNS = "meta", "pipeline_runs"
TRACKED_LAYERS = ("silver", "identity", "gold")
"""The layers whose partitions an incremental run compares with what the last successful run left."""


@dataclass(frozen=True)
class PipelineRun:
    """Outcome of one pipeline run (one Dagster run of the pipeline job)."""

    success: bool
    run_id: str
    seconds: float
    failed_checks: list[str]
    warnings: list[str]
    stages: list[dict] = field(default_factory=list)  # per step: seconds, rows, buckets rebuilt
    mode: str = "full"  # or "incremental": only what changed since the last successful run
    checks: list[dict] = field(default_factory=list)  # every check: asset, check, passed, severity
    assets: dict[str, dict] = field(default_factory=dict)  # asset key → its materialization's metadata
    as_of: dict = field(default_factory=dict)  # day, basis, why, data_ends, warning (`gold.as_of.AsOf`)


EXIT_FAILED = 1
EXIT_SOURCES_REFUSED = 3
"""Exit codes of `patient-insights ingest`: 0 the run succeeded; 1 it failed; 3 it succeeded but some
landing sources were refused whole (a source.yaml that cannot be used, a source folder that is a link
leading out): the other sources were read, the summary names the refused ones and why. (2 is the command
line's own usage error.)"""
INGEST_LOG_ASSET = "bronze/ingest_log"


def refused_sources(run: PipelineRun) -> dict[str, str]:
    """Source → reason, for the landing sources the run's bronze ingest refused (from its metadata)."""
    refused = run.assets.get(INGEST_LOG_ASSET, {}).get("refused_sources")
    return {str(k): str(v) for k, v in refused.items()} if isinstance(refused, dict) else {}


def exit_code(run: PipelineRun) -> int:
    """The command's exit code for a finished run (see `EXIT_SOURCES_REFUSED`)."""
    if not run.success:
        return EXIT_FAILED
    return EXIT_SOURCES_REFUSED if refused_sources(run) else 0


def outcome_of_checks(checks: list[dict]) -> tuple[list[str], list[str]]:
    """The failed blocking-severity (ERROR) checks and the failed warnings, as `asset:check`."""
    failed = [f"{c['asset']}:{c['check']}" for c in checks if not c["passed"] and c["severity"] == "ERROR"]
    warnings = [f"{c['asset']}:{c['check']}" for c in checks if not c["passed"] and c["severity"] == "WARN"]
    return failed, warnings


def record_run(lake: UPath, run: PipelineRun, started_at: datetime) -> None:
    """`<lake>/meta/pipeline_runs/<start>_<run id>.json`: status, duration, steps and every asset check's
    outcome (names and pass/fail only), for the dashboard's freshness and data-quality pages."""
    record = {
        "run_id": run.run_id,
        "started_at": started_at.isoformat(),
        "seconds": round(run.seconds, 1),
        "success": run.success,
        "mode": run.mode,
        "failed_checks": run.failed_checks,
        "warnings": run.warnings,
        "stages": run.stages,
        "checks": run.checks,
        "as_of": run.as_of,
    }
    name = f"{started_at.strftime('%Y%m%dT%H%M%SZ')}_{run.run_id}.json"
    write_bytes_atomic(orjson.dumps(record, option=orjson.OPT_INDENT_2), lake / META / PIPELINE_RUNS / name)


def record_state(lake: UPath, as_of: date, buckets: int, models: dict[str, str | None]) -> None:
    """After a successful run: what it processed and the content hash of every partition it left."""
    prints = inc.Fingerprints(lake)
    state = inc.LakeState(
        inc.ingested_keys(lake),
        inc.as_of_text(as_of),
        buckets,
        models,
        prints.snapshot(prints.lake_partitions(TRACKED_LAYERS)),
    )
    inc.write_state(lake, state)
