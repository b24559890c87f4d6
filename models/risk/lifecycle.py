"""Train both risk models on the lake, register them and deploy a version that earns it.

A new version is deployed when it beats its clinical baseline's AUROC on the test rows; otherwise the
deployed version stays and the outcome says why. Training on unchanged data reuses the registered version
(its id comes from the data's fingerprint), so a re-run changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from upath import UPath

from models.registry import deploy, has_version, read_metadata
from models.risk.card import model_card
from models.risk.config import RiskConfig
from models.risk.dataset import TrainingSet, discharge_training_set, person_training_set
from models.risk.registry import deployed_risk_version, register, version_id
from models.risk.train import TrainingError, train_model


@dataclass(frozen=True)
class TrainingOutcome:
    """What happened to one model (counts and metrics only)."""

    name: str
    status: str  # registered | reused | skipped
    version: str | None
    deployed: str | None
    detail: str
    metrics: dict


BUILDERS: dict[str, Callable[[UPath, int, date, RiskConfig], TrainingSet]] = {
    "person_180d": person_training_set,
    "discharge_30d": discharge_training_set,
}


def train_and_deploy(lake: UPath, buckets: int, as_of: date, config: RiskConfig) -> list[TrainingOutcome]:
    """Train (or reuse) every risk model for data up to `as_of`."""
    outcomes = []
    for name, build in BUILDERS.items():
        data = build(lake, buckets, as_of, config)
        version = version_id(data, config.seed)
        if has_version(lake, name, version):
            metadata = read_metadata(lake, name, version)
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
        model_auroc = metadata["metrics"]["model"]["auroc"]
        baseline_auroc = metadata["metrics"][metadata["baseline"]]["auroc"]
        comparison = f"AUROC {model_auroc:.3f} vs {metadata['baseline']} {baseline_auroc:.3f}"
        if model_auroc > baseline_auroc:
            deploy(lake, name, version)
            detail = f"{comparison}: deployed"
        else:
            detail = f"{comparison}: does not beat the baseline, not deployed"
        outcomes.append(
            TrainingOutcome(
                name, status, version, deployed_risk_version(lake, name), detail, metadata["metrics"]
            )
        )
    return outcomes
