"""Sentiment on the UCI drug-review subset (../shared/data/feedback): trained on its train split, judged on
its test split; the classifier must beat VADER by macro-F1 there."""

from __future__ import annotations

import csv
import html
from pathlib import Path

import polars as pl

from models.sentiment.train import train_sentiment

SUBSET = "feedback/drug-reviews-uci-subset"


def _reviews(path: Path) -> pl.DataFrame:
    """`text`, `label` from a drug-review TSV (quoted multi-line reviews, HTML entities)."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [
            (html.unescape(r["review"]).strip('"'), r["rating"])
            for r in csv.DictReader(handle, delimiter="\t")
        ]
    return pl.DataFrame(rows, schema={"text": pl.String, "label": pl.String}, orient="row")


def test_the_classifier_beats_vader_on_drug_reviews(shared_data: Path) -> None:
    folder = shared_data / SUBSET
    train, test = _reviews(folder / "drugsComTrain.tsv"), _reviews(folder / "drugsComTest.tsv")
    assert (train.height, test.height) == (600, 379)
    training = train_sentiment(train, test)
    vader, classifier = training.metrics["vader"], training.metrics["tfidf_logistic_regression"]
    print(f"drug reviews macro-F1: VADER {vader['macro_f1']:.3f}, classifier {classifier['macro_f1']:.3f}")
    assert classifier["macro_f1"] > vader["macro_f1"] and training.chosen == "tfidf_logistic_regression"
