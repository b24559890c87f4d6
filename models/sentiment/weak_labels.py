"""Weak labels (from ratings) that the comment's own words contradict.

Feedback forms often ask two things under one rating: what was good, and what could be improved. A
patient who rates the visit "very good" and answers the second question ("more staff at weekends", "the
wait was too long") gives a comment that reads negative under a positive rating; taught as positive, it
teaches the classifier that complaints are praise. Such comments are left out of the weak-label training
and its judging (counted, never silently): a comment under a good rating that reads like an answer to
"what could we improve" — improvement wording, or negative wording by the lexicon — unless it says there
is nothing to improve.
"""

from __future__ import annotations

import polars as pl

from models.sentiment.models import LexiconModel

IMPROVEMENT_ANSWER = "improvement_answer_under_good_rating"
NOTHING_TO_IMPROVE = (
    r"(?i)\b(?:nothing|no(?:thing)? (?:to )?improve|can'?t think|cannot think|"
    r"could(?:n'?t| not) (?:be|have been) better|no complaints?|keep (?:it )?up)\b"
)
"""Answers that say all was well ("nothing", "keep up the good work"): they agree with a good rating."""
IMPROVEMENT_WORDING = (
    r"(?i)\b(?:could (?:be|have been|do|get) (?:better|improved|more|quicker|faster|friendlier)|"
    r"needs? (?:to )?(?:improve|be improved|work|more|better)|improve(?:d|ment|ments)?|"
    r"would (?:be|have been) (?:nice|better|good|great|helpful)|would have liked|should (?:be|have)|"
    r"wish(?:ed)?|suggest(?:ion|ions)?|more (?:staff|time|information|communication|parking|seats?|chairs)|"
    r"less (?:wait|waiting)|too (?:long|slow|busy|loud)|only (?:thing|complaint|issue|problem))\b"
)
"""Wording that answers "what could we improve"."""


def improvement_answers(texts: pl.Series, labels: pl.Series) -> pl.Series:
    """True for each positive-labelled text that reads like an answer to "what could we improve"."""
    positive = labels.eq("positive").fill_null(False)
    found = pl.Series(values=[False] * len(texts), dtype=pl.Boolean)
    if not positive.any():
        return found
    chosen = texts.filter(positive)
    lexicon = LexiconModel().score(chosen)["sentiment_label"]
    marked = pl.DataFrame({"text": chosen, "lexicon": lexicon}).select(
        ~pl.col("text").str.contains(NOTHING_TO_IMPROVE).fill_null(False)
        & (
            pl.col("text").str.contains(IMPROVEMENT_WORDING).fill_null(False)
            | (pl.col("lexicon") == "negative").fill_null(False)
        )
    )
    return found.scatter(positive.arg_true(), marked.to_series())
