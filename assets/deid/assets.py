"""The de-identified analytics export (HIPAA Safe Harbor): every person table of gold with each column
kept, generalized, pseudonymized or dropped by `data_contracts/deid/policy.yaml`, scanned for residual
identifiers before it is published.

Materialized on demand (`deidentified_export_job`, `patient-insights deidentify`), not by the pipeline run:
it needs the secret salt `PATIENT_INSIGHTS_DEID_SALT`, and a data release is a decision, not a side effect.
"""

from collections.abc import Iterator

import dagster as dg

from assets.resources import DeidResource, LakeResource
from pipelines.deid.export import DEIDENTIFIED, ExportReport, export_deidentified
from pipelines.deid.rules import TablePolicy, load_policy
from pipelines.deid.transform import require_salt
from pipelines.gold.as_of import resolve_as_of
from pipelines.identity.build import IDENTITY, PERSON_LINK

DEID_GROUP = "deidentified"
NO_RESIDUAL_IDENTIFIERS = "no_residual_identifiers"
DEID_JOB = "deidentified_export_job"
POLICIES = load_policy()


def _deps(policy: TablePolicy) -> list[dg.AssetDep]:
    """The table it is made from (every bucket), and person_link for the tables linked to persons."""
    deps = [dg.AssetDep([policy.layer, policy.source_table])]
    if policy.link_persons:
        deps.append(dg.AssetDep([IDENTITY, PERSON_LINK]))
    return deps


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            [DEIDENTIFIED, name],
            description=f"{policy.layer}/{policy.source_table} de-identified (HIPAA Safe Harbor): "
            f"{len(policy.exported())} of {len(policy.columns)} columns exported, ids as keyed "
            "pseudonyms, dates as years, ZIP3, ages over 89 as 90+ (data_contracts/deid/policy.yaml).",
            group_name=DEID_GROUP,
            deps=_deps(policy),
        )
        for name, policy in POLICIES.items()
    ],
    check_specs=[
        dg.AssetCheckSpec(
            NO_RESIDUAL_IDENTIFIERS,
            asset=[DEIDENTIFIED, name],
            blocking=True,
            description="The scanner finds no residual identifier: columns as the policy says, no full "
            "date, e-mail, phone, SSN, ZIP5, record number, URL or IP, no name, id or contact of the "
            "identifiable tables (counts only).",
        )
        for name in POLICIES
    ],
    can_subset=False,
)
def deidentified_tables(lake: LakeResource, deid: DeidResource):
    """De-identify every exported table, scan it, and publish all of them only when nothing is found."""
    key = require_salt(deid.salt)  # before anything is read: no salt, no export
    settings = lake.settings()
    as_of = resolve_as_of(settings.as_of, settings.lake)
    report = export_deidentified(settings.lake, key, as_of, policies=POLICIES)
    if not report.published:
        yield from _checks(report)
        tables = sorted({f.table for f in report.findings})
        raise dg.Failure(
            description=f"residual identifiers in {len(tables)} table(s) ({', '.join(tables)}): nothing "
            f"was published; see the {NO_RESIDUAL_IDENTIFIERS} checks for columns and counts",
            metadata={"findings": sum(f.count for f in report.findings)},
        )
    for name, table in report.tables.items():
        yield dg.MaterializeResult(
            asset_key=[DEIDENTIFIED, name],
            metadata={
                "rows": table.rows,
                "columns": table.columns,
                "dropped_columns": table.dropped_columns,
                "as_of": str(as_of),
            },
        )
    yield from _checks(report)


def _checks(report: ExportReport) -> Iterator[dg.AssetCheckResult]:
    """One result per table: passed, or the count per column and check (never a value)."""
    for name, table in report.tables.items():
        yield dg.AssetCheckResult(
            asset_key=[DEIDENTIFIED, name],
            check_name=NO_RESIDUAL_IDENTIFIERS,
            passed=not table.findings,
            metadata={
                "findings": sum(f.count for f in table.findings),
                **{f"{f.column}:{f.check}": f.count for f in table.findings},
            },
        )


deidentified_export_job = dg.define_asset_job(
    DEID_JOB,
    selection=dg.AssetSelection.groups(DEID_GROUP),
    description="Gold person tables → the de-identified analytics export (on demand; needs "
    "PATIENT_INSIGHTS_DEID_SALT).",
)
