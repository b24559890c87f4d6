"""Device feeds: silver `device_reading` per bucket, and the derived device tables per patient bucket."""

import dagster as dg
from upath import UPath

from assets.bronze.assets import DEVICE_RECORDS_KEY
from assets.contracts import contract_check
from assets.partitions import patient_buckets
from assets.resources import LakeResource
from assets.silver.assets import EXPECTATIONS_CHECK
from pipelines.devices.build import DEVICE_READING, DEVICE_READING_REJECTS, build_device_partition
from pipelines.devices.gold import DEVICE_ADHERENCE, DEVICE_ALERTS, DEVICE_DAILY, GOLD, build_device_gold
from pipelines.gold.as_of import resolve_as_of
from pipelines.lake import table_path
from pipelines.silver.build import SILVER
from pipelines.silver.expectations import EXPECTATIONS_DIR

DEVICE_GROUP = "devices"
DEVICE_GOLD_GROUP = "device_gold"
# Rebuilt when what they read changes: every device bucket after an ingest (a new enrolment row can
# link readings in any bucket), every derived bucket once all device buckets are up to date.
REBUILD_WHEN_UPSTREAM_CHANGES = dg.AutomationCondition.eager()
DEVICE_READING_KEY = dg.AssetKey([SILVER, DEVICE_READING])
DEVICE_REJECTS_KEY = dg.AssetKey([SILVER, DEVICE_READING_REJECTS])
DEVICE_SUITES = EXPECTATIONS_DIR / "devices"
GOLD_TABLES = (DEVICE_DAILY, DEVICE_ADHERENCE, DEVICE_ALERTS)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            DEVICE_READING_KEY,
            description=(
                "One row per device reading: metric with LOINC code, value in the metric's UCUM unit (the "
                "original value and unit kept), effective time and zone, plausibility flag, duplicate "
                "uploads counted, and the patient it is linked to (or `unlinked`)."
            ),
            group_name=DEVICE_GROUP,
            deps=[
                DEVICE_RECORDS_KEY,
                [SILVER, "observation"],
                [SILVER, "observation_component"],
                dg.AssetDep([SILVER, "device"], partition_mapping=dg.AllPartitionMapping()),
            ],
            automation_condition=REBUILD_WHEN_UPSTREAM_CHANGES,
        ),
        dg.AssetSpec(
            DEVICE_REJECTS_KEY,
            description="Device readings that could not be normalized (unknown unit, missing value, invalid "
            "time frame, ...): the record they came from and a reason.",
            group_name=DEVICE_GROUP,
            deps=[DEVICE_RECORDS_KEY],
            automation_condition=REBUILD_WHEN_UPSTREAM_CHANGES,
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            EXPECTATIONS_CHECK, asset=DEVICE_READING_KEY, description="Great Expectations suite"
        )
    ],
    partitions_def=patient_buckets(),
    can_subset=False,
)
def device_readings(context: dg.AssetExecutionContext, lake: LakeResource):
    """Read, normalize, flag, de-duplicate and link the device readings of one bucket."""
    settings = lake.settings()
    report = build_device_partition(settings.lake, context.partition_key, settings.buckets)
    yield dg.MaterializeResult(
        asset_key=DEVICE_READING_KEY,
        metadata={
            "records": report.records,
            "readings": report.readings,
            "implausible": report.implausible,
            "duplicates_removed": report.duplicates_removed,
            **{f"linked_{method}": count for method, count in sorted(report.links.items())},
        },
    )
    yield dg.MaterializeResult(
        asset_key=DEVICE_REJECTS_KEY,
        metadata={
            "rejects": sum(report.rejects.values()),
            **{f"reason_{k}": v for k, v in sorted(report.rejects.items())},
        },
    )
    yield _contract_check(settings.lake, SILVER, DEVICE_READING, context.partition_key, DEVICE_READING_KEY)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            [GOLD, table],
            description=description,
            group_name=DEVICE_GOLD_GROUP,
            automation_condition=REBUILD_WHEN_UPSTREAM_CHANGES,
            deps=[
                dg.AssetDep(DEVICE_READING_KEY, partition_mapping=dg.AllPartitionMapping()),
                dg.AssetDep([SILVER, "condition"], partition_mapping=dg.AllPartitionMapping()),
            ],
        )
        for table, description in (
            (
                DEVICE_DAILY,
                "Per patient, metric and local day: count, mean, min, max, first and last plausible value.",
            ),
            (
                DEVICE_ADHERENCE,
                "Per enrolled patient and metric: days with readings in the 30 days up to the as-of date.",
            ),
            (
                DEVICE_ALERTS,
                "Device alerts as trigger events (hypertensive urgency, sustained hypertension, hypo-/hyper"
                "glycemia, low SpO2, weight gain in heart failure) with the readings that fired them.",
            ),
        )
    ],
    check_specs=[
        dg.AssetCheckSpec(EXPECTATIONS_CHECK, asset=[GOLD, table], description="Great Expectations suite")
        for table in GOLD_TABLES
    ],
    partitions_def=patient_buckets(),
    can_subset=False,
)
def device_gold(context: dg.AssetExecutionContext, lake: LakeResource):
    """Daily aggregates, adherence and alerts of the patients of one bucket."""
    settings = lake.settings()
    report = build_device_gold(
        settings.lake, context.partition_key, settings.buckets, resolve_as_of(settings.as_of, settings.lake)
    )
    for table in GOLD_TABLES:
        metadata: dict[str, int] = {"rows": report.rows[table]}
        if table == DEVICE_ALERTS:
            metadata |= {f"alerts_{k}": v for k, v in report.alerts.items()}
        if table == DEVICE_ADHERENCE:
            metadata |= {"adherent": report.adherent, "enrolled_metrics": report.enrolled_metrics}
        yield dg.MaterializeResult(asset_key=[GOLD, table], metadata=metadata)
    for table in GOLD_TABLES:
        yield _contract_check(settings.lake, GOLD, table, context.partition_key, dg.AssetKey([GOLD, table]))


def _contract_check(
    lake: UPath, layer: str, table: str, partition: str, key: dg.AssetKey
) -> dg.AssetCheckResult:
    path = table_path(lake, layer, table) / f"bucket={partition}" / "data.parquet"
    return contract_check(path, table, DEVICE_SUITES, key, EXPECTATIONS_CHECK)
