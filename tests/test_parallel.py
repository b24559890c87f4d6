"""Buckets side by side (`pipelines/parallel.py`): worker processes share the cores instead of each
starting a thread per core."""

from __future__ import annotations

import os

import pytest

from pipelines.parallel import _THREAD_VARIABLES, map_buckets


def test_workers_get_a_share_of_the_cores_and_the_parent_keeps_its_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in _THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # set by the user: kept
    seen = map_buckets(os.getenv, [(name,) for name in _THREAD_VARIABLES], workers=2)
    share = str(max(1, (os.cpu_count() or 1) // 2))
    expected = [("7" if name == "OMP_NUM_THREADS" else share) for name in _THREAD_VARIABLES]
    assert seen == expected
    assert [os.environ.get(name) for name in _THREAD_VARIABLES] == [
        "7" if name == "OMP_NUM_THREADS" else None for name in _THREAD_VARIABLES
    ]


def test_one_worker_runs_in_this_process_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLARS_MAX_THREADS", raising=False)
    assert map_buckets(os.getenv, [("POLARS_MAX_THREADS",), ("POLARS_MAX_THREADS",)], workers=1) == [
        None,
        None,
    ]


def test_a_run_keeps_its_workers_across_steps_and_stops_them_at_its_end() -> None:
    from pipelines import parallel

    with parallel.worker_pool():
        first = map_buckets(os.getpid, [(), ()], workers=2)
        assert parallel._POOL is not None
        pool = parallel._POOL[1]
        second = map_buckets(os.getpid, [(), ()], workers=2)
        # The same spawned processes serve both steps; which worker takes which call is the
        # executor's choice (one worker may take both), so only membership is asserted.
        assert parallel._POOL is not None and parallel._POOL[1] is pool
        spawned = set(pool._processes)
        assert set(first) | set(second) <= spawned and os.getpid() not in spawned
    assert parallel._POOL is None


def test_workers_spawned_with_another_environment_are_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines import parallel

    with parallel.worker_pool():
        monkeypatch.setenv("PATIENT_INSIGHTS_AS_OF", "2026-01-01")
        assert map_buckets(os.getenv, [("PATIENT_INSIGHTS_AS_OF",)] * 2, workers=2) == ["2026-01-01"] * 2
        monkeypatch.setenv("PATIENT_INSIGHTS_AS_OF", "2026-06-30")
        assert map_buckets(os.getenv, [("PATIENT_INSIGHTS_AS_OF",)] * 2, workers=2) == ["2026-06-30"] * 2
