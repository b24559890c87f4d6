"""Train the sentiment classifier on weak labels from survey ratings (and any labelled file given),
compare it with VADER on held-out labelled texts by macro-F1, and register and deploy the better one.

Weak labels follow the 0-10 rating given with a survey comment: 0-6 negative, 7-8 neutral, 9-10 positive
(the NPS bands). The held-out set is about 20 % of the distinct labelled texts with all their copies,
so the choice is made on sentences the classifier never saw.
"""

from __future__ import annotations

import hashlib
import io
import json
import zlib
from dataclasses import dataclass
from typing import Any

import polars as pl
import sklearn
from sklearn.metrics import accuracy_score, f1_score
from upath import UPath

from models.registry import (
    RegistryError,
    deploy,
    deployed_version,
    has_version,
    read_estimator,
    read_metadata,
    save_version,
)
from models.sentiment.models import LABELS, ClassifierModel, LexiconModel, RoutedModel, text_classifier
from models.sentiment.text import OK, text_status

NAME = "sentiment"
PIN_VARIABLE = "PATIENT_INSIGHTS_SENTIMENT_MODEL_VERSION"
HELD_OUT_SHARE = 0.2
MIN_PER_CLASS = 5
KINDS = ("conversation_turn", "patient_message", "survey_comment")
"""The kinds of text gold scores (sentiment_message.kind)."""
LABELLED_SCHEMA: dict[str, pl.DataType] = {"text": pl.String(), "label": pl.String()}


class SentimentTrainingError(ValueError):
    """Too few usable labelled texts to train and judge a classifier honestly."""


def rating_label(rating: pl.Expr) -> pl.Expr:
    """The weak label of a 0-10 rating (NPS bands)."""
    return (
        pl.when(rating <= 6)
        .then(pl.lit("negative"))
        .when(rating <= 8)
        .then(pl.lit("neutral"))
        .when(rating <= 10)
        .then(pl.lit("positive"))
    )


def survey_weak_labels(answers: pl.DataFrame) -> pl.DataFrame:
    """Survey comments labelled by the rating given in the same response: `text`, `label`, `authored`."""
    if not answers.height or "item_link_id" not in answers.columns:
        return pl.DataFrame(schema={**LABELLED_SCHEMA, "kind": pl.String(), "authored": pl.String()})
    key = ["source", "questionnaire_response_id"]
    ratings = answers.filter(pl.col("item_link_id") == "rating").select(
        *key, rating_label(pl.col("answer_value_integer")).alias("label")
    )
    comments = answers.filter(pl.col("item_link_id") == "comment").select(
        *key, pl.col("answer_value_string").alias("text"), "authored"
    )
    return (
        comments.join(ratings.drop_nulls("label").unique(key), on=key)
        .select("text", "label", pl.lit("survey_comment").alias("kind"), "authored")
        .sort("authored", "text")
    )


def split_held_out(labelled: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Hold out about 20 % of the distinct texts, with every copy of them: a text is held out when the
    CRC-32 of the text falls in the held-out fifth. Labelled texts repeat (survey phrases, chat
    sentences); a split by rows would let the classifier learn a sentence by heart and then "predict" its
    copy, so the judgement is made on sentences it never saw. The same texts always split the same way."""
    held = pl.col("text").map_batches(_held_out_texts, return_dtype=pl.Boolean)
    sided = labelled.with_columns(held.alias("_held"))
    return sided.filter(~pl.col("_held")).drop("_held"), sided.filter(pl.col("_held")).drop("_held")


def _held_out_texts(texts: pl.Series) -> pl.Series:
    """True for the texts in the held-out fifth (CRC-32 of the unique texts only, joined back)."""
    unique = texts.unique().drop_nulls()
    fifth = [zlib.crc32(t.encode("utf-8")) % 100 < HELD_OUT_SHARE * 100 for t in unique.to_list()]
    lookup = pl.DataFrame({"text": unique, "_held": pl.Series(fifth, dtype=pl.Boolean)})
    return (
        pl.DataFrame({"text": texts})
        .join(lookup, on="text", how="left", maintain_order="left")["_held"]
        .fill_null(False)
    )


@dataclass
class SentimentTraining:
    """Both models, their held-out metrics, and which one wins."""

    chosen: str  # vader | tfidf_logistic_regression: the default
    models: dict[str, Any]
    metrics: dict[str, dict[str, float]]
    rows: dict[str, int]
    class_counts: dict[str, dict[str, int]]
    by_kind: dict[str, dict[str, dict[str, float]]]  # kind -> model -> held-out metrics on that kind
    choice_by_kind: dict[str, str]  # kind -> model, for kinds with enough held-out texts of each label

    def deployed(self) -> RoutedModel:
        """The model to deploy: the per-kind choices with the overall winner as default."""
        return RoutedModel(self.models, self.chosen, self.choice_by_kind)


def _usable(frame: pl.DataFrame) -> pl.DataFrame:
    """Scorable, labelled texts, with a `kind` (texts without one are `labelled`)."""
    if "kind" not in frame.columns:
        frame = frame.with_columns(pl.lit("labelled").alias("kind"))
    return (
        frame.with_columns(text_status(frame["text"]).alias("_s"), pl.col("kind").fill_null("labelled"))
        .filter((pl.col("_s") == OK) & pl.col("label").is_in(list(LABELS)))
        .drop("_s")
    )


def evaluate(model: Any, held_out: pl.DataFrame) -> dict[str, float]:
    """Macro-F1, accuracy and F1 per class on the held-out texts."""
    scored = model.score(held_out["text"])
    truth, predicted = held_out["label"].to_list(), scored["sentiment_label"].fill_null("neutral").to_list()
    per_class = f1_score(truth, predicted, labels=list(LABELS), average=None, zero_division=0)
    return {
        "macro_f1": float(f1_score(truth, predicted, labels=list(LABELS), average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(truth, predicted)),
        **{f"f1_{label}": float(v) for label, v in zip(LABELS, per_class, strict=True)},
        "n": held_out.height,
    }


def train_sentiment(train: pl.DataFrame, held_out: pl.DataFrame, seed: int = 7) -> SentimentTraining:
    """Fit the classifier on `train` (`text`, `label`), judge it and VADER on `held_out`."""
    train, held_out = _usable(train), _usable(held_out)
    counts = {
        role: dict(frame.group_by("label").len().sort("label").iter_rows())
        for role, frame in (("train", train), ("held_out", held_out))
    }
    for role, by_label in counts.items():
        if min(by_label.get(label, 0) for label in LABELS) < MIN_PER_CLASS:
            raise SentimentTrainingError(
                f"the {role} texts have {by_label} per label; at least {MIN_PER_CLASS} of each are needed"
            )
    pipeline = text_classifier(seed).fit(train["text"].to_list(), train["label"].to_list())
    models = {"vader": LexiconModel(), "tfidf_logistic_regression": ClassifierModel(pipeline)}
    metrics = {name: evaluate(model, held_out) for name, model in models.items()}
    chosen = max(metrics, key=lambda name: (metrics[name]["macro_f1"], name))
    by_kind: dict[str, dict[str, dict[str, float]]] = {}
    choice_by_kind: dict[str, str] = {}
    for (kind,), part in held_out.partition_by("kind", as_dict=True).items():
        by_kind[str(kind)] = {name: evaluate(model, part) for name, model in models.items()}
        labels = dict(part.group_by("label").len().iter_rows())
        if min(labels.get(label, 0) for label in LABELS) >= MIN_PER_CLASS:
            choice_by_kind[str(kind)] = max(
                by_kind[str(kind)], key=lambda n: (by_kind[str(kind)][n]["macro_f1"], n)
            )
    # a kind with no held-out evidence of its own: the classifier only if it learnt from texts of that kind,
    # else the lexicon (a weak-label classifier judged on survey comments says nothing about chat turns)
    learnt = set(train["kind"].unique().to_list())
    for kind in KINDS:
        choice_by_kind.setdefault(kind, chosen if kind in learnt else "vader")
    rows = {"train": train.height, "held_out": held_out.height}
    return SentimentTraining(chosen, models, metrics, rows, counts, by_kind, choice_by_kind)


def fingerprint(*frames: pl.DataFrame) -> str:
    """sha256 of the labelled texts (as CSV): the same data, the same version."""
    digest = hashlib.sha256()
    for frame in frames:
        buffer = io.BytesIO()
        frame.select("text", "label").write_csv(buffer)
        digest.update(buffer.getvalue())
    return digest.hexdigest()


def model_card(training: SentimentTraining, version: str, data: str) -> str:
    """Markdown: intended use, data, held-out metrics of both models, the choice, limitations."""
    columns = ("macro_f1", "accuracy", "f1_negative", "f1_neutral", "f1_positive")
    rows = [
        f"| {name} | " + " | ".join(f"{m[c]:.3f}" for c in columns) + " |"
        for name, m in sorted(training.metrics.items())
    ]
    return "\n".join(
        [
            f"# Model card: {NAME} ({version})",
            "",
            "## Intended use",
            "Labels patient messages, conversation turns and survey comments as negative, neutral or "
            "positive with a score in [-1, 1], for service-center reporting and for finding patients who had "
            "a bad experience. Not for clinical decisions. Empty, non-text and non-English texts are marked, "
            "not scored.",
            "",
            "## Data",
            f"- {data}",
            f"- Rows: train {training.rows['train']}, held out {training.rows['held_out']}; labels per set: "
            f"{training.class_counts}.",
            "",
            "## Held-out metrics",
            "| model | macro-F1 | accuracy | F1 negative | F1 neutral | F1 positive |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            "## Held-out macro-F1 per kind of text",
            "| kind | " + " | ".join(sorted(training.models)) + " | scored by |",
            "| --- | " + " | ".join("---" for _ in training.models) + " | --- |",
            *[
                f"| {kind} | "
                + " | ".join(
                    f"{by_model[name]['macro_f1']:.3f} (n={by_model[name]['n']})"
                    for name in sorted(training.models)
                )
                + f" | {training.choice_by_kind.get(kind, training.chosen + ' (default)')} |"
                for kind, by_model in sorted(training.by_kind.items())
            ],
            "",
            f"Deployed: **{training.chosen}** by default (the higher overall macro-F1); each kind of text "
            "with enough held-out texts of every label is scored by the model that judged best on it.",
            "",
            "## Limitations",
            "- Weak labels come from the rating given with a comment; a comment can be kinder or harsher "
            "than its rating, so the labels are noisy, and so is the held-out judgement.",
            "- English only; sarcasm and negation across sentences are often missed by both models.",
            "",
        ]
    )


def register_sentiment(lake: UPath, training: SentimentTraining, data_print: str, data: str) -> str:
    """Register the chosen model (metadata with both models' metrics) and deploy it; a re-run on the same
    texts reuses the version."""
    choice = training.chosen + json.dumps(training.choice_by_kind, sort_keys=True)
    version = f"{NAME}-{hashlib.sha256((data_print + choice).encode()).hexdigest()[:12]}"
    if not has_version(lake, NAME, version):
        metadata = {
            "version": version,
            "model": NAME,
            "kind": training.chosen,
            "training_data_fingerprint": data_print,
            "data": data,
            "rows": training.rows,
            "class_counts": training.class_counts,
            "metrics": training.metrics,
            "metrics_by_kind": training.by_kind,
            "model_by_kind": training.choice_by_kind,
            "chosen_by": "macro_f1 on the held-out labelled texts (overall, and per kind of text)",
            "sklearn_version": sklearn.__version__,
        }
        save_version(
            lake,
            NAME,
            version,
            training.models[training.chosen],
            metadata,
            model_card(training, version, data),
        )
    deploy(lake, NAME, version)
    return version


def load_sentiment_model(lake: UPath) -> tuple[str, Any]:
    """The pinned or deployed sentiment model and its version."""
    version = deployed_version(lake, NAME, PIN_VARIABLE)
    if version is None:
        raise RegistryError(
            "no sentiment model is deployed in this lake: run the pipeline (the sentiment_model asset) first"
        )
    metadata = read_metadata(lake, NAME, version)
    if str(metadata["sklearn_version"]).split(".")[0] != sklearn.__version__.split(".")[0]:
        raise RegistryError(
            f"sentiment model {version} was saved by scikit-learn {metadata['sklearn_version']}: retrain"
        )
    return version, read_estimator(lake, NAME, version)
