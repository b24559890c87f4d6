"""Service-center conversations: silver `conversation_turn` per patient bucket, with its rejects."""

import dagster as dg

from assets.bronze.assets import FEEDBACK_RECORDS_KEY
from assets.contracts import contract_check
from assets.partitions import patient_buckets
from assets.resources import LakeResource
from pipelines.feedback.conversations import (
    CONVERSATION_TURN,
    CONVERSATION_TURN_REJECTS,
    PARTITION_FILE,
    SILVER,
    build_conversation_partition,
)
from pipelines.lake import table_path
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
            automation_condition=dg.AutomationCondition.eager(),
        ),
        dg.AssetSpec(
            REJECTS_KEY,
            description="Conversations or turns that could not be read (unreadable transcript, no turns, "
            "unknown speaker), with the bronze record and a reason.",
            group_name=FEEDBACK_GROUP,
            deps=[FEEDBACK_RECORDS_KEY],
            automation_condition=dg.AutomationCondition.eager(),
        ),
    ],
    check_specs=[dg.AssetCheckSpec(CONTRACT_CHECK, asset=TURN_KEY, blocking=True, description="GE suite")],
    partitions_def=patient_buckets(),
    can_subset=False,
)
def conversation_turns(context: dg.AssetExecutionContext, lake: LakeResource):
    """Decode the bronze transcripts of one bucket into turns (the latest copy of each conversation)."""
    settings = lake.settings()
    report = build_conversation_partition(settings.lake, context.partition_key)
    yield dg.MaterializeResult(
        asset_key=TURN_KEY, metadata={"conversations": report.conversations, "turns": report.turns}
    )
    yield dg.MaterializeResult(
        asset_key=REJECTS_KEY, metadata={f"rejected_{code}": n for code, n in sorted(report.rejects.items())}
    )
    path = (
        table_path(settings.lake, SILVER, CONVERSATION_TURN)
        / f"bucket={context.partition_key}"
        / PARTITION_FILE
    )
    yield contract_check(path, CONVERSATION_TURN, EXPECTATIONS_DIR / "feedback", TURN_KEY, CONTRACT_CHECK)


FEEDBACK_JOB = "conversation_silver_job"
feedback_job = dg.define_asset_job(
    FEEDBACK_JOB,
    selection=dg.AssetSelection.groups(FEEDBACK_GROUP),
    description="Bronze conversation transcripts → silver conversation_turn, one bucket.",
)
