"""Risk models in the registry (`models/registry.py`: `<lake>/models/<name>/<version>/`, a deployed
pointer, and `PATIENT_INSIGHTS_RISK_MODEL_VERSION` to pin another version).

A version id is derived from the training data's fingerprint, the settings, and the code's feature list
with the features' clinical directions, so training twice on the same data gives the same version (and
the second time reuses it). Loading refuses a model whose features differ from what this code computes,
or that was saved by another major version of scikit-learn, with a message that says what to do.
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
)
from models.risk.dataset import TrainingSet
from models.risk.train import TrainedModel

PIN_VARIABLE = "PATIENT_INSIGHTS_RISK_MODEL_VERSION"


@dataclass(frozen=True)
class RegisteredModel:
    """A model loaded from the registry with its metadata."""

    version: str
    estimator: Any
    metadata: dict[str, Any]

    @property
    def features(self) -> list[str]:
        """The feature names, in the order the estimator expects them."""
        return [f["name"] for f in self.metadata["features"]]


def fingerprint(data: TrainingSet) -> str:
    """sha256 of the training rows (sorted, as CSV) and the role split: the same data, the same print."""
    buffer = io.BytesIO()
    data.frame.sort(data.frame.columns[:2]).write_csv(buffer)
    digest = hashlib.sha256(buffer.getvalue())
    digest.update(json.dumps(data.as_of_days, sort_keys=True).encode())
    return digest.hexdigest()


def version_id(data: TrainingSet, seed: int) -> str:
    """The version a training run on `data` produces."""
    payload = json.dumps(
        {
            "data": fingerprint(data),
            "seed": seed,
            "features": [f.name for f in data.features],
            # the clinical directions the candidates are held to: other directions, another model
            "directions": [f.direction for f in data.features],
        },
        sort_keys=True,
    )
    return f"{data.name}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def register(
    lake: UPath, model: TrainedModel, data: TrainingSet, version: str, seed: int, card: str
) -> dict[str, Any]:
    """Save the model, its metadata and its card; the metadata file appears last, so a killed run leaves
    no version that looks complete."""
    metadata = metadata_of(model, data, version, seed)
    save_version(registry_of(lake), model.name, version, model.estimator, metadata, card)
    return metadata


def metadata_of(model: TrainedModel, data: TrainingSet, version: str, seed: int) -> dict[str, Any]:
    """Everything needed to trust, reproduce and check a model (no person data)."""
    return {
        "version": version,
        "model": model.name,
        "training_data_fingerprint": fingerprint(data),
        "as_of_days": data.as_of_days,
        "rows": model.rows,
        "positives": model.positives,
        "sample": data.sample,
        "features": [{"name": f, "dtype": "float64"} for f in model.features],
        "chosen": model.chosen,
        "candidates_validation_auroc": model.candidates,
        "calibration_method": model.calibration_method,
        "hyper_parameters": model.hyper_parameters,
        "seed": seed,
        "metrics": model.metrics,
        "baseline": data.baseline,
        "calibration": model.calibration.to_dicts(),
        "fairness": model.fairness.to_dicts(),
        "medians": model.medians,
        "reference": model.reference,
        "reference_scores": model.reference_scores,
        "reference_drift": model.reference_drift,
        "sklearn_version": sklearn.__version__,
        "polars_version": pl.__version__,
    }


def load_model(
    lake: UPath, name: str, expected_features: list[str], version: str | None = None
) -> RegisteredModel:
    """Load a version (default: the pinned or deployed one) and check it fits this code."""
    registry = registry_of(lake)
    version = version or deployed_version(registry, name, PIN_VARIABLE)
    if version is None:
        raise RegistryError(f"no {name} model is deployed: train one (the risk_models asset) first")
    if not has_version(registry, name, version):
        raise RegistryError(f"model {name} version {version} is not in the registry ({PIN_VARIABLE}?)")
    metadata = read_metadata(registry, name, version)
    check_compatible(metadata, expected_features)
    return RegisteredModel(version, read_estimator(registry, name, version), metadata)


def check_compatible(metadata: dict[str, Any], expected_features: list[str]) -> None:
    """Refuse a model trained on other features or saved by another major scikit-learn version."""
    trained = [f["name"] for f in metadata["features"]]
    if trained != expected_features:
        missing = sorted(set(expected_features) - set(trained))
        extra = sorted(set(trained) - set(expected_features))
        raise RegistryError(
            f"model {metadata['version']} was trained on another feature schema (this code adds {missing}, "
            f"drops {extra}, or orders them differently): retrain, or pin a version trained by this code"
        )
    saved_major = str(metadata["sklearn_version"]).split(".")[0]
    if saved_major != sklearn.__version__.split(".")[0]:
        raise RegistryError(
            f"model {metadata['version']} was saved by scikit-learn {metadata['sklearn_version']}, this is "
            f"{sklearn.__version__}: retrain it with this version"
        )


def deployed_risk_version(lake: UPath, name: str) -> str | None:
    """The pinned or deployed version of a risk model."""
    return deployed_version(registry_of(lake), name, PIN_VARIABLE)
