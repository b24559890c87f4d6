"""Start-up time of the commands that do not run the pipeline → bench/reports/startup.md.

    python -m bench.startup        (from bench/run.py: `bench_startup(work)`)

`patient-insights views run` on a small input and `patient-insights --help`, each run `STARTUP_RUNS` times
in a fresh process, wall time from start to exit (median, min, max), with the interpreter alone and
`import polars` as the floor they stand on. Every command runs twice over: with the environment as it is,
and with a bytecode cache (`PYTHONPYCACHEPREFIX` under the work folder, written by an untimed first run).
The two differ when PYTHONDONTWRITEBYTECODE is set and the installed packages have no bytecode: then every
start compiles the sources of Polars, pydantic, rich… again, which an installed copy does not.

Work files go to `bench/work/startup/` (git-ignored) or `BENCH_WORK`.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "bench" / "reports" / "startup.md"
STARTUP_RUNS = 10
TARGET_S = 0.5
"""The acceptance target: `views run` on a small input starts and finishes in under this, wall."""
PATIENTS = 10
"""Patients in the small input of `views run`."""
VIEWS_LIBRARIES = (
    "polars",
    "pyarrow.json",
    "pyarrow.parquet",
    "pyarrow.compute",
    "numpy",
    "orjson",
    "typer",
    "pydantic",
    "rich.console",
)
"""What `views run` cannot do without: Polars and pyarrow for the engine and Parquet (pyarrow.compute is
loaded by Polars' own Arrow conversion), typer and rich for the command line, and pydantic, which typer
loads to convert any command's options."""


@dataclass(frozen=True)
class Timing:
    """Wall and CPU times of one command's runs, in seconds."""

    label: str
    bytecode: str  # "as configured" or "cached"
    times: list[float]
    cpu: list[float]  # user + system time of the process: what other processes' load does not lengthen
    target: bool  # whether the start-up target applies to this command

    @property
    def median(self) -> float:
        """The median run's wall time."""
        return statistics.median(self.times)


def bench_startup(work: Path) -> None:
    """Time the commands in both bytecode settings and write bench/reports/startup.md."""
    folder = work / "startup"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    commands = _commands(folder)
    load_before = _loadavg()
    timings = []
    for bytecode, env in (("as configured", _env()), ("cached", _cached_env(folder / "pycache"))):
        print(f"timing {len(commands)} commands, bytecode {bytecode}", file=sys.stderr)
        measured = _time_rounds([argv for _, argv, _ in commands], env)
        timings += [
            Timing(label, bytecode, wall, cpu, target)
            for (label, _, target), (wall, cpu) in zip(commands, measured, strict=True)
        ]
    write_report(timings, load_before, _loadavg())
    print(f"report written to {REPORT.relative_to(ROOT)}", file=sys.stderr)


def main() -> None:
    """`python -m bench.startup`: the start-up benchmark on its own."""
    bench_startup(Path(os.environ.get("BENCH_WORK", ROOT / "bench" / "work")))


def _commands(folder: Path) -> list[tuple[str, list[str], bool]]:
    """(label, argv, target applies) of each timed command; writes the small `views run` input."""
    view = {
        "resourceType": "ViewDefinition",
        "resource": "Patient",
        "select": [
            {
                "column": [
                    {"name": "id", "path": "id", "type": "id"},
                    {"name": "family", "path": "name.first().family", "type": "string"},
                    {"name": "birth_date", "path": "birthDate", "type": "date"},
                ]
            }
        ],
    }
    (folder / "view.json").write_bytes(orjson.dumps(view))
    patients = [
        {"resourceType": "Patient", "id": f"p{i}", "name": [{"family": f"F{i}"}], "birthDate": "1970-01-02"}
        for i in range(PATIENTS)
    ]
    (folder / "in.ndjson").write_bytes(b"\n".join(orjson.dumps(p) for p in patients) + b"\n")
    cli = _cli()
    views = [
        *cli,
        "views",
        "run",
        "--view",
        str(folder / "view.json"),
        "--input",
        str(folder / "in.ndjson"),
        "--output",
        str(folder / "out.parquet"),
    ]
    return [
        (f"`patient-insights views run` ({PATIENTS} Patients)", views, True),
        ("`patient-insights --help`", [*cli, "--help"], False),
        ("reference: `python -c pass`", [sys.executable, "-c", "pass"], False),
        ("reference: `python -c 'import polars'`", [sys.executable, "-c", "import polars"], False),
        (
            "reference: importing the libraries `views run` needs",
            [sys.executable, "-c", f"import {', '.join(VIEWS_LIBRARIES)}"],
            False,
        ),
    ]


def _cli() -> list[str]:
    """The installed console script (what a user runs), else the module."""
    script = Path(sys.executable).parent / "patient-insights"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pipelines.cli"]


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "100"}


def _cached_env(prefix: Path) -> dict[str, str]:
    """The environment with bytecode written to and read from `prefix` (the checkout and the virtual
    environment stay as they are)."""
    env = {k: v for k, v in _env().items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(prefix)}


def _time_rounds(commands: list[list[str]], env: dict[str, str]) -> list[tuple[list[float], list[float]]]:
    """Wall and CPU seconds of `STARTUP_RUNS` runs of each command, after one untimed round (it fills the
    OS file cache and, in the cached setting, writes the bytecode). Each round runs every command once, so
    that a burst of load from other processes slows all of them alike; a failing run stops the benchmark."""
    measured: list[tuple[list[float], list[float]]] = [([], []) for _ in commands]
    for round_ in range(STARTUP_RUNS + 1):
        for argv, (walls, cpus) in zip(commands, measured, strict=True):
            cpu_before = _children_cpu_s()
            started = time.perf_counter()
            done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, check=False)
            seconds = time.perf_counter() - started
            if done.returncode:
                error = done.stderr.decode()[-2000:]
                raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{error}")
            if round_:
                walls.append(seconds)
                cpus.append(_children_cpu_s() - cpu_before)
    return measured


def _children_cpu_s() -> float:
    """User + system seconds of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _loadavg() -> str | None:
    """The 1, 5 and 15 minute load averages from /proc/loadavg (None where there is none)."""
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return None


def _installed_with_bytecode(package: str) -> bool:
    """Whether an installed package has its bytecode beside it (pip writes it at install time unless told
    not to); without it, and with PYTHONDONTWRITEBYTECODE set, every start compiles the package again."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return False
    return Path(importlib.util.cache_from_source(spec.origin)).is_file()


def _commit() -> str:
    """The short commit the report was measured at (empty outside a git checkout)."""
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()


def write_report(timings: list[Timing], load_before: str | None, load_after: str | None) -> None:
    """The markdown report: one line per command and bytecode setting."""
    configured = (
        "PYTHONDONTWRITEBYTECODE set" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "bytecode written"
    ) + f"; Polars installed {'with' if _installed_with_bytecode('polars') else '**without**'} bytecode"
    lines = [
        "# Start-up time of the commands that do not run the pipeline",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {_commit() or 'unknown'} with "
        f"`python -m bench.startup` on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}. Each command ran {STARTUP_RUNS} times in a fresh process after one "
        "untimed run; the times are wall time from start to exit and, less sensitive to what else the "
        "machine runs, the process's CPU time (user + system; Polars' threads can make it exceed the wall "
        "time). `as configured`: the environment as it was "
        f"({configured}); `cached`: bytecode written to and read from a cache folder (PYTHONPYCACHEPREFIX), "
        "as an installed copy has it.",
        "",
        f"Target: `views run` on a small input starts and finishes in under {TARGET_S:g} s "
        "(judged on the cached setting; the references are what any command pays before its own work).",
        "",
        f"| command | bytecode | median s | min s | max s | median CPU s | under {TARGET_S:g} s? |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for timing in timings:
        verdict = ("yes" if timing.median < TARGET_S else "**no**") if timing.target else "–"
        lines.append(
            f"| {timing.label} | {timing.bytecode} | {timing.median:.3f} | {min(timing.times):.3f} | "
            f"{max(timing.times):.3f} | {statistics.median(timing.cpu):.3f} | {verdict} |"
        )
    load = (
        f"Machine load (1 / 5 / 15 minute averages from /proc/loadavg): {load_before} before, "
        f"{load_after} after. The benchmark keeps one process running at a time: a 1-minute average well "
        f"above 1 means other processes competed for the {os.cpu_count()} cores and lengthened the wall "
        "times (the CPU times less so)."
        if load_before and load_after
        else "Machine load: not measured (no /proc/loadavg)."
    )
    lines += ["", load]
    REPORT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
