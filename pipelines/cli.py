"""The `patient-insights` command line.

Commands that only read files (`views run`, `summary`, `sentiment score`, `--help`) must start fast: at
module level this imports only typer, rich and Polars, and each command imports what it needs itself, so
none of them loads Dagster, Great Expectations or scikit-learn unless it runs the pipeline or a model
(tests/test_cli_startup.py checks this; bench/startup.py times it).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import polars as pl
import typer

from pipelines.cli_output import console
from pipelines.cli_output import frame_table as _table
from pipelines.model_cli import risk_app, sentiment_app

if TYPE_CHECKING:
    # imported by the commands that take a lake: upath loads fsspec, which `views run` does not need
    from upath import UPath

    from pipelines.config import Settings
    from pipelines.run_record import PipelineRun

app = typer.Typer(help="patient-insights: FHIR and device ingest, patient 360, care gaps, risk, outreach.")
views_app = typer.Typer(help="SQL on FHIR v2 ViewDefinitions.")
app.add_typer(views_app, name="views")
app.add_typer(sentiment_app, name="sentiment")
app.add_typer(risk_app, name="risk")


@app.command()
def generate(
    patients: Annotated[int, typer.Option(help="Number of people to generate.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives byte-identical files.")] = 42,
    out: Annotated[Path, typer.Option(help="Landing folder to write.")] = Path("landing"),
    defects: Annotated[float, typer.Option(help="Share of records replaced by defective ones (0–1).")] = 0.0,
    truth: Annotated[Path | None, typer.Option(help="Ground-truth folder (default: beside --out).")] = None,
    as_of: Annotated[str, typer.Option(help="Last day of the history (YYYY-MM-DD).")] = "2026-06-30",
    identity_set: Annotated[
        str,
        typer.Option(
            help="full: the whole landing folder. hard: Patients only, for matching: twins, Jr./Sr. "
            "namesakes, strangers with the same name, married names after a move, no SSN, birth dates a "
            "day off, initials (ground truth in identity_cases.csv)."
        ),
    ] = "full",
) -> None:
    """Write a synthetic landing folder: FHIR Bulk export, Bundles, device feeds, conversations."""
    from pipelines.generate import generate_landing

    if patients < 1:
        raise typer.BadParameter("--patients must be at least 1")
    if not 0.0 <= defects <= 1.0:
        raise typer.BadParameter("--defects must be between 0 and 1")
    if identity_set not in ("full", "hard"):
        raise typer.BadParameter("--identity-set must be full or hard")
    if identity_set == "hard":
        _generate_identity_set(out, patients, seed, truth, date.fromisoformat(as_of), defects)
        return
    summary = generate_landing(
        out, patients, seed, defects=defects, truth_out=truth, as_of=date.fromisoformat(as_of), progress=True
    )
    records = pl.DataFrame(
        sorted(summary.records_per_source.items()),
        schema={"source": pl.String, "records": pl.Int64},
        orient="row",
    )
    console.print(_table(f"Generated landing data in {summary.out}", records))
    console.print(
        f"{summary.patients:,} people, {summary.files_written:,} files, "
        f"{summary.bytes_written / 1e6:,.1f} MB, {summary.defects_injected:,} defects, "
        f"{summary.elapsed_seconds:.1f} s; ground truth in {summary.truth_out}"
    )


def _generate_identity_set(
    out: Path, people: int, seed: int, truth: Path | None, as_of: date, defects: float
) -> None:
    from pipelines.generate.identity_cases import generate_identity_set

    if defects:
        raise typer.BadParameter("--defects applies to the full landing folder only")
    summary = generate_identity_set(out, people, seed, truth_out=truth, as_of=as_of)
    kinds = pl.DataFrame(
        list(summary.persons_by_kind.items()),
        schema={"case": pl.String, "persons": pl.Int64},
        orient="row",
    )
    console.print(_table(f"Generated the hard identity set in {summary.out}", kinds))
    console.print(
        f"{summary.people:,} people and {summary.persons - summary.people:,} relatives or namesakes, "
        f"{summary.records:,} Patient resources ({summary.true_pairs:,} pairs of one person), "
        f"{summary.elapsed_seconds:.1f} s; ground truth in {summary.truth_out}"
    )


@app.command("simulate-outreach")
def simulate_outreach(
    landing: Annotated[Path, typer.Option(help="Landing folder to write the outcomes into.")],
    lake: Annotated[str, typer.Option(help="Lake folder (identity/person_link is read).")],
    exports: Annotated[str, typer.Option(help="Exports folder holding the campaign runs.")],
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives byte-identical files.")] = 0,
    defects: Annotated[float, typer.Option(help="Share of event rows given a defective companion.")] = 0.0,
    truth: Annotated[Path | None, typer.Option(help="Ground-truth folder (default: beside landing).")] = None,
) -> None:
    """Simulate what the outreach system and the following weeks of care do after the campaign exports:
    vendor outcome events, closing FHIR resources with a known true effect, and their ground truth."""
    from upath import UPath

    from pipelines.generate.outreach_outcomes import simulate_outreach as simulate

    if not 0.0 <= defects <= 1.0:
        raise typer.BadParameter("--defects must be between 0 and 1")
    try:
        result = simulate(landing, UPath(lake), UPath(exports), seed=seed, defects=defects, truth_out=truth)
    except ValueError as error:  # the message names folders and days, never a person
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    console.print(_table(f"Simulated outreach outcomes in {result.landing}", result.table()))
    defects_written = sum(result.defects.values())
    console.print(
        f"{len(result.files):,} files written, {result.opt_outs:,} opt-outs, {defects_written:,} defective "
        f"rows; closures exported as of {result.transaction_time}; ground truth in {result.truth_out}"
    )


@app.command()
def ingest(
    landing: str = typer.Option(..., help="Landing folder (local path or s3:// / gs:// url)."),
    lake: str = typer.Option(..., help="Lake folder (local path or s3:// / gs:// url)."),
    buckets: int | None = typer.Option(
        None,
        help="Patient buckets of a new lake (default: PATIENT_INSIGHTS_BUCKETS, else from the landing "
        "folder's size; an existing lake keeps its own count: changing it is a full rebuild).",
    ),
    exports: str | None = typer.Option(
        None, help="Exports folder for outreach runs and reports (default: PATIENT_INSIGHTS_EXPORTS)."
    ),
    incremental: bool = typer.Option(
        False,
        "--incremental",
        help="Rebuild only what changed since the last successful run (everything when there is none, "
        "or the as-of day or bucket count differ).",
    ),
    retrain: bool = typer.Option(
        False,
        "--retrain",
        help="Retrain the models in this run (otherwise only when none is deployed, the deployed one is "
        "older than PATIENT_INSIGHTS_MODEL_MAX_AGE_DAYS, or the drift check fired).",
    ),
) -> None:
    """Run the whole pipeline in-process as one Dagster run of `pipeline_job` (the job the UI, the
    schedule and the landing sensor run) and print a summary."""
    from upath import UPath

    from pipelines.config import Settings, validate_bucket_count
    from pipelines.run import run_pipeline
    from pipelines.run_record import EXIT_FAILED, exit_code, refused_sources

    env = Settings.from_env()
    settings = Settings(
        landing=UPath(landing),
        lake=UPath(lake),
        exports=UPath(exports) if exports else env.exports,
        buckets=validate_bucket_count(buckets) if buckets else env.buckets,
        as_of=env.as_of,
    )
    run = run_pipeline(settings, incremental=incremental, retrain=retrain, console=console)
    console.line()
    rebuilt = sum(stage.get("buckets_rebuilt", 0) for stage in run.stages)
    console.print(f"{run.mode} run: {len(run.stages)} steps, {rebuilt} bucket builds")
    print_summary(settings.lake, run.seconds, settings.exports)
    for warning in run.warnings:
        console.print(f"[yellow]check warning[/yellow]: {warning} (see the Dagster UI for details)")
    _print_ingest_outcome(run)
    _print_as_of(settings)
    code = exit_code(run)
    if code == EXIT_FAILED:
        console.print(
            f"[red]pipeline run {run.run_id} failed[/red]; failed checks: {run.failed_checks or 'none'}"
        )
        raise typer.Exit(code)
    console.print(f"[green]pipeline run {run.run_id} succeeded[/green] in {run.seconds:.1f} s")
    if code:
        console.print(
            f"[yellow]{len(refused_sources(run))} landing source(s) refused[/yellow]: exit code {code}"
        )
        raise typer.Exit(code)


def _print_as_of(settings: Settings) -> None:
    """Which as-of day the run measured with, and why (a warning when the data ends long before today)."""
    from pipelines.gold.as_of import decide_as_of

    decided = decide_as_of(settings.as_of, settings.lake)
    console.print(f"as-of day {decided.day.isoformat()}: {decided.why}")
    if decided.warning:
        console.print(f"[yellow]{decided.warning}[/yellow]")


def _print_ingest_outcome(run: PipelineRun) -> None:
    """What bronze did not read (refused sources, with why; skipped and refused files) and released."""
    from pipelines.run_record import INGEST_LOG_ASSET, refused_sources

    log = run.assets.get(INGEST_LOG_ASSET, {})
    for source, reason in sorted(refused_sources(run).items()):
        console.print(f"[yellow]source {source} refused[/yellow] (nothing of it was read): {reason}")
    skipped, refused, released = (
        log.get(k) or 0 for k in ("files_skipped", "files_refused", "records_released")
    )
    if skipped or refused:
        console.print(
            f"landing paths not read: {skipped} skipped (not data), {refused} refused "
            "(see bronze/ingest_log, status skipped / refused)"
        )
    if released:
        console.print(f"{released} quarantined records released into bronze: their Patient arrived")


@views_app.command("run")
def views_run(
    view: Annotated[Path, typer.Option(help="ViewDefinition JSON file.")],
    inputs: Annotated[list[Path], typer.Option("--input", help="NDJSON or Bundle file (repeat the option).")],
    output: Annotated[Path, typer.Option(help="Parquet file to write.")],
) -> None:
    """Run one ViewDefinition over NDJSON / Bundle files into a Parquet file."""
    import orjson

    from pipelines.sof import ViewDefinitionError
    from pipelines.sof.files import run_view_files

    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        raise typer.BadParameter(f"input files not found: {', '.join(missing)}")
    try:
        report = run_view_files(orjson.loads(view.read_bytes()), list(inputs), output)
    except (ViewDefinitionError, orjson.JSONDecodeError) as err:
        console.print(f"[red]invalid view[/red]: {err}")
        raise typer.Exit(2) from None
    written = f"{report.rows:,} rows from {report.resources:,} resources in {report.files} files"
    console.print(f"{written} written to {output}")
    for reason, count in sorted(report.rejected.items()):
        console.print(f"[yellow]skipped[/yellow] {count:,} records: {reason}")
    for column, count in sorted(report.values_nulled.items()):
        console.print(f"[yellow]type conflict[/yellow]: {count:,} values of {column} did not fit its type")


@app.command()
def summary(
    lake: Annotated[str, typer.Option(help="Lake folder.")],
    exports: Annotated[str | None, typer.Option(help="Exports folder (outreach runs).")] = None,
) -> None:
    """Print rows per table, quarantined records by reason and the analytics summaries."""
    from upath import UPath

    print_summary(UPath(lake), None, UPath(exports) if exports else None)


@app.command()
def deidentify(
    lake: Annotated[str, typer.Option(help="Lake folder (local path or s3:// / gs:// url).")],
) -> None:
    """Write the de-identified analytics export (HIPAA Safe Harbor) to <lake>/deidentified/ with the
    Dagster job `deidentified_export_job`; the pseudonyms' salt is read from PATIENT_INSIGHTS_DEID_SALT."""
    import os

    import dagster as dg
    from upath import UPath

    from assets.deid.assets import DEID_JOB, NO_RESIDUAL_IDENTIFIERS
    from assets.resources import lake_resource_for
    from pipelines.config import Settings
    from pipelines.definitions import build_definitions
    from pipelines.deid.rules import SALT_ENV
    from pipelines.run import QUIET_RUN

    if not os.environ.get(SALT_ENV, "").strip():  # a flag would put the secret in shell history
        console.print(f"[red]{SALT_ENV} is not set[/red]: export a secret of 32 or more characters first")
        raise typer.Exit(2)
    env = Settings.from_env()
    settings = Settings(env.landing, UPath(lake), env.exports, env.buckets, env.as_of)
    home = os.environ.get("DAGSTER_HOME")
    instance = dg.DagsterInstance.get() if home else dg.DagsterInstance.ephemeral()
    with console.status("de-identifying"):
        result = (
            build_definitions(lake_resource_for(settings))
            .resolve_job_def(DEID_JOB)
            .execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET_RUN)
        )
    checks = {
        e.asset_key.path[-1]: e
        for e in result.get_asset_check_evaluations()
        if e.check_name == NO_RESIDUAL_IDENTIFIERS
    }
    rows = [
        (m.asset_key.path[-1], m.materialization.metadata["rows"].value)
        for m in result.get_asset_materialization_events()
    ]
    if rows:
        frame = pl.DataFrame(rows, schema={"table": pl.String, "rows": pl.Int64}, orient="row")
        console.print(_table(f"De-identified export in {settings.lake / 'deidentified'}", frame))
    failed = sorted(t for t, c in checks.items() if not c.passed)
    if not result.success or failed:
        console.print(f"[red]de-identified export failed[/red] (run {result.run_id}); nothing was published")
        for event in result.get_step_failure_events():
            console.print(f"  {_export_error(event.step_failure_data.error)}")
        for table in failed:
            counts = {k: v.value for k, v in checks[table].metadata.items() if k != "findings"}
            console.print(f"  {table}: residual identifiers (column:check → count) {counts}")
        raise typer.Exit(1)
    console.print(f"[green]{len(rows)} tables exported[/green]; {NO_RESIDUAL_IDENTIFIERS} passed for each")


def _export_error(error: object) -> str:
    """The export's own error message (it names tables and columns only); for any other error only its
    type, since its text might hold a value."""
    names = []
    while error is not None:
        name = getattr(error, "cls_name", None) or "error"
        if name in ("DeidError", "PolicyError", "Failure"):
            return str(getattr(error, "message", "")).strip()
        names.append(name)
        error = getattr(error, "cause", None)
    return f"step failed: {' ← '.join(names) or 'unknown error'}"


def print_summary(lake: UPath, seconds: float | None, exports: UPath | None = None) -> None:
    """Rows per table and quarantine reasons, as tables on the console."""
    from pipelines.lake_summary import quarantine_by_reason, table_row_counts

    console.print(_table("Rows per table", table_row_counts(lake)))
    console.print(_table("Quarantined records by reason", quarantine_by_reason(lake)))
    _print_identity_summary(lake)
    _print_care_gap_summary(lake)
    _print_risk_summary(lake)
    _print_sentiment_summary(lake)
    _print_segment_summary(lake)
    _print_device_summary(lake)
    if exports is not None:
        _print_outreach_summary(exports)
    _print_outreach_effect(lake)
    if seconds is not None:
        console.print(f"run time: {seconds:.1f} s")


def _print_device_summary(lake: UPath) -> None:
    """Device readings by metric and link, alerts by rule, adherence (counts only)."""
    from pipelines.devices.summary import device_summary

    summary = device_summary(lake)
    if summary is None:
        return
    console.print(_table("Device readings by metric", summary.readings))
    console.print(_table("Device readings by patient link", summary.links))
    console.print(_table("Device alerts by rule", summary.alerts))
    console.print(_table("Device adherence (30 days up to the as-of date)", summary.adherence))


def _print_identity_summary(lake: UPath) -> None:
    """Persons, links by rule and the clerical-review queue (counts only)."""
    from pipelines.identity.summary import identity_summary

    summary = identity_summary(lake)
    if summary is not None:
        console.print(_table("Identity: source records by link rule", summary))


def _print_care_gap_summary(lake: UPath) -> None:
    """Care-gap rates per measure (HEDIS-aligned; not NCQA-certified)."""
    from pipelines.lake import read_parquet

    path = lake / "gold" / "care_gap_rates" / "data.parquet"
    if path.exists():
        rates = read_parquet(path).select(
            "measure_id",
            "eligible",
            "exclusions",
            "denominator",
            "numerator",
            "open_gaps",
            pl.col("rate").round(3),
        )
        console.print(_table("Care gaps (HEDIS-aligned; not NCQA-certified)", rates))


def _print_risk_summary(lake: UPath) -> None:
    """Deployed risk models with their test metrics against the baseline, and persons per tier."""
    import json

    from pipelines.lake import parquet_files, read_table

    rows = []
    for name in ("person_180d", "discharge_30d"):
        pointer = lake / "models" / name / "deployed.json"
        if not pointer.exists():
            continue
        version = json.loads(pointer.read_text())["version"]
        metadata = json.loads((pointer.parent / version / "metadata.json").read_text())
        metrics, baseline = metadata["metrics"], metadata["baseline"]
        rows.append(
            (
                version,
                metadata["chosen"],
                round(metrics["model"]["auroc"], 3),
                round(metrics[baseline]["auroc"], 3),
                round(metrics["model"]["brier"], 4),
                round(metrics["prevalence_only"]["brier"], 4),
            )
        )
    if rows:
        columns = ["version", "model", "test AUROC", "baseline AUROC", "Brier", "prevalence Brier"]
        console.print(_table("Risk models (deployed)", pl.DataFrame(rows, schema=columns, orient="row")))
    if parquet_files(lake / "gold" / "risk_scores"):
        tiers = (
            read_table(lake, "gold", "risk_scores")
            .group_by("model_version", "tier")
            .agg(pl.len().alias("persons"))
            .sort("model_version", "tier")
            .rename({"model_version": "scored by"})
        )
        console.print(_table("Risk tiers", tiers))
        if tiers["scored by"].str.starts_with("baseline:").any():
            from models.risk.config import risk_config

            medium, high = risk_config().charlson_tiers
            console.print(
                "risk: no person model is deployed, so the Charlson comorbidity index scores everyone "
                f"(medium from {medium} point, high from {high}); the models__risk step says why no model "
                "was trained or deployed"
            )
    if parquet_files(lake / "gold" / "discharge_risk"):
        stays = read_table(lake, "gold", "discharge_risk")
        if stays.height:
            tiers = (
                stays.group_by("model_version", "tier")
                .agg(pl.len().alias("stays"), pl.col("returned_on").is_not_null().sum().alias("came back"))
                .sort("model_version", "tier")
                .rename({"model_version": "scored by"})
            )
            console.print(_table("Readmission risk of the stays discharged in the last 30 days", tiers))


def _print_sentiment_summary(lake: UPath) -> None:
    """The deployed sentiment model and both candidates' held-out macro-F1."""
    import json

    pointer = lake / "models" / "sentiment" / "deployed.json"
    if not pointer.exists():
        return
    version = json.loads(pointer.read_text())["version"]
    metadata = json.loads((pointer.parent / version / "metadata.json").read_text())
    rows = [(name, round(m["macro_f1"], 3), m["n"]) for name, m in sorted(metadata["metrics"].items())]
    table = pl.DataFrame(rows, schema=["model", "held-out macro-F1", "held-out texts"], orient="row")
    provenance = metadata.get("provenance", "unrecorded")
    console.print(_table(f"Sentiment ({version}: {metadata['kind']} deployed, {provenance} texts)", table))
    if provenance != "organisation":
        learnt = "learnt from generated texts" if provenance == "generated" else "kept no record of its texts"
        console.print(
            f"This sentiment model {learnt}: it scores only the generator's texts, and VADER scores every "
            "other text (`sentiment train` on your own labels or ratings replaces it)"
        )
    routes = ", ".join(f"{kind} → {name}" for kind, name in sorted(metadata.get("model_by_kind", {}).items()))
    if routes:
        console.print(f"Sentiment model per kind of text: {routes}")


def _print_segment_summary(lake: UPath) -> None:
    """Current members per segment and trigger events by kind."""
    from pipelines.lake import parquet_files, read_table

    if parquet_files(lake / "gold" / "segment_membership"):
        current = (
            read_table(lake, "gold", "segment_membership")
            .filter(pl.col("exited").is_null())
            .group_by("segment_id", "segment_type")
            .agg(pl.len().alias("members"))
            .sort("segment_id")
        )
        console.print(_table("Segments: current members", current))
    if parquet_files(lake / "gold" / "trigger_events"):
        kinds = (
            read_table(lake, "gold", "trigger_events")
            .group_by("kind")
            .agg(pl.len().alias("events"))
            .sort("kind")
        )
        console.print(_table("Trigger events fired (each once)", kinds))


def _print_outreach_effect(lake: UPath) -> None:
    """Per campaign with a hold-out and measure: closure rates, the difference and its 95 % interval."""
    from pipelines.outreach.closed_loop import gold_file
    from pipelines.outreach.effect import CAMPAIGN_EFFECT

    path = gold_file(lake, CAMPAIGN_EFFECT)
    if not path.exists():
        return
    with path.open("rb") as handle:
        effect = pl.read_parquet(handle)
    if effect.is_empty():
        return
    shown = effect.select(
        "campaign_id",
        "measure_id",
        pl.format("{}/{}", "contacted_closed", "contacted").alias("contacted closed"),
        pl.format("{}/{}", "holdout_closed", "holdout").alias("hold-out closed"),
        (pl.col("difference") * 100).round(1).cast(pl.String).fill_null("–").alias("difference (points)"),
        pl.format("{} to {}", (pl.col("ci_low") * 100).round(1), (pl.col("ci_high") * 100).round(1))
        .fill_null("– (no follow-up ended)")
        .alias("95 % interval"),
        pl.col("pending_follow_up").alias("pending"),
    )
    console.print(_table("Outreach effect on care gaps (contacted vs randomized hold-out)", shown))


def _print_outreach_summary(exports: UPath) -> None:
    """The latest run of every campaign: listed, suppressed, delta (counts only)."""
    from pipelines.outreach.exports import campaign_runs

    rows = []
    for folder in sorted(exports.iterdir()) if exports.exists() else []:
        runs = campaign_runs(exports, folder.name) if folder.is_dir() else []
        if runs:
            counts = {f["url"]: f["count"] for f in runs[-1].manifest()["output"]}
            rows.append(
                (
                    folder.name,
                    runs[-1].run_id,
                    counts["list.csv"],
                    counts["suppressed.csv"],
                    counts["added.csv"],
                    counts["removed.csv"],
                )
            )
    if rows:
        frame = pl.DataFrame(
            rows,
            schema=["campaign", "run_id", "listed", "suppressed", "added", "removed"],
            orient="row",
        )
        console.print(_table(f"Outreach: latest run per campaign (under {exports})", frame))


# Last, so that `python -m pipelines.cli` runs with every helper above defined.
if __name__ == "__main__":
    app()
