"""`make bench`: generator, bronze ingest and silver build throughput and peak memory (bench/reports/).

Sizes come from `BENCH_PATIENTS` (comma-separated, default 100000); work files go to `bench/work/`
(git-ignored) or `BENCH_WORK`. Every stage runs in its own interpreter (see `bench.stage`).
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
console = Console()
COMPARE_PER_TYPE = 10_000
"""Resources per type in the fixed sample both SQL on FHIR engines run (sqlonfhir needs ~25 s for it)."""


def run_stage(stage: str, **kwargs: object) -> dict[str, float]:
    """Run one stage in a fresh interpreter and return its measurements."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.stage", stage, json.dumps(kwargs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    """Measure each size and write the markdown report."""
    sizes = [int(s) for s in os.environ.get("BENCH_PATIENTS", "100000").split(",")]
    work = Path(os.environ.get("BENCH_WORK", ROOT / "bench" / "work"))
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


if __name__ == "__main__":
    main()
