"""Buckets of one step side by side: a pool of worker processes when the data is big enough to pay for it.

A spawned worker costs one to two seconds to start (it imports Polars and the step's modules), which a
bucket of a few megabytes never wins back; a bucket of hundreds of megabytes takes tens of seconds, and two
of them on two cores take half the time. So a pool is used only when there are several buckets to build
and each holds enough data (`PATIENT_INSIGHTS_WORKERS` overrides: a number, or `auto`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import TypeVar

from upath import UPath

from pipelines.lake import parquet_files

WORKERS_ENV = "PATIENT_INSIGHTS_WORKERS"
BYTES_PER_WORKER_BUCKET = 32 * 1024 * 1024
"""Bronze bytes a bucket must hold on average before building buckets side by side pays off."""

T = TypeVar("T")


def configured_workers() -> int | None:
    """`PATIENT_INSIGHTS_WORKERS` as a number (`auto`: the machine's cores), or None when unset."""
    text = os.environ.get(WORKERS_ENV, "").strip()
    if not text:
        return None
    workers = (os.cpu_count() or 1) if text == "auto" else int(text)
    if workers < 1:
        raise ValueError(f"{WORKERS_ENV} must be at least 1 or auto, got {text!r}")
    return workers


def bucket_workers(lake: UPath, buckets: int, todo: int) -> int:
    """Processes for building `todo` buckets of a lake split into `buckets`: the setting, else one per core
    when the buckets are large enough to pay for a worker's start, else 1."""
    configured = configured_workers()
    if configured is not None:
        return max(1, min(configured, todo))
    if todo < 2:
        return 1
    bronze = lake / "bronze" / "fhir_resources"
    size = sum(p.stat().st_size for p in parquet_files(bronze)) if bronze.exists() else 0
    if size / max(buckets, 1) < BYTES_PER_WORKER_BUCKET:
        return 1
    return max(1, min(os.cpu_count() or 1, todo))


def map_buckets(function: Callable[..., T], calls: Sequence[tuple], workers: int) -> list[T]:
    """`function(*args)` for every args tuple of `calls`, in order: in this process, or in `workers`
    spawned processes (no fork of a process that holds threads: Polars', Dagster's). The processes are
    kept for the next step of the run (`worker_pool`), so a run pays their start once."""
    if workers <= 1 or len(calls) <= 1:
        return [function(*args) for args in calls]
    workers = min(workers, len(calls))
    with _threads_per_worker(workers):
        pool = _pool(workers)
        futures = [pool.submit(function, *args) for args in calls]
    try:
        return [future.result() for future in futures]
    except BrokenProcessPool:
        shutdown_workers()  # a worker died (killed, out of memory): the next step starts a new pool
        raise


_POOL: tuple[tuple, ProcessPoolExecutor] | None = None


def _pool(workers: int) -> ProcessPoolExecutor:
    """The kept pool when it has `workers` processes spawned with this environment, else a new one (the
    old one shut down): a worker reads the settings' variables from the environment it was spawned with."""
    global _POOL
    key = (workers, tuple(sorted(os.environ.items())))
    if _POOL is not None and _POOL[0] == key:
        return _POOL[1]
    shutdown_workers()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    _POOL = (key, pool)
    return pool


@contextmanager
def worker_pool() -> Iterator[None]:
    """The scope in which the steps of a run share their worker processes: shut down when it ends, so
    no worker outlives the run (or holds a finished step's memory into the next command)."""
    try:
        yield
    finally:
        shutdown_workers()


def shutdown_workers() -> None:
    """Stop the kept worker processes, if any."""
    global _POOL
    if _POOL is not None:
        _POOL[1].shutdown(wait=True, cancel_futures=True)
        _POOL = None


_THREAD_VARIABLES = ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Thread-pool sizes of Polars, scikit-learn's OpenMP loops and BLAS, read once when each library loads."""


@contextmanager
def _threads_per_worker(workers: int) -> Iterator[None]:
    """Give each worker an equal share of the cores while the pool's processes are spawned (they inherit
    this environment): every library otherwise starts one thread per core in every worker, and OpenMP
    threads that wait by spinning slow each other down several-fold on an oversubscribed machine. A
    variable the user set is kept."""
    share = str(max(1, (os.cpu_count() or 1) // workers))
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    for name, value in saved.items():
        if value is None:
            os.environ[name] = share
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
