"""The true sentiment of a generated survey comment, recovered from its words.

The generator writes each survey comment from one pool of sentences (`pipelines/generate/texts.py`:
NEGATIVE, MIXED or POSITIVE, one to three sentences with slots for a name, a wait, a place) and then
records only the rating, which the pool follows loosely. The pool is the comment's true label (MIXED is
neutral): a comment is matched against each pool's sentence templates, and one that matches no pool or
more than one stays unlabelled (counted by the caller).
"""

from __future__ import annotations

import re

import polars as pl

from pipelines.generate import texts

POOLS = {"negative": texts.NEGATIVE, "neutral": texts.MIXED, "positive": texts.POSITIVE}
MAX_SENTENCES = 3


def pool_pattern(sentences: tuple[str, ...]) -> str:
    """A regular expression for one to three of `sentences` joined by spaces, slots matching any text."""
    templates = [
        "".join(".+?" if i % 2 else re.escape(part) for i, part in enumerate(re.split(r"(\{[a-z]+\})", s)))
        for s in sentences
    ]
    one = "(?:" + "|".join(templates) + ")"
    return f"^{one}(?: {one}){{0,{MAX_SENTENCES - 1}}}$"


def survey_truth(comments: pl.Series) -> pl.Series:
    """The pool each comment was written from (negative / neutral / positive), null when not exactly one."""
    frame = pl.DataFrame({"text": comments})
    matched = frame.select(
        **{label: pl.col("text").str.contains(pool_pattern(sentences)) for label, sentences in POOLS.items()}
    )
    only = pl.sum_horizontal(pl.all()) == 1
    label = pl.coalesce(*(pl.when(pl.col(name)).then(pl.lit(name)) for name in POOLS))
    return matched.select(pl.when(only).then(label).alias("truth")).to_series()
