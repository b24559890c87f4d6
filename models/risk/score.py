"""Score persons: with a registered model (probability, tier by capacity, top reasons), or, when no model is
deployed, with the clinical baseline (Charlson points, tier at fixed cut-offs, the conditions that count)
(`gold/risk_scores`), and the feature values scored (`gold/risk_features`, for drift and the dashboard).
Everyone alive gets a score every day: a model that cannot be trained honestly (too few outcomes) or has
not beaten its baseline yet leaves the baseline in its place, and `model_version` says which scored.

Score recent discharges the same way (`gold/discharge_risk`): each inpatient stay of a living person whose
30-day readmission window is still open at the end of the as-of day, with the deployed discharge model at
the discharge instant, or with the LACE index while none is deployed."""

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
    DISCHARGE_FEATURES,
    PERSON_FEATURES,
    POINT,
    Feature,
    active_conditions,
    discharge_features,
    person_points,
    point_in_time_features,
)
from models.risk.outcomes import recent_discharges
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
DISCHARGE_RISK = "discharge_risk"
DISCHARGE_RISK_SCHEMA: dict[str, pl.DataType] = {
    "person_id": pl.String(),
    "encounter_id": pl.String(),  # the inpatient stay (Encounter id)
    "as_of": pl.Date(),  # the run's as-of day
    "discharged_on": pl.Date(),  # the day the stay ended (UTC)
    "days_since_discharge": pl.Int32(),  # as_of - discharged_on: 0 up to the horizon - 1
    "score": pl.Float64(),  # calibrated probability of a return within 30 days; null when LACE scored
    "points": pl.Int32(),  # the LACE index when LACE scored the discharge, else null
    "tier": pl.String(),  # high | medium | low
    "reasons": pl.List(pl.String()),  # top factors with their direction, in words
    "model_version": pl.String(),  # the discharge model's registered version, or baseline:lace
    "returned_on": pl.Date(),  # first ED visit or unplanned admission after the discharge, up to as_of
}
FEATURE_NAMES = [f.name for f in PERSON_FEATURES]
DISCHARGE_FEATURE_NAMES = [f.name for f in DISCHARGE_FEATURES]
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
    scores = _scored_by_model(features, model, PERSON_FEATURES, config)
    return scores.select(list(RISK_SCHEMA)), scored


def _scored_by_model(
    features: pl.DataFrame, model: RegisteredModel, known: tuple[Feature, ...], config: RiskConfig
) -> pl.DataFrame:
    """`features` (rows with the model's features, of `known`) with the model's `score`, `points` (null),
    `tier` (by capacity: the model's reference scores at `tier_thresholds`), `reasons` (`explain`) and
    `model_version`."""
    x = matrix(features, model.features)
    probability = model.estimator.predict_proba(x)[:, 1]
    by_name = {f.name: f for f in known}
    features_used = [by_name[f] for f in model.features]
    reference = reference_array(model.metadata, model.features)
    reasons = explain(model.estimator, x, features_used, reference, config.top_factors)
    high, medium = tier_thresholds(model.metadata["reference_scores"], config)
    score = pl.col("score")
    scores = features.with_columns(
        pl.Series("score", probability, dtype=pl.Float64),
        pl.lit(None, pl.Int32).alias("points"),
        pl.Series("reasons", reasons, dtype=pl.List(pl.String)),
        pl.lit(model.version).alias("model_version"),
    )
    return scores.with_columns(
        pl.when(score >= high)
        .then(pl.lit("high"))
        .when(score >= medium)
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low"))
        .alias("tier")
    )


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


def score_discharges(
    records: PersonRecords, as_of: date, model: RegisteredModel | None, config: RiskConfig
) -> pl.DataFrame:
    """`gold/discharge_risk` of `records` on `as_of` (DISCHARGE_RISK_SCHEMA): every discharge of a living
    person whose readmission window is still open at the end of `as_of` (`recent_discharges`), scored by
    `model` (the deployed discharge model) at the discharge instant, or by LACE when it is None. Only these
    few discharges' features are built."""
    stays = recent_discharges(records, as_of, config.discharge_horizon_days)
    if not stays.height:
        return pl.DataFrame(schema=DISCHARGE_RISK_SCHEMA)
    if model is None:
        scores = stays.hstack(score_discharges_with_baseline(stays, config))
    else:
        scores = _scored_by_model(discharge_features(records, stays), model, DISCHARGE_FEATURES, config)
    # `as_of` of a discharge point is its discharge day; the discharge model's own `days_since_discharge`
    # feature (since the discharge before) is replaced by the days since this one
    return (
        scores.rename({"as_of": "discharged_on"})
        .with_columns(
            pl.lit(as_of).alias("as_of"),
            (pl.lit(as_of) - pl.col("discharged_on")).dt.total_days().alias("days_since_discharge"),
        )
        .select([pl.col(n).cast(t) for n, t in DISCHARGE_RISK_SCHEMA.items()])
        .sort("person_id", "discharged_on", "encounter_id")
    )


def score_discharges_with_baseline(stays: pl.DataFrame, config: RiskConfig) -> pl.DataFrame:
    """Scores of discharges (rows of `discharge_points` or `recent_discharges`) from the LACE index, for
    when no discharge model is deployed, row for row: `score` (null: LACE gives no probability),
    `points` (the index), `tier` at the configured cut-offs (`baselines.lace`), `reasons` (the LACE
    components with points), `model_version` baseline:lace."""
    return stays.select(
        pl.lit(None, pl.Float64).alias("score"),
        pl.col("lace_index").cast(pl.Int32).alias("points"),
        baseline_tier(pl.col("lace_index"), config.lace_tiers),
        lace_reasons(stays, config.top_factors).alias("reasons"),
        pl.lit(LACE_BASELINE).alias("model_version"),
    )


def is_baseline(model_version: pl.Expr) -> pl.Expr:
    """The score came from a clinical baseline, not from a trained model."""
    return model_version.str.starts_with(BASELINE_PREFIX)
