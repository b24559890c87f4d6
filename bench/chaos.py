"""`make chaos`: kill the pipeline at random points and check that a re-run gives the clean run's result.

    python -m bench.chaos [--trials 20] [--people 150] [--seed 1]   → bench/reports/chaos.md

A landing folder is generated once. The pipeline (`patient-insights ingest`'s `run_pipeline`, in a process
group of its own, with its Dagster instance on disk) runs twice undisturbed: the reference, and a second
clean run that shows which columns differ between any two runs (run ids and times; they are left out of
every comparison and listed in the report). Each trial then starts the pipeline on a fresh lake, sends
SIGKILL to its process group after a random delay (seeded), checks what a reader would see at that moment
(every visible Parquet file complete and readable, every visible export run folder whole), runs the
pipeline again to the end and compares every lake table and every export with the reference: content
hashes per table over all rows (so a duplicate or a lost row shows), list files byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "bench" / "reports" / "chaos.md"
AS_OF = date(2026, 6, 30)
BUCKETS = 2
COMPARED_LAYERS = ("bronze", "silver", "identity", "gold")
EXPORT_FILES = ("list.csv", "list.parquet", "suppressed.csv", "added.csv", "removed.csv", "changed.csv")


@dataclass
class Trial:
    """One kill and re-run."""

    number: int
    seed: int
    delay: float
    killed_in: str = ""  # the step of the pipeline run that was running when the kill came
    partial_visible: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    rerun_seconds: float = 0.0
    rerun_ok: bool = False

    @property
    def identical(self) -> bool:
        """The re-run gave the reference's tables and exports, and nothing half-made was visible."""
        return self.rerun_ok and not self.differences and not self.partial_visible


def child_command(root: Path, landing: Path) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run the whole pipeline into `root`/lake and `root`/exports."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(root / "dagster_home"),
        "PATIENT_INSIGHTS_SENTIMENT_LABELS": str(landing.parent / "ground_truth" / "conversation_turns.csv"),
        "PATIENT_INSIGHTS_WORKERS": "1",
        "PYTHONPATH": str(ROOT),
    }
    args = [sys.executable, "-m", "bench.chaos", "child", str(landing), str(root)]
    return args, env


def start(root: Path, landing: Path) -> subprocess.Popen:
    """Start the pipeline on `root` in a new process group (so a kill reaches any worker too)."""
    (root / "dagster_home").mkdir(parents=True, exist_ok=True)
    (root / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    args, env = child_command(root, landing)
    return subprocess.Popen(
        args, env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def run_to_end(root: Path, landing: Path) -> tuple[bool, float]:
    """Run the pipeline on `root` to its end; (succeeded, seconds)."""
    began = time.perf_counter()
    process = start(root, landing)
    _, stderr = process.communicate()
    if process.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
        print(f"pipeline failed in {root.name}: {' | '.join(tail)}", file=sys.stderr)
    return process.returncode == 0, time.perf_counter() - began


def kill_after(root: Path, landing: Path, delay: float) -> None:
    """Start the pipeline on `root` and SIGKILL its whole process group after `delay` seconds (or let it
    end if it finishes first)."""
    process = start(root, landing)
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def running_job(root: Path) -> str:
    """The step the killed run was in: the last step its Dagster instance saw start in the last run."""
    import dagster as dg

    try:
        with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
            runs = instance.get_runs(limit=1)
            if not runs:
                return "before the run started"
            last = runs[0]
            started = instance.get_records_for_run(
                last.run_id, of_type=dg.DagsterEventType.STEP_START, ascending=False, limit=1
            ).records
            step = started[0].event_log_entry.step_key if started else "before the first step"
            state = "" if last.status == dg.DagsterRunStatus.STARTED else f" ({last.status.value.lower()})"
            return f"{last.job_name}: {step}{state}"
    except Exception as error:  # the instance itself may be what the kill damaged: say so, go on
        return f"unknown ({type(error).__name__})"


def visible_partial_files(root: Path) -> list[str]:
    """Visible files a reader would trip on: unreadable Parquet in the lake, export run folders without a
    manifest or whose files do not match it."""
    from upath import UPath

    from pipelines.lake import parquet_files
    from pipelines.outreach.exports import campaign_runs
    from pipelines.outreach.verify import verify_export

    found = []
    lake = root / "lake"
    for layer in COMPARED_LAYERS:
        for path in parquet_files(UPath(lake / layer)):
            try:
                pq.read_metadata(path.path)
                pq.read_table(path.path)
            except Exception as error:
                found.append(f"{Path(path.path).relative_to(lake)}: {type(error).__name__}")
    exports = root / "exports"
    if exports.exists():
        for campaign in sorted(
            p.name for p in exports.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            for run in campaign_runs(UPath(exports), campaign):
                problems = verify_export(run)
                if problems:
                    found.append(f"exports/{campaign}/{run.path.name}: {'; '.join(problems)}")
    return found


def table_digests(root: Path, ignore: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Per lake table (all its partitions together) and per export file, a content hash: tables as the
    sorted hashes of their rows without the `ignore`d columns, export files by their bytes."""
    digests: dict[str, str] = {}
    lake = root / "lake"
    for layer in COMPARED_LAYERS:
        folder = lake / layer
        if not folder.exists():
            continue
        for table in sorted(
            p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
        ):
            frame = _table(folder / table)
            if frame is None:
                continue
            name = f"{layer}/{table}"
            frame = frame.drop([c for c in (ignore or {}).get(name, []) if c in frame.columns])
            rows = frame.hash_rows(seed=7).sort() if frame.width else pl.Series([], dtype=pl.UInt64)
            digest = hashlib.sha256(rows.to_numpy().tobytes() + str(frame.schema).encode()).hexdigest()
            digests[name] = f"{frame.height}:{digest}"
    exports = root / "exports"
    for name in EXPORT_FILES:
        for path in sorted(exports.rglob(name)) if exports.exists() else []:
            if not any(part.startswith(".") for part in path.relative_to(exports).parts):
                digests[f"exports/{path.relative_to(exports)}"] = hashlib.sha256(
                    path.read_bytes()
                ).hexdigest()
    return digests


def volatile_columns(first: Path, second: Path) -> dict[str, list[str]]:
    """Per table, the columns whose values differ between two clean runs of the same data (run ids and
    times): found by comparing each column's sorted hashes."""
    volatile: dict[str, list[str]] = {}
    for layer in COMPARED_LAYERS:
        folder = first / "lake" / layer
        if not folder.exists():
            continue
        for table_dir in sorted(
            p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
        ):
            name = f"{layer}/{table_dir.name}"
            one, two = _table(first / "lake" / name), _table(second / "lake" / name)
            if one is None or two is None:
                continue
            columns = [
                c
                for c in one.columns
                if c not in two.columns
                or one.height != two.height
                or not one.select(pl.col(c).hash(seed=3).sort()).equals(
                    two.select(pl.col(c).hash(seed=3).sort())
                )
            ]
            if columns and one.height == two.height:
                volatile[name] = columns
    return volatile


def _table(folder: Path) -> pl.DataFrame | None:
    """Every visible Parquet file of a table folder as one frame (None: no files)."""
    files = sorted(f for f in folder.rglob("*.parquet") if not f.name.startswith((".", "_")))
    if not files:
        return None
    return pl.concat([pl.read_parquet(f, hive_partitioning=False) for f in files], how="diagonal_relaxed")


def compare(reference: dict[str, str], other: dict[str, str]) -> list[str]:
    """What differs between two sets of digests (names only, never content)."""
    differences = [f"missing {name}" for name in sorted(set(reference) - set(other))]
    differences += [f"extra {name}" for name in sorted(set(other) - set(reference))]
    differences += [
        f"differs {name}" for name in sorted(set(reference) & set(other)) if reference[name] != other[name]
    ]
    return differences


@dataclass
class ChaosResult:
    """A whole chaos session."""

    work: Path  # the landing folder and the reference run are kept here
    people: int
    seed: int
    reference_seconds: float
    volatile: dict[str, list[str]]
    trials: list[Trial]


def run_chaos(work: Path, trials: int, people: int, seed: int, progress: bool = False) -> ChaosResult:
    """Generate, run the two clean runs, then `trials` kill-and-re-run trials; return every outcome."""
    from pipelines.generate.landing import generate_landing

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    landing = work / "landing"
    generate_landing(landing, people, seed=seed, as_of=AS_OF)
    ok, reference_seconds = run_to_end(work / "reference", landing)
    if not ok:
        raise RuntimeError("the reference run failed")
    ok, _ = run_to_end(work / "second", landing)
    if not ok:
        raise RuntimeError("the second clean run failed")
    volatile = volatile_columns(work / "reference", work / "second")
    reference = table_digests(work / "reference", volatile)
    differing_clean = compare(reference, table_digests(work / "second", volatile))
    if differing_clean:
        raise RuntimeError(f"two clean runs differ beyond run ids and times: {differing_clean}")
    shutil.rmtree(work / "second")
    done: list[Trial] = []
    for number in range(trials):
        trial_seed = seed * 1000 + number
        delay = random.Random(trial_seed).uniform(0.5, reference_seconds * 0.95)
        trial = Trial(number, trial_seed, round(delay, 2))
        root = work / f"trial{number:02d}"
        kill_after(root, landing, delay)
        trial.killed_in = running_job(root)
        trial.partial_visible = visible_partial_files(root)
        trial.rerun_ok, trial.rerun_seconds = run_to_end(root, landing)
        if trial.rerun_ok:
            trial.differences = compare(reference, table_digests(root, volatile))
        done.append(trial)
        if progress:
            verdict = "identical" if trial.identical else "DIFFERENT"
            print(
                f"trial {number:2d}: killed after {delay:5.1f} s in {trial.killed_in}: {verdict}", flush=True
            )
        shutil.rmtree(root, ignore_errors=True)
    return ChaosResult(work, people, seed, reference_seconds, volatile, done)


def write_report(result: ChaosResult, command: str) -> None:
    """bench/reports/chaos.md."""
    identical = sum(t.identical for t in result.trials)
    lines = [
        "# Fault injection: the pipeline killed at random points, then run again",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{command}`: {result.people} generated people "
        f"(seed {result.seed}), {BUCKETS} buckets, as of {AS_OF}; a clean run took "
        f"{result.reference_seconds:,.1f} s. Each trial starts the pipeline on a fresh lake, sends SIGKILL "
        "to its process group after a random delay (seed = trial seed), checks what readers would see, runs "
        "the pipeline again and compares every table of bronze, silver, identity and gold (content hashes of "
        "all rows) and every export list with the reference run.",
        "",
        f"**{identical} of {len(result.trials)} trials identical** to the reference, with nothing half-made "
        "visible after the kill.",
        "",
        "| trial | seed | killed after s | running | visible partial files | re-run s | differences |",
        "| ---: | ---: | ---: | --- | --- | ---: | --- |",
    ]
    for t in result.trials:
        partial = ", ".join(t.partial_visible) or "none"
        differences = ", ".join(t.differences) or ("none" if t.rerun_ok else "re-run FAILED")
        lines.append(
            f"| {t.number} | {t.seed} | {t.delay:,.1f} | {t.killed_in} | {partial} | {t.rerun_seconds:,.1f} "
            f"| {differences} |"
        )
    lines += [
        "",
        "Columns left out of the comparison because two clean runs of the same data differ in them (run ids "
        "and times):",
        "",
        *[f"- {table}: {', '.join(columns)}" for table, columns in sorted(result.volatile.items())],
        "",
    ]
    REPORT.write_text("\n".join(lines))


def _child(landing: str, root: str) -> int:
    from upath import UPath

    from pipelines.config import Settings
    from pipelines.run import run_pipeline

    base = Path(root)
    settings = Settings(UPath(landing), UPath(base / "lake"), UPath(base / "exports"), BUCKETS, AS_OF)
    return 0 if run_pipeline(settings).success else 1


def main() -> None:
    """`python -m bench.chaos [--trials N] [--people N] [--seed N]` (and `child`, the run it kills)."""
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        raise SystemExit(_child(sys.argv[2], sys.argv[3]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=int(os.environ.get("CHAOS_TRIALS", 20)))
    parser.add_argument("--people", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "chaos")
    options = parser.parse_args()
    result = run_chaos(options.work, options.trials, options.people, options.seed, progress=True)
    command = (
        f"python -m bench.chaos --trials {options.trials} --people {options.people} --seed {options.seed}"
    )
    write_report(result, command)
    shutil.rmtree(options.work, ignore_errors=True)
    print(
        f"{sum(t.identical for t in result.trials)} of {len(result.trials)} trials identical; report {REPORT}"
    )
    if not all(t.identical for t in result.trials):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
