"""Which texts can be scored at all: empty, non-text and non-English texts are marked, never guessed.

English is recognised by vocabulary, not by a statistical language model: the share of a text's words that
are English function words or in VADER's English sentiment lexicon. Three or more words of which under
15 % are known English words mark the text `not_english`; anything shorter is given the benefit of the
doubt when it is plain ASCII.
"""

from __future__ import annotations

import hashlib
from functools import cache

import polars as pl

OK, EMPTY, NOT_TEXT, NOT_ENGLISH = "ok", "empty", "not_text", "not_english"
MIN_WORDS_FOR_LANGUAGE = 3
MIN_ENGLISH_SHARE = 0.15
_FUNCTION_WORDS = (  # noqa: SIM905  (a word list reads better as prose)
    "a about after again all am an and any are as at be been before being but by can could did do does "
    "doing don't down for from had has have having he her here him his how i i'm if in into is it it's its "
    "just me more most my no not now of off on once only or other our out over please same she should so "
    "some still such than that the their them then there these they this those through to too under until "
    "up very was we were what when where which while who why will with would you your yes thank thanks "
    "get got go going went been make made take took time day days week appointment doctor nurse call "
    "called bill insurance prescription pharmacy refill wait waiting waited hours staff help care"
).split()


@cache
def english_words() -> frozenset[str]:
    """Function words plus VADER's lexicon (it ships with the package)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return frozenset(_FUNCTION_WORDS) | frozenset(SentimentIntensityAnalyzer().lexicon)


def text_status(texts: pl.Series) -> pl.Series:
    """`ok`, `empty`, `not_text` or `not_english` for each text (vectorized)."""
    frame = pl.DataFrame({"t": texts.cast(pl.String)})
    words = pl.col("t").str.to_lowercase().str.extract_all(r"[\p{L}']+")
    known = words.list.eval(pl.element().is_in(list(english_words()))).list.sum()
    count = words.list.len()
    letters = pl.col("t").str.count_matches(r"\p{L}")
    visible = pl.col("t").str.count_matches(r"\S")
    status = (
        pl.when(pl.col("t").is_null() | (pl.col("t").str.strip_chars() == ""))
        .then(pl.lit(EMPTY))
        .when((letters == 0) | (letters < 0.3 * visible))
        .then(pl.lit(NOT_TEXT))
        .when((count >= MIN_WORDS_FOR_LANGUAGE) & (known < MIN_ENGLISH_SHARE * count))
        .then(pl.lit(NOT_ENGLISH))
        .when((count < MIN_WORDS_FOR_LANGUAGE) & (known == 0) & pl.col("t").str.contains(r"[^\x00-\x7F]"))
        .then(pl.lit(NOT_ENGLISH))
        .otherwise(pl.lit(OK))
    )
    return frame.select(status.alias("text_status")).to_series()


def text_hashes(texts: pl.Series) -> pl.Series:
    """A stable 64-bit hash of each text (BLAKE2b; Polars' own hash may change between versions)."""
    unique = texts.unique().drop_nulls()
    hashed = [int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest()) for t in unique]
    lookup = pl.DataFrame({"text": unique, "hash": pl.Series(hashed, dtype=pl.UInt64)})
    return pl.DataFrame({"text": texts}).join(lookup, on="text", how="left", maintain_order="left")["hash"]
