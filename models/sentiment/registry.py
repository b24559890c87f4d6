"""Sentiment models in the registry (`models/registry.py`): register a trained model with its metrics,
card and the hashes of the texts it learnt from, and load the deployed or a named version.

A version stores the deployed form (`RoutedModel`: a model per kind of text) so what was judged is what
scores. The hashes of the training texts (8 bytes each, no text) let a later comparison leave out texts a
model has already seen, which would flatter it.
"""

from __future__ import annotations

import hashlib
import io
import json
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
from models.sentiment.text import text_hashes
from models.sentiment.train import SentimentTraining, model_card

NAME = "sentiment"
PIN_VARIABLE = "PATIENT_INSIGHTS_SENTIMENT_MODEL_VERSION"
TRAINED_TEXTS = "trained_texts.parquet"


def sentiment_version(training: SentimentTraining, data_print: str) -> str:
    """The version id of a training: the labelled texts' fingerprint and the models chosen."""
    choice = training.chosen + json.dumps(training.choice_by_kind, sort_keys=True)
    return f"{NAME}-{hashlib.sha256((data_print + choice).encode()).hexdigest()[:12]}"


def register_sentiment(
    registry: UPath, training: SentimentTraining, data_print: str, data: str, train_texts: pl.Series
) -> str:
    """Register the deployable model (metadata with every model's metrics, the card, the training texts'
    hashes) and return its version; the same texts and choices give the same version, registered once."""
    version = sentiment_version(training, data_print)
    if not has_version(registry, NAME, version):
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
        hashes = io.BytesIO()
        pl.DataFrame({"hash": text_hashes(train_texts).unique().sort()}).write_parquet(hashes)
        save_version(
            registry,
            NAME,
            version,
            training.deployed(),
            metadata,
            model_card(training, version, data),
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
