"""The two kinds of sentiment model, one interface: `score(texts)` gives a label (negative, neutral,
positive) and a score in [-1, 1] for each text; texts that are not scorable get a null label and score."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import polars as pl
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline, make_union

from models.sentiment.text import OK, text_status

LABELS = ("negative", "neutral", "positive")
VADER_NEUTRAL_BAND = 0.05
"""VADER's own convention: a compound score within ±0.05 is neutral."""


@cache
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _scored(texts: pl.Series, labels: list[str | None], scores: list[float | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "text_status": text_status(texts),
            "sentiment_label": pl.Series(labels, dtype=pl.String),
            "sentiment_score": pl.Series(scores, dtype=pl.Float64),
        }
    )


@dataclass
class LexiconModel:
    """VADER: the compound score is the score; ±0.05 separates the labels."""

    kind: str = "vader"

    def score(self, texts: pl.Series) -> pl.DataFrame:
        """Label and score of every scorable text."""
        status = text_status(texts)
        analyzer = _vader()
        labels: list[str | None] = []
        scores: list[float | None] = []
        for text, state in zip(texts.to_list(), status.to_list(), strict=True):  # VADER is per text
            if state != OK:
                labels.append(None)
                scores.append(None)
                continue
            compound = analyzer.polarity_scores(text)["compound"]
            scores.append(compound)
            labels.append(
                "positive"
                if compound >= VADER_NEUTRAL_BAND
                else "negative"
                if compound <= -VADER_NEUTRAL_BAND
                else "neutral"
            )
        return _scored(texts, labels, scores)


def text_classifier(seed: int) -> Pipeline:
    """TF-IDF of words (1-2 grams) and characters within words (2-5 grams), class-balanced logistic
    regression: robust to typos and short texts, fast on a laptop."""
    return make_pipeline(
        make_union(
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, strip_accents="unicode"),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True),
        ),
        LogisticRegression(C=2.0, max_iter=3000, class_weight="balanced", random_state=seed),
    )


@dataclass
class ClassifierModel:
    """A fitted text classifier: the label is the most probable class, the score P(positive) - P(negative)."""

    pipeline: Pipeline
    kind: str = "tfidf_logistic_regression"
    classes: list[str] = field(default_factory=list)

    def score(self, texts: pl.Series) -> pl.DataFrame:
        """Label and score of every scorable text (one batch prediction)."""
        status = text_status(texts)
        ok = (status == OK).to_numpy()
        labels: list[str | None] = [None] * len(texts)
        scores: list[float | None] = [None] * len(texts)
        if ok.any():
            chosen = [t for t, keep in zip(texts.to_list(), ok, strict=True) if keep]
            proba = self.pipeline.predict_proba(chosen)
            classes = list(self.pipeline.classes_)
            best = np.asarray(classes)[proba.argmax(axis=1)]
            signed = proba[:, classes.index("positive")] - proba[:, classes.index("negative")]
            for position, index in enumerate(np.flatnonzero(ok)):
                labels[index] = str(best[position])
                scores[index] = float(signed[position])
        return _scored(texts, labels, scores)
