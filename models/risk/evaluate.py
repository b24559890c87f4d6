"""Metrics of a risk score on a labelled set: AUROC, AUPRC, Brier score, a calibration table, and the
same by sex and age band (fairness slices)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

AGE_BANDS = ((0, 17, "0-17"), (18, 44, "18-44"), (45, 64, "45-64"), (65, 74, "65-74"), (75, 200, "75+"))
CALIBRATION_BINS = 10


def ranking_metrics(outcome: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """AUROC and AUPRC of any score (a probability or a clinical index); NaN when one class is absent."""
    if len(np.unique(outcome)) < 2:
        return {"auroc": math.nan, "auprc": math.nan}
    return {
        "auroc": float(roc_auc_score(outcome, score)),
        "auprc": float(average_precision_score(outcome, score)),
    }


def probability_metrics(outcome: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """Ranking metrics plus the Brier score and the mean predicted vs observed rate."""
    return {
        **ranking_metrics(outcome, probability),
        "brier": float(brier_score_loss(outcome, probability)) if len(outcome) else math.nan,
        "mean_predicted": float(np.mean(probability)) if len(outcome) else math.nan,
        "observed_rate": float(np.mean(outcome)) if len(outcome) else math.nan,
        "n": len(outcome),
    }


def calibration_table(
    outcome: np.ndarray, probability: np.ndarray, bins: int = CALIBRATION_BINS
) -> pl.DataFrame:
    """Predicted vs observed rate in equal-count bins of the predicted probability."""
    frame = pl.DataFrame({"p": probability, "y": outcome.astype(float)}).sort("p")
    frame = frame.with_columns((pl.int_range(pl.len()) * bins // pl.len()).alias("bin"))
    return (
        frame.group_by("bin")
        .agg(
            pl.len().alias("n"),
            pl.col("p").min().alias("from"),
            pl.col("p").max().alias("to"),
            pl.col("p").mean().alias("mean_predicted"),
            pl.col("y").mean().alias("observed_rate"),
        )
        .sort("bin")
        .with_columns(pl.col("bin") + 1)
    )


def fairness_slices(frame: pl.DataFrame, probability: np.ndarray) -> pl.DataFrame:
    """Metrics per sex and per age band (`female`, `age`, `outcome` columns of `frame`)."""
    rows = []
    data = frame.select("female", "age", "outcome").with_columns(pl.Series("_p", probability))
    slices = [("sex", "female", pl.col("female") == 1.0), ("sex", "male", pl.col("female") == 0.0)]
    slices += [("age", label, pl.col("age").is_between(lo, hi)) for lo, hi, label in AGE_BANDS]
    for kind, label, where in slices:
        part = data.filter(where)
        if not part.height:
            continue
        y = part["outcome"].cast(pl.Int8).to_numpy()
        metrics = probability_metrics(y, part["_p"].to_numpy())
        rows.append({"slice": kind, "group": label, **metrics})
    return pl.DataFrame(rows)
