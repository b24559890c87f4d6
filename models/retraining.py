"""When a pipeline run retrains a model: only when it pays, never merely because the as-of day moved.

A run scores with the deployed model. It trains a new version (which is then deployed only if it beats the
deployed one on the same held-out rows: `models.risk.lifecycle`, `models.sentiment.lifecycle`) when

- no version is deployed yet;
- the run asks for it (`patient-insights ingest --retrain`, run tag `patient-insights/retrain=true`; the
  `risk train` / `sentiment train` commands always train);
- the deployed version is older than `PATIENT_INSIGHTS_MODEL_MAX_AGE_DAYS` (default 90 days);
- the last run's drift check fired (risk: a population stability index above the configured warning level).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from upath import UPath

from models.registry import deployment

NONE_DEPLOYED = "no version is deployed yet"
MAX_AGE_ENV = "PATIENT_INSIGHTS_MODEL_MAX_AGE_DAYS"
DEFAULT_MAX_AGE_DAYS = 90


def max_age_days() -> int:
    """The age in days after which a deployed model is retrained (`PATIENT_INSIGHTS_MODEL_MAX_AGE_DAYS`)."""
    text = os.environ.get(MAX_AGE_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_AGE_DAYS
    try:
        days = int(text)
    except ValueError:
        raise ValueError(f"{MAX_AGE_ENV} must be a whole number of days, got {text!r}") from None
    if days < 1:
        raise ValueError(f"{MAX_AGE_ENV} must be at least 1, got {days}")
    return days


def retraining_reason(
    registry: UPath,
    name: str,
    deployed: str | None,
    asked: bool,
    drifted: list[str] | None = None,
    now: datetime | None = None,
) -> str | None:
    """Why model `name` should be retrained in this run, or None when the deployed version stays."""
    if asked:
        return "retraining was asked for"
    if deployed is None:
        return NONE_DEPLOYED
    if drifted:
        return f"the last run's drift check fired ({', '.join(drifted)})"
    record = deployment(registry, name)
    if record and record.get("deployed_at"):
        deployed_at = datetime.fromisoformat(str(record["deployed_at"]))
        if deployed_at.tzinfo is None:
            deployed_at = deployed_at.replace(tzinfo=UTC)
        age = ((now or datetime.now(UTC)) - deployed_at).days
        if age > max_age_days():
            return f"the deployed version is {age} days old (more than {max_age_days()})"
    return None
