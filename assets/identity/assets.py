"""Identity: the master patient index over every source (one global step, after silver)."""

import dagster as dg
from upath import UPath

from assets.contracts import contract_check
from assets.resources import LakeResource
from pipelines.identity.build import (
    CLERICAL_REVIEW,
    IDENTITY,
    PERSON,
    PERSON_ID_HISTORY,
    PERSON_LINK,
    TABLE_FILE,
    build_identity,
)
from pipelines.lake import table_path
from pipelines.silver.build import SILVER
from pipelines.silver.expectations import EXPECTATIONS_DIR

IDENTITY_GROUP = "identity"
CONTRACT_CHECK = "contract"
IDENTITY_SUITES = EXPECTATIONS_DIR / "identity"
SILVER_INPUTS = ("patient", "patient_name", "patient_identifier", "patient_telecom")
DESCRIPTIONS = {
    PERSON_LINK: "Source Patient record → person_id, with the rule (identifier, probabilistic, single "
    "record) and the match probability that linked it.",
    PERSON: "One golden record per person: per field the newest value from the most trusted source, with its "
    "source.",
    CLERICAL_REVIEW: "Pairs in the grey zone between the review and auto-link thresholds, with both records' "
    "values and the comparison level per field.",
    PERSON_ID_HISTORY: "Every person_id created, merged or split, and when.",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            [IDENTITY, table],
            description=description,
            group_name=IDENTITY_GROUP,
            deps=[
                dg.AssetDep([SILVER, view], partition_mapping=dg.AllPartitionMapping())
                for view in SILVER_INPUTS
            ],
            automation_condition=dg.AutomationCondition.eager(),
        )
        for table, description in DESCRIPTIONS.items()
    ],
    check_specs=[
        dg.AssetCheckSpec(CONTRACT_CHECK, asset=[IDENTITY, table], blocking=True, description="GE suite")
        for table in (PERSON_LINK, PERSON)
    ],
    can_subset=False,
)
def identity_tables(context: dg.AssetExecutionContext, lake: LakeResource):
    """Link every source Patient to a person (identifiers, then Fellegi-Sunter with Splink), keeping
    existing person_ids, and build the golden records."""
    settings = lake.settings()
    report = build_identity(settings.lake)
    context.log.info(
        f"identity: {report.records} records, {report.persons} persons, "
        f"{report.clerical_review} pairs to review"
    )
    yield dg.MaterializeResult(
        asset_key=[IDENTITY, PERSON_LINK],
        metadata={"records": report.records, **{f"rule_{k}": v for k, v in report.links_by_rule.items()}},
    )
    yield dg.MaterializeResult(asset_key=[IDENTITY, PERSON], metadata={"persons": report.persons})
    yield dg.MaterializeResult(
        asset_key=[IDENTITY, CLERICAL_REVIEW], metadata={"pairs": report.clerical_review}
    )
    yield dg.MaterializeResult(
        asset_key=[IDENTITY, PERSON_ID_HISTORY], metadata={f"events_{k}": v for k, v in report.events.items()}
    )
    for table in (PERSON_LINK, PERSON):
        yield _contract(settings.lake, table)


def _contract(lake: UPath, table: str) -> dg.AssetCheckResult:
    path = table_path(lake, IDENTITY, table) / TABLE_FILE
    return contract_check(path, table, IDENTITY_SUITES, dg.AssetKey([IDENTITY, table]), CONTRACT_CHECK)


IDENTITY_JOB = "identity_job"
identity_job = dg.define_asset_job(
    IDENTITY_JOB,
    selection=dg.AssetSelection.groups(IDENTITY_GROUP),
    description="Silver patients of every bucket → person_link, person, clerical_review, person_id_history.",
)
