"""Exclusive locks on a lake, so that two runs started at once (a sensor's and a person's) never write the
same tables together: the second waits for the first.

Local lakes use `flock` on `<lake>/meta/locks/<name>.lock` (released by the kernel when a process dies,
so a killed run never leaves a lake locked). Object stores have no such lock: there, Dagster's run queue
keeps runs of one partition apart (`deploy/helm/values.yaml`, `tagConcurrencyLimits`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator

from upath import UPath

from pipelines.lake import FILE_MODE, is_local, make_dirs

LOCKS = ("meta", "locks")
STALE_TEMP_SECONDS = 3600
"""Hidden temporary files older than this, found under the pipeline lock, are a killed run's leftovers."""

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def exclusive(lake: UPath, name: str) -> Iterator[bool]:
    """Hold the lake's lock `name` for the block, waiting for another holder to let go; yields whether it
    had to wait (False on object stores, where nothing is locked)."""
    if not is_local(lake):
        yield False
        return
    folder = lake.joinpath(*LOCKS)
    make_dirs(folder)
    fd = os.open(os.path.join(str(folder), f"{name}.lock"), os.O_RDWR | os.O_CREAT, FILE_MODE)
    waited = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waited = True
            logger.info("another run holds the lake lock %r: waiting for it to finish", name)
            began = time.monotonic()
            fcntl.flock(fd, fcntl.LOCK_EX)
            logger.info("lake lock %r acquired after %.1f s", name, time.monotonic() - began)
        yield waited
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def remove_stale_temporaries(lake: UPath, older_than: float = STALE_TEMP_SECONDS) -> int:
    """Delete the hidden `.<name>.<id>.tmp` files that killed runs left in a local lake (readers never see
    them; they only take space) when older than `older_than` seconds; return how many went."""
    if not is_local(lake) or not lake.exists():
        return 0
    cutoff = time.time() - older_than
    removed = 0
    for root, _, files in os.walk(str(lake)):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                path = os.path.join(root, name)
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(path).st_mtime < cutoff:
                        os.unlink(path)
                        removed += 1
    return removed
