"""The model card: a markdown page a clinician or auditor can read (intended use, data, metrics against
the clinical baseline, calibration, fairness slices, limitations)."""

from __future__ import annotations

import math

import polars as pl

from models.risk.dataset import TrainingSet
from models.risk.train import TrainedModel

_OUTCOMES = {
    "person_180d": "an emergency department visit or an unplanned inpatient admission within 180 days",
    "discharge_30d": "a readmission or emergency department visit within 30 days of an inpatient discharge",
}
_BASELINES = {
    "charlson_index": "the Charlson Comorbidity Index (higher = sicker)",
    "lace_index": "the LACE index (length of stay, acuity, comorbidity, ED visits; 10+ is high risk)",
}


def _number(value: float | int | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(frame: pl.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(_number(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([head, rule, *rows])


def _metric_row(label: str, metrics: dict[str, float]) -> str:
    values = [_number(metrics[k]) for k in ("auroc", "auprc", "brier")]
    return f"| {label} | " + " | ".join(values) + " |"


def model_card(model: TrainedModel, data: TrainingSet, version: str) -> str:
    """The card of one trained version."""
    metrics = model.metrics
    lines = [
        f"# Model card: {model.name} ({version})",
        "",
        "## Intended use",
        f"Predicts {_OUTCOMES.get(model.name, model.name)}, to help care managers decide whom to call first. "
        "It supports clinical judgement and does not replace it; it is not a diagnostic device. The score "
        "is a calibrated probability; tiers follow the care team's capacity (data_contracts/risk).",
        "",
        "## Data",
        "- Features computed point-in-time (nothing recorded after the cutoff): "
        f"{', '.join(model.features)}.",
        f"- Split in time: train {data.as_of_days['train']}, validation {data.as_of_days['validation']}, "
        f"test {data.as_of_days['test']}.",
        f"- Rows (positives): train {model.rows['train']} ({model.positives['train']}), validation "
        f"{model.rows['validation']} ({model.positives['validation']}), test {model.rows['test']} "
        f"({model.positives['test']}).",
        *_sample_line(data.sample),
        "",
        "## Model",
        f"Chosen by validation AUROC: **{model.chosen}** (candidates: "
        + ", ".join(f"{k} {_number(v)}" for k, v in sorted(model.candidates.items()))
        + f"); calibrated with the {model.calibration_method} method on the validation rows.",
        "Every candidate is held to the clinical direction of "
        + ", ".join(f.name for f in data.features if f.direction > 0)
        + " (more never lowers the risk)"
        + "".join(f" and of {f.name} (more never raises it)" for f in data.features if f.direction < 0)
        + ".",
        "",
        "## Test-set metrics against the clinical baseline",
        f"Baseline: {_BASELINES.get(data.baseline, data.baseline)}; a prevalence-only model predicts the "
        "training rate for everyone.",
        "",
        "| score | AUROC | AUPRC | Brier |",
        "| --- | --- | --- | --- |",
        _metric_row("model (calibrated)", metrics["model"]),
        _metric_row("model before calibration", metrics["model_uncalibrated"]),
        f"| {data.baseline} | {_number(metrics[data.baseline]['auroc'])} | "
        f"{_number(metrics[data.baseline]['auprc'])} | n/a (not a probability) |",
        _metric_row("prevalence only", metrics["prevalence_only"]),
        "",
        "## Calibration (test set, equal-count bins)",
        _table(model.calibration),
        "",
        "## Fairness slices (test set)",
        _table(
            model.fairness.select("slice", "group", "n", "observed_rate", "mean_predicted", "auroc", "brier")
        )
        if model.fairness.height
        else "No slices.",
        "",
        "## Limitations",
        "- Trained on this organization's own records; utilization outside its sources is invisible, so "
        "people who use other hospitals look healthier than they are.",
        "- Outcomes are counted from encounters in the data; an admission is unplanned unless the source "
        "records a referral or outpatient admit source.",
        "- Small slices have wide uncertainty: read AUROC of a group with few positives with care.",
        "- Explanations compare a person with a typical training person (each feature's median, or no value "
        "where most people have none); correlated features are ranked as a group and said through the "
        "feature that pushes the score the group's way, so their credit is shared imperfectly.",
        "- HEDIS-aligned care-gap counts are an input; they are not NCQA-certified measures.",
        "",
    ]
    return "\n".join(lines)


def _sample_line(sample: dict[str, int]) -> list[str]:
    """The training sample in words: whether the budget left persons out (models/risk/dataset.py)."""
    if not sample:
        return []
    if sample["persons_sampled"] >= sample["persons"]:
        return [f"- Every person with a training row is used ({sample['persons']})."]
    return [
        f"- Training sample: {sample['persons_sampled']} of {sample['persons']} persons, drawn by a keyed "
        f"hash of the person id while their train rows fit in {sample['max_train_rows']} (the lake holds "
        f"{sample['train_rows']}); their validation and test rows come with them."
    ]
