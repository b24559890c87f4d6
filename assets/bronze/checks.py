"""Data contracts of the bronze layer as asset checks (names are constants so UIs and tests share them)."""

import dagster as dg
import polars as pl

from assets.bronze.assets import FHIR_RESOURCES_KEY, INGEST_LOG_KEY, QUARANTINE_KEY
from assets.resources import LakeResource
from pipelines.bronze.accounting import accounting_discrepancies, duplicate_ingests
from pipelines.bronze.tables import BRONZE, QUARANTINE
from pipelines.bronze.validation import validate_sample
from pipelines.lake import scan_table

ACCOUNTING_BALANCED = "accounting_balanced"
FILES_INGESTED_ONCE = "files_ingested_once"
QUARANTINE_HAS_REASONS = "quarantine_has_reasons"
FHIR_SAMPLE_VALID = "fhir_sample_valid"
MAX_INVALID_SHARE = 0.02


@dg.asset_check(asset=INGEST_LOG_KEY, name=ACCOUNTING_BALANCED, blocking=True)
def accounting_balanced(lake: LakeResource) -> dg.AssetCheckResult:
    """For every ingested file: records in = rows in bronze + rows in quarantine, as stored in the lake."""
    discrepancies = accounting_discrepancies(lake.settings().lake)
    return dg.AssetCheckResult(
        passed=discrepancies.is_empty(),
        metadata={"files_unbalanced": discrepancies.height},
    )


@dg.asset_check(asset=INGEST_LOG_KEY, name=FILES_INGESTED_ONCE, blocking=True)
def files_ingested_once(lake: LakeResource) -> dg.AssetCheckResult:
    """No delivery (file content, plus the user folder for vendor payloads) was ingested twice."""
    duplicates = duplicate_ingests(lake.settings().lake)
    return dg.AssetCheckResult(passed=duplicates == 0, metadata={"duplicate_ingests": duplicates})


@dg.asset_check(asset=QUARANTINE_KEY, name=QUARANTINE_HAS_REASONS)
def quarantine_has_reasons(lake: LakeResource) -> dg.AssetCheckResult:
    """Every quarantined record carries a reason code and a reason."""
    missing = (
        scan_table(lake.settings().lake, BRONZE, QUARANTINE)
        .select((pl.col("reason_code").is_null() | pl.col("reason").is_null()).sum().alias("n"))
        .collect()
        if (lake.settings().lake / BRONZE / QUARANTINE).exists()
        else pl.DataFrame({"n": [0]})
    )
    count = int(missing["n"][0] or 0)
    return dg.AssetCheckResult(passed=count == 0, metadata={"records_without_reason": count})


@dg.asset_check(asset=FHIR_RESOURCES_KEY, name=FHIR_SAMPLE_VALID)
def fhir_sample_valid(lake: LakeResource) -> dg.AssetCheckResult:
    """A sample of whole bronze resources validates against FHIR (fhir.resources R4B models).

    Bronze checks key fields only; this shows type drift and malformed elements before silver does.
    Warns when more than 2% of the sample fails; metadata lists the failing element paths, no values.
    """
    sample = validate_sample(lake.settings().lake)
    return dg.AssetCheckResult(
        passed=sample.invalid_share <= MAX_INVALID_SHARE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "resources_checked": sample.checked,
            "resources_invalid": sample.invalid,
            "invalid_by_type": dict(sample.invalid_by_type),
            "top_problems": dict(sample.problems.most_common(10)),
        },
    )
