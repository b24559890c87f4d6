"""The risk-model settings in data_contracts/risk/model.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

CONTRACTS = Path(__file__).resolve().parents[2] / "data_contracts" / "risk"


PERSON_MAX_TRAIN_ROWS = 60_000
"""Default of `person.max_train_rows`: the person model learns from the points of the first persons in
hash order (models/risk/dataset.py) whose train points fit in this many rows; their validation and test
points come along, so those are capped too, and stay a random sample of persons. Building point-in-time
features costs time per person and fitting costs time per row, while test AUROC measured against rows on
a 100,000-person lake stops rising well before all of them are used: a budget keeps the training step's
cost bounded instead of growing with the population."""
DISCHARGE_MAX_TRAIN_ROWS = 20_000
"""Default of `discharge.max_train_rows`: the same budget for the discharge model, in training
discharges (the persons sampled are those with a discharge, in the same hash order)."""


@dataclass(frozen=True)
class RiskConfig:
    """Training, tiering and drift settings (see model.yaml for what each means)."""

    seed: int
    person_horizon_days: int
    train_points: int
    spacing_days: int
    discharge_horizon_days: int
    discharge_test_days: int
    discharge_validation_days: int
    tier_high: float
    tier_medium: float
    psi_warning: float
    top_factors: int
    person_max_train_rows: int = PERSON_MAX_TRAIN_ROWS
    discharge_max_train_rows: int = DISCHARGE_MAX_TRAIN_ROWS
    charlson_tiers: tuple[int, int] = (1, 3)  # the Charlson points where medium and high start
    lace_tiers: tuple[int, int] = (5, 10)  # the LACE points where medium and high start


@cache
def risk_config(path: Path = CONTRACTS / "model.yaml") -> RiskConfig:
    """Load and check model.yaml; a wrong value fails with the file name."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        config = RiskConfig(
            seed=int(data["seed"]),
            person_horizon_days=int(data["person"]["horizon_days"]),
            train_points=int(data["person"]["train_points"]),
            spacing_days=int(data["person"]["spacing_days"]),
            discharge_horizon_days=int(data["discharge"]["horizon_days"]),
            discharge_test_days=int(data["discharge"]["test_days"]),
            discharge_validation_days=int(data["discharge"]["validation_days"]),
            person_max_train_rows=int(data["person"].get("max_train_rows", PERSON_MAX_TRAIN_ROWS)),
            discharge_max_train_rows=int(data["discharge"].get("max_train_rows", DISCHARGE_MAX_TRAIN_ROWS)),
            tier_high=float(data["tiers"]["high"]),
            tier_medium=float(data["tiers"]["medium"]),
            psi_warning=float(data["drift"]["psi_warning"]),
            top_factors=int(data["explanations"]["top_factors"]),
            charlson_tiers=_cut_offs(data.get("baselines", {}).get("charlson"), (1, 3)),
            lace_tiers=_cut_offs(data.get("baselines", {}).get("lace"), (5, 10)),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path.name}: missing or invalid setting ({error})") from None
    if not 0 < config.tier_high < config.tier_high + config.tier_medium <= 1:
        raise ValueError(f"{path.name}: tiers must be shares with 0 < high and high + medium <= 1")
    for name, (medium, high) in (("charlson", config.charlson_tiers), ("lace", config.lace_tiers)):
        if not 1 <= medium <= high:
            raise ValueError(f"{path.name}: baselines.{name} needs 1 <= medium <= high (points)")
    if config.train_points < 1:
        raise ValueError(f"{path.name}: person.train_points must be at least 1")
    if min(config.person_max_train_rows, config.discharge_max_train_rows) < 1:
        raise ValueError(
            f"{path.name}: person.max_train_rows and discharge.max_train_rows must be at least 1"
        )
    return config


def _cut_offs(given: dict | None, default: tuple[int, int]) -> tuple[int, int]:
    """(medium, high) points of a baseline's tiers, the published cut-offs when not given."""
    if given is None:
        return default
    return int(given["medium"]), int(given["high"])
