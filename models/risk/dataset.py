"""Training sets: point-in-time features and outcomes at several historical as-of days (person model) or
at every inpatient discharge (discharge model), assembled one person bucket at a time so memory stays
bounded, and split in time: train on the earliest, validate on the next, test on the latest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import polars as pl
from upath import UPath

from models.risk.config import RiskConfig
from models.risk.features import (
    DISCHARGE_FEATURES,
    PERSON_FEATURES,
    POINT,
    POINT_SCHEMA,
    Feature,
    end_of_day,
    person_points,
    point_in_time_features,
)
from models.risk.outcomes import discharge_points, person_outcomes
from pipelines.buckets import bucket_keys
from pipelines.gold.records import PersonRecords

ROLES = ("train", "validation", "test")


@dataclass(frozen=True)
class TrainingSet:
    """Rows of features, `outcome`, the baseline score column and `role` (train/validation/test)."""

    name: str  # person_180d | discharge_30d
    frame: pl.DataFrame
    features: tuple[Feature, ...]
    baseline: str  # the clinical score compared against: charlson_index or lace_index
    as_of_days: dict[str, list[str]]  # role -> the as-of days (or the discharge date range)

    def part(self, role: str) -> pl.DataFrame:
        """The rows of one role."""
        return self.frame.filter(pl.col("role") == role)


def person_days(as_of: date, config: RiskConfig) -> dict[str, list[date]]:
    """Test, validation and train as-of days: the test day is the last whose outcome window ends by
    `as_of`; each earlier day is `spacing_days` before the next."""
    test = as_of - timedelta(days=config.person_horizon_days)
    validation = test - timedelta(days=config.spacing_days)
    train = [validation - timedelta(days=config.spacing_days * k) for k in range(config.train_points, 0, -1)]
    return {"train": train, "validation": [validation], "test": [test]}


def person_training_set(lake: UPath, buckets: int, as_of: date, config: RiskConfig) -> TrainingSet:
    """Features at every person as-of day with outcome (a), bucket by bucket."""
    days = person_days(as_of, config)
    role_of = {d: role for role, ds in days.items() for d in ds}
    frames = []
    for bucket in bucket_keys(buckets):
        records = PersonRecords.load(lake, bucket, buckets)
        points = person_points(records.persons, sorted(role_of))
        if not points.height:
            continue
        features = point_in_time_features(records, points)
        labelled = person_outcomes(records, points, config.person_horizon_days).select(*POINT, "outcome")
        frames.append(features.join(labelled, on=POINT))
    frame = _concat(frames, PERSON_FEATURES, "charlson_index").with_columns(
        pl.col("as_of").replace_strict(role_of, return_dtype=pl.String).alias("role")
    )
    return TrainingSet(
        "person_180d",
        frame.sort(POINT),
        PERSON_FEATURES,
        "charlson_index",
        {role: [d.isoformat() for d in ds] for role, ds in days.items()},
    )


def discharge_training_set(lake: UPath, buckets: int, as_of: date, config: RiskConfig) -> TrainingSet:
    """Features at every inpatient discharge with outcome (b) and the discharge's LACE index."""
    last_cutoff = end_of_day(as_of)
    frames = []
    for bucket in bucket_keys(buckets):
        records = PersonRecords.load(lake, bucket, buckets)
        stays = discharge_points(records, last_cutoff, config.discharge_horizon_days)
        if not stays.height:
            continue
        points = stays.select("person_id", "as_of", "cutoff").unique(POINT, keep="first")
        features = point_in_time_features(records, points, with_care_gaps=False).drop("charlson_index")
        frames.append(
            stays.select(
                *POINT,
                "cutoff",
                "encounter_id",
                "length_of_stay_days",
                pl.col("emergent_admission").cast(pl.Float64),
                "charlson_index",
                "lace_index",
                "outcome",
            ).join(features.drop("cutoff"), on=POINT, how="left")
        )
    frame = _concat(frames, DISCHARGE_FEATURES, "lace_index")
    test_from = last_cutoff - timedelta(days=config.discharge_horizon_days + config.discharge_test_days)
    validation_from = test_from - timedelta(days=config.discharge_validation_days)
    role = (
        pl.when(pl.col("cutoff") >= _utc(test_from))
        .then(pl.lit("test"))
        .when(pl.col("cutoff") >= _utc(validation_from))
        .then(pl.lit("validation"))
        .otherwise(pl.lit("train"))
    )
    frame = frame.with_columns(role.alias("role"), pl.col("charlson_index").cast(pl.Float64))
    return TrainingSet(
        "discharge_30d",
        frame.sort("cutoff", "encounter_id") if "encounter_id" in frame.columns else frame,
        DISCHARGE_FEATURES,
        "lace_index",
        {
            "train": [f"before {validation_from.date().isoformat()}"],
            "validation": [f"{validation_from.date().isoformat()} to {test_from.date().isoformat()}"],
            "test": [f"from {test_from.date().isoformat()}"],
        },
    )


def _utc(moment: datetime) -> pl.Expr:
    return pl.lit(moment).dt.replace_time_zone("UTC")


def _concat(frames: list[pl.DataFrame], features: tuple[Feature, ...], baseline: str) -> pl.DataFrame:
    """The buckets' rows together; with no rows at all, an empty frame that still has every column."""
    if frames:
        return pl.concat(frames, how="diagonal_relaxed")
    return pl.DataFrame(
        schema={
            **POINT_SCHEMA,
            **{f.name: pl.Float64 for f in features},
            baseline: pl.Float64,
            "outcome": pl.Boolean,
        }
    )
