"""The bench's true labels of generated survey comments: recovered from the generator's sentence pools."""

from __future__ import annotations

import random

import polars as pl

from bench.sentiment_truth import POOLS, survey_truth
from pipelines.generate import texts


def test_every_generated_comment_gets_the_pool_it_was_written_from() -> None:
    rng = random.Random(5)
    comments, pools = [], []
    for _ in range(300):
        label = rng.choice(list(POOLS))
        picked = rng.sample(POOLS[label], rng.choice([1, 2, 3]))
        slots = {
            "staff": "nurse",
            "wait": "an hour",
            "place": "lab",
            "doc": rng.choice(["Dr. Ng", "Dr. O'Hara"]),
        }
        comments.append(" ".join(s.format(**slots) for s in picked))
        pools.append(label)
    assert survey_truth(pl.Series(comments)).to_list() == pools


def test_comments_the_generator_wrote_are_all_recovered_and_others_are_not() -> None:
    rng = random.Random(6)
    written = [texts.survey_comment(rng, rng.randint(0, 10), "Dr. Patel") for _ in range(500)]
    assert survey_truth(pl.Series(written)).null_count() == 0
    assert survey_truth(pl.Series(["The parking was fine, I suppose.", ""])).to_list() == [None, None]
