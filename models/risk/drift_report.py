"""The drift table of a scored population against the deployed model's reference (`gold/risk_drift`)."""

from __future__ import annotations

import polars as pl

from models.risk.drift import psi
from models.risk.registry import RegisteredModel

RISK_DRIFT = "risk_drift"
DRIFT_SCHEMA: dict[str, pl.DataType] = {
    "variable": pl.String(),  # `score` or a feature name
    "psi": pl.Float64(),
    "rows": pl.Int64(),
    "model_version": pl.String(),
}


def drift_table(
    model: RegisteredModel, scores: pl.DataFrame, features: pl.DataFrame, top: int = 10
) -> pl.DataFrame:
    """PSI of the score and of the `top` features with the largest reference spread (the ones that
    move scores most are those with many distinct values; all are cheap, so the list is capped only to
    keep the table readable)."""
    reference = model.metadata["reference_drift"]
    rows = [("score", psi(reference["score"], scores["score"].to_numpy()), scores.height)]
    ranked = sorted(
        (f for f in model.features if f in features.columns and reference.get(f, {}).get("edges")),
        key=lambda f: -len(reference[f]["edges"]),
    )[:top]
    for feature in ranked:
        values = features[feature].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        rows.append((feature, psi(reference[feature], values), features.height))
    return pl.DataFrame(
        [(v, p, n, model.version) for v, p, n in rows], schema=DRIFT_SCHEMA, orient="row"
    ).sort("psi", descending=True, nulls_last=True)
