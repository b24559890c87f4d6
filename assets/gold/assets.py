"""Gold person tables, one person bucket per partition: the 360 view, timeline, care gaps, risk scores and
the readmission risk of recent discharges, sentiment, trigger events and segments; and the care-gap rates
over all buckets."""

from collections import Counter
from typing import Any

import dagster as dg

from assets.contracts import contract_result
from assets.resources import LakeResource
from assets.scaling import BUCKET_POOL, BUCKET_STEP
from assets.steps import plan_step, plan_whole_step, unchanged_results
from models.risk.score import DISCHARGE_RISK, RISK_FEATURES, RISK_SCORES
from models.sentiment.provenance import written_by_generator
from pipelines.gold.as_of import resolve_as_of
from pipelines.gold.build import (
    GOLD,
    build_care_gap_rates,
    build_person_bucket,
    deployed_model_versions,
)
from pipelines.gold.patient_360 import PATIENT_360
from pipelines.gold.sentiment import SENTIMENT_CONVERSATION, SENTIMENT_MESSAGE
from pipelines.gold.timeline import TIMELINE
from pipelines.identity.build import IDENTITY, PERSON, PERSON_LINK
from pipelines.layout import person_bucket_keys
from pipelines.measures.build import CARE_GAP_RATE_HISTORY, CARE_GAP_RATES, CARE_GAPS
from pipelines.parallel import bucket_workers, map_buckets
from pipelines.segments.build import SEGMENT_MEMBERSHIP, SEGMENT_SNAPSHOTS
from pipelines.segments.triggers import TRIGGER_EVENTS
from pipelines.silver.expectations import EXPECTATIONS_DIR

PERSON_GROUP = "gold_person"
SUMMARY_GROUP = "gold_summary"
CONTRACT_CHECK = "contract"
GOLD_SUITES = EXPECTATIONS_DIR / "gold"
# every bucket of gold reads every silver bucket that holds its persons' records: depend on them all
_READS = [
    dg.AssetDep([IDENTITY, PERSON_LINK]),
    dg.AssetDep([IDENTITY, PERSON]),
    *[
        dg.AssetDep(["silver", table])
        for table in (
            "patient",
            "patient_telecom",
            "patient_contact",
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
            "device_reading",
            "conversation_turn",
        )
    ],
    *[dg.AssetDep([GOLD, table]) for table in ("device_adherence", "device_alerts")],
]
_PERSON_TABLES: dict[str, tuple[str, list[Any]]] = {
    PATIENT_360: (
        "One row per person: demographics and age, contact and per-channel consent, PCP, coverage, problems "
        "and chronic flags, medications, latest results, utilization, appointments, device adherence and "
        "alerts, open care gaps (see data_contracts/gold/README.md).",
        _READS,
    ),
    TIMELINE: (
        "The patient's story: one dated event per row (encounters, conditions, results, procedures, "
        "immunizations, medications, messages, surveys, device alerts).",
        _READS,
    ),
    CARE_GAPS: (
        "One row per person per measure (HEDIS-aligned; not NCQA-certified): DEQM gap status, exclusion "
        "reason, the evidence that closed the gap or the last qualifying one, due date, days overdue, "
        "attributed PCP.",
        [[GOLD, PATIENT_360], *_READS],
    ),
    RISK_SCORES: (
        "One row per living person: the deployed model's calibrated probability of an ED visit or unplanned "
        "admission within 180 days, its tier by care-team capacity, the top factors in words, the model "
        "version; while no model is deployed, the Charlson baseline's points, tier and conditions.",
        [["models", "risk"], *_READS],
    ),
    RISK_FEATURES: (
        "The point-in-time feature values each person was scored with (drift and the dashboard's why).",
        [["models", "risk"], *_READS],
    ),
    DISCHARGE_RISK: (
        "One row per inpatient stay of a living person discharged in the last 30 days (its 30-day "
        "readmission window still open at the end of the as-of day): the deployed discharge model's "
        "calibrated probability of a readmission or ED visit within 30 days at the discharge, its tier, the "
        "top factors in words, the model version; while no discharge model is deployed, the LACE index's "
        "points, tier and components; and the day the patient came back to hospital, if they did.",
        [["models", "risk"], *_READS],
    ),
    SENTIMENT_MESSAGE: (
        "Every conversation turn, patient message and survey comment up to the as-of day; the patient's "
        "texts scored by the deployed sentiment model (label, score in [-1, 1], text status).",
        [["models", "sentiment"], *_READS],
    ),
    SENTIMENT_CONVERSATION: (
        "One row per service-center conversation: overall sentiment, start → end trajectory, escalation "
        "from the bot, resolution.",
        [[GOLD, SENTIMENT_MESSAGE]],
    ),
    TRIGGER_EVENTS: (
        "Discharges, new diagnoses, missed appointments, device alerts and negative surveys of the last 30 "
        "days, each fired once (the day it first fired is kept).",
        _READS,
    ),
    SEGMENT_MEMBERSHIP: (
        "Who is in which segment (data_contracts/segments), since when and until when.",
        [[GOLD, PATIENT_360], [GOLD, CARE_GAPS], [GOLD, TRIGGER_EVENTS]],
    ),
    SEGMENT_SNAPSHOTS: (
        "The day each static segment was frozen, with its member count.",
        [[GOLD, SEGMENT_MEMBERSHIP]],
    ),
}


def _contract_specs(*tables: str) -> list[dg.AssetCheckSpec]:
    """The blocking Great Expectations check of each table."""
    return [
        dg.AssetCheckSpec(CONTRACT_CHECK, asset=[GOLD, table], blocking=True, description="GE suite")
        for table in tables
    ]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            [GOLD, table],
            description=description,
            group_name=PERSON_GROUP,
            deps=deps,
        )
        for table, (description, deps) in _PERSON_TABLES.items()
    ],
    check_specs=_contract_specs(*_PERSON_TABLES),
    can_subset=False,
    pool=BUCKET_POOL,
    op_tags=BUCKET_STEP,
)
def person_tables(context: dg.AssetExecutionContext, lake: LakeResource):
    """Build every gold person table, person bucket by person bucket, as of the configured (or the
    data's) date, scored with the deployed models."""
    settings = lake.settings()
    as_of = resolve_as_of(settings.as_of, settings.lake)
    buckets = lake.buckets_of_lake()
    generated = written_by_generator(settings.landing)  # a model of generated texts scores only those
    plan = plan_step(
        context,
        settings.lake,
        [(GOLD, t) for t in _PERSON_TABLES],
        person_bucket_keys(buckets),
        as_of,
        buckets,
        models=deployed_model_versions(settings.lake, generated),
    )
    workers = bucket_workers(settings.lake, buckets, len(plan.todo))
    reports = map_buckets(
        build_person_bucket, [(settings.lake, key, buckets, as_of, generated) for key in plan.todo], workers
    )
    totals: dict[str, Counter[str]] = {"rows": Counter(), CARE_GAPS: Counter(), TRIGGER_EVENTS: Counter()}
    totals[SEGMENT_MEMBERSHIP] = Counter()
    for report in reports:
        totals["rows"].update(report.rows)
        totals[CARE_GAPS].update(report.open_gaps)
        totals[TRIGGER_EVENTS].update(report.new_triggers)
        totals[SEGMENT_MEMBERSHIP].update(report.members)
    extra = {
        CARE_GAPS: {f"open_{m}": n for m, n in sorted(totals[CARE_GAPS].items())},
        TRIGGER_EVENTS: {f"new_{k}": n for k, n in sorted(totals[TRIGGER_EVENTS].items())},
        SEGMENT_MEMBERSHIP: {f"members_{s}": n for s, n in sorted(totals[SEGMENT_MEMBERSHIP].items())},
    }
    step = plan.metadata(plan.todo)
    for table in _PERSON_TABLES:
        yield dg.MaterializeResult(
            asset_key=[GOLD, table],
            metadata={"rows": totals["rows"][table], "as_of": str(as_of), **extra.get(table, {}), **step},
        )
    for table in _PERSON_TABLES:
        yield contract_result(
            settings.lake, GOLD, table, GOLD_SUITES, dg.AssetKey([GOLD, table]), CONTRACT_CHECK, plan.todo
        )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            [GOLD, CARE_GAP_RATES],
            description="Per measure: eligible, exclusions, denominator, numerator and rate for the period, "
            "over every person bucket.",
            group_name=SUMMARY_GROUP,
            deps=[dg.AssetDep([GOLD, CARE_GAPS])],
        ),
        dg.AssetSpec(
            [GOLD, CARE_GAP_RATE_HISTORY],
            description="The care-gap rates of every as-of day run so far (trends); a re-run of a day "
            "replaces its rows.",
            group_name=SUMMARY_GROUP,
            deps=[[GOLD, CARE_GAPS]],
        ),
    ],
    check_specs=_contract_specs(CARE_GAP_RATES, CARE_GAP_RATE_HISTORY),
    can_subset=False,
)
def care_gap_rates(context: dg.AssetExecutionContext, lake: LakeResource):
    """Care-gap rates of the as-of day over every person bucket, and their history across runs."""
    settings = lake.settings()
    plan = plan_whole_step(context, lake)
    if not plan.todo:
        yield from unchanged_results(context)
        return
    rates = build_care_gap_rates(settings.lake)
    yield dg.MaterializeResult(
        asset_key=[GOLD, CARE_GAP_RATES],
        metadata={
            "measures": rates.height,
            **{
                f"rate_{m}": round(r, 4)
                for m, r in rates.select("measure_id", "rate").drop_nulls().iter_rows()
            },
        },
    )
    yield dg.MaterializeResult(asset_key=[GOLD, CARE_GAP_RATE_HISTORY])
    for table in (CARE_GAP_RATES, CARE_GAP_RATE_HISTORY):
        yield contract_result(
            settings.lake, GOLD, table, GOLD_SUITES, dg.AssetKey([GOLD, table]), CONTRACT_CHECK
        )
