"""Train the risk models on the lake, register them, deploy a version that earns it, and evaluate any
registered version on the lake's own data.

A new version is deployed when it beats its clinical baseline's AUROC on the test rows **and** the deployed
version's AUROC on the same test rows (the tiers rank people, so ranking is what is judged); `force`
deploys it anyway and says so. Training on unchanged data reuses the registered version (its id comes from
the data's fingerprint), so a re-run changes nothing. The Dagster asset and the command line both call
`train_and_deploy`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import polars as pl
from upath import UPath

from models.registry import RegistryError, deploy, deployment, has_version, read_metadata, registry_of
from models.risk.card import model_card
from models.risk.config import RiskConfig
from models.risk.dataset import TrainingSet, discharge_training_set, person_training_set, training_sets
from models.risk.evaluate import calibration_table, fairness_slices, probability_metrics, ranking_metrics
from models.risk.registry import RegisteredModel, deployed_risk_version, load_model, register, version_id
from models.risk.train import TrainingError, matrix, train_model

BUILDERS: dict[str, Callable[[UPath, int, date, RiskConfig], TrainingSet]] = {
    "person_180d": person_training_set,
    "discharge_30d": discharge_training_set,
}
MODEL_NAMES = tuple(BUILDERS)


@dataclass(frozen=True)
class TrainingOutcome:
    """What happened to one model (counts and metrics only)."""

    name: str
    status: str  # registered | reused | skipped
    version: str | None
    deployed: str | None  # the version scoring uses after this run
    detail: str
    metrics: dict
    decision: str = ""  # deployed | forced | kept | already_deployed | ""
    compared_with: str | None = None  # the previously deployed version judged on the same test rows
    compared_metrics: dict = field(default_factory=dict)  # its metrics on those rows


@dataclass(frozen=True)
class Evaluation:
    """A registered version judged on one role's rows of a training set (counts and metrics only)."""

    name: str
    version: str
    role: str
    as_of_days: dict[str, list[str]]
    metrics: dict[str, dict[str, float]]  # model / the clinical baseline / prevalence_only
    baseline: str
    calibration: pl.DataFrame
    fairness: pl.DataFrame
    registered_metrics: dict[str, dict[str, float]]  # the version's test metrics when it was registered

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "model": self.name,
            "version": self.version,
            "rows": self.role,
            "as_of_days": self.as_of_days,
            "baseline": self.baseline,
            "metrics": self.metrics,
            "calibration": self.calibration.to_dicts(),
            "fairness": self.fairness.to_dicts(),
            "metrics_when_registered": self.registered_metrics,
        }


def model_name_of(version: str) -> str:
    """The model family a version id belongs to (`person_180d-…` → person_180d)."""
    for name in MODEL_NAMES:
        if version.startswith(f"{name}-"):
            return name
    raise RegistryError(
        f"{version!r} is not a risk model version (they start with {' or '.join(MODEL_NAMES)})"
    )


def train_and_deploy(
    lake: UPath,
    buckets: int,
    as_of: date,
    config: RiskConfig,
    *,
    names: Iterable[str] = MODEL_NAMES,
    force: bool = False,
) -> list[TrainingOutcome]:
    """Train (or reuse) each named risk model on data up to `as_of` and deploy it when it earns it."""
    outcomes = []
    names = list(names)
    sets = training_sets(lake, buckets, as_of, config, names)  # the records are read once for all
    for name in names:
        data = sets[name]
        version = version_id(data, config.seed)
        if has_version(registry_of(lake), name, version):
            metadata = read_metadata(registry_of(lake), name, version)
            status = "reused"
        else:
            try:
                model = train_model(data, config.seed)
            except TrainingError as error:
                outcomes.append(
                    TrainingOutcome(name, "skipped", None, deployed_risk_version(lake, name), str(error), {})
                )
                continue
            metadata = register(lake, model, data, version, config.seed, model_card(model, data, version))
            status = "registered"
        outcomes.append(_decide(lake, data, version, status, metadata, force))
    return outcomes


def _decide(
    lake: UPath, data: TrainingSet, version: str, status: str, metadata: dict[str, Any], force: bool
) -> TrainingOutcome:
    """Deploy `version` if it beats the baseline and the deployed version on the same test rows."""
    name, baseline = data.name, metadata["baseline"]
    model_auroc = metadata["metrics"]["model"]["auroc"]
    baseline_auroc = metadata["metrics"][baseline]["auroc"]
    reasons = [f"AUROC {model_auroc:.3f} vs {baseline} {baseline_auroc:.3f}"]
    better = model_auroc > baseline_auroc
    current = (deployment(registry_of(lake), name) or {}).get("version")
    compared: dict[str, Any] = {}
    if current == version:
        decision = "already_deployed"
        reasons.append("already deployed")
    else:
        if current is not None:
            try:
                incumbent = load_model(lake, name, [f.name for f in data.features], version=current)
            except RegistryError:
                reasons.append(f"deployed {current} cannot score this code's features: not compared")
            else:
                compared, _ = _judge(incumbent, data, "test")
                reasons.append(f"deployed {current} {compared['model']['auroc']:.3f} on the same test rows")
                better = better and model_auroc > compared["model"]["auroc"]
                if _later_test_window(incumbent.metadata, metadata):
                    reasons.append(f"{current} was trained on later data than these test rows")
        decision = "deployed" if better else "forced" if force else "kept"
        if decision != "kept":
            deploy(registry_of(lake), name, version, reason="; ".join(reasons) + f": {decision}")
        reasons.append(
            {"forced": "deployed (forced)", "deployed": "deployed", "kept": "not deployed"}[decision]
        )
    return TrainingOutcome(
        name,
        status,
        version,
        deployed_risk_version(lake, name),
        "; ".join(reasons),
        metadata["metrics"],
        decision,
        current if compared else None,
        compared.get("model", {}),
    )


def _later_test_window(incumbent: dict[str, Any], candidate: dict[str, Any]) -> bool:
    """True when the incumbent's test window starts after the candidate's (it learnt from those times)."""

    def first_day(meta: dict[str, Any]) -> str:
        found = re.search(r"\d{4}-\d{2}-\d{2}", " ".join(meta.get("as_of_days", {}).get("test", [])))
        return found.group(0) if found else ""

    return first_day(incumbent) > first_day(candidate)


def _judge(
    model: RegisteredModel, data: TrainingSet, role: str
) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """The model, the clinical baseline and a prevalence-only model on one role's rows, and the model's
    probabilities on them."""
    part = data.part(role)
    outcome = part["outcome"].cast(pl.Int8).to_numpy()
    probability = model.estimator.predict_proba(matrix(part, model.features))[:, 1]
    train = data.part("train")
    prevalence = float(train["outcome"].cast(pl.Float64).mean() or 0.0) if train.height else 0.0
    baseline = part[data.baseline].cast(pl.Float64).fill_null(0).to_numpy()
    metrics = {
        "model": probability_metrics(outcome, probability),
        data.baseline: {**ranking_metrics(outcome, baseline), "n": part.height},
        "prevalence_only": probability_metrics(outcome, np.full(len(outcome), prevalence)),
    }
    return metrics, probability


def evaluate_version(
    lake: UPath, buckets: int, as_of: date, config: RiskConfig, version: str, role: str = "test"
) -> Evaluation:
    """Judge a registered version on the lake's data as of `as_of`: the `role` rows of the time split
    (test: the latest window, whose outcomes are known by `as_of`), against the clinical baseline and a
    prevalence-only model, with a calibration table and fairness slices."""
    name = model_name_of(version)
    data = BUILDERS[name](lake, buckets, as_of, config)
    model = load_model(lake, name, [f.name for f in data.features], version=version)
    part = data.part(role)
    positives = int(part["outcome"].sum()) if part.height else 0
    if min(positives, part.height - positives) < 1:
        raise TrainingError(
            f"{name}: the {role} rows as of {as_of} number {part.height} with {positives} outcomes; both "
            "classes are needed to judge a model"
        )
    metrics, probability = _judge(model, data, role)
    outcome = part["outcome"].cast(pl.Int8).to_numpy()
    return Evaluation(
        name=name,
        version=version,
        role=role,
        as_of_days=data.as_of_days,
        metrics=metrics,
        baseline=data.baseline,
        calibration=calibration_table(outcome, probability),
        fairness=fairness_slices(part, probability),
        registered_metrics=model.metadata["metrics"],
    )
