"""The closed outreach loop: answers from outreach systems in (events, opt-outs, bounced contact points)
before the day's campaign runs; who each run assigned to which arm, and the measured effect on care gaps
with the funnel, after them. Thin assets over `pipelines/outreach/closed_loop.py`."""

import dagster as dg

from assets.contracts import contract_check
from assets.resources import LakeResource
from assets.steps import plan_whole_step, unchanged_results
from pipelines.gold.as_of import resolve_as_of
from pipelines.identity.build import IDENTITY, PERSON, PERSON_LINK
from pipelines.measures.build import CARE_GAPS
from pipelines.outreach.assignment import CAMPAIGN_ASSIGNMENT
from pipelines.outreach.closed_loop import (
    BRONZE_OUTREACH_EVENTS,
    EFFECT_TABLES,
    GOLD,
    RESPONSE_TABLES,
    build_campaign_assignment,
    build_campaign_effect,
    build_outreach_responses,
    gold_file,
)
from pipelines.outreach.effect import CAMPAIGN_EFFECT, CAMPAIGN_FUNNEL
from pipelines.outreach.responses import (
    COMMUNICATION_OPT_OUT,
    INVALID_CONTACT_POINT,
    OUTREACH_EVENTS,
    OUTREACH_EVENTS_QUARANTINE,
)
from pipelines.outreach.run import shipped_campaigns
from pipelines.silver.expectations import EXPECTATIONS_DIR

FEEDBACK_LOOP_GROUP = "outreach_feedback"
CONTRACT_CHECK = "contract"
EVERY_EVENT_ACCOUNTED = "every_event_resolved_or_quarantined"
HOLDOUT_UNTOUCHED = "holdout_not_contacted"
OUTREACH_LIST_KEY = dg.AssetKey(["exports", "outreach_list"])
_SUITES = EXPECTATIONS_DIR / "gold"
_DESCRIPTIONS = {
    OUTREACH_EVENTS: "Outcome events of our campaign runs (sent, delivered, bounced, opened, clicked, "
    "replied, opted-out, called-no-answer, booked) resolved to persons, runs and the contact point used.",
    OUTREACH_EVENTS_QUARANTINE: "Outcome events that could not be used, each with a reason (unknown "
    "campaign, run or person, duplicate, a held-out person, not on the run's list, dated after the "
    "as-of day).",
    COMMUNICATION_OPT_OUT: "Per person and channel, an opt-out in force received from an outreach system "
    "(STOP reply or opted-out event) with its source, file, line and time; every later export honours it.",
    INVALID_CONTACT_POINT: "Contact points whose latest news is a bounce: channel choice skips them.",
    CAMPAIGN_ASSIGNMENT: "Every campaign run's arms from the exports: contacted (with channel and contact "
    "point) or randomized hold-out, and each person's first assignment per campaign.",
    CAMPAIGN_EFFECT: "Per campaign with a hold-out and measure: gap-closure rates of contacted and held-out "
    "persons within the follow-up window, the difference with a 95 % interval, number needed to contact.",
    CAMPAIGN_FUNNEL: "Per campaign, arm and channel: assigned, sent, delivered, bounced, opened, clicked, "
    "replied, opted out, booked, gap closed; delivery and bounce rates.",
}


def _specs(tables: tuple[str, ...], deps: list[dg.AssetDep]) -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec([GOLD, t], description=_DESCRIPTIONS[t], group_name=FEEDBACK_LOOP_GROUP, deps=deps)
        for t in tables
    ]


def _contract_specs(tables: tuple[str, ...]) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(CONTRACT_CHECK, asset=[GOLD, t], blocking=True, description="GE suite")
        for t in tables
    ]


def _contracts(lake, tables: tuple[str, ...]):
    for table in tables:
        yield contract_check(
            gold_file(lake, table), table, _SUITES, dg.AssetKey([GOLD, table]), CONTRACT_CHECK
        )


@dg.multi_asset(
    specs=_specs(
        RESPONSE_TABLES,
        [
            dg.AssetDep(["bronze", BRONZE_OUTREACH_EVENTS]),
            dg.AssetDep([IDENTITY, PERSON]),
            dg.AssetDep([IDENTITY, PERSON_LINK]),
            dg.AssetDep(["silver", "patient_identifier"]),
        ],
    ),
    check_specs=[
        *_contract_specs(RESPONSE_TABLES),
        dg.AssetCheckSpec(
            EVERY_EVENT_ACCOUNTED,
            asset=[GOLD, OUTREACH_EVENTS],
            blocking=True,
            description="Every bronze outreach event is a resolved event or a quarantine row.",
        ),
    ],
    can_subset=False,
)
def outreach_responses(context: dg.AssetExecutionContext, lake: LakeResource):
    """Resolve the outcome events outreach systems delivered against our campaigns, runs (the exports
    written so far) and persons (events dated after the as-of day are quarantined); derive the
    per-channel opt-outs and the contact points that bounced, which the day's campaign runs then honour."""
    settings = lake.settings()
    plan = plan_whole_step(context, lake)
    if not plan.todo:
        yield from unchanged_results(context)
        return
    as_of = resolve_as_of(settings.as_of, settings.lake)  # events after it are never trusted
    tables = build_outreach_responses(settings.lake, settings.exports, shipped_campaigns(), as_of)
    bronze_rows = int(tables["bronze_rows"]["rows"][0])
    rejects = tables[OUTREACH_EVENTS_QUARANTINE]
    yield dg.MaterializeResult(
        asset_key=[GOLD, OUTREACH_EVENTS],
        metadata={"rows": tables[OUTREACH_EVENTS].height, "bronze_rows": bronze_rows},
    )
    yield dg.MaterializeResult(
        asset_key=[GOLD, OUTREACH_EVENTS_QUARANTINE],
        metadata={
            "rows": rejects.height,
            **{
                f"reason_{r}": n
                for r, n in rejects.group_by("reason_code").len().sort("reason_code").iter_rows()
            },
        },
    )
    for table in (COMMUNICATION_OPT_OUT, INVALID_CONTACT_POINT):
        yield dg.MaterializeResult(asset_key=[GOLD, table], metadata={"rows": tables[table].height})
    yield from _contracts(settings.lake, RESPONSE_TABLES)
    accounted = tables[OUTREACH_EVENTS].height + rejects.height
    yield dg.AssetCheckResult(
        asset_key=dg.AssetKey([GOLD, OUTREACH_EVENTS]),
        check_name=EVERY_EVENT_ACCOUNTED,
        passed=accounted == bronze_rows,
        metadata={"bronze": bronze_rows, "resolved_plus_quarantined": accounted},
    )


@dg.asset(
    key=[GOLD, CAMPAIGN_ASSIGNMENT],
    description=_DESCRIPTIONS[CAMPAIGN_ASSIGNMENT],
    group_name=FEEDBACK_LOOP_GROUP,
    deps=[dg.AssetDep(OUTREACH_LIST_KEY)],
    check_specs=_contract_specs((CAMPAIGN_ASSIGNMENT,)),
)
def campaign_assignment(context: dg.AssetExecutionContext, lake: LakeResource):
    """Read every campaign run's list and hold-out back from the exports into one table."""
    settings = lake.settings()
    plan = plan_whole_step(context, lake)
    if not plan.todo:
        yield from unchanged_results(context)
        return
    frame = build_campaign_assignment(settings.lake, settings.exports, shipped_campaigns())
    counts = frame.group_by("arm").len().sort("arm").iter_rows()
    yield dg.MaterializeResult(metadata={"rows": frame.height, **{f"arm_{a}": n for a, n in counts}})
    yield from _contracts(settings.lake, (CAMPAIGN_ASSIGNMENT,))


@dg.multi_asset(
    specs=_specs(
        EFFECT_TABLES,
        [
            dg.AssetDep([GOLD, CAMPAIGN_ASSIGNMENT]),
            dg.AssetDep([GOLD, OUTREACH_EVENTS]),
            dg.AssetDep([GOLD, OUTREACH_EVENTS_QUARANTINE]),
            dg.AssetDep([GOLD, CARE_GAPS]),
        ],
    ),
    check_specs=[
        *_contract_specs(EFFECT_TABLES),
        dg.AssetCheckSpec(
            HOLDOUT_UNTOUCHED,
            asset=[GOLD, CAMPAIGN_EFFECT],
            description="No outreach event names a held-out person (a contacted hold-out biases the effect).",
        ),
    ],
    can_subset=False,
)
def campaign_effect_tables(context: dg.AssetExecutionContext, lake: LakeResource):
    """Gap closure of contacted against held-out persons per campaign and measure, with its 95 % interval,
    and the outreach funnel per channel, as of the configured (or the data's) day."""
    settings = lake.settings()
    plan = plan_whole_step(context, lake)
    if not plan.todo:
        yield from unchanged_results(context)
        return
    as_of = resolve_as_of(settings.as_of, settings.lake)
    tables = build_campaign_effect(settings.lake, shipped_campaigns(), as_of)
    effect = tables[CAMPAIGN_EFFECT]
    yield dg.MaterializeResult(
        asset_key=[GOLD, CAMPAIGN_EFFECT],
        metadata={
            "rows": effect.height,
            "as_of": str(as_of),
            **{
                f"difference_{c}_{m}": round(d, 4)
                for c, m, d in effect.select("campaign_id", "measure_id", "difference")
                .drop_nulls()
                .iter_rows()
            },
        },
    )
    yield dg.MaterializeResult(
        asset_key=[GOLD, CAMPAIGN_FUNNEL], metadata={"rows": tables[CAMPAIGN_FUNNEL].height}
    )
    yield from _contracts(settings.lake, EFFECT_TABLES)
    contaminated = int(effect["holdout_contacted"].sum()) if effect.height else 0
    yield dg.AssetCheckResult(
        asset_key=dg.AssetKey([GOLD, CAMPAIGN_EFFECT]),
        check_name=HOLDOUT_UNTOUCHED,
        passed=contaminated == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"events_for_held_out_persons": contaminated},
    )
