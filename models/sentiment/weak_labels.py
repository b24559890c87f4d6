"""Weak labels (from ratings) that the comment's own words contradict, left out only when the form asks
for them.

Some feedback forms ask two things under one rating: what was good, and what could be improved (the
`two-questions` form; e.g. Friends and Family Test forms that add "what could we do better"). A patient who
rates the visit "very good" and answers the second question ("more staff at weekends", "the wait was too
long") gives a comment that reads negative under a positive rating; taught as positive, it teaches the
classifier that complaints are praise. On such a form those comments are left out of the weak-label
training (counted, never silently): a comment under a good rating that reads like an answer to "what could
we improve" — improvement wording, or negative wording by the lexicon read sentence by sentence — unless it
says there is nothing to improve.

On a form with one question (`one-question`, the default: "any comments?", the pipeline's surveys) nothing
is left out. There a comment under a good rating is mostly praise, and the lexicon misreads some praise
("much less stressful than I expected" reads negative to VADER): leaving such comments out drops every
positive-rated copy of those sentences while their copies under middling ratings stay, which teaches the
classifier that the praise is neutral (bench/reports/sentiment.md measures it). The held-out texts that
judge the model are never filtered: they are judged as the deployed model will meet them.
"""

from __future__ import annotations

import polars as pl

from models.sentiment.models import VADER_NEUTRAL_BAND, LexiconModel

IMPROVEMENT_ANSWER = "improvement_answer_under_good_rating"
ONE_QUESTION = "one-question"
TWO_QUESTIONS = "two-questions"
FORMS = (ONE_QUESTION, TWO_QUESTIONS)
"""What the comment answers: one question (nothing left out), or both "what was good" and "what could we
improve" under one rating (improvement answers under a good rating left out of the training texts)."""
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
SENTENCE_END = r"([.!?]+)\s+"
"""Where a sentence ends: VADER reads a whole text as one run of words, so a negation ("never", "not")
flips the first words of the next sentence ("...which never happens elsewhere. Excellent!" reads -0.51)."""


def improvement_answers(texts: pl.Series, labels: pl.Series) -> pl.Series:
    """True for each positive-labelled text that reads like an answer to "what could we improve"."""
    positive = labels.eq("positive").fill_null(False)
    found = pl.Series(values=[False] * len(texts), dtype=pl.Boolean)
    if not positive.any():
        return found
    chosen = texts.filter(positive)
    marked = pl.DataFrame({"text": chosen, "negative": reads_negative(chosen)}).select(
        ~pl.col("text").str.contains(NOTHING_TO_IMPROVE).fill_null(False)
        & (pl.col("text").str.contains(IMPROVEMENT_WORDING).fill_null(False) | pl.col("negative"))
    )
    return found.scatter(positive.arg_true(), marked.to_series())


def reads_negative(texts: pl.Series) -> pl.Series:
    """True for each text whose sentences read negative on average by the lexicon (VADER's compound score
    of each sentence, at or below VADER's own -0.05); a text the lexicon cannot score is not negative."""
    sentences = (
        pl.DataFrame({"text": texts})
        .with_row_index("_row")
        .select(
            "_row",
            pl.col("text").str.replace_all(SENTENCE_END, "$1\n").str.split("\n").alias("sentence"),
        )
        .explode("sentence")
    )
    scores = LexiconModel().score(sentences["sentence"])["sentiment_score"]
    mean = (
        sentences.with_columns(scores.alias("_score"))
        .group_by("_row")
        .agg(pl.col("_score").mean())
        .sort("_row")["_score"]
    )
    return (mean <= -VADER_NEUTRAL_BAND).fill_null(False).alias("negative")
