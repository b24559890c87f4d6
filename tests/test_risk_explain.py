"""Local explanations (`models/risk/explain.py`): only rows that differ from the typical values are
re-scored, and the result is the definition's (every row re-scored with the group at its medians)."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from models.risk.explain import attributions, top_reasons
from models.risk.features import Feature


def _by_definition(estimator, x: np.ndarray, medians: list[float], groups: list[list[int]]) -> np.ndarray:
    base = estimator.predict_proba(x)[:, 1]
    effects = np.zeros((x.shape[0], len(groups)))
    for g, columns in enumerate(groups):
        typical = x.copy()
        typical[:, columns] = np.asarray(medians)[columns]
        effects[:, g] = base - estimator.predict_proba(typical)[:, 1]
    return effects


def _data(rows: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = np.column_stack(
        [
            rng.normal(60, 15, rows),  # age: every row differs from the median
            rng.poisson(0.3, rows).astype(float),  # admissions: mostly at the median (0)
            rng.poisson(0.2, rows).astype(float),  # correlated with the admissions, explained with them
            np.where(rng.random(rows) < 0.2, np.nan, rng.normal(7, 1, rows)),  # a lab value, some missing
        ]
    )
    y = ((x[:, 1] + x[:, 2] + (x[:, 0] > 70)) + rng.random(rows) > 1.2).astype(int)
    return x, y


def test_attributions_equal_the_definition_with_rows_at_the_medians_and_missing_values() -> None:
    x, y = _data()
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
    medians = [60.0, 0.0, 0.0, 7.0]
    groups = [[0], [1, 2], [3]]
    fast = attributions(model, x, medians, groups)
    assert np.array_equal(fast, _by_definition(model, x, medians, groups))
    at_median = (x[:, 1] == 0) & (x[:, 2] == 0)
    assert at_median.any() and (fast[at_median, 1] == 0).all()
    assert (fast[np.isnan(x[:, 3]), 2] != 0).any()  # a missing value is not "typical"


def test_reasons_name_the_groups_first_unusual_feature_with_the_effects_direction() -> None:
    features = [
        Feature("age", "{v:.0f} years old"),
        Feature("admissions_12m", "{v:.0f} admissions", group="use"),
        Feature("ed_visits_12m", "{v:.0f} ED visits", group="use"),
    ]
    x = np.array([[60.0, 0.0, 3.0], [80.0, 2.0, 0.0]])
    medians = [60.0, 0.0, 0.0]
    groups = [[0], [1, 2]]
    effects = np.array([[0.0, 0.2], [-0.05, 0.1]])
    reasons = top_reasons(effects, x, features, groups, medians, top=2)
    assert reasons == [
        ["raises risk: 3 ED visits"],
        ["raises risk: 2 admissions", "lowers risk: 80 years old"],
    ]
