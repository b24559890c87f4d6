"""Silver tables: one asset per ViewDefinition in data_contracts/views, partitioned by patient bucket."""

import dagster as dg

from assets.bronze.assets import FHIR_RESOURCES_KEY
from assets.partitions import patient_buckets
from assets.resources import LakeResource
from pipelines.silver.build import SILVER, TYPE_CONFLICTS, build_partition
from pipelines.silver.views import load_views

SILVER_GROUP = "silver"
TYPE_CONFLICTS_KEY = dg.AssetKey([SILVER, TYPE_CONFLICTS])


def _specs() -> list[dg.AssetSpec]:
    specs = [
        dg.AssetSpec(
            [SILVER, view.name],
            description=view.definition.get("description") or f"Rows of the {view.name} ViewDefinition.",
            group_name=SILVER_GROUP,
            deps=[FHIR_RESOURCES_KEY],
            metadata={"view_resource": view.view.resource, "columns": ", ".join(view.dtypes)},
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


@dg.multi_asset(specs=_specs(), partitions_def=patient_buckets(), can_subset=False)
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
