"""Local explanations: why the model gave this person this score.

For each feature group, the person's score is recomputed with the group's features set to their
training medians (typical values) while the others stay as they are; the difference is what the
person's own values add to or take from their risk. This asks the deployed (calibrated) model itself,
whatever its family, and costs one batch prediction per group. The largest differences, up or down,
are the top factors, said in words from the feature's template.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.risk.features import Feature

MIN_EFFECT = 1e-4
"""Differences smaller than this (in probability) are not reasons."""


def groups_of(features: list[Feature]) -> list[list[int]]:
    """Column indices per explanation group, in feature order (correlated features such as ED visits in
    6, 12 and 36 months move together: explained one at a time, their credit would split and even flip
    sign, so a group is set to typical values together)."""
    order: dict[str, list[int]] = {}
    for j, feature in enumerate(features):
        order.setdefault(feature.explained_as, []).append(j)
    return list(order.values())


def attributions(estimator: Any, x: np.ndarray, medians: list[float], groups: list[list[int]]) -> np.ndarray:
    """Per row and group: score(row) - score(row with the group's features at their medians)."""
    base = estimator.predict_proba(x)[:, 1]
    effects = np.zeros((x.shape[0], len(groups)), dtype=float)
    typical_values = np.asarray(medians, dtype=float)
    for g, columns in enumerate(groups):
        # a row already at the typical values would be scored against itself: its effect is exactly 0, so
        # only the other rows are re-scored (most people have no admissions, alerts or missed visits)
        differs = (x[:, columns] != typical_values[columns]).any(axis=1)
        if not differs.any():
            continue
        typical = x[differs]
        typical[:, columns] = typical_values[columns]
        effects[differs, g] = base[differs] - estimator.predict_proba(typical)[:, 1]
    return effects


def describe(feature: Feature, value: float | None) -> str:
    """The feature's value in plain words."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return feature.missing or f"no {feature.name.replace('_', ' ')}"
    return feature.says.format(
        v=value,
        sex="female" if value >= 0.5 else "male",
        has="has" if value >= 0.5 else "no",
        emergent="admitted through the emergency department" if value >= 0.5 else "planned admission",
    )


def top_reasons(
    effects: np.ndarray,
    x: np.ndarray,
    features: list[Feature],
    groups: list[list[int]],
    medians: list[float],
    top: int,
) -> list[list[str]]:
    """For every row, its `top` groups with their direction, e.g. 'raises risk: 3 ED visits in the last
    6 months'; a group is said through its first feature that differs from typical (else its first)."""
    order = np.argsort(-np.abs(effects), axis=1, kind="stable")[:, :top]
    unusual = ~np.isclose(x, np.asarray(medians, dtype=float))
    # per row and group, the column that says it: the group's first unusual feature, else its first
    said = np.empty((x.shape[0], len(groups)), dtype=int)
    for g, columns in enumerate(groups):
        first_unusual = np.argmax(unusual[:, columns], axis=1)
        any_unusual = unusual[:, columns].any(axis=1)
        said[:, g] = np.asarray(columns)[np.where(any_unusual, first_unusual, 0)]
    reasons: list[list[str]] = []
    for i in range(effects.shape[0]):  # only `top` strings per person: the arithmetic above is vectorized
        row = []
        for g in order[i]:
            effect = effects[i, g]
            if abs(effect) < MIN_EFFECT:
                continue
            j = said[i, g]
            direction = "raises risk" if effect > 0 else "lowers risk"
            row.append(f"{direction}: {describe(features[j], float(x[i, j]))}")
        reasons.append(row)
    return reasons
