"""Sentiment models in the registry (`models/registry.py`): register a trained model with its metrics,
card, provenance and the hashes of the texts it learnt from; load the deployed or a named version; and
choose what scores a set of texts (`choose_scorer`: the rule of `provenance.py`).

A version stores the deployed form (`RoutedModel`: a model per kind of text) so what was judged is what
scores. The hashes of the training texts (8 bytes each, no text) let a later comparison leave out texts a
model has already seen, which would flatter it.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

import polars as pl
import sklearn
from upath import UPath

from models.registry import (
    RegistryError,
    deployed_version,
    has_version,
    read_estimator,
    read_metadata,
    registry_of,
    save_version,
    version_file,
)
from models.sentiment.models import LexiconModel
from models.sentiment.provenance import (
    GENERATED,
    PROVENANCES,
    UNRECORDED,
    describe_provenance,
    may_score,
)
from models.sentiment.text import text_hashes
from models.sentiment.train import SentimentTraining, model_card
from models.sentiment.weak_labels import ONE_QUESTION

NAME = "sentiment"
PIN_VARIABLE = "PATIENT_INSIGHTS_SENTIMENT_MODEL_VERSION"
TRAINED_TEXTS = "trained_texts.parquet"
LEXICON_VERSION = "vader"
"""What `model_version` says of texts VADER scored because no model may score them."""


def sentiment_version(training: SentimentTraining, data_print: str, provenance: str) -> str:
    """The version id of a training: the labelled texts' fingerprint, their provenance, the models
    chosen (with their decision weights) and the form when it left texts out."""
    choice = training.chosen + json.dumps(training.choice_by_kind, sort_keys=True) + provenance
    if training.form != ONE_QUESTION:
        choice += training.form
    if training.class_weights is not None:
        choice += json.dumps(training.class_weights, sort_keys=True)
    return f"{NAME}-{hashlib.sha256((data_print + choice).encode()).hexdigest()[:12]}"


def register_sentiment(
    registry: UPath,
    training: SentimentTraining,
    data_print: str,
    data: str,
    train_texts: pl.Series,
    provenance: str,
) -> str:
    """Register the deployable model (metadata with every model's metrics and its provenance, the card,
    the training texts' hashes) and return its version; the same texts, provenance and choices give the
    same version, registered once."""
    if provenance not in PROVENANCES:
        raise ValueError(f"provenance must be one of {PROVENANCES}, not {provenance!r}")
    version = sentiment_version(training, data_print, provenance)
    if not has_version(registry, NAME, version):
        metadata = {
            "version": version,
            "model": NAME,
            "kind": training.chosen,
            "training_data_fingerprint": data_print,
            "data": data,
            "provenance": provenance,
            "rows": training.rows,
            "class_counts": training.class_counts,
            "metrics": training.metrics,
            "metrics_by_kind": training.by_kind,
            "model_by_kind": training.choice_by_kind,
            "chosen_by": "macro_f1 on the held-out labelled texts (overall, and per kind of text)",
            "class_weights": training.class_weights,
            "class_weights_chosen_on": training.weights_chosen_on,
            "excluded_from_training": training.excluded,
            "form": training.form,
            "sklearn_version": sklearn.__version__,
        }
        hashes = io.BytesIO()
        pl.DataFrame({"hash": text_hashes(train_texts).unique().sort()}).write_parquet(hashes)
        save_version(
            registry,
            NAME,
            version,
            training.deployed(),
            metadata,
            model_card(training, version, data, describe_provenance(provenance)),
            {TRAINED_TEXTS: hashes.getvalue()},
        )
    return version


def trained_text_hashes(registry: UPath, version: str) -> pl.Series | None:
    """The hashes of the texts a version learnt from (None for versions registered before they were kept)."""
    path = version_file(registry, NAME, version, TRAINED_TEXTS)
    if not path.exists():
        return None
    with path.open("rb") as handle:
        return pl.read_parquet(handle)["hash"]


def load_sentiment_version(registry: UPath, version: str) -> Any:
    """A registered version's model, refused when another major scikit-learn version saved it."""
    metadata = read_metadata(registry, NAME, version)
    if str(metadata["sklearn_version"]).split(".")[0] != sklearn.__version__.split(".")[0]:
        raise RegistryError(
            f"sentiment model {version} was saved by scikit-learn {metadata['sklearn_version']}: retrain"
        )
    return read_estimator(registry, NAME, version)


def deployed_sentiment_version(registry: UPath) -> str | None:
    """The pinned or deployed sentiment version of a registry, else None."""
    return deployed_version(registry, NAME, PIN_VARIABLE)


def load_sentiment_model(lake: UPath) -> tuple[str, Any]:
    """The pinned or deployed sentiment model of the lake's registry and its version."""
    version = deployed_sentiment_version(registry_of(lake))
    if version is None:
        raise RegistryError(
            "no sentiment model is deployed in this lake: run the pipeline (the sentiment_model asset) or "
            "`patient-insights sentiment train` first"
        )
    return version, load_sentiment_version(registry_of(lake), version)


def provenance_of(registry: UPath, version: str) -> str:
    """What a registered version learnt from: `generated`, `organisation`, or `unrecorded` for versions
    registered before provenance was kept."""
    return str(read_metadata(registry, NAME, version).get("provenance", UNRECORDED))


@dataclass(frozen=True)
class Scorer:
    """What scores a set of texts: a registered version, or VADER (`version` "vader"), and why."""

    version: str
    model: Any
    reason: str


def scorer_version(registry: UPath, *, generated_texts: bool) -> str:
    """The version `choose_scorer` would score with (a registered version or "vader"), without loading
    the model: what a run records to know when the scorer changed."""
    version = deployed_sentiment_version(registry)
    if version is None or not may_score(provenance_of(registry, version), generated_texts):
        return LEXICON_VERSION
    return version


def choose_scorer(registry: UPath, *, generated_texts: bool) -> Scorer:
    """The model that may score texts that are (`generated_texts`) or are not known to be generated: the
    deployed (or pinned) version when its provenance allows it, else VADER (`provenance.py`)."""
    version = deployed_sentiment_version(registry)
    if version is None:
        return Scorer(LEXICON_VERSION, LexiconModel(), "no sentiment model is deployed")
    provenance = provenance_of(registry, version)
    if may_score(provenance, generated_texts):
        return Scorer(
            version, load_sentiment_version(registry, version), f"the deployed model ({provenance})"
        )
    learnt = "generated texts" if provenance == GENERATED else "texts it did not record"
    return Scorer(
        LEXICON_VERSION,
        LexiconModel(),
        f"the deployed model {version} learnt from {learnt}, and these texts are not known to be "
        "generated (train a model on your own labels or ratings with `patient-insights sentiment train`)",
    )
