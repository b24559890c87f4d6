"""Allocator settings made when `pipelines` is imported: memory Arrow frees goes back to the system, so a
process whose Arrow work is over (the run's process after bronze, a pool worker between steps) does not
sit on that work's peak for the rest of the run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from pipelines import ARROW_PURGE_VARIABLE

_FREE_AND_MEASURE = textwrap.dedent(
    """
    import os
    import pipelines
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    def rss_mib():
        with open("/proc/self/status") as status:
            return next(int(l.split()[1]) for l in status if l.startswith("VmRSS:")) // 1024

    numbers = pa.array(np.arange(32 * 2**20, dtype=np.int64))  # 256 MiB, numpy's memory
    before = rss_mib()
    doubled = pc.multiply(numbers, 2)  # 256 MiB from Arrow's pool, every page written
    grown = rss_mib() - before
    del doubled
    print(os.environ.get("MIMALLOC_PURGE_DELAY"), grown, rss_mib() - before)
    """
)


def _run(env: dict[str, str]) -> tuple[str, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", _FREE_AND_MEASURE], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1]), int(out[2])


def test_memory_arrow_frees_is_returned_at_once() -> None:
    env = {k: v for k, v in os.environ.items() if k != ARROW_PURGE_VARIABLE}
    setting, grown, kept = _run(env)
    assert setting == "0"
    assert grown >= 200  # the freed buffer was really resident
    assert kept < 64, f"{kept} MiB of a freed 256 MiB Arrow buffer still resident"


def test_a_purge_delay_the_user_set_is_kept() -> None:
    setting, _, _ = _run({**os.environ, ARROW_PURGE_VARIABLE: "250"})
    assert setting == "250"
