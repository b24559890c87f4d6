"""Buckets of one step side by side: a pool of worker processes when the data is big enough to pay for it.

A spawned worker costs one to two seconds to start (it imports Polars and the step's modules), which a
bucket of a few megabytes never wins back; a bucket of hundreds of megabytes takes tens of seconds, and two
of them on two cores take half the time. So a pool is used only when there are several buckets to build
and each holds enough data (`PATIENT_INSIGHTS_WORKERS` overrides: a number, or `auto`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
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
    spawned processes (no fork of a process that holds threads: Polars', Dagster's)."""
    if workers <= 1 or len(calls) <= 1:
        return [function(*args) for args in calls]
    with ProcessPoolExecutor(
        max_workers=min(workers, len(calls)), mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        futures = [pool.submit(function, *args) for args in calls]
        return [future.result() for future in futures]
