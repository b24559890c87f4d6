"""Plain words for the platform's codes on a care manager's screen: a measure's and a segment's title from
their contracts, a care-gap status as a person would say it. Pages keep the code columns for masking and
filtering and show these words instead."""

from __future__ import annotations

from functools import cache

import polars as pl

from pipelines.measures.definitions import measure_titles
from pipelines.segments.engine import segment_titles

GAP_STATUS_WORDS = {
    "open-gap": "open",
    "closed-gap": "closed",
    "prospective-gap": "closed, but the evidence runs out soon",
    "excluded": "excluded",
    "not-applicable": "not eligible",
}
"""The DEQM gap statuses (`pipelines/measures/engine.py`) in words, in the order a care manager asks."""


@cache
def _measures() -> dict[str, str]:
    return measure_titles()


@cache
def _segments() -> dict[str, str]:
    return segment_titles()


def measure_title(measure_id: str) -> str:
    """A measure's title ('Breast cancer screening'), or its id when no contract names it."""
    return _measures().get(measure_id, measure_id)


def segment_title(segment_id: str) -> str:
    """A segment's title, or its id when no contract names it."""
    return _segments().get(segment_id, segment_id)


def measure_words(column: str = "measure_id") -> pl.Expr:
    """The measure titles of an id column (unknown ids as they are)."""
    return _words(column, _measures())


def segment_words(column: str = "segment_id") -> pl.Expr:
    """The segment titles of an id column (unknown ids as they are)."""
    return _words(column, _segments())


def gap_status_words(column: str = "status") -> pl.Expr:
    """Care-gap statuses in words (unknown codes as they are)."""
    return _words(column, GAP_STATUS_WORDS)


def _words(column: str, words: dict[str, str]) -> pl.Expr:
    code = pl.col(column).cast(pl.String)
    return code.replace_strict(words, default=code, return_dtype=pl.String)
