"""The two kinds of sentiment model, one interface: `score(texts)` gives a label (negative, neutral,
positive) and a score in [-1, 1] for each text; texts that are not scorable get a null label and score."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


def per_distinct_text(texts: pl.Series, score: Callable[[pl.Series], pl.DataFrame]) -> pl.DataFrame:
    """`score(texts)`, computed once per distinct text: a text's score depends on the text alone, and
    messages repeat (stock replies, survey phrases, a generated corpus's sentences many times over)."""
    distinct = texts.unique(maintain_order=True)
    if len(distinct) == len(texts):
        return score(texts)
    scored = score(distinct).with_columns(distinct.alias("_text"))
    return (
        texts.alias("_text")
        .to_frame()
        .join(scored, on="_text", how="left", maintain_order="left", nulls_equal=True)
        .drop("_text")
    )


@dataclass
class LexiconModel:
    """VADER: the compound score is the score; ±0.05 separates the labels."""

    kind: str = "vader"

    def score(self, texts: pl.Series, kinds: pl.Series | None = None) -> pl.DataFrame:
        """Label and score of every scorable text."""
        return per_distinct_text(texts, self._score)

    def _score(self, texts: pl.Series) -> pl.DataFrame:
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
    regression: robust to typos and short texts, fast on a laptop. Newton-CG reaches the same optimum as
    L-BFGS in a handful of iterations on these few thousand sparse features (a third of the time)."""
    return make_pipeline(
        make_union(
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, strip_accents="unicode"),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True),
        ),
        LogisticRegression(
            C=2.0, max_iter=3000, class_weight="balanced", solver="newton-cg", random_state=seed
        ),
    )


@dataclass
class ClassifierModel:
    """A fitted text classifier: the label is the most probable class after weighting each class's
    probability by `class_weights` (chosen out of fold: `thresholds.py`; None weighs all alike), the score
    P(positive) - P(negative)."""

    pipeline: Pipeline
    kind: str = "tfidf_logistic_regression"
    class_weights: dict[str, float] | None = None  # versions saved before weights were chosen have none

    def score(self, texts: pl.Series, kinds: pl.Series | None = None) -> pl.DataFrame:
        """Label and score of every scorable text (one batch prediction)."""
        return per_distinct_text(texts, self._score)

    def _score(self, texts: pl.Series) -> pl.DataFrame:
        status = text_status(texts)
        ok = (status == OK).to_numpy()
        labels: list[str | None] = [None] * len(texts)
        scores: list[float | None] = [None] * len(texts)
        if ok.any():
            chosen = [t for t, keep in zip(texts.to_list(), ok, strict=True) if keep]
            proba = self.pipeline.predict_proba(chosen)
            classes = list(self.pipeline.classes_)
            weights = getattr(self, "class_weights", None) or {}
            factors = np.asarray([weights.get(label, 1.0) for label in classes])
            best = np.asarray(classes)[(proba * factors).argmax(axis=1)]
            signed = proba[:, classes.index("positive")] - proba[:, classes.index("negative")]
            for position, index in enumerate(np.flatnonzero(ok)):
                labels[index] = str(best[position])
                scores[index] = float(signed[position])
        return _scored(texts, labels, scores)


@dataclass
class RoutedModel:
    """The deployed sentiment model: for each kind of text (survey comment, conversation turn, ...) the model
    that judged best on held-out texts of that kind, and a default for kinds without their own evidence."""

    models: dict[str, Any]
    default: str
    by_kind: dict[str, str]
    kind: str = "routed"

    def model_for(self, kind: str | None) -> str:
        """The name of the model that scores texts of `kind`."""
        return self.by_kind.get(kind or "", self.default)

    def score(self, texts: pl.Series, kinds: pl.Series | None = None) -> pl.DataFrame:
        """Label and score of every scorable text, each by the model chosen for its kind."""
        if kinds is None:
            return self.models[self.default].score(texts)
        routes = pl.DataFrame({"text": texts, "kind": kinds}).with_row_index("_row")
        routes = routes.with_columns(
            pl.col("kind")
            .replace_strict(self.by_kind, default=self.default, return_dtype=pl.String)
            .alias("_model")
        )
        parts = []
        for name in routes["_model"].unique().sort().to_list():
            mine = routes.filter(pl.col("_model") == name)
            parts.append(self.models[name].score(mine["text"]).with_columns(mine["_row"]))
        return pl.concat(parts).sort("_row").drop("_row")
