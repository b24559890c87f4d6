"""The end-to-end targets, each measured as a new user meets it → bench/reports/e2e.md.

    BENCH_ONLY=e2e python -m bench.run      (or `python -m bench.e2e`)

Every measured command is the `patient-insights` command (or `make run`) in a subprocess of its own, started
through a small wrapper: wall time is `time.perf_counter` around the command, peak RSS the largest process
of its tree (`getrusage(RUSAGE_CHILDREN)` in the wrapper, after the command ended) and, beside it, the sum
of the tree's resident memory sampled every 0.25 s. Each measured run gets a fresh lake and a fresh
DAGSTER_HOME (with the `dagster.yaml` `make setup` writes) unless the measure says otherwise. Machine load
is what other processes kept busy during each run (bench.stage's /proc/stat reading).

Measures (the targets table of the report, in this order):

- the pipeline on 20 generated people, `ingest`, one persistent DAGSTER_HOME for its `BENCH_E2E_REPEATS`
  runs (default 3; the median is judged) → ≤ 10 s;
- `make run`'s commands on a fresh folder (1,000 people, generation, both passes, simulate-outreach) → ≤ 60 s;
- a fresh clone's `make run` with its install (`make setup`, then `make run`, each timed) → ≤ 3 min; only
  with `BENCH_FRESH_CLONE=1` (the default: it may download packages; `BENCH_FRESH_CLONE=0` skips it);
- the 79-patient Synthea set (../shared/data), no variables but DAGSTER_HOME → ≤ 10 s;
- each `BENCH_E2E_PATIENTS` size (default 10000,100000): ≤ 40 s / ≤ 300 s, peak RSS ≤ 2.5 GiB; then a 1 %
  delivery and `ingest --incremental` (≤ 10 % of the full run, same silver/identity/gold as a full run);
- Dagster runs in one pass (≤ 15) and the share of a 20-person run in Dagster's bookkeeping (≤ 15 %, by
  cProfile, and py-spy when it can be had);
- `make test` in CI (≤ 8 min): not measured here, see CI.

Work files go to `bench/work/e2e/` (git-ignored) or `$BENCH_WORK/e2e`; `BENCH_KEEP=1` keeps them. A measure
that fails shows as FAILED with its reason; the report is rewritten after every measure.
"""

from __future__ import annotations

import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.stage import GENERIC_BUILTINS, _MachineLoad, _short

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "bench" / "reports" / "e2e.md"
SHARED = ROOT.parent / "shared"
SYNTHEA = SHARED / "data" / "synthea-r4-79-patients.tar.zst"
AS_OF = date(2026, 6, 30)
CAMPAIGN_DAY = AS_OF - timedelta(days=91)  # the Makefile's DEMO_CAMPAIGN_DAY
DELIVERY_DAY = date(2026, 7, 1)
SEED = 42
DEMO_PATIENTS = 1000
SMALL_PATIENTS = 20
MIB = 2**20

TARGET_SMALL_S = 10.0
TARGET_MAKE_RUN_S = 60.0
TARGET_FRESH_CLONE_S = 180.0
TARGET_SYNTHEA_S = 10.0
TARGET_SIZE_S = {10_000: 40.0, 100_000: 300.0}
TARGET_RSS_MIB = 2.5 * 1024
TARGET_INCREMENT_SHARE = 0.10
TARGET_DAGSTER_RUNS = 15
TARGET_BOOKKEEPING_SHARE = 0.15
COMPARED_LAYERS = ("silver", "identity", "gold")
"""The layers an incremental run must leave as a full run does (tests/test_incremental.py)."""
BOOKKEEPING = frozenset({"store_event", "handle_new_event", "create_run_for_job", "create_run"})
"""Dagster's bookkeeping: storing events (any event-log storage class, and the instance's handler) and
creating the run."""
TOP_FUNCTIONS = 15
SAMPLE_S = 0.25
PYSPY_RATE = 100

WRAPPER = r"""
import json, os, resource, signal, subprocess, sys, threading, time

out, timeout, every, argv = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
page = os.sysconf("SC_PAGE_SIZE")


def tree_rss(root):
    parents, rss = {}, {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                text = f.read()
            fields = text[text.rfind(")") + 2 :].split()
            parents.setdefault(int(fields[1]), []).append(int(name))
            rss[int(name)] = int(fields[21]) * page
        except (OSError, ValueError, IndexError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += parents.get(pid, [])
    return total


peak = [0]
started = time.perf_counter()
proc = subprocess.Popen(argv, start_new_session=True)
stop = threading.Event()


def sample():
    while not stop.wait(every):
        try:
            peak[0] = max(peak[0], tree_rss(proc.pid))
        except Exception:
            pass


threading.Thread(target=sample, daemon=True).start()
timed_out = False
try:
    code = proc.wait(timeout=timeout)
except (subprocess.TimeoutExpired, KeyboardInterrupt) as stopped:
    timed_out = isinstance(stopped, subprocess.TimeoutExpired)
    os.killpg(proc.pid, signal.SIGKILL)
    code = proc.wait()
seconds = time.perf_counter() - started
stop.set()
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as f:
    json.dump(
        {
            "seconds": seconds,
            "returncode": code,
            "timed_out": timed_out,
            "peak_rss_mib": usage.ru_maxrss / 1024,
            "tree_rss_mib": peak[0] / 2**20,
            "cpu_s": usage.ru_utime + usage.ru_stime,
        },
        f,
    )
"""
"""Runs a command, waits for it and writes its wall time, peak RSS (largest process, and the sampled sum
of the tree) to a JSON file. Standard library only, started with `-I -S`: it adds nothing to the command's
environment or import path."""

COUNT_RUNS = """
import json, sys
import dagster as dg
instance = dg.DagsterInstance.from_config(sys.argv[1])
runs = instance.get_runs()
print(json.dumps({"runs": len(runs), "jobs": sorted({r.job_name for r in runs})}))
"""

WRITE_INCREMENT = """
import json, sys
from datetime import date
from pathlib import Path
from pipelines.generate.increment import write_increment
summary = write_increment(Path(sys.argv[1]), date.fromisoformat(sys.argv[2]), share=0.01, seed=3)
print(json.dumps({"actions": summary.actions, "resources": summary.resources}))
"""


# ---------------------------------------------------------------------------------------------- running


@dataclass
class Timed:
    """One command run through the wrapper."""

    argv: list[str]
    seconds: float
    returncode: int
    peak_rss_mib: float
    tree_rss_mib: float
    other_cores: float | None
    log: Path
    timed_out: bool = False
    when: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def reason(self) -> str:
        """Why the command failed: its exit status and the last lines it printed."""
        what = "timed out" if self.timed_out else f"exit status {self.returncode}"
        return f"`{_argv_text(self.argv)}`: {what}: {_tail(self.log)}"


class CommandFailed(RuntimeError):
    """A measured command did not succeed."""


def timed(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> Timed:
    """Run `argv` in a subprocess of its own (through the wrapper), its output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    result = log.with_name(log.name + ".measured.json")
    result.unlink(missing_ok=True)
    timeout = float(os.environ.get("BENCH_E2E_TIMEOUT", "7200"))
    machine = _MachineLoad()
    when = _now()
    with log.open("wb") as out:
        out.write(f"$ {_argv_text(argv)}\n".encode())
        out.flush()
        subprocess.run(
            [sys.executable, "-I", "-S", "-c", WRAPPER, str(result), str(timeout), str(SAMPLE_S), *argv],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    other = machine.other_cores()
    try:
        measured = json.loads(result.read_text())
    except (OSError, ValueError):
        measured = {"seconds": float("nan"), "returncode": -1, "peak_rss_mib": 0.0, "tree_rss_mib": 0.0}
    return Timed(
        argv,
        measured["seconds"],
        measured["returncode"],
        measured["peak_rss_mib"],
        measured["tree_rss_mib"],
        other,
        log,
        measured.get("timed_out", False),
        when,
    )


def checked(run: Timed) -> Timed:
    """The run, or CommandFailed with its reason."""
    if not run.ok:
        raise CommandFailed(run.reason())
    return run


def cli() -> list[str]:
    """The installed console script, as a user runs it (else the module)."""
    script = Path(sys.executable).parent / "patient-insights"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pipelines.cli"]


def base_env(**variables: str | Path) -> dict[str, str]:
    """This process's environment without the project's variables (`make bench` exports its defaults) and
    without DAGSTER_HOME, plus `variables`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PATIENT_INSIGHTS_") and k != "DAGSTER_HOME"
    }
    env.update({k: str(v) for k, v in variables.items()})
    return env


def pipeline_env(home: Path, landing: Path, as_of: date = AS_OF) -> dict[str, str]:
    """What `make run` gives an `ingest`: DAGSTER_HOME, the as-of day and the labelled sample beside the
    landing folder."""
    return base_env(
        DAGSTER_HOME=home,
        PATIENT_INSIGHTS_AS_OF=as_of.isoformat(),
        PATIENT_INSIGHTS_SENTIMENT_LABELS=landing.parent / "ground_truth" / "conversation_turns.csv",
    )


def ingest_argv(landing: Path, lake: Path, exports: Path | None, *extra: str) -> list[str]:
    argv = [*cli(), "ingest", "--landing", str(landing), "--lake", str(lake)]
    if exports is not None:
        argv += ["--exports", str(exports)]
    return [*argv, *extra]


DAGSTER_YAML = """telemetry:
  enabled: false
# pipeline runs (a sensor's and one started by hand) wait for each other
run_queue:
  tag_concurrency_limits:
    - key: patient-insights/pipeline
      limit: 1
# events stored without a new connection and a disk sync each (pipelines/dagster_storage.py)
event_log_storage:
  module: pipelines.dagster_storage
  class: PooledSqliteEventLogStorage
  config:
    base_dir: {home}/history/runs
"""
"""The Makefile's dagster.yaml, used only when `make` cannot write one."""


def dagster_home(home: Path) -> Path:
    """A new DAGSTER_HOME with the `dagster.yaml` `make setup` writes (by the Makefile's own rule)."""
    shutil.rmtree(home, ignore_errors=True)
    home = home.resolve()
    config = home / "dagster.yaml"
    subprocess.run(
        ["make", "-s", "-C", str(ROOT), f"DAGSTER_HOME={home}", str(config)],
        env=base_env(),
        capture_output=True,
        check=False,
    )
    if not config.is_file():
        home.mkdir(parents=True, exist_ok=True)
        config.write_text(DAGSTER_YAML.format(home=home))
    return home


def generate(patients: int, out: Path, log: Path) -> Timed:
    """A landing folder of `patients` generated people (seed 42, as of 2026-06-30) and its ground truth."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.parent / "ground_truth", ignore_errors=True)
    argv = [*cli(), "generate", "--patients", str(patients), "--seed", str(SEED)]
    argv += ["--as-of", AS_OF.isoformat(), "--out", str(out)]
    return checked(timed(argv, base_env(), out.parent, log))


def dagster_runs(home: Path) -> dict[str, Any]:
    """The runs in the DAGSTER_HOME instance: their count and job names."""
    done = subprocess.run(
        [sys.executable, "-c", COUNT_RUNS, str(home)],
        env=base_env(DAGSTER_HOME=home),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise CommandFailed(f"counting the instance's runs failed: {done.stderr.strip()[-600:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_record(lake: Path) -> dict[str, Any] | None:
    """The lake's latest pipeline run record (`meta/pipeline_runs`)."""
    records = sorted((lake / "meta" / "pipeline_runs").glob("*.json"))
    return json.loads(records[-1].read_text()) if records else None


def lake_buckets(lake: Path) -> int | None:
    try:
        return int(json.loads((lake / "meta" / "layout.json").read_text())["buckets"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def records_in(lake: Path) -> int | None:
    """The records bronze took in (the sum of bronze.ingest_log's `records_in`)."""
    try:
        import polars as pl

        files = sorted((lake / "bronze" / "ingest_log").rglob("*.parquet"))
        frame = pl.concat([pl.read_parquet(f, columns=["records_in"]) for f in files])
        return int(frame["records_in"].sum())
    except Exception:
        return None


# --------------------------------------------------------------------------------------------- measures


@dataclass
class Measure:
    """One row of the targets table, with its details."""

    label: str
    target: str
    value: str = "not measured yet"
    met: bool | None = None
    failed: str | None = None
    load: float | None = None
    when: str = ""
    commit: str = ""
    details: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.failed, self.met = reason, False
        self.value = "FAILED"


class E2E:
    """The measures of one benchmark run and the report they make."""

    def __init__(self, work: Path) -> None:
        self.work = work / "e2e"
        self.sizes = sorted(
            int(s) for s in os.environ.get("BENCH_E2E_PATIENTS", "10000,100000").split(",") if s.strip()
        )
        self.repeats = max(1, int(os.environ.get("BENCH_E2E_REPEATS", "3")))
        self.fresh_clone = os.environ.get("BENCH_FRESH_CLONE", "1") != "0"
        self.keep = os.environ.get("BENCH_KEEP", "0") == "1"
        self.started = _now()
        self.commit = commit()
        self.changed = uncommitted()
        self.sections: dict[str, list[str]] = {}
        m = self.measures = {
            "small": Measure(
                f"pipeline on {SMALL_PATIENTS} generated people (landing → exports, `ingest`, persistent "
                "DAGSTER_HOME)",
                f"≤ {TARGET_SMALL_S:g} s",
            ),
            "make_run": Measure(
                f"`make run` after install ({DEMO_PATIENTS:,} people, both passes)", "≤ 60 s"
            ),
            "fresh_clone": Measure("fresh clone `make run` including install", "≤ 3 min"),
            "synthea": Measure(
                "the 79-patient Synthea set, landing → exports, only DAGSTER_HOME set",
                f"≤ {TARGET_SYNTHEA_S:g} s",
            ),
        }
        for size in self.sizes:
            target = TARGET_SIZE_S.get(size)
            m[f"size{size}"] = Measure(
                f"{size:,} generated people, `ingest`", f"≤ {target:g} s" if target else "none at this size"
            )
            m[f"rss{size}"] = Measure(
                f"{size:,} generated people, peak RSS", f"≤ {TARGET_RSS_MIB / 1024:g} GiB"
            )
        for size in self.sizes:
            m[f"inc{size}"] = Measure(
                f"{size:,} people: incremental run of a 1 % delivery",
                f"≤ {TARGET_INCREMENT_SHARE:.0%} of the full run, equal result",
            )
        m["dagster_runs"] = Measure("Dagster runs in one demo pass", f"≤ {TARGET_DAGSTER_RUNS}")
        m["bookkeeping"] = Measure(
            f"share of a {SMALL_PATIENTS}-person run in Dagster bookkeeping (event storage + run creation), "
            "by profile",
            f"≤ {TARGET_BOOKKEEPING_SHARE:.0%}",
        )
        m["make_test"] = Measure("`make test` in CI", "≤ 8 min", value="see CI")

    # ---- orchestration

    def run(self) -> None:
        """Every measure in turn (the cheap ones first); the report is rewritten after each."""
        self.work.mkdir(parents=True, exist_ok=True)
        steps: list[tuple[str, Callable[[], None], list[str]]] = [
            ("20 generated people", self.small, ["small", "dagster_runs"]),
            ("profile of a 20-person run", self.profile, ["bookkeeping"]),
            ("the Synthea set", self.synthea, ["synthea"]),
            ("make run's commands", self.make_run, ["make_run"]),
        ]
        for size in self.sizes:
            steps.append(
                (
                    f"{size:,} generated people",
                    lambda s=size: self.size(s),
                    [f"size{size}", f"rss{size}", f"inc{size}"],
                )
            )
        steps.append(("a fresh clone's make run", self.clone, ["fresh_clone"]))
        for title, step, keys in steps:
            _say(f"[e2e] {title}")
            try:
                step()
            except Exception as error:  # a failed measure is reported, the benchmark goes on
                reason = (
                    str(error) if isinstance(error, CommandFailed) else f"{type(error).__name__}: {error}"
                )
                if not isinstance(error, CommandFailed):
                    traceback.print_exc()
                for key in keys:
                    measure = self.measures[key]
                    if not measure.when:  # not measured before the failure
                        measure.fail(reason)
                        measure.when, measure.commit = _now(), self._commit_text()
            self.write()
        if not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        _say(f"[e2e] report written to {_argv_text([str(REPORT)])}")

    def _stamp(self, measure: Measure, runs: Iterable[Timed]) -> None:
        runs = list(runs)
        measure.when = runs[0].when if runs else _now()
        measure.commit = self._commit_text()
        loads = [r.other_cores for r in runs if r.other_cores is not None]
        seconds = [r.seconds for r in runs if r.other_cores is not None]
        if loads and sum(seconds) > 0:
            measure.load = sum(load * s for load, s in zip(loads, seconds, strict=True)) / sum(seconds)

    def _commit_text(self) -> str:
        now = commit()
        return now + ("*" if uncommitted() else "")

    # ---- 20 people, Dagster runs

    def small(self) -> None:
        folder = self.work / f"p{SMALL_PATIENTS}"
        shutil.rmtree(folder, ignore_errors=True)
        landing = folder / "landing"
        generate(SMALL_PATIENTS, landing, folder / "generate.log")
        home = dagster_home(folder / "dagster_home")  # one instance for every run: a user's .dagster_home
        self.small_home = home
        runs, rows = [], []
        measure, counted = self.measures["small"], self.measures["dagster_runs"]
        for i in range(self.repeats):
            run_dir = folder / f"run{i}"
            run = timed(
                ingest_argv(landing, run_dir / "lake", run_dir / "exports"),
                pipeline_env(home, landing),
                folder,
                folder / f"run{i}.log",
            )
            record = run_record(run_dir / "lake") if run.ok else None
            rows.append(_run_row(f"{i + 1}" + (" (new instance)" if i == 0 else ""), run, record))
            if i == 0 and run.ok:
                self._stamp(counted, [run])
                try:
                    found = dagster_runs(home)
                except CommandFailed as error:
                    counted.fail(str(error))
                else:
                    counted.value = f"{found['runs']} ({', '.join(found['jobs'])})"
                    counted.met = found["runs"] <= TARGET_DAGSTER_RUNS
                    counted.details = [
                        f"Dagster runs: those in a new DAGSTER_HOME instance after one `ingest` of "
                        f"{SMALL_PATIENTS} people (`DagsterInstance.from_config(home).get_runs()`)."
                    ]
            checked(run)
            runs.append(run)
        median = statistics.median(r.seconds for r in runs)
        measure.value = f"{median:,.1f} s (median of {len(runs)})"
        measure.met = median <= TARGET_SMALL_S
        self._stamp(measure, runs)
        self.sections["small"] = [
            f"## {SMALL_PATIENTS} generated people",
            "",
            f"Generated once (seed {SEED}, as of {AS_OF}); then `patient-insights ingest --landing --lake "
            "--exports` with DAGSTER_HOME, PATIENT_INSIGHTS_AS_OF and PATIENT_INSIGHTS_SENTIMENT_LABELS "
            f"set as `make run` sets them, {len(runs)} times, each on a fresh lake, all in one DAGSTER_HOME "
            "(persistent, as a user's `.dagster_home`; new before the first run). Wall time includes the "
            "interpreter's start, imports, the run, and the summary printed after it; the pipeline's own "
            "seconds are the run record's.",
            "",
            *_RUN_TABLE,
            *rows,
        ]

    # ---- profile of a 20-person run

    def profile(self) -> None:
        folder = self.work / f"p{SMALL_PATIENTS}"
        landing = folder / "landing"
        measure = self.measures["bookkeeping"]
        if not landing.is_dir():
            generate(SMALL_PATIENTS, landing, folder / "generate.log")
        home = getattr(self, "small_home", None) or dagster_home(folder / "dagster_home")
        out = folder / "profile.out"
        argv = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "pipelines.cli"]
        argv += ingest_argv(landing, folder / "prof" / "lake", folder / "prof" / "exports")[len(cli()) :]
        run = checked(timed(argv, pipeline_env(home, landing), ROOT, folder / "profile.log"))
        stats = pstats.Stats(str(out))
        shares = profile_shares(stats.stats, ROOT)  # type: ignore[attr-defined]
        total = shares["total_s"]
        measure.value = f"{shares['bookkeeping_s'] / total:.1%} (cProfile)"
        measure.met = shares["bookkeeping_s"] / total <= TARGET_BOOKKEEPING_SHARE
        self._stamp(measure, [run])
        lines = [
            f"## Where a {SMALL_PATIENTS}-person run spends its time",
            "",
            "`python -m cProfile -o F -m pipelines.cli ingest …` on a fresh lake, in the persistent "
            f"DAGSTER_HOME of the runs above: {run.seconds:,.1f} s wall with the profiler, {total:,.1f} s "
            "profiled (the main thread; threads and worker processes the steps start are not profiled, "
            f"their time shows as the main thread's wait). Load {_load(run.other_cores)}.",
            "",
            "| part | seconds | share of the profiled time |",
            "| --- | ---: | ---: |",
            *[
                f"| {label} | {shares[key]:,.2f} | {shares[key] / total:.1%} |"
                for key, label in (
                    ("bookkeeping_s", "Dagster bookkeeping: event storage and run creation"),
                    ("store_event_s", "… of which storing events (`store_event`, `handle_new_event`)"),
                    ("create_run_s", "… of which creating the run (`create_run_for_job`, `create_run`)"),
                    ("imports_s", "imports"),
                    ("compute_s", "compute: the project's asset and check functions"),
                    ("other_s", "the rest (Dagster's execution machinery, the command line, summary)"),
                )
            ],
            "",
            "How: time *under* a set of functions is each member's cumulative time less the part of it "
            "spent below another member, where a function's time is shared among its callers in proportion "
            "to the cumulative time of each call edge (gprof's assumption; cProfile keeps no whole stacks). "
            "Bookkeeping: `store_event` of any event-log storage class, Dagster's `handle_new_event`, "
            "`create_run_for_job` and `create_run`. Imports: the cumulative time of `_find_and_load` in "
            "`<frozen importlib._bootstrap>` (cProfile counts a recursive function once, at its outermost "
            "call, so nested imports are not counted twice; approximate: module bodies run during an import "
            "are in it, and an import made inside an asset function is in compute too). Compute: functions "
            "under assets/ called by Dagster (asset, check and resource bodies), everything below them "
            "included. The rest is the profiled time less bookkeeping, imports and compute.",
            "",
            f"The {TOP_FUNCTIONS} functions with the most cumulative time outside Dagster's own machinery "
            "(as bench/stage.py's e2e_profile filters; also runpy, cProfile and typer, which wrap it all):",
            "",
            "| function | calls | cumulative s | own s |",
            "| --- | ---: | ---: | ---: |",
            *[
                f"| `{r['function']}` | {int(r['calls']):,} | {r['cumulative_s']:,.2f} | {r['own_s']:,.2f} |"
                for r in top_functions(stats.stats, TOP_FUNCTIONS)  # type: ignore[attr-defined]
            ],
        ]
        try:
            lines += self._pyspy(folder, landing, home, measure)
        except Exception as error:  # the profile above stands without it
            traceback.print_exc()
            lines += ["", f"py-spy: the recording could not be read ({type(error).__name__}: {error})."]
        self.sections["profile"] = lines

    def _pyspy(self, folder: Path, landing: Path, home: Path, measure: Measure) -> list[str]:
        lines = ["", f"### py-spy, the same run sampled ({PYSPY_RATE} Hz, idle time included)", ""]
        spy, why = find_pyspy()
        if spy is None:
            return [*lines, f"Not recorded: {why}"]
        out = folder / "pyspy.json"
        argv = [str(spy), "record", "--idle", "--rate", str(PYSPY_RATE), "--format", "speedscope"]
        argv += ["-o", str(out), "--", sys.executable, "-m", "pipelines.cli"]
        argv += ingest_argv(landing, folder / "spy" / "lake", folder / "spy" / "exports")[len(cli()) :]
        run = timed(argv, pipeline_env(home, landing), ROOT, folder / "pyspy.log")
        if not run.ok or not out.is_file():
            return [*lines, f"Not recorded: {run.reason()}"]
        found = speedscope_shares(json.loads(out.read_text()), ROOT)
        total = found["samples"]
        measure.value += f"; {found['bookkeeping'] / total:.1%} (py-spy)"
        return [
            *lines,
            "`py-spy record --idle --format speedscope -- python -m pipelines.cli ingest …` on another "
            f"fresh lake: {run.seconds:,.1f} s wall, {total:,} samples of the main thread"
            + (f" ({found['seconds']:,.1f} s)" if found.get("seconds") else "")
            + " "
            f"(load {_load(run.other_cores)}). A sample counts for a part when any frame of its stack "
            "belongs to it (exact, unlike the profile's apportioning).",
            "",
            "| part | samples | share |",
            "| --- | ---: | ---: |",
            *[
                f"| {label} | {found[key]:,} | {found[key] / total:.1%} |"
                for key, label in (
                    ("bookkeeping", "Dagster bookkeeping: event storage and run creation"),
                    ("imports", "imports (`_find_and_load` on the stack)"),
                    ("compute", "compute: the project's functions under assets/"),
                )
            ],
            "",
            "Top frames by samples with the frame on the stack (Dagster's own frames left out):",
            "",
            "| frame | on the stack | share | own samples |",
            "| --- | ---: | ---: | ---: |",
            *[
                f"| `{r['frame']}` | {r['samples']:,} | {r['samples'] / total:.1%} | {r['own']:,} |"
                for r in found["top"]
            ],
        ]

    # ---- Synthea

    def synthea(self) -> None:
        measure = self.measures["synthea"]
        if not SYNTHEA.is_file():
            raise CommandFailed(f"{SYNTHEA} is missing")
        folder = self.work / "synthea"
        shutil.rmtree(folder, ignore_errors=True)
        unpacked, landing = folder / "unpacked", folder / "landing" / "synthea"
        unpacked.mkdir(parents=True)
        landing.mkdir(parents=True)
        subprocess.run(["tar", "--zstd", "-xf", str(SYNTHEA), "-C", str(unpacked)], check=True)
        bundles = sorted(unpacked.rglob("*.json"))
        for bundle in bundles:
            shutil.copy2(bundle, landing / bundle.name)
        size = sum(p.stat().st_size for p in bundles)
        runs, rows = [], []
        for i in range(self.repeats):
            run_dir = folder / f"run{i}"
            home = dagster_home(run_dir / "dagster_home")
            run = timed(
                ingest_argv(landing.parent, run_dir / "lake", run_dir / "exports"),
                base_env(DAGSTER_HOME=home),
                folder,
                folder / f"run{i}.log",
            )
            rows.append(_run_row(str(i + 1), run, run_record(run_dir / "lake") if run.ok else None))
            checked(run)
            runs.append(run)
        median = statistics.median(r.seconds for r in runs)
        measure.value = f"{median:,.1f} s (median of {len(runs)})"
        measure.met = median <= TARGET_SYNTHEA_S
        self._stamp(measure, runs)
        self.sections["synthea"] = [
            "## The 79-patient Synthea set",
            "",
            f"{len(bundles)} Bundles (the patients', the hospitals' and the practitioners'; "
            f"{size / MIB:,.0f} MB) from {SYNTHEA.relative_to(SHARED)} in `landing/synthea/`; "
            "`patient-insights ingest --landing --lake --exports` with no variable set but DAGSTER_HOME (a "
            f"new instance each run), on a fresh lake, {len(runs)} times.",
            "",
            *_RUN_TABLE,
            *rows,
        ]

    # ---- make run

    def make_run(self) -> None:
        measure = self.measures["make_run"]
        folder = self.work / "make_run"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        landing, lake, exports = folder / "landing", folder / "lake", folder / "exports"
        home = (folder / ".dagster_home").resolve()
        env = base_env(
            PATIENT_INSIGHTS_LANDING=landing,
            PATIENT_INSIGHTS_LAKE=lake,
            PATIENT_INSIGHTS_EXPORTS=exports,
            PATIENT_INSIGHTS_AS_OF=AS_OF.isoformat(),
            DAGSTER_HOME=home,
            GX_ANALYTICS_ENABLED="false",
        )
        labels = {
            "PATIENT_INSIGHTS_SENTIMENT_LABELS": str(folder / "ground_truth" / "conversation_turns.csv")
        }
        steps: list[tuple[str, list[str], dict[str, str]]] = []
        installed = subprocess.run(
            ["make", "-q", "-C", str(ROOT), ".venv/.installed"], env=env, capture_output=True, check=False
        )
        if installed.returncode == 0:
            steps.append(
                (
                    "`make setup` (install up to date: dagster.yaml, bytecode)",
                    ["make", "-s", "-C", str(ROOT), "setup"],
                    env,
                )
            )
            setup_note = "`make setup` ran first, as `make run`'s prerequisite (the install was up to date)"
        else:
            dagster_home(home)
            setup_note = (
                "`make setup` was left out: the checkout's install stamp is out of date and the venv in use "
                "is not reinstalled by the benchmark (DAGSTER_HOME's dagster.yaml written by the Makefile)"
            )
        cmd = cli()
        steps += [
            (
                f"generate {DEMO_PATIENTS:,} people",
                [
                    *cmd,
                    "generate",
                    "--patients",
                    str(DEMO_PATIENTS),
                    "--seed",
                    str(SEED),
                    "--defects",
                    "0",
                    "--as-of",
                    AS_OF.isoformat(),
                    "--out",
                    str(landing),
                ],
                env,
            ),
            (
                f"ingest as of the campaign day {CAMPAIGN_DAY}",
                ingest_argv(landing, lake, None),
                {**env, **labels, "PATIENT_INSIGHTS_AS_OF": CAMPAIGN_DAY.isoformat()},
            ),
            (
                "simulate-outreach",
                [
                    *cmd,
                    "simulate-outreach",
                    "--landing",
                    str(landing),
                    "--lake",
                    str(lake),
                    "--exports",
                    str(exports),
                    "--seed",
                    str(SEED),
                    "--defects",
                    "0.01",
                ],
                env,
            ),
            (f"ingest as of {AS_OF}", ingest_argv(landing, lake, None), {**env, **labels}),
        ]
        runs, rows = [], []
        try:
            for i, (label, argv, step_env) in enumerate(steps):
                run = timed(argv, step_env, folder, folder / f"step{i}.log")
                rows.append(
                    f"| {label} | {run.seconds:,.1f} | {run.peak_rss_mib:,.0f} | {_load(run.other_cores)} | "
                    + ("ok" if run.ok else "FAILED")
                    + " |"
                )
                runs.append(run)
                checked(run)
        finally:
            total = sum(r.seconds for r in runs)
            self.sections["make_run"] = [
                "## `make run`'s commands",
                "",
                f"The commands of the Makefile's `run` target on a fresh folder with a new DAGSTER_HOME, the "
                f"variables `make` exports (the folders, PATIENT_INSIGHTS_AS_OF={AS_OF}, "
                "GX_ANALYTICS_ENABLED=false) and the labelled sample for the two `ingest`s; "
                f"{setup_note}. Measured: their sum, generation included.",
                "",
                "| step | seconds | peak RSS MiB | load (cores) | outcome |",
                "| --- | ---: | ---: | ---: | --- |",
                *rows,
                f"| total | {total:,.1f} | {max((r.peak_rss_mib for r in runs), default=0):,.0f} | | |",
            ]
        measure.value = f"{total:,.1f} s"
        measure.met = total <= TARGET_MAKE_RUN_S
        self._stamp(measure, runs)
        records = [
            json.loads(p.read_text()) for p in sorted((lake / "meta" / "pipeline_runs").glob("*.json"))
        ]
        if len(records) == 2:
            self.sections["make_run"] += [
                "",
                "Per step of the two passes (their run records):",
                "",
                *_two_stage_table(
                    ("first pass s", "second pass s"), records[0]["stages"], records[1]["stages"]
                ),
            ]
        found = dagster_runs(home)
        self.sections["make_run"] += [
            "",
            f"Dagster runs in its instance after both passes: {found['runs']} ({', '.join(found['jobs'])}).",
        ]

    # ---- the sizes

    def size(self, patients: int) -> None:
        full_m, rss_m, inc_m = (self.measures[f"{k}{patients}"] for k in ("size", "rss", "inc"))
        folder = self.work / f"p{patients}"
        shutil.rmtree(folder, ignore_errors=True)
        landing = folder / "landing"
        gen = generate(patients, landing, folder / "generate.log")
        landing_mb = sum(p.stat().st_size for p in landing.rglob("*") if p.is_file()) / MIB
        lines = [
            f"## {patients:,} generated people",
            "",
            f"Generated once, outside the timing: {landing_mb:,.0f} MB of landing files in "
            f"{gen.seconds:,.1f} s. Then `patient-insights ingest --landing --lake --exports` (DAGSTER_HOME "
            f"new, PATIENT_INSIGHTS_AS_OF={AS_OF}, the labelled sample; no bucket or worker count given) on "
            "a fresh lake.",
            "",
        ]
        self.sections[f"size{patients}"] = lines
        home = dagster_home(folder / "full" / "dagster_home")
        full_dir = folder / "full"
        run = timed(
            ingest_argv(landing, full_dir / "lake", full_dir / "exports"),
            pipeline_env(home, landing),
            folder,
            folder / "full.log",
        )
        record = run_record(full_dir / "lake")
        records, buckets = records_in(full_dir / "lake"), lake_buckets(full_dir / "lake")
        lines += [
            *_RUN_TABLE,
            _run_row("full run", run, record),
            "",
            (f"Bronze took in {records:,} records" if records is not None else "Records taken in: not read")
            + f"{f' ({records / run.seconds:,.0f}/s of wall time)' if records and run.ok else ''}; the lake "
            f"has {buckets if buckets is not None else '?'} bucket(s) (meta/layout.json). Peak RSS: largest "
            f"process {run.peak_rss_mib:,.0f} MiB, sum of the process tree (sampled) "
            f"{run.tree_rss_mib:,.0f} MiB.",
        ]
        if record and record.get("stages"):
            lines += ["", "Per step (the run record's `stages`):", "", *_stage_table(record["stages"])]
        checked(run)
        target = TARGET_SIZE_S.get(patients)
        full_m.value = f"{run.seconds:,.1f} s"
        full_m.met = run.seconds <= target if target else None
        self._stamp(full_m, [run])
        rss_m.value = f"{run.peak_rss_mib:,.0f} MiB (tree sum {run.tree_rss_mib:,.0f} MiB)"
        # the run is all its processes: the bucket workers' memory counts as much as the main process's
        # (the tree sum counts shared library pages once per process, so it errs on the high side)
        rss_m.met = max(run.peak_rss_mib, run.tree_rss_mib) <= TARGET_RSS_MIB
        self._stamp(rss_m, [run])
        self.write()
        self._incremental(patients, folder, landing, home, run, inc_m, lines)
        if not self.keep:
            shutil.rmtree(folder, ignore_errors=True)

    def _incremental(
        self,
        patients: int,
        folder: Path,
        landing: Path,
        home: Path,
        full: Timed,
        measure: Measure,
        lines: list[str],
    ) -> None:
        """Copies of the full run's lake: one brought up to date with `ingest --incremental` (in the full
        run's DAGSTER_HOME), one rebuilt with a full `ingest` (a new one), after a 1 % delivery."""
        inc_dir, rebuild_dir = folder / "incremental", folder / "rebuild"
        for copy in (inc_dir, rebuild_dir):
            for part in ("lake", "exports"):
                if (folder / "full" / part).exists():
                    shutil.copytree(folder / "full" / part, copy / part, symlinks=True)
        done = subprocess.run(
            [sys.executable, "-c", WRITE_INCREMENT, str(landing), DELIVERY_DAY.isoformat()],
            cwd=ROOT,
            env=base_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise CommandFailed(f"write_increment failed: {done.stderr.strip()[-600:]}")
        delivery = json.loads(done.stdout.strip().splitlines()[-1])
        env = pipeline_env(home, landing)
        inc = timed(
            ingest_argv(landing, inc_dir / "lake", inc_dir / "exports", "--incremental"),
            env,
            folder,
            folder / "incremental.log",
        )
        inc_record = run_record(inc_dir / "lake") if inc.ok else None
        rebuild = timed(
            ingest_argv(landing, rebuild_dir / "lake", rebuild_dir / "exports"),
            pipeline_env(dagster_home(rebuild_dir / "dagster_home"), landing),
            folder,
            folder / "rebuild.log",
        )
        rebuild_record = run_record(rebuild_dir / "lake") if rebuild.ok else None
        actions = delivery["actions"]
        lines += [
            "",
            f"### {patients:,} people: a 1 % delivery, incremental",
            "",
            f"After the full run, two copies of its lake and exports; a next day's Bulk delivery into "
            f"landing/ehr_a (`write_increment(landing, {DELIVERY_DAY}, share=0.01, seed=3)`: "
            f"{delivery['resources']:,} resources, {actions.get('changed', 0):,} changed / "
            f"{actions.get('new', 0):,} new / {actions.get('deleted', 0):,} deleted); then "
            "`ingest --incremental` on one copy (in the full run's DAGSTER_HOME, as a user's next run) and a "
            "full `ingest` on the other (a new DAGSTER_HOME) for the comparison. The as-of day stays "
            f"{AS_OF} (a different one makes the incremental run a full one).",
            "",
            *_RUN_TABLE,
            _run_row("incremental", inc, inc_record),
            _run_row("full, on the copy", rebuild, rebuild_record),
        ]
        checked(inc)
        checked(rebuild)
        same, differing = compare_lakes(rebuild_dir / "lake", inc_dir / "lake")
        exports_same = _exports(rebuild_dir / "exports") == _exports(inc_dir / "exports")
        share = inc.seconds / full.seconds
        mode = (inc_record or {}).get("mode", "?")
        measure.value = f"{inc.seconds:,.1f} s = {share:.0%} of {full.seconds:,.1f} s ({mode}); " + (
            "equal result" if not differing else f"**{len(differing)} file(s) differ**"
        )
        measure.met = share <= TARGET_INCREMENT_SHARE and not differing and mode == "incremental"
        self._stamp(measure, [inc])
        lines += [
            "",
            f"Share: {share:.1%} of the first full run (which trained the models), "
            f"{inc.seconds / rebuild.seconds:.1%} of the full run on the copy (models kept, like the "
            f"incremental run's). Result: {same:,} Parquet files of {', '.join(COMPARED_LAYERS)} compared "
            "(content and schema, as tests/test_incremental.py does): "
            + ("all equal." if not differing else "differing: " + ", ".join(differing[:8]) + ".")
            + " Outreach exports (lists, suppressions and diffs): "
            + ("equal." if exports_same else "differ (not part of the target)."),
        ]
        if inc_record and inc_record.get("stages"):
            lines += ["", "Per step of the incremental run:", "", *_stage_table(inc_record["stages"])]

    # ---- fresh clone

    def clone(self) -> None:
        measure = self.measures["fresh_clone"]
        if not self.fresh_clone:
            measure.value = "skipped (BENCH_FRESH_CLONE=0)"
            measure.when, measure.commit = _now(), self._commit_text()
            return
        folder = self.work / "clone"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        started = time.perf_counter()
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder / "main")], check=True)
        clone_s = time.perf_counter() - started
        if SHARED.is_dir():
            (folder / "shared").symlink_to(SHARED)
        cloned = subprocess.run(
            ["git", "-C", str(folder / "main"), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        env = clean_make_env()
        cache, cache_mb = uv_cache(env)
        runs: list[Timed] = []
        for target in ("setup", "run"):  # `make run` with its prerequisite timed on its own
            runs.append(timed(["make", target], env, folder / "main", folder / f"make_{target}.log"))
            if not runs[-1].ok:
                break
        total = sum(r.seconds for r in runs)
        passes = [
            json.loads(p.read_text())
            for p in sorted((folder / "main" / "lake" / "meta" / "pipeline_runs").glob("*.json"))
        ]
        warm = f"warm ({cache_mb:,.0f} MB in {cache})" if cache_mb else f"cold (empty or missing: {cache})"
        labels = ("`make setup`: the install (uv, venv, packages), dagster.yaml, bytecode", "`make run`")
        self.sections["fresh_clone"] = [
            "## A fresh clone's `make run`",
            "",
            f"`git clone {ROOT} <tmp>/main` ({clone_s:.1f} s, not counted): commit {cloned}, so only "
            "committed work is measured"
            + (
                f" (the checkout had uncommitted changes to {len(self.changed)} file(s))"
                if self.changed
                else ""
            )
            + f"; {'`<tmp>/shared` a symlink to ' + str(SHARED) if SHARED.is_dir() else 'no shared data'}. "
            "Then `make setup` and `make run` there (what `make run` alone does, its prerequisite timed on "
            "its own), in an environment without PATIENT_INSIGHTS_*, DAGSTER_HOME, VIRTUAL_ENV, the "
            f"checkout's venv on PATH or make's own variables; HOME kept, so uv's cache was {warm}.",
            "",
            "| step | seconds | peak RSS MiB (largest process) | load (cores) | outcome |",
            "| --- | ---: | ---: | ---: | --- |",
            *[
                f"| {label} | {r.seconds:,.1f} | {r.peak_rss_mib:,.0f} | {_load(r.other_cores)} | "
                f"{'ok' if r.ok else 'FAILED'} |"
                for label, r in zip(labels, runs, strict=False)
            ],
            f"| total | {total:,.1f} | | | |",
        ]
        if passes:
            self.sections["fresh_clone"] += [
                "",
                "The pipeline passes of that `make run` (their run records): "
                + ", ".join(f"{r.get('seconds', 0):,.1f} s ({r.get('mode', '?')})" for r in passes)
                + ".",
            ]
        self._stamp(measure, runs)
        measure.commit = cloned
        if not runs[-1].ok:
            measure.fail(runs[-1].reason())
            return
        measure.value = f"{total:,.1f} s"
        measure.met = total <= TARGET_FRESH_CLONE_S
        if not self.keep:
            shutil.rmtree(folder, ignore_errors=True)

    # ---- report

    def write(self) -> None:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(render(self))


def render(e2e: E2E) -> str:
    """The markdown report: the targets table, then each measure's details."""
    changed = (
        f" with uncommitted changes to {len(e2e.changed)} file(s) under pipelines/, assets/, models/"
        if e2e.changed
        else ""
    )
    dont_write = os.environ.get("PYTHONDONTWRITEBYTECODE")
    lines = [
        "# End-to-end targets: the `patient-insights` command as a new user runs it",
        "",
        f"Measured from {e2e.started} UTC at commit {e2e.commit or 'unknown'}{changed} with `{_command()}` "
        f"(`BENCH_E2E_PATIENTS` {','.join(str(s) for s in e2e.sizes)}) on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
        + (", PYTHONDONTWRITEBYTECODE set" if dont_write else "")
        + ".",
        "",
        "Each measured command ran in a subprocess of its own: wall time is `time.perf_counter` around it; "
        "peak RSS the largest process of its tree (`getrusage(RUSAGE_CHILDREN)` in a wrapper), with the sum "
        f"of the tree's resident memory sampled every {SAMPLE_S:g} s beside it. Each run had a fresh lake "
        "and a fresh DAGSTER_HOME unless its section says otherwise. Machine load: the cores other processes "
        "kept busy during the run (/proc/stat less the benchmark's own CPU time); measured at: UTC time and "
        "`git rev-parse --short HEAD` (* : with uncommitted changes).",
        "",
        "## Targets",
        "",
        "| measure | measured | target | | machine load (cores) | measured at |",
        "| --- | --- | --- | --- | ---: | --- |",
    ]
    for measure in e2e.measures.values():
        value = measure.value if measure.failed is None else f"FAILED: {_cell(measure.failed)}"
        verdict = (
            "FAILED"
            if measure.failed is not None
            else "–"
            if measure.met is None
            else ("met" if measure.met else "**NOT met**")
        )
        at = f"{measure.when} · {measure.commit}" if measure.when else ""
        lines.append(
            f"| {measure.label} | {value} | {measure.target} | {verdict} | {_load(measure.load)} | {at} |"
        )
    for measure in e2e.measures.values():
        lines += ["", *measure.details] if measure.details else []
    for section in e2e.sections.values():
        lines += ["", *section]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- profiling


FuncKey = tuple[str, int, str]


def call_dag(stats: dict[FuncKey, tuple]) -> tuple[list[FuncKey], set[tuple[FuncKey, FuncKey]]]:
    """The profile's functions in an order where every caller comes before its callees, and the call edges
    left out to get one: those that close a cycle (recursion, direct or through other functions), found by
    a depth-first walk from the functions nobody called, the costliest callee first."""
    callees: dict[FuncKey, list[FuncKey]] = {}
    for func, entry in stats.items():
        for caller in entry[4]:
            callees.setdefault(caller, []).append(func)
    for caller, found in callees.items():
        found.sort(key=lambda f: -stats[f][4][caller][3])
    state: dict[FuncKey, int] = {}  # 1: on the walk's path, 2: done
    finished: list[FuncKey] = []
    back: set[tuple[FuncKey, FuncKey]] = set()
    starts = [f for f in stats if not stats[f][4]] + sorted(stats, key=lambda f: -stats[f][3])
    for start in starts:
        if start in state:
            continue
        state[start] = 1
        path = [(start, iter(callees.get(start, ())))]
        while path:
            node, children = path[-1]
            for child in children:
                seen = state.get(child)
                if seen is None:
                    state[child] = 1
                    path.append((child, iter(callees.get(child, ()))))
                    break
                if seen == 1:
                    back.add((node, child))
            else:
                path.pop()
                state[node] = 2
                finished.append(node)
    return finished[::-1], back


def time_under(stats: dict[FuncKey, tuple], members: set[FuncKey]) -> float:
    """Seconds spent in or below any of `members`, counting no time twice. cProfile keeps call edges, not
    stacks, so a function's time is shared among its callers in proportion to each edge's cumulative time
    (gprof's assumption), with the edges that close a cycle left out (`call_dag`)."""
    order, back = call_dag(stats)
    below: dict[FuncKey, float] = {}  # the share of a function's time spent below a member
    for func in order:
        if func in members:
            below[func] = 1.0
            continue
        edges = [(e[3], below.get(c, 0.0)) for c, e in stats[func][4].items() if (c, func) not in back]
        weight = sum(w for w, _ in edges)
        below[func] = sum(w * share for w, share in edges) / weight if weight > 0 else 0.0
    total = 0.0
    for func in members & stats.keys():
        callers = stats[func][4]
        if not callers:
            total += stats[func][3]
            continue
        outside = sum(e[3] * (1.0 - below.get(c, 0.0)) for c, e in callers.items() if (c, func) not in back)
        total += min(stats[func][3], outside)
    return total


def _is_bookkeeping(file: str, name: str) -> bool:
    return name in BOOKKEEPING and ("dagster" in file)


def profile_shares(stats: dict[FuncKey, tuple], root: Path) -> dict[str, float]:
    """Profiled seconds in total, in Dagster's bookkeeping, in imports and in the project's assets."""
    assets = f"{root}/assets/"
    total = sum(entry[2] for entry in stats.values())
    book = {f for f in stats if _is_bookkeeping(f[0], f[2])}
    events = {f for f in book if f[2] in ("store_event", "handle_new_event")}
    compute = {
        f
        for f, entry in stats.items()
        if f[0].startswith(assets)
        and f[2] != "<module>"
        and any("site-packages/dagster/" in caller[0] for caller in entry[4])
    }
    imports = max(
        (e[3] for f, e in stats.items() if f[2] == "_find_and_load" and "importlib._bootstrap" in f[0]),
        default=0.0,
    )
    shares = {
        "total_s": total,
        "bookkeeping_s": time_under(stats, book),
        "store_event_s": time_under(stats, events),
        "create_run_s": time_under(stats, book - events),
        "imports_s": imports,
        "compute_s": time_under(stats, compute),
    }
    shares["other_s"] = max(0.0, total - shares["bookkeeping_s"] - shares["imports_s"] - shares["compute_s"])
    return shares


def _outside_dagster(file: str, name: str) -> bool:
    """bench/stage.py's e2e_profile filter, and the wrappers of the whole run (runpy, cProfile, typer)."""
    return not (
        "site-packages/dagster" in file
        or file.startswith("<")
        or "/concurrent/" in file
        or "/threading.py" in file
        or "/contextlib.py" in file
        or file.endswith(("/runpy.py", "/cProfile.py"))
        or "site-packages/typer/" in file
        or "site-packages/click/" in file
        or name in GENERIC_BUILTINS
    )


def top_functions(stats: dict[FuncKey, tuple], top: int) -> list[dict[str, Any]]:
    rows = [
        {"function": f"{_short(file)}:{line}({name})", "calls": e[1], "own_s": e[2], "cumulative_s": e[3]}
        for (file, line, name), e in stats.items()
        if _outside_dagster(file, name)
    ]
    return sorted(rows, key=lambda r: -r["cumulative_s"])[:top]


def speedscope_shares(data: dict[str, Any], root: Path, top: int = TOP_FUNCTIONS) -> dict[str, Any]:
    """From py-spy's speedscope file: the main thread's samples (the profile with the most; py-spy weighs
    each by its interval in seconds), those with bookkeeping, an import or the project's assets on the
    stack, and the top frames."""
    frames = data["shared"]["frames"]
    profile = max(data["profiles"], key=lambda p: len(p["samples"]))
    samples = profile["samples"]
    assets = f"{root}/assets/"

    def method(i: int) -> str:
        return str(frames[i]["name"]).rsplit(".", 1)[-1]

    book = {i for i, f in enumerate(frames) if _is_bookkeeping(str(f.get("file", "")), method(i))}
    imports = {i for i in range(len(frames)) if method(i) == "_find_and_load"}
    compute = {
        i
        for i, f in enumerate(frames)
        if str(f.get("file", "")).startswith(assets) and method(i) != "<module>"
    }
    on_stack: Counter[int] = Counter()
    own: Counter[int] = Counter()
    counts = {"bookkeeping": 0, "imports": 0, "compute": 0}
    for stack in samples:
        seen = set(stack)
        for i in seen:
            on_stack[i] += 1
        if stack:
            own[stack[-1]] += 1
        for key, members in (("bookkeeping", book), ("imports", imports), ("compute", compute)):
            if seen & members:
                counts[key] += 1
    shown = [i for i in on_stack if _outside_dagster(str(frames[i].get("file", "")), str(frames[i]["name"]))]
    shown.sort(key=lambda i: -on_stack[i])
    rows = [
        {
            "frame": f"{_short(str(frames[i].get('file', '')))}:{frames[i].get('line')}({frames[i]['name']})",
            "samples": int(on_stack[i]),
            "own": int(own[i]),
        }
        for i in shown[:top]
    ]
    seconds = float(sum(profile.get("weights") or [])) if profile.get("unit") == "seconds" else None
    return {"samples": len(samples), "seconds": seconds, **counts, "top": rows}


def find_pyspy() -> tuple[Path | None, str]:
    """py-spy: on PATH, in `BENCH_PYSPY_VENV` (default /tmp/pyspy), else pip-installed into that scratch
    venv once; (None, why) when it cannot be had."""
    found = shutil.which("py-spy")
    if found:
        return Path(found), ""
    venv = Path(os.environ.get("BENCH_PYSPY_VENV", Path(tempfile.gettempdir()) / "pyspy"))
    spy = venv / "bin" / "py-spy"
    if spy.is_file():
        return spy, ""
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], capture_output=True, check=True, timeout=300
        )
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "py-spy"],
            capture_output=True,
            check=True,
            timeout=600,
        )
    except (subprocess.SubprocessError, OSError) as error:
        detail = getattr(error, "stderr", b"") or b""
        text = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
        return (
            None,
            f"py-spy could not be pip-installed into {venv} ({_cell(text.strip()[-300:] or str(error))})",
        )
    return (spy, "") if spy.is_file() else (None, f"no py-spy in {venv} after pip install")


# -------------------------------------------------------------------------------------------- helpers


_RUN_TABLE = [
    "| run | wall s | pipeline s (run record) | mode | steps | peak RSS MiB | tree RSS MiB | load (cores) "
    "| outcome |",
    "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |",
]


def _run_row(label: str, run: Timed, record: dict[str, Any] | None) -> str:
    if run.ok and record is not None:
        outcome = (
            "succeeded" if record.get("success") else "FAILED: " + ", ".join(record.get("failed_checks", []))
        )
    else:
        outcome = "ok" if run.ok else "FAILED: " + _cell(run.reason())
    pipeline = f"{record['seconds']:,.1f}" if record else ""
    steps = len(record.get("stages", [])) if record else ""
    mode = record.get("mode", "") if record else ""
    return (
        f"| {label} | {run.seconds:,.1f} | {pipeline} | {mode} | {steps} | {run.peak_rss_mib:,.0f} | "
        f"{run.tree_rss_mib:,.0f} | {_load(run.other_cores)} | {outcome} |"
    )


def _stage_table(stages: list[dict[str, Any]]) -> list[str]:
    total = sum(float(s.get("seconds", 0)) for s in stages) or 1.0
    lines = [
        "| step | status | seconds | share of the steps' time | rows | buckets rebuilt |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for s in sorted(stages, key=lambda s: -float(s.get("seconds", 0))):
        lines.append(
            f"| {s.get('job')} | {s.get('status', '')} | {float(s.get('seconds', 0)):,.2f} | "
            f"{float(s.get('seconds', 0)) / total:.1%} | {int(s.get('rows', 0)):,} | "
            f"{int(s.get('buckets_rebuilt', 0))} |"
        )
    return lines


def _two_stage_table(titles: tuple[str, str], first: list[dict], second: list[dict]) -> list[str]:
    """Seconds per step of two runs side by side, the slowest (in either) first."""
    one = {s["job"]: float(s.get("seconds", 0)) for s in first}
    two = {s["job"]: float(s.get("seconds", 0)) for s in second}
    jobs = sorted(one.keys() | two.keys(), key=lambda j: -max(one.get(j, 0.0), two.get(j, 0.0)))
    return [
        f"| step | {titles[0]} | {titles[1]} |",
        "| --- | ---: | ---: |",
        *[f"| {j} | {one.get(j, 0.0):,.2f} | {two.get(j, 0.0):,.2f} |" for j in jobs],
        f"| total of the steps | {sum(one.values()):,.1f} | {sum(two.values()):,.1f} |",
    ]


def compare_lakes(expected: Path, found: Path) -> tuple[int, list[str]]:
    """Every Parquet file of the compared layers, one at a time (tests/test_incremental.py's `_tables`):
    how many were compared, and those that differ in content or schema, or exist in one lake only."""
    import polars as pl

    def files(lake: Path) -> set[str]:
        return {
            str(path.relative_to(lake))
            for layer in COMPARED_LAYERS
            for path in (lake / layer).rglob("*.parquet")
            if not any(part.startswith((".", "_")) for part in path.relative_to(lake).parts)
        }

    left, right = files(expected), files(found)
    differing = sorted(f"{p} (only in one lake)" for p in left ^ right)
    for path in sorted(left & right):
        a = pl.read_parquet(expected / path, hive_partitioning=False)
        b = pl.read_parquet(found / path, hive_partitioning=False)
        if a.schema != b.schema or not a.equals(b):
            differing.append(path)
    return len(left & right), differing


def _exports(exports: Path) -> dict[str, bytes]:
    """The outreach lists and suppressions of every campaign run (tests/test_incremental.py's `_exports`)."""
    names = ("list.csv", "suppressed.csv", "added.csv", "removed.csv", "changed.csv")
    return {
        str(p.relative_to(exports)): p.read_bytes() for name in names for p in sorted(exports.rglob(name))
    }


def clean_make_env() -> dict[str, str]:
    """A new user's environment for `make run` in a fresh clone: no project variables, no DAGSTER_HOME, no
    activated venv (nor this checkout's on PATH), no variables of an enclosing `make`; HOME kept."""
    dropped = {"DAGSTER_HOME", "VIRTUAL_ENV", "PYTHONPATH", "GX_ANALYTICS_ENABLED"}
    dropped |= {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "MAKE_TERMOUT", "MAKE_TERMERR"}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PATIENT_INSIGHTS_", "BENCH_")) and k not in dropped
    }
    venv_bin = str(ROOT / ".venv" / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    return env


def uv_cache(env: dict[str, str]) -> tuple[str, float]:
    """uv's cache folder as the Makefile's uv sees it and its size in MB (0 when missing or empty)."""
    python = shutil.which("python3.11", path=env.get("PATH")) or shutil.which("python3", path=env.get("PATH"))
    where = ""
    for argv in ([python, "-m", "uv", "cache", "dir"] if python else [], ["uv", "cache", "dir"]):
        if not argv:
            continue
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0 and done.stdout.strip():
            where = done.stdout.strip()
            break
    if not where:
        where = os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv"))
    size = subprocess.run(["du", "-sb", where], capture_output=True, text=True, check=False).stdout.split()
    return where, (int(size[0]) / 1e6 if size and size[0].isdigit() else 0.0)


def commit() -> str:
    """`git rev-parse --short HEAD` of the checkout (empty outside one)."""
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()


def uncommitted() -> list[str]:
    """Files under pipelines/, assets/ and models/ that differ from the commit."""
    from bench.run import _uncommitted

    return _uncommitted("pipelines", "assets", "models")


def _command() -> str:
    names = ("BENCH_ONLY", "BENCH_E2E_PATIENTS", "BENCH_E2E_REPEATS", "BENCH_FRESH_CLONE")
    given = [f"{name}={os.environ[name]}" for name in names if name in os.environ]
    return " ".join([*given, "python -m bench.run"]) if given else "make bench"


def _load(cores: float | None) -> str:
    return "" if cores is None else f"{cores:.1f}"


def _now() -> str:
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M}"


def _argv_text(argv: list[str]) -> str:
    return " ".join(a.replace(str(ROOT) + "/", "") for a in argv)


def _tail(log: Path, lines: int = 3) -> str:
    """The last non-empty lines of a command's output, for a reason in a table cell."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "no output"
    kept = [
        line.strip() for line in text.splitlines() if line.strip() and not set(line.strip()) <= set("─━│┃ ")
    ]
    return " / ".join(kept[-lines:])[-500:] or "no output"


def _cell(text: str) -> str:
    """Text that fits a markdown table cell."""
    return " ".join(text.replace("|", "\\|").split())


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def bench_e2e(work: Path) -> None:
    """`BENCH_ONLY=e2e`: every end-to-end measure → bench/reports/e2e.md."""
    E2E(work).run()


def main() -> None:
    """`python -m bench.e2e`: the end-to-end measures on their own."""
    bench_e2e(Path(os.environ.get("BENCH_WORK", ROOT / "bench" / "work")))


if __name__ == "__main__":
    main()
