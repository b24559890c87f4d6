"""Train the sentiment classifier on labelled texts (weak labels from survey ratings, an organization's own
labelled file), and judge it and VADER on held-out texts by macro-F1.

The held-out set is a stratified fifth of the distinct labelled texts (per label, and per kind of text when
texts have kinds) with all their copies, so the choice is made on sentences the classifier never saw. The
classifier's decision thresholds (a weight per class) are chosen on out-of-fold predictions of the
training texts (`thresholds.py`), never on the held-out fifth. On a form that asks both "what was good" and
"what could we improve" under one rating, the weak-labelled training texts (from ratings) first lose the
comments their own words contradict (`weak_labels.py`); the held-out texts are never filtered. Registering
and deploying are in `registry.py` and `lifecycle.py`.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.pipeline import Pipeline

from models.sentiment.labelled import ANY_KIND, KINDS, rating_label
from models.sentiment.models import LABELS, ClassifierModel, LexiconModel, RoutedModel, text_classifier
from models.sentiment.text import OK, text_hashes, text_status
from models.sentiment.thresholds import FOLDS, choose_class_weights, out_of_fold_probabilities
from models.sentiment.weak_labels import (
    FORMS,
    IMPROVEMENT_ANSWER,
    ONE_QUESTION,
    TWO_QUESTIONS,
    improvement_answers,
)

HELD_OUT_SHARE = 0.2
MIN_PER_CLASS = 5
LABELLED_SCHEMA: dict[str, pl.DataType] = {"text": pl.String(), "label": pl.String()}
WEAK = "weak"
"""Optional boolean column of labelled texts: the label comes from a rating (a weak label)."""


class SentimentTrainingError(ValueError):
    """Too few usable labelled texts to train and judge a classifier honestly."""


SURVEY_SCALE = "0-10"
"""The scale of the surveys' `rating` item (banded as `labelled.RATING_SCALES` says)."""


def survey_weak_labels(answers: pl.DataFrame) -> pl.DataFrame:
    """Survey comments labelled by the rating given in the same response: `text`, `label`, `kind`,
    `authored`, `weak` (true: the label is the rating's band)."""
    if not answers.height or "item_link_id" not in answers.columns:
        return pl.DataFrame(
            schema={**LABELLED_SCHEMA, "kind": pl.String(), "authored": pl.String(), WEAK: pl.Boolean()}
        )
    key = ["source", "questionnaire_response_id"]
    ratings = answers.filter(pl.col("item_link_id") == "rating").select(
        *key, rating_label(pl.col("answer_value_integer"), SURVEY_SCALE).alias("label")
    )
    comments = answers.filter(pl.col("item_link_id") == "comment").select(
        *key, pl.col("answer_value_string").alias("text"), "authored"
    )
    return (
        comments.join(ratings.drop_nulls("label").unique(key), on=key)
        .select("text", "label", pl.lit("survey_comment").alias("kind"), "authored", pl.lit(True).alias(WEAK))
        .sort("authored", "text")
    )


def split_held_out(labelled: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Hold out a stratified fifth of the distinct texts, with every copy of them.

    Labelled texts repeat (survey phrases, chat sentences); a split by rows would let the classifier learn a
    sentence by heart and then "predict" its copy, so the split is by distinct text. Each distinct text takes
    its most frequent label (and first kind); within each label (and kind) the texts are ordered by a
    stable hash of the text and the first fifth is held out, so every label keeps its share and the same
    texts always split the same way, whatever the order of the rows."""
    strata = ["_label", "_kind"] if "kind" in labelled.columns else ["_label"]
    distinct = (
        labelled.group_by("text")
        .agg(
            pl.col("label").mode().sort().first().alias("_label"),
            *([pl.col("kind").sort().first().alias("_kind")] if "kind" in labelled.columns else []),
        )
        .drop_nulls("text")
    )
    distinct = distinct.with_columns(text_hashes(distinct["text"]).alias("_hash")).sort("_hash", "text")
    held = distinct.with_columns(
        (
            pl.int_range(pl.len()).over(strata)
            < (pl.len().over(strata) * HELD_OUT_SHARE).round(0).cast(pl.Int64)
        ).alias("_held")
    ).select("text", "_held")
    sided = labelled.join(held, on="text", how="left", maintain_order="left").with_columns(
        pl.col("_held").fill_null(False)
    )
    return sided.filter(~pl.col("_held")).drop("_held"), sided.filter(pl.col("_held")).drop("_held")


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
    held_out: pl.DataFrame  # the usable held-out texts (`text`, `label`, `kind`) every model was judged on
    class_weights: dict[str, float] | None = None  # the classifier's decision weights (None: most probable)
    weights_chosen_on: dict[str, Any] | None = None  # the out-of-fold figures the weights were chosen on
    excluded: dict[str, dict[str, int]] = field(default_factory=dict)  # set -> reason -> texts left out
    form: str = ONE_QUESTION  # what the weak-labelled comments answer (`weak_labels.FORMS`)

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


def evaluate(model: Any, labelled: pl.DataFrame) -> dict[str, Any]:
    """Macro-F1, accuracy, F1 per class and the confusion matrix (`confusion[truth][predicted]` = texts)
    of a model on labelled texts; each text is scored by the model meant for its `kind` when it has one.
    A text the model leaves unscored counts as neutral."""
    kinds = labelled["kind"] if "kind" in labelled.columns else None
    scored = model.score(labelled["text"], kinds)
    truth, predicted = labelled["label"].to_list(), scored["sentiment_label"].fill_null("neutral").to_list()
    per_class = f1_score(truth, predicted, labels=list(LABELS), average=None, zero_division=0)
    matrix = confusion_matrix(truth, predicted, labels=list(LABELS)) if truth else [[0] * 3] * 3
    return {
        "macro_f1": float(f1_score(truth, predicted, labels=list(LABELS), average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(truth, predicted)) if truth else 0.0,
        **{f"f1_{label}": float(v) for label, v in zip(LABELS, per_class, strict=True)},
        "n": labelled.height,
        "confusion": {
            actual: {guess: int(matrix[i][j]) for j, guess in enumerate(LABELS)}
            for i, actual in enumerate(LABELS)
        },
    }


def train_sentiment(
    train: pl.DataFrame,
    held_out: pl.DataFrame,
    seed: int = 7,
    *,
    weak: bool = False,
    form: str = ONE_QUESTION,
) -> SentimentTraining:
    """Fit the classifier on `train` (`text`, `label`), choose its decision weights out of fold, and
    judge it and VADER on every usable text of `held_out`. On the `two-questions` form, weak-labelled
    training texts (from ratings: every row when `weak`, else the rows whose optional `weak` column is
    true) lose the comments that answer "what could we improve" under a good rating, counted; on the
    `one-question` form (the default) nothing is left out. The held-out texts are never filtered, so the
    form never changes how a model is judged."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, not {form!r}")
    train, held_out = _usable(train), _usable(held_out)
    excluded: dict[str, dict[str, int]] = {}
    if form == TWO_QUESTIONS and (weak or WEAK in train.columns):
        train, excluded["train"] = _without_improvement_answers(train, weak)
    counts = {
        role: dict(frame.group_by("label").len().sort("label").iter_rows())
        for role, frame in (("train", train), ("held_out", held_out))
    }
    for role, by_label in counts.items():
        if min(by_label.get(label, 0) for label in LABELS) < MIN_PER_CLASS:
            have = ", ".join(f"{by_label.get(label, 0):,} {label}" for label in LABELS)
            raise SentimentTrainingError(
                f"the {role} texts hold {have}; at least {MIN_PER_CLASS} of each label are needed "
                "(no rated survey comments or labelled texts to learn from: VADER scores until there are)"
                if not by_label
                else f"the {role} texts hold {have}; at least {MIN_PER_CLASS} of each label are needed"
            )
    pipeline = fit_weighted(text_classifier(seed), train)
    weights, chosen_on = None, None
    out_of_fold = out_of_fold_probabilities(
        train, lambda part: fit_weighted(text_classifier(seed), part), seed
    )
    if out_of_fold is not None:  # too few texts of a label for five folds: the most probable class
        chosen_weights = choose_class_weights(*out_of_fold, folds=FOLDS)
        weights, chosen_on = chosen_weights.weights, chosen_weights.as_dict()
    models = {
        "vader": LexiconModel(),
        "tfidf_logistic_regression": ClassifierModel(pipeline, class_weights=weights),
    }
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
    # a kind with no held-out evidence of its own: the classifier only if it learnt from texts of that kind
    # (or from texts that stand for every kind), else the lexicon (a weak-label classifier judged on survey
    # comments says nothing about chat turns)
    learnt = set(train["kind"].unique().to_list())
    if ANY_KIND in learnt:
        learnt |= set(KINDS)
    for kind in KINDS:
        choice_by_kind.setdefault(kind, chosen if kind in learnt else "vader")
    rows = {"train": train.height, "held_out": held_out.height}
    return SentimentTraining(
        chosen,
        models,
        metrics,
        rows,
        counts,
        by_kind,
        choice_by_kind,
        held_out,
        class_weights=weights,
        weights_chosen_on=chosen_on,
        excluded={role: found for role, found in excluded.items() if found},
        form=form,
    )


_EXCLUDED_WORDS = {
    IMPROVEMENT_ANSWER: 'comments under a good rating that answer "what could we improve"; the form asks '
    "what was good and what could be improved (`--form two-questions`)",
}


def _thresholds_text(training: SentimentTraining) -> str:
    """The classifier's class weights and the out-of-fold figures they were chosen on, in words."""
    if training.class_weights is None or training.weights_chosen_on is None:
        return "The classifier takes the most probable class (too few texts of a label to choose weights)."
    figures = training.weights_chosen_on
    weights = ", ".join(f"{label} x{weight:.2f}" for label, weight in training.class_weights.items())
    return (
        f"The classifier's class probabilities are weighted ({weights}) before the most probable class is "
        f"taken; the weights were chosen on out-of-fold predictions of {figures['texts']} distinct training "
        f"texts ({figures['folds']} folds; macro-F1 {figures['macro_f1_unweighted']:.3f} unweighted, "
        f"{figures['macro_f1_weighted']:.3f} weighted), never on the held-out texts."
    )


def _without_improvement_answers(
    labelled: pl.DataFrame, all_weak: bool
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The labelled texts without weak-labelled comments that answer "what could we improve" under a
    good rating, and how many were left out."""
    marked = improvement_answers(labelled["text"], labelled["label"])
    if not all_weak:
        marked = marked & (labelled[WEAK].fill_null(False) if WEAK in labelled.columns else False)
    left_out = int(marked.sum())
    return labelled.filter(~marked), ({IMPROVEMENT_ANSWER: left_out} if left_out else {})


def fit_weighted(pipeline: Pipeline, labelled: pl.DataFrame) -> Pipeline:
    """Fit the classifier on each distinct (text, label) once, weighted by its copies.

    Labelled texts repeat many times (survey phrases, stock chat sentences); the logistic regression's
    loss over the distinct texts with their counts as weights is the loss over every copy, at a fraction
    of the cost, and the vocabulary's document frequencies count distinct texts, so a phrase repeated a
    thousand times is not a thousand documents. The classes are balanced by their weighted counts, as
    `class_weight="balanced"` would balance every copy."""
    distinct = labelled.group_by("text", "label", maintain_order=True).len("copies")
    per_class = distinct.group_by("label").agg(pl.col("copies").sum().alias("n"))
    total, classes = float(per_class["n"].sum()), per_class.height
    balance = {label: total / (classes * n) for label, n in per_class.iter_rows()}
    weights = distinct["copies"].to_numpy() * distinct["label"].replace_strict(balance).to_numpy()
    pipeline.set_params(logisticregression__class_weight=None)
    return pipeline.fit(
        distinct["text"].to_list(), distinct["label"].to_list(), logisticregression__sample_weight=weights
    )


def fingerprint(*frames: pl.DataFrame) -> str:
    """sha256 of the labelled texts (as CSV): the same data, the same version."""
    digest = hashlib.sha256()
    for frame in frames:
        buffer = io.BytesIO()
        frame.select("text", "label").write_csv(buffer)
        digest.update(buffer.getvalue())
    return digest.hexdigest()


def model_card(training: SentimentTraining, version: str, data: str, provenance: str) -> str:
    """Markdown: intended use, provenance, data, held-out metrics of both models, the choice, the
    classifier's decision weights, limitations."""
    columns = ("macro_f1", "accuracy", "f1_negative", "f1_neutral", "f1_positive")
    rows = [
        f"| {name} | " + " | ".join(f"{m[c]:.3f}" for c in columns) + " |"
        for name, m in sorted(training.metrics.items())
    ]
    return "\n".join(
        [
            f"# Model card: {version}",
            "",
            "## Intended use",
            "Labels patient messages, conversation turns and survey comments as negative, neutral or "
            "positive with a score in [-1, 1], for service-center reporting and for finding patients who had "
            "a bad experience. Not for clinical decisions. Empty, non-text and non-English texts are marked, "
            "not scored.",
            "",
            "## Provenance",
            provenance,
            "",
            "## Data",
            f"- {data}",
            f"- Rows: train {training.rows['train']}, held out {training.rows['held_out']}; labels per set: "
            f"{training.class_counts}.",
            *[
                f"- Left out of the {role.replace('_', '-')} texts: "
                + ", ".join(
                    f"{count} ({_EXCLUDED_WORDS.get(reason, reason)})" for reason, count in found.items()
                )
                + "."
                for role, found in sorted(training.excluded.items())
            ],
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
            "## Decision thresholds",
            _thresholds_text(training),
            "",
            "## Limitations",
            "- Weak labels come from the rating given with a comment; a comment can be kinder or harsher "
            "than its rating, so the labels are noisy, and so is the held-out judgement.",
            "- English only; sarcasm and negation across sentences are often missed by both models.",
            "",
        ]
    )
