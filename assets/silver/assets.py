"""Silver tables: one asset per ViewDefinition in data_contracts/views, partitioned by patient bucket."""

import dagster as dg

from assets.bronze.assets import FHIR_RESOURCES_KEY
from assets.partitions import patient_buckets
from assets.resources import LakeResource
from assets.scaling import BUCKET_POOL, BUCKET_STEP
from pipelines.silver.build import SILVER, TYPE_CONFLICTS, build_partition, read_partition
from pipelines.silver.expectations import check_table, load_suites
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
    partitions_def=patient_buckets(),
    can_subset=False,
    pool=BUCKET_POOL,
    op_tags=BUCKET_STEP,
)
def silver_tables(context: dg.AssetExecutionContext, lake: LakeResource):
    """Rebuild one bucket of every silver table from bronze: latest versions, deletions applied, views run."""
    report = build_partition(lake.settings().lake, context.partition_key)
    context.log.info(
        f"silver bucket {context.partition_key}: {report.resources} current resources, "
        f"{sum(report.rows.values())} rows, {sum(report.type_conflicts.values())} values with type conflicts"
    )
    for view in load_views():
        yield dg.MaterializeResult(
            asset_key=[SILVER, view.name],
            metadata={
                "rows": report.rows[view.name],
                "type_conflicts": sum(
                    n for k, n in report.type_conflicts.items() if k.startswith(f"{view.name}.")
                ),
            },
        )
    yield dg.MaterializeResult(
        asset_key=TYPE_CONFLICTS_KEY, metadata={"values_nulled": sum(report.type_conflicts.values())}
    )
    suites = load_suites()
    for view in load_views():
        if view.name not in suites:
            continue
        table = read_partition(lake.settings().lake, view.name, context.partition_key)
        outcome = check_table(view.name, table, suites[view.name])
        yield dg.AssetCheckResult(
            asset_key=[SILVER, view.name],
            check_name=EXPECTATIONS_CHECK,
            passed=outcome.success,
            metadata={"expectations_evaluated": outcome.evaluated, "failures": "; ".join(outcome.failures)},
        )
