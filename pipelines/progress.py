"""A live view of a pipeline run on the terminal: each step with its state, rows written and seconds.

Dagster hands every event of a run to the run's loggers; the `progress` logger (declared in the
definitions, switched on by the command line's run configuration) passes step starts, materializations
and step ends to the display that is active in this process. Only step names, row counts and times are
shown: no record content reaches it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.live import Live
from rich.table import Table

_active: StepProgress | None = None
_STATES = {"STEP_SUCCESS": "done", "STEP_FAILURE": "failed", "STEP_SKIPPED": "skipped"}


@dataclass
class _Step:
    started: float
    ended: float | None = None
    state: str = "running"
    rows: int = 0


@dataclass
class StepProgress:
    """The steps of one run as they start, write rows and end."""

    steps: dict[str, _Step] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def on_event(self, kind: str, step: str | None, rows: int | None) -> None:
        """Take one Dagster event (its type name, step key and the rows its metadata reports)."""
        if not step:
            return
        now = time.perf_counter()
        if kind == "STEP_START":
            self.steps[step] = _Step(now)
            return
        current = self.steps.setdefault(step, _Step(now))
        if kind == "ASSET_MATERIALIZATION" and rows:
            current.rows += rows
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            current.ended = now
            current.state = _STATES[kind]

    def table(self) -> Table:
        """The steps so far as a table."""
        elapsed = time.perf_counter() - self.started
        table = Table(title=f"pipeline run: {elapsed:,.1f} s", title_justify="left")
        for column, justify in (("step", "left"), ("state", "left"), ("rows", "right"), ("seconds", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        now = time.perf_counter()
        for name, step in self.steps.items():
            colour = {"done": "green", "failed": "red", "skipped": "yellow"}.get(step.state, "cyan")
            seconds = (step.ended or now) - step.started
            table.add_row(name, f"[{colour}]{step.state}[/{colour}]", f"{step.rows:,}", f"{seconds:,.1f}")
        return table


class _Handler(logging.Handler):
    """Feeds the active display from the records Dagster's log manager emits."""

    def emit(self, record: logging.LogRecord) -> None:
        display = _active
        meta = getattr(record, "dagster_meta", None)
        if display is None or not isinstance(meta, dict):
            return
        event = meta.get("dagster_event")
        if event is None:
            return
        rows = None
        if event.event_type_value == "ASSET_MATERIALIZATION":
            value = event.event_specific_data.materialization.metadata.get("rows")
            rows = getattr(value, "value", None)
        display.on_event(event.event_type_value, event.step_key, rows if isinstance(rows, int) else None)


def progress_logger() -> logging.Logger:
    """The Python logger behind the Dagster `progress` logger."""
    logger = logging.getLogger("patient_insights.progress")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    if not any(isinstance(h, _Handler) for h in logger.handlers):
        logger.addHandler(_Handler())
    return logger


@contextmanager
def live_progress(console: Console | None) -> Iterator[StepProgress]:
    """Show the steps of the run started inside the block (nothing is drawn without a console)."""
    global _active
    display = StepProgress()
    _active = display
    try:
        if console is None:
            yield display
            return
        with Live(console=console, refresh_per_second=2, get_renderable=display.table):
            yield display
    finally:
        _active = None
