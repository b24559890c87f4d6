"""Silver tables: one asset per ViewDefinition in data_contracts/views, stored by patient bucket."""

from collections import Counter

import dagster as dg

from assets.bronze.assets import FHIR_RESOURCES_KEY
from assets.contracts import contract_result
from assets.resources import LakeResource
from assets.scaling import BUCKET_POOL, BUCKET_STEP
from assets.steps import plan_step
from pipelines.gold.as_of import resolve_as_of
from pipelines.layout import patient_bucket_keys
from pipelines.parallel import bucket_workers, map_buckets
from pipelines.silver.build import SILVER, TYPE_CONFLICTS, build_partition
from pipelines.silver.expectations import EXPECTATIONS_DIR, load_suites
from pipelines.silver.views import load_views
from pipelines.sof.view import row_wise_columns

SILVER_GROUP = "silver"
TYPE_CONFLICTS_KEY = dg.AssetKey([SILVER, TYPE_CONFLICTS])
EXPECTATIONS_CHECK = "expectations"


def _check_specs() -> list[dg.AssetCheckSpec]:
    """One contract check per silver table that has a suite in data_contracts/expectations."""
    suites = load_suites()
    return [
        dg.AssetCheckSpec(
            EXPECTATIONS_CHECK, asset=[SILVER, view.name], description="Great Expectations suite"
        )
        for view in load_views()
        if view.name in suites
    ]


def _specs() -> list[dg.AssetSpec]:
    specs = [
        dg.AssetSpec(
            [SILVER, view.name],
            description=view.definition.get("description") or f"Rows of the {view.name} ViewDefinition.",
            group_name=SILVER_GROUP,
            deps=[FHIR_RESOURCES_KEY],
            metadata={
                "view_resource": view.view.resource,
                "columns": ", ".join(view.dtypes),
                "row_wise_columns": ", ".join(row_wise_columns(view.view)) or "none",
            },
        )
        for view in load_views()
    ]
    specs.append(
        dg.AssetSpec(
            TYPE_CONFLICTS_KEY,
            description="Per silver table and column: values that did not fit the declared type (nulled).",
            group_name=SILVER_GROUP,
            deps=[FHIR_RESOURCES_KEY],
        )
    )
    return specs


@dg.multi_asset(
    specs=_specs(),
    check_specs=_check_specs(),
    can_subset=False,
    pool=BUCKET_POOL,
    op_tags=BUCKET_STEP,
)
def silver_tables(context: dg.AssetExecutionContext, lake: LakeResource):
    """Rebuild the silver tables from bronze, bucket by bucket (the buckets the run needs, side by side
    when they are large): latest versions, deletions applied, views run."""
    settings = lake.settings()
    buckets = lake.buckets_of_lake()
    views = load_views()
    outputs = [(SILVER, v.name) for v in views] + [(SILVER, TYPE_CONFLICTS)]
    plan = plan_step(
        context,
        settings.lake,
        outputs,
        patient_bucket_keys(buckets),
        resolve_as_of(settings.as_of, settings.lake),
        buckets,
    )
    workers = bucket_workers(settings.lake, buckets, len(plan.todo))
    reports = map_buckets(build_partition, [(settings.lake, key) for key in plan.todo], workers)
    rows: Counter[str] = Counter()
    conflicts: Counter[str] = Counter()
    kept: Counter[str] = Counter()  # values of the wrong type converted, and values flagged (counts only)
    for report in reports:
        rows.update(report.rows)
        conflicts.update(report.type_conflicts)
        kept.update(report.type_coerced)
        kept.update(report.flagged)
    context.log.info(
        f"silver: {len(plan.todo)} of {len(plan.keys)} buckets rebuilt ({workers} process(es)), "
        f"{sum(r.resources for r in reports)} current resources, {sum(rows.values())} rows, "
        f"{sum(conflicts.values())} values with type conflicts"
    )
    step = plan.metadata(plan.todo)
    for view in views:
        yield dg.MaterializeResult(
            asset_key=[SILVER, view.name],
            metadata={
                "rows": rows[view.name],
                "type_conflicts": sum(n for k, n in conflicts.items() if k.startswith(f"{view.name}.")),
                **(plan.metadata(plan.todo, [(SILVER, view.name)]) if plan.incremental else step),
            },
        )
    yield dg.MaterializeResult(
        asset_key=TYPE_CONFLICTS_KEY,
        metadata={"values_nulled": sum(conflicts.values()), "values_kept": sum(kept.values()), **step},
    )
    suites = load_suites()
    for view in views:
        if view.name in suites:
            yield contract_result(
                settings.lake,
                SILVER,
                view.name,
                EXPECTATIONS_DIR,
                dg.AssetKey([SILVER, view.name]),
                EXPECTATIONS_CHECK,
                plan.todo,
            )
