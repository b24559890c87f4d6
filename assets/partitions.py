"""Patient-bucket partitions: per-patient assets are split into independent, restartable buckets."""

from __future__ import annotations

import dagster as dg

from pipelines.buckets import bucket_keys
from pipelines.config import Settings


def patient_buckets(buckets: int | None = None) -> dg.StaticPartitionsDefinition:
    """Static partitions '00'..'NN' (hash of the patient key, `PATIENT_INSIGHTS_BUCKETS` of them)."""
    return dg.StaticPartitionsDefinition(bucket_keys(buckets or Settings.from_env().buckets))
