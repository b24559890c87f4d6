"""The classifier's decision thresholds, chosen on texts it did not learn from.

A classifier's most probable class is not the best choice for macro-F1: a class the training labels rarely
give (`neutral` in most rated feedback, where a middle rating is uncommon) or give noisily (weak labels
from ratings) is under- or over-predicted. So each class gets a weight the probabilities are multiplied by
before the most probable class is taken — `negative` stays at 1, `neutral` and `positive` are chosen — and
the weights are those with the best macro-F1 on out-of-fold predictions of the training texts: each
fifth of the distinct training texts is scored by a classifier fitted on the other four fifths. The
held-out fifth that judges the model (and decides deployment) plays no part, so its figures stay honest.
Macro-F1 over a few hundred texts is a jagged surface of the weights; the choice is the middle of a good
region (the best mean over each weight pair's neighbours on the grid), not a lucky spike, which moves
less from one sample of texts to the next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy.ndimage import uniform_filter
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from models.sentiment.models import LABELS
from models.sentiment.text import text_hashes

FOLDS = 5
LOG_WEIGHTS = np.round(np.linspace(-2.0, 2.0, 21), 2)
"""The weights tried for `neutral` and `positive`: e^-2 .. e^2 in steps of e^0.2."""
MIN_FOLD_TEXTS = 2
"""Out-of-fold predictions need at least this many distinct texts of each label per fold."""
MAX_TEXTS = 20_000
"""Distinct training texts the weights are chosen on, at most (a stable-hash sample of them beyond): the
five extra fits stay a few seconds on a large export, and 20,000 texts pin a weight down well."""
NEIGHBOURHOOD = 5
"""The weight pairs averaged around each candidate: ±2 grid steps (±0.4 in log weight) each way."""


@dataclass(frozen=True)
class ChosenWeights:
    """The class weights and the out-of-fold figures they were chosen on."""

    weights: dict[str, float]  # label -> weight on its probability
    texts: int  # distinct training texts scored out of fold
    folds: int
    macro_f1_unweighted: float  # out-of-fold macro-F1 of the most probable class
    macro_f1_weighted: float  # out-of-fold macro-F1 with the chosen weights

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures for the registry's metadata and the training report."""
        return {
            "texts": self.texts,
            "folds": self.folds,
            "macro_f1_unweighted": round(self.macro_f1_unweighted, 4),
            "macro_f1_weighted": round(self.macro_f1_weighted, 4),
        }


def macro_f1(truth: np.ndarray, predicted: np.ndarray, classes: int = len(LABELS)) -> float:
    """Macro-F1 of integer class codes (0..classes-1), every class counted even when absent."""
    scores = []
    for code in range(classes):
        hit = np.sum((predicted == code) & (truth == code))
        given = np.sum(predicted == code) + np.sum(truth == code)
        scores.append(2 * hit / given if given else 0.0)
    return float(np.mean(scores))


def weighted_labels(probabilities: np.ndarray, weights: dict[str, float]) -> np.ndarray:
    """The label codes (positions in `LABELS`) of the most probable class after weighting."""
    factors = np.asarray([weights.get(label, 1.0) for label in LABELS])
    return (probabilities * factors).argmax(axis=1)


def out_of_fold_probabilities(
    labelled: pl.DataFrame, fit: Callable[[pl.DataFrame], Pipeline], seed: int, folds: int = FOLDS
) -> tuple[pl.DataFrame, np.ndarray] | None:
    """Each distinct training text (`text`, `label`: its most frequent label; at most `MAX_TEXTS` of
    them) with the class probabilities (columns in `LABELS` order) of a classifier fitted without it (`fit`
    on the other folds' rows, every copy of a text in one fold); None when too few texts of a label for
    the folds."""
    distinct = labelled.group_by("text").agg(pl.col("label").mode().sort().first())
    distinct = (
        distinct.with_columns(text_hashes(distinct["text"]).alias("_hash"))
        .sort("_hash", "text")
        .drop("_hash")
        .head(MAX_TEXTS)
    )
    labelled = labelled.filter(pl.col("text").is_in(distinct["text"].implode()))
    per_label = distinct.group_by("label").len()
    if per_label.height < len(LABELS) or int(per_label["len"].min()) < folds * MIN_FOLD_TEXTS:
        return None
    probabilities = np.zeros((distinct.height, len(LABELS)))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fitted_on, scored in splitter.split(np.zeros(distinct.height), distinct["label"].to_numpy()):
        fold_texts = distinct[fitted_on]["text"].implode()
        pipeline = fit(labelled.filter(pl.col("text").is_in(fold_texts)))
        found = pipeline.predict_proba(distinct[scored]["text"].to_list())
        columns = [list(pipeline.classes_).index(label) for label in LABELS]
        probabilities[scored] = found[:, columns]
    return distinct, probabilities


def choose_class_weights(distinct: pl.DataFrame, probabilities: np.ndarray, folds: int) -> ChosenWeights:
    """The `neutral` and `positive` weights whose neighbourhood on the grid has the best mean out-of-fold
    macro-F1; among equals, the ones closest to no weighting (so a classifier that needs none keeps its
    most probable class)."""
    truth = distinct["label"].replace_strict({label: i for i, label in enumerate(LABELS)}).to_numpy()
    surface = np.asarray(
        [
            [
                macro_f1(truth, weighted_labels(probabilities, _weights(neutral, positive)))
                for positive in LOG_WEIGHTS
            ]
            for neutral in LOG_WEIGHTS
        ]
    )
    smoothed = uniform_filter(surface, size=NEIGHBOURHOOD, mode="nearest")
    distance = np.abs(LOG_WEIGHTS)[:, None] + np.abs(LOG_WEIGHTS)[None, :]
    best = np.argwhere(smoothed >= smoothed.max() - 1e-9)
    row, column = min(best, key=lambda cell: (distance[cell[0], cell[1]], cell[0], cell[1]))
    chosen = _weights(LOG_WEIGHTS[row], LOG_WEIGHTS[column])
    return ChosenWeights(
        weights={label: round(weight, 4) for label, weight in chosen.items()},
        texts=distinct.height,
        folds=folds,
        macro_f1_unweighted=macro_f1(truth, probabilities.argmax(axis=1)),
        macro_f1_weighted=float(surface[row, column]),
    )


def _weights(neutral: float, positive: float) -> dict[str, float]:
    """Class weights from the log weights of `neutral` and `positive` (`negative` stays at 1)."""
    return {"negative": 1.0, "neutral": float(np.exp(neutral)), "positive": float(np.exp(positive))}
