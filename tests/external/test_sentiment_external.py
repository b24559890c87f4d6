"""Sentiment on the UCI drug-review subset (../shared/data/feedback): trained on its train split, judged on
its test split; the classifier must beat VADER by macro-F1 there, and what `sentiment score` uses out of
the box (after the demo deployed a model of generated texts) must never be worse than VADER."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from models.sentiment.labelled import read_labelled_file
from models.sentiment.models import LexiconModel
from models.sentiment.train import evaluate, train_sentiment

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


def _macro_f1(truth: list[str], predicted: list[str | None]) -> float:
    from sklearn.metrics import f1_score

    labels = ["negative", "neutral", "positive"]
    guessed = [p or "neutral" for p in predicted]
    return float(f1_score(truth, guessed, labels=labels, average="macro", zero_division=0))


def test_the_out_of_the_box_scorer_is_never_worse_than_vader_on_drug_reviews(
    shared_data: Path, tmp_path: Path, monkeypatch
) -> None:
    """What `make run` leaves behind, then real patients' words: the demo's sentiment asset trains on the
    generator's surveys and labelled conversation turns (a model of generated texts, deployed), and
    `patient-insights sentiment score` is run on the drug reviews' test file with that lake."""
    import dagster as dg
    from typer.testing import CliRunner
    from upath import UPath

    from assets.resources import LakeResource
    from assets.sentiment.assets import LABELS_VARIABLE, sentiment_model
    from models.registry import registry_of
    from models.sentiment.registry import deployed_sentiment_version, load_sentiment_version, provenance_of
    from pipelines.bronze.ingest import ingest_landing
    from pipelines.cli import app
    from pipelines.generate import generate_landing
    from pipelines.silver.build import build_partition, partition_keys

    landing, lake = tmp_path / "landing", UPath(tmp_path / "lake")
    generate_landing(landing, 400, seed=42)
    ingest_landing(UPath(landing), lake, 2)
    for key in partition_keys(2):
        build_partition(lake, key)
    monkeypatch.setenv(LABELS_VARIABLE, str(tmp_path / "ground_truth" / "conversation_turns.csv"))
    resource = LakeResource(landing=str(landing), lake=str(lake), buckets=2)
    assert dg.materialize([sentiment_model], resources={"lake": resource}).success
    registry = registry_of(lake)
    demo = deployed_sentiment_version(registry)
    assert demo is not None and provenance_of(registry, demo) == "generated"

    reviews = shared_data / SUBSET / "drugsComTest.tsv"
    out = tmp_path / "scored.csv"
    args = ["--input", str(reviews), "--text-column", "review", "--output", str(out), "--lake", str(lake)]
    scored = CliRunner().invoke(app, ["sentiment", "score", *args], env={"COLUMNS": "200"})
    assert scored.exit_code == 0, scored.output
    assert "scoring with VADER" in " ".join(scored.output.split())
    truth = _reviews(reviews)
    written = pl.read_csv(out, infer_schema_length=0)
    assert written.height == truth.height == 379
    out_of_the_box = _macro_f1(truth["label"].to_list(), written["sentiment_label"].to_list())
    vader = evaluate(LexiconModel(), truth.with_columns(pl.lit("labelled").alias("kind")))["macro_f1"]
    # what the issue saw: the demo's own model on real words (the rule keeps it from scoring them)
    demo_model = evaluate(load_sentiment_version(registry, demo), truth)["macro_f1"]
    print(
        f"drug reviews test file after the demo: sentiment score macro-F1 {out_of_the_box:.3f}, VADER "
        f"{vader:.3f}; the demo's model of generated texts would get {demo_model:.3f}"
    )
    assert out_of_the_box >= vader
