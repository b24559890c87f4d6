"""Gold person tables: the 360 view and the timeline (global: a person's records span buckets)."""

import dagster as dg

from assets.contracts import contract_check
from assets.resources import LakeResource
from pipelines.gold.as_of import resolve_as_of
from pipelines.gold.patient_360 import PATIENT_360, build_patient_360
from pipelines.gold.timeline import TIMELINE, build_timeline
from pipelines.identity.build import IDENTITY, PERSON, PERSON_LINK
from pipelines.lake import table_path, write_parquet_atomic
from pipelines.silver.expectations import EXPECTATIONS_DIR

GOLD = "gold"
PERSON_GROUP = "gold_person"
CONTRACT_CHECK = "contract"
GOLD_SUITES = EXPECTATIONS_DIR / "gold"
TABLE_FILE = "data.parquet"
_ALL = dg.AllPartitionMapping()
_DEPS = [
    dg.AssetDep([IDENTITY, PERSON_LINK]),
    dg.AssetDep([IDENTITY, PERSON]),
    *[
        dg.AssetDep(["silver", table], partition_mapping=_ALL)
        for table in (
            "patient",
            "patient_telecom",
            "consent",
            "encounter",
            "coverage",
            "condition",
            "medication_request",
            "observation",
            "observation_component",
            "procedure",
            "immunization",
            "appointment",
            "communication",
            "questionnaire_response_item",
        )
    ],
    *[dg.AssetDep([GOLD, table], partition_mapping=_ALL) for table in ("device_adherence", "device_alerts")],
]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            [GOLD, PATIENT_360],
            description="One row per person: demographics and age, contact and per-channel consent, PCP, "
            "coverage, problems and chronic flags, medications, latest results, utilization, appointments, "
            "device adherence and alerts (see data_contracts/gold/README.md).",
            group_name=PERSON_GROUP,
            deps=_DEPS,
            automation_condition=dg.AutomationCondition.eager(),
        ),
        dg.AssetSpec(
            [GOLD, TIMELINE],
            description="The patient's story: one dated event per row (encounters, conditions, results, "
            "procedures, immunizations, medications, messages, surveys, device alerts).",
            group_name=PERSON_GROUP,
            deps=_DEPS,
            automation_condition=dg.AutomationCondition.eager(),
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(CONTRACT_CHECK, asset=[GOLD, table], blocking=True, description="GE suite")
        for table in (PATIENT_360, TIMELINE)
    ],
    can_subset=False,
)
def person_tables(context: dg.AssetExecutionContext, lake: LakeResource):
    """Build the 360 view and the timeline of every person as of the configured (or the data's) date."""
    settings = lake.settings()
    as_of = resolve_as_of(settings.as_of, settings.lake)
    view = build_patient_360(settings.lake, as_of)
    timeline = build_timeline(settings.lake, as_of)
    for table, frame in ((PATIENT_360, view), (TIMELINE, timeline)):
        path = table_path(settings.lake, GOLD, table) / TABLE_FILE
        write_parquet_atomic(frame, path)
        yield dg.MaterializeResult(
            asset_key=[GOLD, table], metadata={"rows": frame.height, "as_of": str(as_of)}
        )
    for table in (PATIENT_360, TIMELINE):
        path = table_path(settings.lake, GOLD, table) / TABLE_FILE
        yield contract_check(path, table, GOLD_SUITES, dg.AssetKey([GOLD, table]), CONTRACT_CHECK)


PERSON_JOB = "gold_person_job"
person_job = dg.define_asset_job(
    PERSON_JOB,
    selection=dg.AssetSelection.groups(PERSON_GROUP),
    description="Identity and silver → gold patient_360 and timeline.",
)
