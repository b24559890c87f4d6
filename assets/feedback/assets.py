"""Service-center conversations: silver `conversation_turn` per patient bucket, with its rejects."""

from collections import Counter

import dagster as dg

from assets.bronze.assets import FEEDBACK_RECORDS_KEY
from assets.contracts import contract_result
from assets.resources import LakeResource
from assets.steps import plan_step
from pipelines.feedback.conversations import (
    CONVERSATION_TURN,
    CONVERSATION_TURN_REJECTS,
    SILVER,
    build_conversation_partition,
)
from pipelines.gold.as_of import resolve_as_of
from pipelines.layout import patient_bucket_keys
from pipelines.parallel import bucket_workers, map_buckets
from pipelines.silver.expectations import EXPECTATIONS_DIR

FEEDBACK_GROUP = "feedback"
CONTRACT_CHECK = "contract"
TURN_KEY = dg.AssetKey([SILVER, CONVERSATION_TURN])
REJECTS_KEY = dg.AssetKey([SILVER, CONVERSATION_TURN_REJECTS])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            TURN_KEY,
            description="One row per turn of a service-center conversation (speaker, time, text) with the "
            "conversation's channel, agent, department, times and bot escalation.",
            group_name=FEEDBACK_GROUP,
            deps=[FEEDBACK_RECORDS_KEY],
        ),
        dg.AssetSpec(
            REJECTS_KEY,
            description="Conversations or turns that could not be read (unreadable transcript, no turns, "
            "unknown speaker), with the bronze record and a reason.",
            group_name=FEEDBACK_GROUP,
            deps=[FEEDBACK_RECORDS_KEY],
        ),
    ],
    check_specs=[dg.AssetCheckSpec(CONTRACT_CHECK, asset=TURN_KEY, blocking=True, description="GE suite")],
    can_subset=False,
)
def conversation_turns(context: dg.AssetExecutionContext, lake: LakeResource):
    """Decode the bronze transcripts into turns (the latest copy of each conversation), bucket by bucket."""
    settings = lake.settings()
    buckets = lake.buckets_of_lake()
    plan = plan_step(
        context,
        settings.lake,
        [(SILVER, CONVERSATION_TURN), (SILVER, CONVERSATION_TURN_REJECTS)],
        patient_bucket_keys(buckets),
        resolve_as_of(settings.as_of, settings.lake),
        buckets,
    )
    reports = map_buckets(
        build_conversation_partition,
        [(settings.lake, key) for key in plan.todo],
        bucket_workers(settings.lake, buckets, len(plan.todo)),
    )
    rejects: Counter[str] = Counter()
    for report in reports:
        rejects.update(report.rejects)
    step = plan.metadata(plan.todo)
    yield dg.MaterializeResult(
        asset_key=TURN_KEY,
        metadata={
            "conversations": sum(r.conversations for r in reports),
            "rows": sum(r.turns for r in reports),
            **step,
        },
    )
    yield dg.MaterializeResult(
        asset_key=REJECTS_KEY,
        metadata={**{f"rejected_{code}": n for code, n in sorted(rejects.items())}, **step},
    )
    yield contract_result(
        settings.lake,
        SILVER,
        CONVERSATION_TURN,
        EXPECTATIONS_DIR / "feedback",
        TURN_KEY,
        CONTRACT_CHECK,
        plan.todo,
    )
