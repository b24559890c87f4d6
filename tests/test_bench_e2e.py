"""The end-to-end benchmark's own logic (bench/e2e.py): the command wrapper, the profile arithmetic and a
report that shows a failed measure instead of stopping."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import e2e

DAGSTER = "/venv/lib/python3.11/site-packages/dagster/_core/"


def _stats(edges: dict[tuple, dict[tuple, float]], cumulative: dict[tuple, float]) -> dict[tuple, tuple]:
    """A pstats-like table: function → (cc, nc, own, cumulative, {caller: (cc, nc, own, cumulative)})."""
    return {
        func: (1, 1, 0.0, ct, {caller: (1, 1, 0.0, t) for caller, t in edges.get(func, {}).items()})
        for func, ct in cumulative.items()
    }


def test_time_under_counts_nested_members_once_and_survives_recursion() -> None:
    main = ("cli.py", 1, "main")
    create = (DAGSTER + "runs.py", 1, "create_run")
    log = (DAGSTER + "events.py", 1, "report_dagster_event")
    handle = (DAGSTER + "instance.py", 1, "handle_new_event")
    store = (DAGSTER + "storage/event_log/sqlite.py", 1, "store_event")
    step = ("assets/a.py", 1, "step")
    wrapper = ("wrap.py", 1, "wrapper")  # recursion through a helper: wrapper → step → wrapper
    cumulative = {main: 10.0, create: 2.0, log: 3.0, handle: 3.0, store: 2.5, step: 4.0, wrapper: 4.0}
    edges = {
        create: {main: 2.0},
        log: {create: 1.0, main: 2.0},  # a third of the events are logged while the run is created
        handle: {log: 3.0},
        store: {handle: 2.5},
        wrapper: {main: 4.0, step: 1.0},
        step: {wrapper: 4.0},
    }
    stats = _stats(edges, cumulative)
    members = {f for f in stats if e2e._is_bookkeeping(f[0], f[2])}
    assert members == {create, handle, store}
    assert e2e.time_under(stats, members) == pytest.approx(2.0 + 2.0)  # create_run, and 2 s of events outside
    assert e2e.time_under(stats, {handle, store}) == pytest.approx(3.0)
    assert e2e.time_under(stats, {step}) == pytest.approx(4.0)  # not 5: the recursive edge is left out
    order, back = e2e.call_dag(stats)
    assert order.index(main) < order.index(create) < order.index(log) < order.index(handle)
    assert len(back) == 1


def test_speedscope_shares_count_a_sample_once_per_part(tmp_path: Path) -> None:
    frames = [
        {"name": "main", "file": "/x/cli.py", "line": 1},
        {"name": "DagsterInstance.handle_new_event", "file": DAGSTER + "instance.py", "line": 2},
        {"name": "SqliteEventLogStorage.store_event", "file": DAGSTER + "storage/sqlite.py", "line": 3},
        {"name": "build", "file": str(tmp_path / "assets" / "a.py"), "line": 4},
        {"name": "_find_and_load", "file": "<frozen importlib._bootstrap>", "line": 5},
    ]
    main_thread = {
        "samples": [[0, 1, 2], [0, 1], [0, 3], [0, 3, 4], [0]],
        "weights": [0.01] * 5,
        "unit": "seconds",
    }
    other_thread = {"samples": [[0]], "weights": [0.01], "unit": "seconds"}
    found = e2e.speedscope_shares(
        {"shared": {"frames": frames}, "profiles": [other_thread, main_thread]}, tmp_path
    )
    assert (found["samples"], found["bookkeeping"], found["imports"], found["compute"]) == (5, 2, 1, 2)
    assert found["seconds"] == pytest.approx(0.05)
    assert found["top"][0] == {"frame": "/x/cli.py:1(main)", "samples": 5, "own": 1}
    assert not any("handle_new_event" in row["frame"] for row in found["top"])  # Dagster's frames left out


def test_the_wrapper_times_a_command_and_its_memory(tmp_path: Path) -> None:
    code = "import sys, time; block = bytearray(80 * 2**20); time.sleep(0.6); print('done'); sys.exit(3)"
    run = e2e.timed([sys.executable, "-c", code], e2e.base_env(), tmp_path, tmp_path / "cmd.log")
    assert run.returncode == 3 and not run.ok
    assert 0.5 < run.seconds < 30
    assert run.peak_rss_mib >= 80
    assert run.tree_rss_mib >= 80  # sampled while it slept
    assert "exit status 3" in run.reason() and "done" in run.reason()
    with pytest.raises(e2e.CommandFailed, match="exit status 3"):
        e2e.checked(run)


def test_the_environment_drops_the_project_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATIENT_INSIGHTS_BUCKETS", "4")
    monkeypatch.setenv("DAGSTER_HOME", "/somewhere")
    monkeypatch.setenv("MAKELEVEL", "1")
    env = e2e.base_env(DAGSTER_HOME="/new")
    assert "PATIENT_INSIGHTS_BUCKETS" not in env and env["DAGSTER_HOME"] == "/new"
    clean = e2e.clean_make_env()
    assert not {"PATIENT_INSIGHTS_BUCKETS", "DAGSTER_HOME", "MAKELEVEL"} & clean.keys()
    assert clean["HOME"] == e2e.os.environ["HOME"]


def test_a_failing_measure_is_reported_and_the_others_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "e2e.md"
    monkeypatch.setattr(e2e, "REPORT", report)
    monkeypatch.setenv("BENCH_E2E_PATIENTS", "2000")
    monkeypatch.setenv("BENCH_FRESH_CLONE", "0")
    ran = []

    def broken(self: e2e.E2E) -> None:
        raise e2e.CommandFailed("`patient-insights ingest`: exit status 1: ImportError: half-edited module")

    def fine(self: e2e.E2E) -> None:
        ran.append("synthea")
        self.measures["synthea"].value, self.measures["synthea"].met = "8.0 s (median of 3)", True
        self._stamp(self.measures["synthea"], [])

    monkeypatch.setattr(e2e.E2E, "small", broken)
    monkeypatch.setattr(e2e.E2E, "profile", broken)
    monkeypatch.setattr(e2e.E2E, "synthea", fine)
    monkeypatch.setattr(e2e.E2E, "make_run", broken)
    monkeypatch.setattr(e2e.E2E, "size", lambda self, patients: broken(self))
    e2e.E2E(tmp_path).run()
    text = report.read_text()
    assert ran == ["synthea"]
    table = text.split("## Targets", 1)[1]
    assert "| 8.0 s (median of 3) | ≤ 10 s | met |" in table
    assert "FAILED: `patient-insights ingest`: exit status 1: ImportError: half-edited module" in table
    assert "| skipped (BENCH_FRESH_CLONE=0) |" in table
    assert "2,000 people: incremental run of a 1 % delivery" in table
    assert "| `make test` in CI | see CI | ≤ 8 min |" in table
