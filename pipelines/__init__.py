"""patient-insights pipeline machinery: readers, lake I/O, and the Dagster wiring in `definitions.py`."""

import os

ARROW_PURGE_VARIABLE = "MIMALLOC_PURGE_DELAY"
"""PyArrow's default memory pool (mimalloc) keeps the pages Arrow freed until Arrow allocates again,
after this many milliseconds. A process whose last Arrow work is over (the run's process after bronze,
a pool worker between steps) then sits on the peak of that work for the rest of the run: 0.9 GiB after
bronze of 100,000 people. 0 returns them as they are freed. Set here, before anything imports pyarrow
(mimalloc reads it when Arrow first allocates), and inherited by the spawned workers; a value the
user set is kept."""

os.environ.setdefault(ARROW_PURGE_VARIABLE, "0")
