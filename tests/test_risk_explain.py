"""Local explanations (`models/risk/explain.py`): only rows that differ from the reference are re-scored and
the result is the definition's; the reference is the typical person (no value where most have none); a
reason's direction is always the sign of the named feature's own contribution and of its group's; and the
models are held to the features' clinical directions."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from models.risk.explain import (
    LOWERS,
    RAISES,
    attributions,
    describe,
    explain,
    feature_attributions,
    reference_values,
    top_reasons,
)
from models.risk.features import PERSON_FEATURES, Feature
from models.risk.train import MonotoneLogisticRegression, candidates


def _by_definition(estimator, x: np.ndarray, reference: list[float], groups: list[list[int]]) -> np.ndarray:
    base = estimator.predict_proba(x)[:, 1]
    effects = np.zeros((x.shape[0], len(groups)))
    for g, columns in enumerate(groups):
        typical = x.copy()
        typical[:, columns] = np.asarray(reference)[columns]
        effects[:, g] = base - estimator.predict_proba(typical)[:, 1]
    return effects


def _data(rows: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = np.column_stack(
        [
            rng.normal(60, 15, rows),  # age: every row differs from the median
            rng.poisson(0.3, rows).astype(float),  # admissions: mostly at the median (0)
            rng.poisson(0.2, rows).astype(float),  # correlated with the admissions, explained with them
            np.where(rng.random(rows) < 0.7, np.nan, rng.normal(7, 1, rows)),  # a lab value most lack
        ]
    )
    y = ((x[:, 1] + x[:, 2] + (x[:, 0] > 70)) + rng.random(rows) > 1.2).astype(int)
    return x, y


def test_attributions_equal_the_definition_with_rows_at_the_reference_and_missing_values() -> None:
    x, y = _data()
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
    reference = [60.0, 0.0, 0.0, np.nan]  # the lab value: most people have none
    groups = [[0], [1, 2], [3]]
    fast = attributions(model, x, np.asarray(reference), groups)
    assert np.array_equal(fast, _by_definition(model, x, reference, groups))
    at_reference = (x[:, 1] == 0) & (x[:, 2] == 0)
    assert at_reference.any() and (fast[at_reference, 1] == 0).all()
    assert (fast[np.isnan(x[:, 3]), 2] == 0).all()  # no value, like the typical person: no effect
    assert (fast[~np.isnan(x[:, 3]), 2] != 0).any()


def test_the_reference_is_the_median_or_no_value_where_most_have_none() -> None:
    frame = pl.DataFrame(
        {
            "admissions": [0.0, 0.0, 0.0, 1.0, 4.0],
            "hba1c": [None, None, None, 7.0, 9.0],  # most have no result: the typical person has none
            "bmi": [None, 25.0, 27.0, 29.0, 31.0],
            "female": [True, True, False, True, False],
        }
    )
    assert reference_values(frame, frame.columns) == {
        "admissions": 0.0,
        "hba1c": None,
        "bmi": 28.0,
        "female": 1.0,
    }


def test_a_reason_is_said_through_a_feature_that_pushes_the_score_its_way_or_not_at_all() -> None:
    features = [
        Feature("age", "age {v:.0f}"),
        Feature("admissions_12m", "{v:.0f} admission{s} in 12 months", group="use"),
        Feature("admissions_36m", "{v:.0f} admission{s} in 3 years", group="use"),
        Feature("ed_visits", "{v:.0f} ED visit{s}", group="ed"),
        Feature("ed_visits_36m", "{v:.0f} ED visit{s} in 3 years", group="ed"),
    ]
    groups = [[0], [1, 2], [3, 4]]
    x = np.array([[80.0, 1.0, 2.0, 1.0, 1.0]])
    # the group 'use' lowers the score on the whole, its 12-month count alone raises it, its 3-year count
    # alone lowers it: the reason names the 3-year count; the group 'ed' raises the score while neither of
    # its features alone does: it is not said
    group_effects = np.array([[0.01, -0.05, 0.2]])
    feature_effects = np.array([[0.01, 0.03, -0.06, -0.01, 0.0]])
    reasons = top_reasons(group_effects, feature_effects, x, features, groups, top=3)
    assert reasons == [["lowers risk: 2 admissions in 3 years", "raises risk: age 80"]]


def _direction_of(reason: str) -> int:
    return 1 if reason.startswith(RAISES) else -1 if reason.startswith(LOWERS) else 0


@pytest.mark.parametrize("family", ["logistic_regression", "gradient_boosting"])
def test_no_feature_that_pushes_the_score_up_is_said_to_lower_it(family: str) -> None:
    """Property over every row: the feature a reason names, set alone to its reference value, moves the
    score the way the words say."""
    x, y = _data(600)
    estimator = candidates(3)[family].fit(x, y)
    features = [
        Feature("age", "age {v:.0f}"),
        Feature("admissions_12m", "{v:.0f} admission{s} in 12 months", group="use"),
        Feature("admissions_36m", "{v:.0f} admission{s} in 3 years", group="use"),
        Feature("hba1c", "HbA1c {v:.1f}", "no HbA1c result"),
    ]
    reference = np.array([60.0, 0.0, 0.0, np.nan])
    reasons = explain(estimator, x, features, reference, top=3)
    base = estimator.predict_proba(x)[:, 1]
    checked = 0
    for i, row in enumerate(reasons):
        for reason in row:
            words = reason.split(": ", 1)[1]
            named = [j for j, f in enumerate(features) if describe(f, float(x[i, j])) == words]
            assert len(named) == 1, reason
            typical = x[i : i + 1].copy()
            typical[0, named[0]] = reference[named[0]]
            effect = base[i] - estimator.predict_proba(typical)[0, 1]
            assert np.sign(effect) == _direction_of(reason), (i, reason, effect)
            checked += 1
    assert checked > 500


def test_the_constrained_logistic_regression_is_scikit_learns_when_free_and_keeps_the_signs_asked() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 4))
    y = (rng.random(2000) < 1 / (1 + np.exp(-(x @ np.array([1.0, -0.5, 0.3, 2.0]) - 1)))).astype(int)
    free = MonotoneLogisticRegression(C=0.5).fit(x, y)
    reference = LogisticRegression(C=0.5, max_iter=5000).fit(x, y)
    assert np.allclose(free.coef_, reference.coef_, atol=1e-3)
    assert np.allclose(free.predict_proba(x), reference.predict_proba(x), atol=1e-3)
    held = MonotoneLogisticRegression(C=0.5, directions=(0, 1, -1)).fit(x, y)
    assert held.coef_[0, 1] >= 0 and held.coef_[0, 2] <= 0  # column 3: past the list, free
    assert held.coef_[0, 1] == pytest.approx(0, abs=1e-9)  # the data wants it negative: held at 0


def test_counts_of_admissions_alerts_and_diagnoses_never_lower_the_risk_of_a_trained_candidate() -> None:
    """Data in which admissions come with fewer future events (a confounded sample) cannot teach a
    candidate that an admission lowers risk."""
    rng = np.random.default_rng(5)
    rows = 3000
    admissions = rng.poisson(0.5, rows).astype(float)
    age = rng.normal(60, 15, rows)
    y = (rng.random(rows) < 0.3 - 0.08 * np.minimum(admissions, 3) + 0.002 * (age - 60)).astype(int)
    x = np.column_stack([age, admissions])
    for name, estimator in candidates(0, (0, 1)).items():
        estimator.fit(x, y)
        fewer = x.copy()
        fewer[:, 1] = 0
        assert (estimator.predict_proba(x)[:, 1] >= estimator.predict_proba(fewer)[:, 1] - 1e-12).all(), name


def test_words_say_one_and_many() -> None:
    by_name = {f.name: f for f in PERSON_FEATURES}
    assert describe(by_name["inpatient_admissions_12m"], 1.0) == "1 hospital admission in the last 12 months"
    assert describe(by_name["inpatient_admissions_12m"], 2.0) == "2 hospital admissions in the last 12 months"
    assert describe(by_name["device_alerts_30d"], 1.0) == "1 home-device alert in the last 30 days"
    # every feature says its missing value in its own words: a reason names one feature
    missing = [describe(f, None) for f in PERSON_FEATURES]
    assert len(set(missing)) == len(missing)


def test_feature_attributions_reuse_a_lone_features_group_effect() -> None:
    x, y = _data()
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(x, y)
    reference = np.array([60.0, 0.0, 0.0, np.nan])
    groups = [[0], [1, 2], [3]]
    group_effects = attributions(model, x, reference, groups)
    singles = feature_attributions(model, x, reference, groups, group_effects)
    assert np.array_equal(singles, attributions(model, x, reference, [[0], [1], [2], [3]]))
