"""Local explanations: why the model gave this person this score, in words whose direction is the model's.

The reference is a typical person of the training population (`reference_values`): each feature at its
median, or without a value where most people have none (no HbA1c result, no hospital stay). A feature's
contribution for a person is their score minus the score with that feature set to its reference value,
everything else as it is: it asks the deployed (calibrated) model itself, whatever its family, and costs
one batch prediction per feature.

Correlated features (ED visits in 6, 12 and 36 months; admissions, bed days and the last discharge) are
ranked together as a group, set to the reference together: explained one at a time their credit splits and
can flip sign. A group is said in words through its feature that pushes the score the same way as the
whole group, the most; a group none of whose features does so on its own is not said at all. So every
reason's direction ("raises risk" / "lowers risk") is the sign of the named feature's own contribution
and of its group's: a feature that pushes the score up is never described as lowering it (tested).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from models.risk.features import Feature

MIN_EFFECT = 1e-4
"""Differences smaller than this (in probability) are not reasons."""
TYPICAL_SHARE = 0.5
"""A feature whose value more than this share of the training rows lack is typically absent."""
RAISES, LOWERS = "raises risk", "lowers risk"


def reference_values(frame: pl.DataFrame, features: list[str]) -> dict[str, float | None]:
    """The typical value of each feature in `frame` (training rows): its median over the rows that have a
    value, or None when most rows have none (the typical person has no such result or stay; a median of
    the few who do would describe nobody typical)."""
    values = frame.select([pl.col(f).cast(pl.Float64).fill_nan(None) for f in features])
    reference: dict[str, float | None] = {}
    for name in features:
        column = values[name]
        missing = column.null_count() / column.len() if column.len() else 1.0
        median = column.median()
        reference[name] = None if missing > TYPICAL_SHARE or median is None else float(median)
    return reference


def reference_array(metadata: dict[str, Any], features: list[str]) -> np.ndarray:
    """The reference values of a registered model (NaN: no value); a model registered before references
    were recorded is explained against its training medians, as it was."""
    stated = metadata.get("reference") or metadata["medians"]
    return np.array([np.nan if stated[f] is None else float(stated[f]) for f in features], dtype=float)


def groups_of(features: list[Feature]) -> list[list[int]]:
    """Column indices per explanation group, in feature order."""
    order: dict[str, list[int]] = {}
    for j, feature in enumerate(features):
        order.setdefault(feature.explained_as, []).append(j)
    return list(order.values())


def _at_reference(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Element-wise: the value is its reference value (a missing value is when the reference is missing)."""
    return (values == reference) | (np.isnan(values) & np.isnan(reference))


def attributions(estimator: Any, x: np.ndarray, reference: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """Per row and group: score(row) - score(row with the group's features at their reference values)."""
    base = estimator.predict_proba(x)[:, 1]
    effects = np.zeros((x.shape[0], len(groups)), dtype=float)
    reference = np.asarray(reference, dtype=float)
    for g, columns in enumerate(groups):
        # a row already at the reference would be scored against itself: its effect is exactly 0, so only
        # the other rows are re-scored (most people have no admissions, alerts or missed visits)
        differs = ~_at_reference(x[:, columns], reference[columns]).all(axis=1)
        if not differs.any():
            continue
        typical = x[differs]
        typical[:, columns] = reference[columns]
        effects[differs, g] = base[differs] - estimator.predict_proba(typical)[:, 1]
    return effects


def feature_attributions(
    estimator: Any, x: np.ndarray, reference: np.ndarray, groups: list[list[int]], group_effects: np.ndarray
) -> np.ndarray:
    """Per row and feature: score(row) - score(row with only that feature at its reference value). A
    feature alone in its group has its group's effect (not computed twice)."""
    effects = np.zeros(x.shape, dtype=float)
    for g, columns in enumerate(groups):
        if len(columns) == 1:
            effects[:, columns[0]] = group_effects[:, g]
            continue
        singles = attributions(estimator, x, reference, [[j] for j in columns])
        effects[:, columns] = singles
    return effects


def describe(feature: Feature, value: float | None) -> str:
    """The feature's value in plain words."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return feature.missing or f"no {feature.name.replace('_', ' ')}"
    return feature.says.format(
        v=value,
        s="" if round(value) == 1 else "s",
        sex="female" if value >= 0.5 else "male",
        has="has" if value >= 0.5 else "no",
        emergent="admitted through the emergency department" if value >= 0.5 else "planned admission",
    )


def said_features(
    group_effects: np.ndarray, feature_effects: np.ndarray, groups: list[list[int]]
) -> np.ndarray:
    """Per row and group, the column that says the group: of the group's features whose own effect has the
    group's sign (and is not negligible), the largest; -1 where none does (the group is not said)."""
    said = np.full(group_effects.shape, -1, dtype=int)
    for g, columns in enumerate(groups):
        own = feature_effects[:, columns]
        sign = np.sign(group_effects[:, [g]])
        agrees = (np.sign(own) == sign) & (np.abs(own) >= MIN_EFFECT)
        strength = np.where(agrees, np.abs(own), -1.0)
        best = np.argmax(strength, axis=1)
        found = agrees.any(axis=1)
        said[:, g] = np.where(found, np.asarray(columns)[best], -1)
    return said


def top_reasons(
    group_effects: np.ndarray,
    feature_effects: np.ndarray,
    x: np.ndarray,
    features: list[Feature],
    groups: list[list[int]],
    top: int,
) -> list[list[str]]:
    """For every row, its `top` groups by the size of their effect that can be said, each with its
    direction, e.g. 'raises risk: 3 ED visits in the last 6 months'."""
    said = said_features(group_effects, feature_effects, groups)
    sayable = (said >= 0) & (np.abs(group_effects) >= MIN_EFFECT)
    order = np.argsort(np.where(sayable, -np.abs(group_effects), np.inf), axis=1, kind="stable")[:, :top]
    reasons: list[list[str]] = []
    for i in range(
        group_effects.shape[0]
    ):  # only `top` strings per person: the arithmetic above is vectorized
        row = []
        for g in order[i]:
            if not sayable[i, g]:
                break
            j = said[i, g]
            direction = RAISES if feature_effects[i, j] > 0 else LOWERS
            row.append(f"{direction}: {describe(features[j], float(x[i, j]))}")
        reasons.append(row)
    return reasons


def explain(
    estimator: Any, x: np.ndarray, features: list[Feature], reference: np.ndarray, top: int
) -> list[list[str]]:
    """The top reasons of every row of `x` (columns in `features` order) against `reference`."""
    groups = groups_of(features)
    group_effects = attributions(estimator, x, reference, groups)
    feature_effects = feature_attributions(estimator, x, reference, groups, group_effects)
    return top_reasons(group_effects, feature_effects, x, features, groups, top)
