"""Population stability index (PSI) of the score and the features against the training reference.

The reference keeps the decile edges of each variable on the test rows and the share of rows in each bin
(missing values are a bin of their own), so discrete variables with ties are handled honestly. PSI above
0.2 is the usual warning level for a shifted population.
"""

from __future__ import annotations

import math

import numpy as np

EPSILON = 1e-4
"""Floor of a bin share, so that an empty bin does not make the PSI infinite."""


def _bins(values: np.ndarray, edges: list[float]) -> np.ndarray:
    finite = ~np.isnan(values)
    bins = np.full(values.shape, len(edges) + 1)  # the last bin holds missing values
    bins[finite] = np.searchsorted(np.asarray(edges), values[finite], side="right")
    return bins


def psi_reference(values: np.ndarray) -> dict[str, list[float]]:
    """Edges and bin shares of a variable on the reference rows."""
    finite = values[~np.isnan(values)]
    edges = sorted({float(q) for q in np.quantile(finite, np.linspace(0.1, 0.9, 9))}) if finite.size else []
    counts = np.bincount(_bins(values, edges), minlength=len(edges) + 2)
    return {"edges": edges, "expected": (counts / max(values.size, 1)).tolist()}


def psi(reference: dict[str, list[float]], values: np.ndarray) -> float:
    """PSI of `values` against a reference; NaN when there is nothing to compare."""
    if not values.size or not reference["expected"]:
        return math.nan
    counts = np.bincount(_bins(values, reference["edges"]), minlength=len(reference["expected"]))
    actual = np.maximum(counts / values.size, EPSILON)
    expected = np.maximum(np.asarray(reference["expected"]), EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
