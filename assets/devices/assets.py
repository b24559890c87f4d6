"""Device feeds: silver `device_reading` per bucket, and the derived device tables per patient bucket."""

from collections import Counter

import dagster as dg

from assets.bronze.assets import DEVICE_RECORDS_KEY
from assets.contracts import contract_result
from assets.resources import LakeResource
from assets.scaling import BUCKET_POOL, BUCKET_STEP
from assets.silver.assets import EXPECTATIONS_CHECK
from assets.steps import plan_step
from pipelines.devices.build import DEVICE_READING, DEVICE_READING_REJECTS, build_device_partition
from pipelines.devices.gold import DEVICE_ADHERENCE, DEVICE_ALERTS, DEVICE_DAILY, GOLD, build_device_gold
from pipelines.gold.as_of import resolve_as_of
from pipelines.layout import patient_bucket_keys
from pipelines.parallel import bucket_workers, map_buckets
from pipelines.silver.build import SILVER
from pipelines.silver.expectations import EXPECTATIONS_DIR

DEVICE_GROUP = "devices"
DEVICE_GOLD_GROUP = "device_gold"
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
                [SILVER, "device"],
            ],
        ),
        dg.AssetSpec(
            DEVICE_REJECTS_KEY,
            description="Device readings that could not be normalized (unknown unit, missing value, invalid "
            "time frame, ...): the record they came from and a reason.",
            group_name=DEVICE_GROUP,
            deps=[DEVICE_RECORDS_KEY],
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            EXPECTATIONS_CHECK, asset=DEVICE_READING_KEY, description="Great Expectations suite"
        )
    ],
    can_subset=False,
    pool=BUCKET_POOL,
    op_tags=BUCKET_STEP,
)
def device_readings(context: dg.AssetExecutionContext, lake: LakeResource):
    """Read, normalize, flag, de-duplicate and link the device readings, bucket by bucket."""
    settings = lake.settings()
    buckets = lake.buckets_of_lake()
    as_of = resolve_as_of(settings.as_of, settings.lake)
    plan = plan_step(
        context,
        settings.lake,
        [(SILVER, DEVICE_READING), (SILVER, DEVICE_READING_REJECTS)],
        patient_bucket_keys(buckets),
        as_of,
        buckets,
        same_bucket=[(SILVER, "observation"), (SILVER, "observation_component")],
    )
    workers = bucket_workers(settings.lake, buckets, len(plan.todo))
    # readings dated past the as-of day are rejected here (future_date), so no gold table ever uses them
    reports = map_buckets(
        build_device_partition, [(settings.lake, key, buckets, as_of) for key in plan.todo], workers
    )
    links: Counter[str] = Counter()
    rejects: Counter[str] = Counter()
    for report in reports:
        links.update(report.links)
        rejects.update(report.rejects)
    step = plan.metadata(plan.todo)
    yield dg.MaterializeResult(
        asset_key=DEVICE_READING_KEY,
        metadata={
            "records": sum(r.records for r in reports),
            "rows": sum(r.readings for r in reports),
            "implausible": sum(r.implausible for r in reports),
            "duplicates_removed": sum(r.duplicates_removed for r in reports),
            **{f"linked_{method}": count for method, count in sorted(links.items())},
            **step,
        },
    )
    yield dg.MaterializeResult(
        asset_key=DEVICE_REJECTS_KEY,
        metadata={
            "rejects": sum(rejects.values()),
            **{f"reason_{k}": v for k, v in sorted(rejects.items())},
            **step,
        },
    )
    yield contract_result(
        settings.lake,
        SILVER,
        DEVICE_READING,
        DEVICE_SUITES,
        DEVICE_READING_KEY,
        EXPECTATIONS_CHECK,
        plan.todo,
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            [GOLD, table],
            description=description,
            group_name=DEVICE_GOLD_GROUP,
            deps=[
                DEVICE_READING_KEY,
                [SILVER, "condition"],
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
    can_subset=False,
    pool=BUCKET_POOL,
    op_tags=BUCKET_STEP,
)
def device_gold(context: dg.AssetExecutionContext, lake: LakeResource):
    """Daily aggregates, adherence and alerts of the patients, bucket by bucket."""
    settings = lake.settings()
    buckets = lake.buckets_of_lake()
    as_of = resolve_as_of(settings.as_of, settings.lake)
    plan = plan_step(
        context, settings.lake, [(GOLD, t) for t in GOLD_TABLES], patient_bucket_keys(buckets), as_of, buckets
    )
    workers = bucket_workers(settings.lake, buckets, len(plan.todo))
    reports = map_buckets(
        build_device_gold, [(settings.lake, key, buckets, as_of) for key in plan.todo], workers
    )
    alerts: Counter[str] = Counter()
    for report in reports:
        alerts.update(report.alerts)
    for table in GOLD_TABLES:
        metadata: dict[str, int | str | bool] = {"rows": sum(r.rows[table] for r in reports)}
        if table == DEVICE_ALERTS:
            metadata |= {f"alerts_{k}": v for k, v in sorted(alerts.items())}
        if table == DEVICE_ADHERENCE:
            metadata |= {
                "adherent": sum(r.adherent for r in reports),
                "enrolled_metrics": sum(r.enrolled_metrics for r in reports),
            }
        yield dg.MaterializeResult(asset_key=[GOLD, table], metadata=metadata | plan.metadata(plan.todo))
    for table in GOLD_TABLES:
        yield contract_result(
            settings.lake,
            GOLD,
            table,
            DEVICE_SUITES,
            dg.AssetKey([GOLD, table]),
            EXPECTATIONS_CHECK,
            plan.todo,
        )
