"""Score persons: with a registered model (probability, tier by capacity, top reasons), or, when no model is
deployed, with the clinical baseline (Charlson points, tier at fixed cut-offs, the conditions that count)
(`gold/risk_scores`), and the feature values scored (`gold/risk_features`, for drift and the dashboard).
Everyone alive gets a score every day: a model that cannot be trained honestly (too few outcomes) or has
not beaten its baseline yet leaves the baseline in its place, and `model_version` says which scored."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from models.risk.baselines import (
    baseline_tier,
    charlson_category_flags,
    charlson_index,
    charlson_reasons,
    lace_reasons,
)
from models.risk.config import RiskConfig
from models.risk.explain import explain, reference_array
from models.risk.features import (
    PERSON_FEATURES,
    POINT,
    active_conditions,
    person_points,
    point_in_time_features,
)
from models.risk.registry import RegisteredModel
from models.risk.train import matrix
from pipelines.gold.records import PersonRecords

RISK_SCORES = "risk_scores"
RISK_FEATURES = "risk_features"
PERSON_MODEL = "person_180d"
CHARLSON_BASELINE = "baseline:charlson"
"""`model_version` of a person scored by the Charlson index because no person model is deployed."""
LACE_BASELINE = "baseline:lace"
"""`model_version` of a discharge scored by the LACE index because no discharge model is deployed."""
BASELINE_PREFIX = "baseline:"
RISK_SCHEMA: dict[str, pl.DataType] = {
    "person_id": pl.String(),
    "as_of": pl.Date(),
    "score": pl.Float64(),  # calibrated probability of the outcome; null when a baseline scored (it has none)
    "points": pl.Int32(),  # the clinical baseline's points when it scored the person, else null
    "tier": pl.String(),  # high | medium | low
    "reasons": pl.List(pl.String()),  # top factors with their direction, in words
    "model_version": pl.String(),  # the model's registered version, or baseline:charlson
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
    by_name = {f.name: f for f in PERSON_FEATURES}
    features_used = [by_name[f] for f in model.features]
    reference = reference_array(model.metadata, model.features)
    reasons = explain(model.estimator, x, features_used, reference, config.top_factors)
    high, medium = tier_thresholds(model.metadata["reference_scores"], config)
    score = pl.col("score")
    scores = features.select("person_id", "as_of").with_columns(
        pl.Series("score", probability, dtype=pl.Float64),
        pl.lit(None, pl.Int32).alias("points"),
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


def score_persons_with_baseline(
    records: PersonRecords, as_of: date, config: RiskConfig
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Risk scores of every living person of `records` on `as_of` from the Charlson index, for when no
    person model is deployed: the points (`points`; `score` stays null, there is no probability), the tier
    at the configured cut-offs (`baselines.charlson` in model.yaml), the counted conditions heaviest first
    as reasons, `model_version` baseline:charlson; and the features as a model would have scored them."""
    points = person_points(records.persons, [as_of])
    features = point_in_time_features(records, points)
    scored = features.select([pl.col(n).cast(t) for n, t in RISK_FEATURE_SCHEMA.items()])
    if not features.height:
        return pl.DataFrame(schema=RISK_SCHEMA), scored
    flags = charlson_category_flags(active_conditions(records, points), POINT)
    index = flags.select(*POINT, charlson_index(flags))
    reasons = charlson_reasons(flags, POINT, config.top_factors)
    scores = (
        features.select(POINT)
        .join(index, on=POINT, how="left")
        .join(reasons, on=POINT, how="left")
        .with_columns(
            pl.lit(None, pl.Float64).alias("score"),
            pl.col("charlson_index").fill_null(0).cast(pl.Int32).alias("points"),
            pl.col("reasons").fill_null(pl.lit([], dtype=pl.List(pl.String))),
            pl.lit(CHARLSON_BASELINE).alias("model_version"),
        )
    )
    scores = scores.with_columns(baseline_tier(pl.col("points"), config.charlson_tiers))
    return scores.select(list(RISK_SCHEMA)).sort("person_id"), scored


def score_discharges_with_baseline(stays: pl.DataFrame, config: RiskConfig) -> pl.DataFrame:
    """Scores of discharges (`discharge_points` rows) from the LACE index, for when no discharge model is
    deployed: `person_id`, `encounter_id`, `as_of` (discharge day), `points`, `tier` at the configured
    cut-offs (`baselines.lace`), `reasons` (the LACE components with points), `model_version`
    baseline:lace."""
    return stays.select(
        "person_id",
        "encounter_id",
        "as_of",
        pl.col("lace_index").cast(pl.Int32).alias("points"),
        baseline_tier(pl.col("lace_index"), config.lace_tiers),
        lace_reasons(stays, config.top_factors).alias("reasons"),
        pl.lit(LACE_BASELINE).alias("model_version"),
    )


def is_baseline(model_version: pl.Expr) -> pl.Expr:
    """The score came from a clinical baseline, not from a trained model."""
    return model_version.str.starts_with(BASELINE_PREFIX)
