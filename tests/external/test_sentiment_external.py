"""Sentiment on the UCI drug-review subset (../shared/data/feedback): trained on its train split, judged on
its test split; the classifier must beat VADER by macro-F1 there."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from models.sentiment.labelled import read_labelled_file
from models.sentiment.train import train_sentiment

SUBSET = "feedback/drug-reviews-uci-subset"


def _reviews(path: Path) -> pl.DataFrame:
    """`text`, `label` from a drug-review TSV (quoted multi-line reviews, HTML entities) by the reader
    `patient-insights sentiment train` uses."""
    texts = read_labelled_file(path, "review", label_column="rating")
    assert texts.excluded == {}
    return texts.frame


def test_the_classifier_beats_vader_on_drug_reviews(shared_data: Path) -> None:
    folder = shared_data / SUBSET
    train, test = _reviews(folder / "drugsComTrain.tsv"), _reviews(folder / "drugsComTest.tsv")
    assert (train.height, test.height) == (600, 379)
    training = train_sentiment(train, test)
    vader, classifier = training.metrics["vader"], training.metrics["tfidf_logistic_regression"]
    print(f"drug reviews macro-F1: VADER {vader['macro_f1']:.3f}, classifier {classifier['macro_f1']:.3f}")
    assert classifier["macro_f1"] > vader["macro_f1"] and training.chosen == "tfidf_logistic_regression"


def test_the_command_line_trains_on_the_train_file_and_evaluates_on_the_test_file(
    shared_data: Path, tmp_path: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from pipelines.cli import app

    folder, registry = shared_data / SUBSET, tmp_path / "registry"
    common = ["--text-column", "review", "--label-column", "rating", "--registry", str(registry)]
    trained = CliRunner().invoke(
        app,
        [
            "sentiment",
            "train",
            "--input",
            str(folder / "drugsComTrain.tsv"),
            *common,
            "--report",
            str(tmp_path / "t.json"),
        ],
    )
    assert trained.exit_code == 0, trained.output
    report = json.loads((tmp_path / "t.json").read_text())
    assert report["decision"] == "deployed" and report["rows"] == {"train": 480, "held_out": 120}
    held = report["held_out_metrics"]
    assert held["candidate"]["macro_f1"] > held["vader"]["macro_f1"]
    evaluated = CliRunner().invoke(
        app,
        [
            "sentiment",
            "evaluate",
            "--input",
            str(folder / "drugsComTest.tsv"),
            *common,
            "--output",
            str(tmp_path / "e.json"),
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    figures = json.loads((tmp_path / "e.json").read_text())
    assert figures["rows"] == 379 and figures["version"] == report["version"]
    model, vader = figures["metrics"]["model"], figures["metrics"]["vader"]
    print(
        f"drug reviews test file: model macro-F1 {model['macro_f1']:.3f} accuracy {model['accuracy']:.3f}; "
        f"VADER {vader['macro_f1']:.3f} / {vader['accuracy']:.3f}"
    )
    assert model["macro_f1"] > vader["macro_f1"]
