"""Identity: the master patient index over every source (one global step, after silver)."""

import dagster as dg
from upath import UPath

from assets.contracts import contract_check
from assets.resources import LakeResource
from assets.steps import plan_whole_step, unchanged_results
from pipelines.identity.build import (
    CLERICAL_REVIEW,
    IDENTITY,
    PERSON,
    PERSON_ID_HISTORY,
    PERSON_LINK,
    TABLE_FILE,
    build_identity,
)
from pipelines.identity.decisions import decided_since_last_build
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
    CLERICAL_REVIEW: "Pairs awaiting a person's decision (the grey zone between the review and auto-link "
    "thresholds, and pairs a rule keeps from linking automatically: possible twins, a Jr. and a Sr., a name "
    "change), with the reason, both records' values and the comparison level per field.",
    PERSON_ID_HISTORY: "Every person_id created, merged or split, and when.",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            [IDENTITY, table],
            description=description,
            group_name=IDENTITY_GROUP,
            deps=[dg.AssetDep([SILVER, view]) for view in SILVER_INPUTS],
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
    plan = plan_whole_step(context, lake)
    if not plan.todo and decided_since_last_build(settings.lake):
        plan.todo = [None]  # a reviewer's decision changes persons though silver did not change
    if not plan.todo:
        yield from unchanged_results(context)
        return
    report = build_identity(settings.lake)
    context.log.info(
        f"identity: {report.records} records, {report.persons} persons, "
        f"{report.clerical_review} pairs to review, {report.kept_apart} pairs kept apart by a rule or "
        f"a decision"
    )
    metadata = {
        PERSON_LINK: {"rows": report.records, **{f"rule_{k}": v for k, v in report.links_by_rule.items()}},
        PERSON: {"rows": report.persons},
        CLERICAL_REVIEW: {
            "rows": report.clerical_review,
            "kept_apart": report.kept_apart,
            **{f"decisions_{k}": v for k, v in report.decisions.items()},
        },
        PERSON_ID_HISTORY: {f"events_{k}": v for k, v in report.events.items()},
    }
    for table, values in metadata.items():  # each table says whether it changed: gold follows only then
        yield dg.MaterializeResult(
            asset_key=[IDENTITY, table], metadata={**values, **plan.metadata([None], [(IDENTITY, table)])}
        )
    for table in (PERSON_LINK, PERSON):
        yield _contract(settings.lake, table)


def _contract(lake: UPath, table: str) -> dg.AssetCheckResult:
    path = table_path(lake, IDENTITY, table) / TABLE_FILE
    return contract_check(path, table, IDENTITY_SUITES, dg.AssetKey([IDENTITY, table]), CONTRACT_CHECK)
