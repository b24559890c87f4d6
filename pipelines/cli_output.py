"""What the command line prints: one console, and Polars frames as rich tables."""

from __future__ import annotations

import polars as pl
from rich.console import Console
from rich.table import Table

console = Console()


def frame_table(title: str, frame: pl.DataFrame) -> Table:
    """A frame as a titled table (numbers right-aligned, integers with thousands separators)."""
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(column, justify="right" if frame[column].dtype.is_numeric() else "left")
    for row in frame.iter_rows():
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row))
    return table
