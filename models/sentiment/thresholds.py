"""The classifier's decision thresholds, chosen on texts it did not learn from.

A classifier's most probable class is not the best choice for macro-F1: a class the training labels rarely
give (`neutral` in most rated feedback, where a middle rating is uncommon) or give noisily (weak labels
from ratings) is under- or over-predicted. So each class gets a weight the probabilities are multiplied by
before the most probable class is taken — `negative` stays at 1, `neutral` and `positive` are chosen — and
the weights are those with the best macro-F1 on out-of-fold predictions of the training texts: each
fifth of the distinct training texts is scored by a classifier fitted on the other four fifths. The
held-out fifth that judges the model (and decides deployment) plays no part, so its figures stay honest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from models.sentiment.models import LABELS
from models.sentiment.text import text_hashes

FOLDS = 5
LOG_WEIGHTS = np.round(np.linspace(-2.0, 2.0, 21), 2)
"""The weights tried for `neutral` and `positive`: e^-2 .. e^2 in steps of e^0.2."""
MIN_FOLD_TEXTS = 2
"""Out-of-fold predictions need at least this many distinct texts of each label per fold."""


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
    """Each distinct training text (`text`, `label`: its most frequent label) with the class
    probabilities (columns in `LABELS` order) of a classifier fitted without it (`fit` on the other
    folds' rows, every copy of a text in one fold); None when too few texts of a label for the folds."""
    distinct = labelled.group_by("text").agg(pl.col("label").mode().sort().first())
    distinct = (
        distinct.with_columns(text_hashes(distinct["text"]).alias("_hash"))
        .sort("_hash", "text")
        .drop("_hash")
    )
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
    """The `neutral` and `positive` weights with the best out-of-fold macro-F1; among equals, the ones
    closest to no weighting (so a classifier that needs none keeps its most probable class)."""
    truth = distinct["label"].replace_strict({label: i for i, label in enumerate(LABELS)}).to_numpy()
    plain = macro_f1(truth, probabilities.argmax(axis=1))
    best, best_distance, chosen = plain, 0.0, {label: 1.0 for label in LABELS}
    for neutral in LOG_WEIGHTS:
        for positive in LOG_WEIGHTS:
            weights = {
                "negative": 1.0,
                "neutral": float(np.exp(neutral)),
                "positive": float(np.exp(positive)),
            }
            score = macro_f1(truth, weighted_labels(probabilities, weights))
            distance = abs(neutral) + abs(positive)
            if score > best + 1e-9 or (abs(score - best) <= 1e-9 and distance < best_distance):
                best, best_distance, chosen = score, distance, weights
    return ChosenWeights(
        weights={label: round(weight, 4) for label, weight in chosen.items()},
        texts=distinct.height,
        folds=folds,
        macro_f1_unweighted=plain,
        macro_f1_weighted=best,
    )
