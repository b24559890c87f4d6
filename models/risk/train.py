"""Train, choose, calibrate and evaluate a risk model on a time-split training set.

Three candidates, chosen by validation AUROC (the tiers rank people, so ranking is what matters), not by
taste: a logistic regression (median imputation with missing-value indicators, standardized inputs) and
two regularized histogram gradient-boosted tree models (depth 3 and depth 2; they handle missing values
themselves). Every candidate is held to the clinical direction of the features that have one
(`Feature.direction`: more admissions, diagnoses or alerts never lower the risk): left free, correlated
inputs share their credit in ways that flip signs (admissions in 3 years weighed against admissions in 12
months), and a care manager would read "lowers risk: 1 hospital admission". The winner is calibrated on the
validation rows it was not fitted on (isotonic when there are enough positives, else sigmoid), then
evaluated once on the test rows against the clinical baseline and a prevalence-only model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from models.risk.dataset import TrainingSet
from models.risk.drift import psi_reference
from models.risk.evaluate import (
    calibration_table,
    fairness_slices,
    probability_metrics,
    ranking_metrics,
)
from models.risk.explain import reference_values

MIN_CLASS_ROWS = 10
"""Below this many rows with (or without) the outcome in a split, metrics and calibration are noise."""
ISOTONIC_MIN_POSITIVES = 200
"""Isotonic calibration needs many positives to be smooth; with fewer, a sigmoid is safer."""


class TrainingError(ValueError):
    """The training set cannot give an honest model (too few rows or one class only)."""


@dataclass
class TrainedModel:
    """A calibrated model and everything the registry and the model card need."""

    name: str
    estimator: Any  # the calibrated classifier
    features: list[str]
    chosen: str
    candidates: dict[str, float]  # candidate -> validation AUROC
    calibration_method: str
    hyper_parameters: dict[str, Any]
    metrics: dict[str, dict[str, float]]  # model / baseline / prevalence -> metrics on the test rows
    calibration: pl.DataFrame
    fairness: pl.DataFrame
    medians: dict[str, float]  # training medians (missing values count as 0 where all are missing)
    reference: dict[str, float | None]  # the typical training person: what explanations compare with
    reference_scores: list[float]  # test-set score quantiles (0, 1, ..., 100 %): tiers
    reference_drift: dict[str, dict[str, list[float]]]  # `score` and each feature: PSI bins of the test rows
    rows: dict[str, int]
    positives: dict[str, int]


class MonotoneLogisticRegression(ClassifierMixin, BaseEstimator):
    """Binary logistic regression with an L2 penalty (scikit-learn's objective: `C` times the summed log
    loss plus half the squared coefficients) whose coefficients keep the signs asked for: `directions[j]` 1
    keeps column j's coefficient >= 0, -1 <= 0, 0 (and columns past the list, such as missing-value
    indicators) leaves it free. Fitted by L-BFGS-B with bounds; scikit-learn's own LogisticRegression has no
    sign constraints."""

    def __init__(self, C: float = 1.0, directions: tuple[int, ...] = (), max_iter: int = 5000) -> None:
        self.C = C
        self.directions = directions
        self.max_iter = max_iter

    def fit(self, x: np.ndarray, y: np.ndarray) -> MonotoneLogisticRegression:
        """Fit on rows `x` (no missing values) and 0/1 outcomes `y`."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ValueError("MonotoneLogisticRegression needs both outcomes in the training rows")
        target = (y == self.classes_[1]).astype(float)
        columns = x.shape[1]
        directions = list(self.directions)[:columns] + [0] * max(0, columns - len(self.directions))
        bounds = [(0.0, None) if d > 0 else (None, 0.0) if d < 0 else (None, None) for d in directions]
        bounds.append((None, None))  # the intercept

        def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
            z = x @ w[:-1] + w[-1]
            # log(1 + e^z) - y z, summed; its gradient is (sigmoid(z) - y)
            loss = float(np.sum(np.logaddexp(0.0, z) - target * z))
            residual = expit(z) - target
            gradient = np.append(self.C * (x.T @ residual) + w[:-1], self.C * residual.sum())
            return self.C * loss + 0.5 * float(w[:-1] @ w[:-1]), gradient

        start = np.zeros(columns + 1)
        result = minimize(
            objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": self.max_iter}
        )
        self.coef_ = result.x[:-1].reshape(1, -1)
        self.intercept_ = result.x[-1:].copy()
        self.n_iter_ = np.array([result.nit])
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """The log-odds of the outcome."""
        return np.asarray(x, dtype=float) @ self.coef_[0] + self.intercept_[0]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of (no outcome, outcome)."""
        p = expit(self.decision_function(x))
        return np.column_stack([1 - p, p])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The likelier outcome."""
        return self.classes_[(self.decision_function(x) > 0).astype(int)]


def candidates(
    seed: int, directions: tuple[int, ...] = ()
) -> dict[str, Pipeline | HistGradientBoostingClassifier]:
    """The model families compared on the validation rows, held to the features' `directions` (one per
    feature column, see `Feature.direction`; empty: none)."""
    constraints = list(directions) if any(directions) else None
    return {
        "logistic_regression": make_pipeline(
            # the missing-value indicators come after the feature columns: their coefficients stay free
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
            MonotoneLogisticRegression(C=0.5, directions=tuple(directions)),
        ),
        "gradient_boosting": HistGradientBoostingClassifier(
            learning_rate=0.03,
            max_iter=300,
            max_depth=3,
            min_samples_leaf=60,
            l2_regularization=3.0,
            early_stopping=False,
            monotonic_cst=constraints,
            random_state=seed,
        ),
        # stumps-and-pairs: few interactions, hard to overfit on a few thousand rows
        "gradient_boosting_shallow": HistGradientBoostingClassifier(
            learning_rate=0.05,
            max_iter=150,
            max_depth=2,
            min_samples_leaf=80,
            early_stopping=False,
            monotonic_cst=constraints,
            random_state=seed,
        ),
    }


def matrix(frame: pl.DataFrame, features: list[str]) -> np.ndarray:
    """The float feature matrix (booleans as 0/1, missing values as NaN), columns in `features` order."""
    return frame.select([pl.col(f).cast(pl.Float64) for f in features]).to_numpy()


def train_model(data: TrainingSet, seed: int) -> TrainedModel:
    """Fit the candidates on the train rows, keep the best on validation, calibrate it on the validation
    rows, evaluate on the test rows."""
    # One thread: the sampled matrices are small, so an OpenMP or BLAS thread team gains little, and on a
    # machine whose cores other pipeline steps share its threads spin at every barrier waiting for one
    # another (measured: gradient boosting 12x slower in wall time with two threads on two busy cores).
    with threadpool_limits(limits=1):
        return _train_model(data, seed)


def _train_model(data: TrainingSet, seed: int) -> TrainedModel:
    features = [f.name for f in data.features]
    parts = {role: data.part(role) for role in ("train", "validation", "test")}
    for role, part in parts.items():
        positives = int(part["outcome"].sum()) if part.height else 0
        negatives = part.height - positives
        if min(positives, negatives) < MIN_CLASS_ROWS:
            raise TrainingError(
                f"the {role} set has {part.height} rows, {positives} with the outcome; an "
                f"honest model needs at least {MIN_CLASS_ROWS} of each class in train, validation and test"
            )
    x = {role: matrix(part, features) for role, part in parts.items()}
    y = {role: part["outcome"].cast(pl.Int8).to_numpy() for role, part in parts.items()}
    scores: dict[str, float] = {}
    fitted = {}
    directions = tuple(f.direction for f in data.features)
    for name, estimator in candidates(seed, directions).items():
        estimator.fit(x["train"], y["train"])
        fitted[name] = estimator
        scores[name] = ranking_metrics(y["validation"], estimator.predict_proba(x["validation"])[:, 1])[
            "auroc"
        ]
    chosen = max(scores, key=lambda n: (scores[n], n))
    positives = int(y["validation"].sum())
    method = "isotonic" if positives >= ISOTONIC_MIN_POSITIVES else "sigmoid"
    calibrated = CalibratedClassifierCV(FrozenEstimator(fitted[chosen]), method=method)
    calibrated.fit(x["validation"], y["validation"])
    test_p = calibrated.predict_proba(x["test"])[:, 1]
    prevalence = float(y["train"].mean())
    baseline = parts["test"][data.baseline].cast(pl.Float64).fill_null(0).to_numpy()
    metrics = {
        "model": probability_metrics(y["test"], test_p),
        "model_uncalibrated": probability_metrics(y["test"], fitted[chosen].predict_proba(x["test"])[:, 1]),
        data.baseline: ranking_metrics(y["test"], baseline),
        "prevalence_only": probability_metrics(y["test"], np.full(len(test_p), prevalence)),
    }
    train_frame = parts["train"].select([pl.col(f).cast(pl.Float64) for f in features])
    medians = {f: _finite(train_frame[f].median()) for f in features}
    reference = reference_values(parts["train"], features)
    test_frame = parts["test"].select([pl.col(f).cast(pl.Float64) for f in features])
    return TrainedModel(
        name=data.name,
        estimator=calibrated,
        features=features,
        chosen=chosen,
        candidates=scores,
        calibration_method=method,
        hyper_parameters=_simple_params(fitted[chosen]),
        metrics=metrics,
        calibration=calibration_table(y["test"], test_p),
        fairness=fairness_slices(parts["test"], test_p),
        medians=medians,
        reference=reference,
        reference_scores=[float(q) for q in np.quantile(test_p, np.linspace(0, 1, 101))],
        reference_drift={
            "score": psi_reference(test_p),
            **{f: psi_reference(test_frame[f].fill_null(np.nan).to_numpy()) for f in features},
        },
        rows={role: part.height for role, part in parts.items()},
        positives={role: int(v.sum()) for role, v in y.items()},
    )


def _finite(value: Any) -> float:
    return float(value) if value is not None and not math.isnan(float(value)) else 0.0


def _simple_params(estimator: Any) -> dict[str, Any]:
    """Hyper-parameters that serialize plainly (no nested estimators)."""
    params = estimator.get_params(deep=True)
    return {k: v for k, v in params.items() if isinstance(v, (int, float, str, bool)) or v is None}
