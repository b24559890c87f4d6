"""Patient-bucket partitions: per-patient assets are split into independent, restartable buckets."""

import dagster as dg

from pipelines.buckets import bucket_keys
from pipelines.config import Settings
from pipelines.silver.build import partition_keys


def patient_buckets(buckets: int | None = None) -> dg.StaticPartitionsDefinition:
    """'00'..'NN' (CRC-32 of source and patient key, `PATIENT_INSIGHTS_BUCKETS` of them) plus `shared`
    for resources that belong to no patient (practitioners, organizations, deletions of them)."""
    return dg.StaticPartitionsDefinition(partition_keys(buckets or Settings.from_env().buckets))


def person_buckets(buckets: int | None = None) -> dg.StaticPartitionsDefinition:
    """'00'..'NN': gold person tables are split by CRC-32 of the person id (no `shared` bucket: every
    gold row belongs to a person)."""
    return dg.StaticPartitionsDefinition(bucket_keys(buckets or Settings.from_env().buckets))
