"""`make bench`: generator, bronze ingest and silver build throughput and peak memory, identity per case kind
of the hard identity set, the risk models, the sentiment paths, the dashboard's page render times, the
command line's start-up, the end-to-end targets and Apple Health exports of realistic size (bench/reports/).

Eight parts, in this order; `BENCH_ONLY` (comma-separated among `pipeline`, `identity`, `risk`, `sentiment`,
`dashboard`, `startup`, `e2e`, `apple_health`; default all) runs only those named, e.g.
`BENCH_ONLY=dashboard python -m bench.run`:

- pipeline: sizes from `BENCH_PATIENTS` (comma-separated, default 100000) → reports/pipeline.md;
- identity: the hard identity set of `BENCH_IDENTITY_PEOPLE` (default 5000) people and the same people with
  only the usual noise, through bronze, silver and identity, scored per case kind (twins, namesakes,
  married names after a move ...) with the clerical-review load → reports/identity.md;
- risk: the whole pipeline on `BENCH_RISK_PATIENTS` (default 10000) → reports/risk.md;
- sentiment: the weak-label path, the human-label path and VADER on generated surveys whose true labels are
  known and on the UCI drug reviews (`bench.sentiment`) → reports/sentiment.md;
- dashboard: the whole pipeline on `BENCH_DASHBOARD_PATIENTS` (default 100000), then every page rendered
  cold and warm → reports/dashboard.md;
- startup: the start-up time of the commands that do not run the pipeline (`bench.startup`) →
  reports/startup.md;
- e2e: the end-to-end targets, each run as a new user runs it: the `patient-insights` command (or `make run`)
  in a subprocess of its own on a fresh lake, 20 people, `make run`'s commands, the Synthea set, the
  `BENCH_E2E_PATIENTS` sizes (default 10000,100000) with an incremental run after each, Dagster runs per
  pass and the share of Dagster's bookkeeping, and a fresh clone's `make run` (`BENCH_FRESH_CLONE=0` skips
  it) → reports/e2e.md (`bench.e2e` says more);
- apple_health: Apple Health exports of `BENCH_APPLE_MB` MB of XML (default 100,500), as export.xml and
  export.zip, through the reader alone, the bronze step and `patient-insights ingest`: time and peak memory
  (`bench.apple_health`) → reports/apple_health.md.

Work files go to `bench/work/` (git-ignored) or `BENCH_WORK`. Every stage runs in its own interpreter (see
`bench.stage`).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "bench" / "reports" / "pipeline.md"
RISK_REPORT = ROOT / "bench" / "reports" / "risk.md"
DASHBOARD_REPORT = ROOT / "bench" / "reports" / "dashboard.md"
IDENTITY_REPORT = ROOT / "bench" / "reports" / "identity.md"
IDENTITY_SEED = 42
IDENTITY_TARGETS = {"precision": 0.995, "recall": 0.95, "review_load": 0.02}
"""What identity is tuned to on the hard set, besides no link between twins or namesakes."""
TARGET_S = 1.0
"""The acceptance target: a page renders in under this many seconds, warm."""
console = Console()
COMPARE_PER_TYPE = 10_000
"""Resources per type in the fixed sample both SQL on FHIR engines run (sqlonfhir needs ~25 s for it)."""


def run_stage(stage: str, **kwargs: object) -> dict[str, Any]:
    """Run one stage in a fresh interpreter and return its measurements."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.stage", stage, json.dumps(kwargs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode:
        console.print(completed.stderr[-4000:], markup=False, highlight=False)
        completed.check_returncode()
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the parts named in `BENCH_ONLY` (default: all) and write their reports."""
    only = [p.strip() for p in os.environ.get("BENCH_ONLY", ",".join(PARTS)).split(",") if p.strip()]
    unknown = sorted(set(only) - set(PARTS))
    if unknown:
        raise SystemExit(f"BENCH_ONLY: unknown part(s) {', '.join(unknown)}; choose among {', '.join(PARTS)}")
    work = Path(os.environ.get("BENCH_WORK", ROOT / "bench" / "work"))
    for part in PARTS:
        if part in only:
            PARTS[part](work)


def bench_pipeline(work: Path) -> None:
    """Generator, bronze, silver, the SQL on FHIR comparison and identity at each `BENCH_PATIENTS` size."""
    sizes = [int(s) for s in os.environ.get("BENCH_PATIENTS", "100000").split(",")]
    rows = []
    for patients in sizes:
        folder = work / f"p{patients}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        console.print(f"[bold]{patients:,} patients[/bold]: generating")
        gen = run_stage("generate", out=str(folder / "landing"), patients=patients, seed=42)
        console.print(f"  generated {gen['records']:,} records in {gen['seconds']:.1f} s; ingesting")
        ing = run_stage("ingest", landing=str(folder / "landing"), lake=str(folder / "lake"), buckets=16)
        console.print(f"  ingested {ing['records']:,} records in {ing['seconds']:.1f} s; building silver")
        sil = run_stage(
            "silver",
            landing=str(folder / "landing"),
            lake=str(folder / "lake"),
            buckets=16,
            workers=os.cpu_count() or 1,
        )
        console.print(
            f"  silver: {sil['rows']:,} rows from {sil['records']:,} resources in {sil['seconds']:.1f} s"
        )
        console.print("  comparing with sqlonfhir on a fixed sample")
        cmp = run_stage("compare", landing=str(folder / "landing"), per_type=COMPARE_PER_TYPE)
        console.print("  building identity")
        ident = run_stage("identity", lake=str(folder / "lake"), truth=str(folder / "ground_truth"))
        rows.append((patients, gen, ing, sil, cmp, ident))
        shutil.rmtree(folder, ignore_errors=True)
    write_report(rows)
    console.print(f"report written to {REPORT.relative_to(ROOT)}")


def bench_risk(work: Path) -> None:
    """The whole pipeline on `BENCH_RISK_PATIENTS`, then the deployed risk models against their baselines."""
    risk_patients = int(os.environ.get("BENCH_RISK_PATIENTS", "10000"))
    folder = work / f"risk{risk_patients}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    console.print(f"[bold]risk models on {risk_patients:,} patients[/bold]: generating, running the pipeline")
    run_stage("generate", out=str(folder / "landing"), patients=risk_patients, seed=11)
    measured = run_stage(
        "risk",
        landing=str(folder / "landing"),
        lake=str(folder / "lake"),
        truth=str(folder / "ground_truth"),
        buckets=16,
    )
    write_risk_report(risk_patients, measured)
    shutil.rmtree(folder, ignore_errors=True)
    console.print(f"report written to {RISK_REPORT.relative_to(ROOT)}")


def bench_sentiment(work: Path) -> None:
    """The sentiment paths on texts of known true label (bench/sentiment.py) → reports/sentiment.md."""
    from bench.sentiment import bench_sentiment as sentiment

    sentiment(work)


def bench_dashboard(work: Path) -> None:
    """The whole pipeline on `BENCH_DASHBOARD_PATIENTS`, then every dashboard page's render time."""
    patients = int(os.environ.get("BENCH_DASHBOARD_PATIENTS", "100000"))
    folder = work / f"dashboard{patients}"
    measured_code = (_commit(), _uncommitted("dashboards", "pipelines", "models", "assets"))  # before it runs
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    console.print(f"[bold]dashboard on {patients:,} patients[/bold]: generating")
    gen = run_stage("generate", out=str(folder / "landing"), patients=patients, seed=7)
    console.print(
        f"  generated {gen['records']:,} records in {gen['seconds']:.1f} s; running the pipeline, then "
        "rendering every page"
    )
    measured = run_stage(
        "dashboard",
        landing=str(folder / "landing"),
        lake=str(folder / "lake"),
        exports=str(folder / "exports"),
        buckets=16,
    )
    write_dashboard_report(patients, measured, *measured_code)
    shutil.rmtree(folder, ignore_errors=True)
    console.print(f"report written to {DASHBOARD_REPORT.relative_to(ROOT)}")


def bench_identity(work: Path) -> None:
    """Identity on the hard identity set (`BENCH_IDENTITY_PEOPLE` base people, default 5000: twins, namesakes,
    strangers with the same name, married names after a move, no SSN, birth dates a day off, initials) and on
    the same people with only the usual noise, scored per case kind → reports/identity.md."""
    people = int(os.environ.get("BENCH_IDENTITY_PEOPLE", "5000"))
    measured_code = (
        _commit(),
        _uncommitted("pipelines", "bench/run.py", "bench/stage.py", "bench/identity_score.py"),
    )
    measured: dict[str, Measurements] = {}
    for name, cases in (("hard", True), ("easy", False)):
        folder = work / f"identity{people}-{name}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        console.print(f"[bold]identity, {name} set of {people:,} people[/bold]: generating")
        gen = run_stage(
            "generate_identity", out=str(folder / "landing"), people=people, seed=IDENTITY_SEED, cases=cases
        )
        console.print(f"  {gen['records']:,} Patient records; ingesting, building silver")
        run_stage("ingest", landing=str(folder / "landing"), lake=str(folder / "lake"), buckets=4)
        run_stage(
            "silver",
            landing=str(folder / "landing"),
            lake=str(folder / "lake"),
            buckets=4,
            workers=os.cpu_count() or 1,
        )
        console.print("  building identity and scoring it per case kind")
        measured[name] = {
            **run_stage("identity_cases", lake=str(folder / "lake"), truth=str(folder / "ground_truth")),
            "generated": gen,
        }
        shutil.rmtree(folder, ignore_errors=True)
    write_identity_report(people, measured, *measured_code)
    console.print(f"report written to {IDENTITY_REPORT.relative_to(ROOT)}")


def bench_startup(work: Path) -> None:
    """The command line's start-up time (bench/startup.py) → reports/startup.md."""
    from bench.startup import bench_startup as startup

    startup(work)


def bench_e2e(work: Path) -> None:
    """The end-to-end targets (bench/e2e.py) → reports/e2e.md; a measure that fails is reported as such."""
    from bench.e2e import bench_e2e as e2e

    e2e(work)


def bench_apple_health(work: Path) -> None:
    """Apple Health exports of realistic size (bench/apple_health.py) → reports/apple_health.md."""
    from bench.apple_health import bench_apple_health as apple_health

    apple_health(work)


PARTS = {
    "pipeline": bench_pipeline,
    "identity": bench_identity,
    "risk": bench_risk,
    "sentiment": bench_sentiment,
    "dashboard": bench_dashboard,
    "startup": bench_startup,
    "e2e": bench_e2e,
    "apple_health": bench_apple_health,
}
"""The parts `BENCH_ONLY` chooses among, in the order they run."""


Measurements = dict[str, Any]


def _commit() -> str:
    """The short commit the report was measured at (empty outside a git checkout)."""
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()


def write_report(
    rows: list[tuple[int, Measurements, Measurements, Measurements, Measurements, Measurements]],
) -> None:
    """The markdown report: one line per stage and size."""
    mib = 1024 * 1024
    commit = _commit()
    lines = [
        "# Pipeline benchmark: synthetic generator, landing → bronze, bronze → silver, identity",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {commit or 'unknown'} with `make bench` "
        f"(`BENCH_PATIENTS` {','.join(str(r[0]) for r in rows)}) on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}. Each stage runs in its own process; "
        "peak RSS is that process's maximum resident set size.",
        "",
        "| patients | stage | records | MB | seconds | records/s | MB/s | peak RSS (MiB) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for patients, gen, ing, sil, _, _ in rows:
        for name, stage in (("generate", gen), ("bronze ingest", ing), ("silver (FHIR only)", sil)):
            lines.append(
                f"| {patients:,} | {name} | {int(stage['records']):,} | {stage['bytes'] / mib:,.0f} | "
                f"{stage['seconds']:,.1f} | {stage['records'] / stage['seconds']:,.0f} | "
                f"{stage['bytes'] / mib / stage['seconds']:,.1f} | {stage['peak_rss_mib']:,.0f} |"
            )
    lines += [
        "",
        "MB is the landing data read or written (for silver: the FHIR landing files). Also measured:",
        "",
    ]
    for patients, _, ing, sil, cmp, ident in rows:
        both = ing["seconds"] + sil["seconds"]
        lines += [
            f"- {patients:,} patients: bronze lake {ing['lake_bytes'] / mib:,.0f} MB on disk; silver wrote "
            f"{int(sil['rows']):,} rows. FHIR NDJSON/Bundles → silver end to end (bronze ingest of every "
            f"source + silver): {sil['bytes'] / mib / both:,.1f} MB/s, {sil['records'] / both:,.0f} FHIR "
            f"resources/s. `cat` of the FHIR landing files to /dev/null: {sil['raw_read_mb_s']:,.0f} MB/s "
            f"({'page cache emptied first: the disk' if sil.get('raw_read_cold') else 'page cache warm'}).",
            f"- {patients:,} patients, SQL on FHIR engines on one core over the same fixed sample "
            f"({COMPARE_PER_TYPE:,} resources per type, every silver view; "
            f"{int(cmp['records']):,} resource × view evaluations): this engine "
            f"{cmp['records'] / cmp['seconds']:,.0f}/s from NDJSON text, `sqlonfhir` "
            f"{cmp['records'] / cmp['sqlonfhir_seconds']:,.0f}/s from parsed dicts: "
            f"{cmp['sqlonfhir_seconds'] / cmp['seconds']:,.1f}× faster. Columns sqlonfhir cannot run "
            f"(left out of both): {', '.join(cmp['columns_sqlonfhir_cannot_run']) or 'none'}.",
            f"- {patients:,} patients, identity: {int(ident['records']):,} source Patient records → "
            f"{int(ident['persons']):,} persons (ground truth {int(ident['true_persons']):,}) in "
            f"{ident['seconds']:,.1f} s (peak {ident['peak_rss_mib']:,.0f} MiB); pairwise precision "
            f"{ident['precision']:.4f}, recall {ident['recall']:.4f} over {int(ident['true_pairs']):,} true "
            f"pairs; {int(ident['clerical_review']):,} pairs for clerical review.",
        ]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")


def write_risk_report(patients: int, measured: Measurements) -> None:
    """The risk report: each deployed model against its clinical baseline, a prevalence-only model and the
    ceiling set by the generator's latent rates, with the calibration table."""
    commit = _commit()
    lines = [
        "# Risk models on generated data",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {commit or 'unknown'} with `make bench` "
        f"(`BENCH_RISK_PATIENTS` {patients:,}, seed 11, as of 2026-06-30): the whole pipeline "
        f"({measured['seconds']:,.0f} s including training), then each deployed model on its test rows. The "
        "ceiling is the AUROC of the generator's own latent acute-care rates (ground_truth/risk.csv) on the "
        "same rows: no model can be expected to beat it.",
        "",
        "| model | chosen | test rows (positives) | AUROC | baseline AUROC | ceiling | AUPRC "
        "| baseline AUPRC | Brier | prevalence-only Brier |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in ("person_180d", "discharge_30d"):
        model = measured.get(name)
        if not model:
            lines.append(f"| {name} | not deployed | | | | | | | | |")
            continue
        m, b = model["metrics"], model["metrics"][model["baseline"]]
        lines.append(
            f"| {name} | {model['chosen']} | {model['rows']['test']:,} ({model['positives']['test']:,}) | "
            f"{m['model']['auroc']:.3f} | {model['baseline']} {b['auroc']:.3f} | "
            f"{model['oracle_auroc']:.3f} | "
            f"{m['model']['auprc']:.3f} | {b['auprc']:.3f} | {m['model']['brier']:.4f} | "
            f"{m['prevalence_only']['brier']:.4f} |"
        )
    for name in ("person_180d", "discharge_30d"):
        model = measured.get(name)
        if not model:
            continue
        lines += [
            "",
            f"Calibration of {name} (test rows, equal-count bins):",
            "",
            "| bin | n | mean predicted | observed rate |",
            "| ---: | ---: | ---: | ---: |",
            *[
                f"| {row['bin']} | {row['n']:,} | {row['mean_predicted']:.3f} | {row['observed_rate']:.3f} |"
                for row in model["calibration"]
            ],
        ]
    RISK_REPORT.write_text("\n".join(lines) + "\n")


def _share(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def write_identity_report(
    people: int, measured: dict[str, Measurements], commit: str, changed: list[str]
) -> None:
    """The identity report: per case kind of the hard set, pairs, pairwise precision and recall, false links
    between relatives and persons in review; the overall figures against the targets; the easy set beside."""
    hard, easy = measured["hard"], measured["easy"]
    overall = hard["overall"]
    kinds = {k["case_kind"]: k for k in hard["kinds"]}
    relatives_linked = sum(
        kinds[k]["false_links_between_relatives"] or 0 for k in ("twin", "namesake") if k in kinds
    )
    all_false_links = sum(k["false_links_between_relatives"] or 0 for k in hard["kinds"])
    targets = [
        ("no link between twins or namesakes", f"{relatives_linked} record pairs", relatives_linked == 0),
        (
            f"pairwise precision ≥ {IDENTITY_TARGETS['precision']}",
            _share(overall["precision"]),
            (overall["precision"] or 0) >= IDENTITY_TARGETS["precision"],
        ),
        (
            f"pairwise recall ≥ {IDENTITY_TARGETS['recall']}",
            _share(overall["recall"]),
            (overall["recall"] or 0) >= IDENTITY_TARGETS["recall"],
        ),
        (
            f"persons with a pending review pair ≤ {IDENTITY_TARGETS['review_load']:.0%}",
            f"{overall['review_load']:.2%} ({overall['persons_in_review']:,} of {overall['persons']:,})",
            overall["review_load"] <= IDENTITY_TARGETS["review_load"],
        ),
    ]
    lines = [
        "# Identity on the hard identity set, per case kind",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {commit or 'unknown'}"
        + (f" with uncommitted changes to {', '.join(changed)}" if changed else "")
        + f" with `{_command()}` (`BENCH_IDENTITY_PEOPLE` {people:,}, seed {IDENTITY_SEED}) on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        "The hard set (`patient-insights generate --identity-set hard`, "
        f"`pipelines/generate/identity_cases.py`): {people:,} people drawn like the full generator's "
        "population, plus their twins, namesake children and strangers with the same name: "
        f"{overall['persons']:,} persons, {overall['records']:,} Patient records in two EHRs, "
        f"{overall['true_pairs']:,} true record pairs, through bronze, silver and identity (identity "
        f"{hard['seconds']:,.1f} s, peak {hard['peak_rss_mib']:,.0f} MiB). A predicted pair (two records "
        "under one person_id) counts under the case kind of each true person it touches; false links between "
        "relatives are record pairs of two related persons (twins, a parent and the child named after them, "
        "two strangers with the same name and birth year) under one person_id. Persons in review: true "
        "persons with a record in a clerical-review pair nobody has decided.",
        "",
        "| case kind | persons | true pairs | predicted pairs | correct | precision | recall "
        "| false links between relatives (persons merged) | persons in review |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for k in hard["kinds"]:
        false_links = (
            ""
            if k["false_links_between_relatives"] is None
            else f"{k['false_links_between_relatives']:,} ({k['relatives_merged']:,})"
        )
        lines.append(
            f"| {k['case_kind']} | {k['persons']:,} | {k['true_pairs']:,} | {k['predicted_pairs']:,} | "
            f"{k['correct_pairs']:,} | {_share(k['precision'])} | {_share(k['recall'])} | {false_links} | "
            f"{k['persons_in_review']:,} |"
        )
    lines += [
        f"| **all** | {overall['persons']:,} | {overall['true_pairs']:,} | {overall['predicted_pairs']:,} | "
        f"{overall['correct_pairs']:,} | {_share(overall['precision'])} | {_share(overall['recall'])} | "
        f"{all_false_links:,} | "
        f"{overall['persons_in_review']:,} |",
        "",
        f"Clerical review: {overall['review_pairs']:,} pending pairs, "
        f"{overall['review_pairs_of_one_person']:,} of them two records of one person.",
        "",
        "Targets:",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
        *[f"| {what} | {value} | {'yes' if met else '**no**'} |" for what, value, met in targets],
        "",
    ]
    e = easy["overall"]
    lines.append(
        f"The easy set, the same {people:,} people with only the population's usual noise (nicknames, typos, "
        f"maiden names, swapped birth dates, moves; no case added): {e['records']:,} records, "
        f"{e['true_pairs']:,} true pairs, pairwise precision {_share(e['precision'])}, recall "
        f"{_share(e['recall'])}, persons in review {e['persons_in_review']:,} ({e['review_load']:.2%}); "
        f"identity in {easy['seconds']:,.1f} s."
    )
    IDENTITY_REPORT.parent.mkdir(parents=True, exist_ok=True)
    IDENTITY_REPORT.write_text("\n".join(lines) + "\n")


def _command() -> str:
    """How this run was started: `make bench`, or the module with the `BENCH_*` settings that were given."""
    names = (
        "BENCH_ONLY",
        "BENCH_PATIENTS",
        "BENCH_RISK_PATIENTS",
        "BENCH_SENTIMENT_PATIENTS",
        "BENCH_SENTIMENT_SEEDS",
        "BENCH_SENTIMENT_SPLITS",
        "BENCH_DASHBOARD_PATIENTS",
        "BENCH_IDENTITY_PEOPLE",
        "BENCH_E2E_PATIENTS",
        "BENCH_E2E_REPEATS",
        "BENCH_FRESH_CLONE",
    )
    given = [f"{name}={os.environ[name]}" for name in names if name in os.environ]
    return " ".join([*given, "python -m bench.run"]) if given else "make bench"


def _uncommitted(*folders: str) -> list[str]:
    """Files under `folders` that differ from the commit (what was measured is not the commit alone)."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", *folders],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return sorted(line[3:] for line in status.splitlines() if line.strip())


def write_dashboard_report(patients: int, measured: Measurements, commit: str, changed: list[str]) -> None:
    """The dashboard report: cold and warm render time of every page against the target, the Patient 360
    searches, the pipeline run that built the lake, and where the slowest page spends its time; `commit`
    and `changed` (uncommitted files) are the code's state when the measurement began."""
    mib = 1024 * 1024
    pipeline = measured["pipeline"]
    outcome = "succeeded" if pipeline["success"] else "FAILED (" + ", ".join(pipeline["failed_checks"]) + ")"
    lines = [
        "# Dashboard render times on generated data",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {commit or 'unknown'}"
        + (f" with uncommitted changes to {', '.join(changed)}" if changed else "")
        + f" with `{_command()}` (`BENCH_DASHBOARD_PATIENTS` {patients:,}, seed 7, as of 2026-06-30) on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        f"The whole pipeline ran first: {pipeline['seconds']:,.0f} s, {outcome}, peak RSS "
        f"{pipeline['peak_rss_mib']:,.0f} MiB; it left {int(measured['persons']):,} persons in "
        f"gold.patient_360 and {measured['bytes'] / mib:,.0f} MB of gold tables on disk. Then, in a "
        f"process of its own (peak RSS {measured['dashboard_peak_rss_mib']:,.0f} MiB), every page was "
        "rendered as a care manager with Streamlit's AppTest: each render is a fresh AppTest switched to the "
        "page, and only that page's `AppTest.run()` is timed (the page script and the reading back of what "
        "it drew; for the home page, its first run). Cold: Streamlit's data cache emptied just before, as "
        "for the first visitor after a pipeline run. Warm: the cache kept, as every later visitor finds it "
        f"({len(measured['pages'][0]['warm_s'])} renders). Before any timed render each page was viewed once "
        f"({measured['warm_up_s']:.1f} s in all), so what a server process pays only at its first page views "
        "(imports such as pandas at the first table, altair's first chart) is in no figure; that very first "
        f"view, the Overview in a fresh process with an empty cache, took {measured['first_view_s']:.2f} s"
        + (
            " (this process ran with PYTHONDONTWRITEBYTECODE set: modules without a bytecode cache were "
            "compiled on import)"
            if measured["compiles_imports"]
            else ""
        )
        + ". AppTest runs the page script as the server does but sends nothing to a browser: the network and "
        "the browser's drawing are not included.",
        "",
        f'Target: a page renders in under {TARGET_S:g} s on 100,000 patients, warm ("under '
        f'{TARGET_S:g} s?" is yes when every warm render was).',
        "",
        "| page | cold s | warm median s | warm max s | under 1 s? |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for page in measured["pages"]:
        lines.append(
            f"| {page['page']} | {page['cold_s']:,.2f} | {page['warm_median_s']:,.2f} | "
            f"{page['warm_max_s']:,.2f} | {'yes' if page['warm_max_s'] < TARGET_S else '**no**'} |"
        )
    failures = [(p["page"], e) for p in measured["pages"] for e in p["exceptions"]]
    failures += [(f"search by {k}", e) for k, s in measured["searches"].items() for e in s["exceptions"]]
    lines += [
        "",
        "No render raised an exception."
        if not failures
        else "Renders that raised an exception: " + "; ".join(f"{w}: {e[:200]}" for w, e in failures),
        "",
        "Patient 360 searches, warm (the search index cached): the run after typing the query, on a fresh "
        "page each time. The first is the person's first look-up, whose own rows are not cached yet (what a "
        "care manager meets for each new patient); then the same query again.",
        "",
        "| search | matches | person found | first s | again: median s | again: max s |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    described = {
        "name": "name: 4 letters of the family name and the given name",
        "mrn": "MRN of another person (exact)",
    }
    for key, search in measured["searches"].items():
        lines.append(
            f"| {described[key]} | {int(search['matches']):,} | {'yes' if search['found'] else '**no**'} | "
            f"{search['first_s']:,.2f} | {search['repeat_median_s']:,.2f} | {search['repeat_max_s']:,.2f} |"
        )
    lines += [
        "",
        f"Where the slowest page ({measured['profiled_page']}, by warm median) spends a warm render: one "
        "more render under cProfile (which slows it), the page's script thread, the functions with the most "
        "cumulative time:",
        "",
        "| function | calls | cumulative s | own s |",
        "| --- | ---: | ---: | ---: |",
        *[
            f"| `{row['function']}` | {int(row['calls']):,} | {row['cumulative_s']:,.2f} | "
            f"{row['own_s']:,.2f} |"
            for row in measured["profile"]
        ],
        "",
        _load_line(pipeline["other_cores"], measured["other_cores_during_renders"]),
    ]
    DASHBOARD_REPORT.write_text("\n".join(lines) + "\n")


def _load_line(pipeline: float | None, renders: float | None) -> str:
    """What else the machine was doing: the cores other processes kept busy (from /proc/stat)."""
    if pipeline is None or renders is None:
        return "Machine load from other processes: not measured (no /proc/stat)."
    line = (
        f"Machine load: other processes kept on average {pipeline:.1f} of the {os.cpu_count()} cores busy "
        f"during the pipeline and {renders:.1f} during the renders (the machine's busy CPU time from "
        "/proc/stat less this benchmark's own)."
    )
    slowed = [what for what, cores in (("pipeline", pipeline), ("renders", renders)) if cores >= 0.25]
    if slowed:
        line += f" That competition lengthened the {' and the '.join(slowed)} against an idle machine."
    return line


if __name__ == "__main__":
    main()
