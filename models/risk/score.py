"""Score persons with a registered model: probability, tier by capacity, top reasons (`gold/risk_scores`),
and the feature values scored (`gold/risk_features`, for drift and for the dashboard)."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from models.risk.config import RiskConfig
from models.risk.explain import attributions, groups_of, top_reasons
from models.risk.features import PERSON_FEATURES, person_points, point_in_time_features
from models.risk.registry import RegisteredModel
from models.risk.train import matrix
from pipelines.gold.records import PersonRecords

RISK_SCORES = "risk_scores"
RISK_FEATURES = "risk_features"
PERSON_MODEL = "person_180d"
RISK_SCHEMA: dict[str, pl.DataType] = {
    "person_id": pl.String(),
    "as_of": pl.Date(),
    "score": pl.Float64(),  # calibrated probability of the outcome
    "tier": pl.String(),  # high | medium | low
    "reasons": pl.List(pl.String()),  # top factors with their direction, in words
    "model_version": pl.String(),
}
FEATURE_NAMES = [f.name for f in PERSON_FEATURES]
RISK_FEATURE_SCHEMA: dict[str, pl.DataType] = {
    "person_id": pl.String(),
    "as_of": pl.Date(),
    **{name: pl.Float64() for name in FEATURE_NAMES},
}


def tier_thresholds(reference_scores: list[float], config: RiskConfig) -> tuple[float, float]:
    """Scores at which `high` and `medium` start: the reference population's quantiles at the capacity."""
    grid = np.linspace(0, 1, len(reference_scores))
    high = float(np.interp(1 - config.tier_high, grid, reference_scores))
    medium = float(np.interp(1 - config.tier_high - config.tier_medium, grid, reference_scores))
    return high, medium


def score_persons(
    records: PersonRecords, as_of: date, model: RegisteredModel, config: RiskConfig
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Risk scores and scored features of every living person of `records` on `as_of`."""
    points = person_points(records.persons, [as_of])
    features = point_in_time_features(records, points)
    scored = features.select([pl.col(n).cast(t) for n, t in RISK_FEATURE_SCHEMA.items()])
    if not features.height:
        return pl.DataFrame(schema=RISK_SCHEMA), scored
    x = matrix(features, model.features)
    probability = model.estimator.predict_proba(x)[:, 1]
    medians = [float(model.metadata["medians"][f]) for f in model.features]
    by_name = {f.name: f for f in PERSON_FEATURES}
    features_used = [by_name[f] for f in model.features]
    groups = groups_of(features_used)
    effects = attributions(model.estimator, x, medians, groups)
    reasons = top_reasons(effects, x, features_used, groups, medians, config.top_factors)
    high, medium = tier_thresholds(model.metadata["reference_scores"], config)
    score = pl.col("score")
    scores = features.select("person_id", "as_of").with_columns(
        pl.Series("score", probability, dtype=pl.Float64),
        pl.Series("reasons", reasons, dtype=pl.List(pl.String)),
        pl.lit(model.version).alias("model_version"),
    )
    scores = scores.with_columns(
        pl.when(score >= high)
        .then(pl.lit("high"))
        .when(score >= medium)
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low"))
        .alias("tier")
    )
    return scores.select(list(RISK_SCHEMA)), scored
