"""Gold person tables: the 360 view, timeline, care gaps, trigger events and segments (global assets:
a person's records span buckets)."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import polars as pl
from upath import UPath

from assets.contracts import contract_check
from assets.resources import LakeResource
from pipelines.gold.as_of import resolve_as_of
from pipelines.gold.patient_360 import PATIENT_360, build_patient_360
from pipelines.gold.timeline import TIMELINE, build_timeline
from pipelines.identity.build import IDENTITY, PERSON, PERSON_LINK
from pipelines.lake import table_path, write_parquet_atomic
from pipelines.measures.build import CARE_GAP_RATES, CARE_GAPS, build_care_gaps
from pipelines.segments.build import SEGMENT_MEMBERSHIP, build_segments
from pipelines.segments.triggers import TRIGGER_EVENTS
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


def _spec(table: str, description: str, deps: list[Any]) -> dg.AssetSpec:
    """A gold person table: rebuilt whole when what it reads changes."""
    return dg.AssetSpec(
        [GOLD, table],
        description=description,
        group_name=PERSON_GROUP,
        deps=deps,
        automation_condition=dg.AutomationCondition.eager(),
    )


def _contracts(*tables: str) -> list[dg.AssetCheckSpec]:
    """The blocking Great Expectations check of each table."""
    return [
        dg.AssetCheckSpec(CONTRACT_CHECK, asset=[GOLD, table], blocking=True, description="GE suite")
        for table in tables
    ]


def _check(lake: UPath, *tables: str) -> Iterator[dg.AssetCheckResult]:
    """Run the contracts of the tables just written."""
    for table in tables:
        path = table_path(lake, GOLD, table) / TABLE_FILE
        yield contract_check(path, table, GOLD_SUITES, dg.AssetKey([GOLD, table]), CONTRACT_CHECK)


@dg.multi_asset(
    specs=[
        _spec(
            PATIENT_360,
            "One row per person: demographics and age, contact and per-channel consent, PCP, "
            "coverage, problems and chronic flags, medications, latest results, utilization, appointments, "
            "device adherence and alerts (see data_contracts/gold/README.md).",
            _DEPS,
        ),
        _spec(
            TIMELINE,
            "The patient's story: one dated event per row (encounters, conditions, results, "
            "procedures, immunizations, medications, messages, surveys, device alerts).",
            _DEPS,
        ),
    ],
    check_specs=_contracts(PATIENT_360, TIMELINE),
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
    yield from _check(settings.lake, PATIENT_360, TIMELINE)


@dg.multi_asset(
    specs=[
        _spec(
            CARE_GAPS,
            "One row per person per measure (HEDIS-aligned; not NCQA-certified): DEQM gap "
            "status, exclusion reason, the evidence that closed the gap or the last qualifying one, due "
            "date, days overdue, attributed PCP.",
            [
                [GOLD, PATIENT_360],
                *_DEPS,
                dg.AssetDep(["silver", "device_reading"], partition_mapping=_ALL),
            ],
        ),
        _spec(
            CARE_GAP_RATES,
            "Per measure: eligible, exclusions, denominator, numerator and rate for the period.",
            [[GOLD, PATIENT_360]],
        ),
    ],
    check_specs=_contracts(CARE_GAPS, CARE_GAP_RATES),
    can_subset=False,
)
def care_gap_tables(context: dg.AssetExecutionContext, lake: LakeResource):
    """Evaluate every measure in data_contracts/measures for every person as of the configured date."""
    settings = lake.settings()
    as_of = resolve_as_of(settings.as_of, settings.lake)
    gaps, rates = build_care_gaps(settings.lake, as_of)
    open_gaps = gaps.filter(pl.col("status") == "open-gap").group_by("measure_id").len().sort("measure_id")
    yield dg.MaterializeResult(
        asset_key=[GOLD, CARE_GAPS],
        metadata={
            "rows": gaps.height,
            **{f"open_{m}": n for m, n in open_gaps.iter_rows()},
            "as_of": str(as_of),
        },
    )
    yield dg.MaterializeResult(asset_key=[GOLD, CARE_GAP_RATES], metadata={"measures": rates.height})
    yield from _check(settings.lake, CARE_GAPS, CARE_GAP_RATES)


@dg.multi_asset(
    specs=[
        _spec(
            TRIGGER_EVENTS,
            "Discharges, new diagnoses, missed appointments, device alerts and negative surveys "
            "of the last 30 days, each fired once (the day it first fired is kept).",
            [[GOLD, PATIENT_360], *_DEPS],
        ),
        _spec(
            SEGMENT_MEMBERSHIP,
            "Who is in which segment (data_contracts/segments), since when and until when.",
            [[GOLD, PATIENT_360], [GOLD, CARE_GAPS], [GOLD, TRIGGER_EVENTS]],
        ),
    ],
    check_specs=_contracts(TRIGGER_EVENTS, SEGMENT_MEMBERSHIP),
    can_subset=False,
)
def segment_tables(context: dg.AssetExecutionContext, lake: LakeResource):
    """Fire new trigger events and re-evaluate every segment as of the configured date."""
    settings = lake.settings()
    as_of = resolve_as_of(settings.as_of, settings.lake)
    report = build_segments(settings.lake, as_of)
    yield dg.MaterializeResult(
        asset_key=[GOLD, TRIGGER_EVENTS], metadata={f"new_{k}": v for k, v in report.new_triggers.items()}
    )
    yield dg.MaterializeResult(
        asset_key=[GOLD, SEGMENT_MEMBERSHIP], metadata={f"members_{k}": v for k, v in report.members.items()}
    )
    yield from _check(settings.lake, TRIGGER_EVENTS, SEGMENT_MEMBERSHIP)


PERSON_JOB = "gold_person_job"
person_job = dg.define_asset_job(
    PERSON_JOB,
    selection=dg.AssetSelection.groups(PERSON_GROUP),
    description="Identity and silver → gold patient_360, timeline, care gaps, trigger events, segments.",
)
