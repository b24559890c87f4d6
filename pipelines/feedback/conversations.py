"""Silver `conversation_turn`: one row per turn of a service-center conversation, with the conversation's
channel, agent, department, times and bot escalation on every row.

The transcript JSON kept in bronze `raw` is decoded in one vectorized pass with a declared schema; a
conversation whose JSON no longer decodes, or that has no turns, goes to `conversation_turn_rejects` with
a reason, and so does a turn with no speaker. A conversation sent again (the same id in a later ingest)
replaces the earlier one. Text is kept as written: whether it can be scored is decided by the sentiment
layer, which marks empty, non-text and non-English turns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl
from upath import UPath

from pipelines.bronze.tables import BRONZE, FEEDBACK_RECORDS, INGEST_LOG
from pipelines.fhir.resource_types import PATIENT_REFERENCE_PATTERN
from pipelines.fhir.times import fhir_timestamp
from pipelines.lake import parquet_files, scan_table, table_path, write_parquet_atomic

SILVER = "silver"
CONVERSATION_TURN = "conversation_turn"
CONVERSATION_TURN_REJECTS = "conversation_turn_rejects"
PARTITION_FILE = "data.parquet"
SPEAKERS = ("patient", "agent", "bot")
_TRANSCRIPT = pl.Struct(
    {
        "conversation_id": pl.String,
        "patient_source": pl.String,
        "patient_reference": pl.String,
        "channel": pl.String,
        "agent_id": pl.String,
        "department": pl.String,
        "started_at": pl.String,
        "ended_at": pl.String,
        "escalated_from_bot": pl.Boolean,
        "turns": pl.List(
            pl.Struct({"turn": pl.Int64, "speaker": pl.String, "at": pl.String, "text": pl.String})
        ),
    }
)
TURN_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "conversation_id": pl.String(),
    "patient_source": pl.String(),
    "patient_id": pl.String(),
    "channel": pl.String(),  # chat | voice | bot
    "agent_id": pl.String(),  # null for bot-only conversations
    "department": pl.String(),
    "started_at": pl.Datetime("us", "UTC"),
    "ended_at": pl.Datetime("us", "UTC"),
    "escalated_from_bot": pl.Boolean(),
    "turn": pl.Int64(),
    "speaker": pl.String(),  # patient | agent | bot
    "at": pl.Datetime("us", "UTC"),
    "text": pl.String(),
}
REJECT_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "file": pl.String(),
    "line": pl.Int64(),
    "record_id": pl.String(),
    "turn": pl.Int64(),
    "reason_code": pl.String(),
    "reason": pl.String(),
}


@dataclass
class ConversationReport:
    """Counts of one partition's build (no text)."""

    partition: str
    conversations: int = 0
    turns: int = 0
    rejects: dict[str, int] = field(default_factory=dict)


def _bronze(lake: UPath, partition: str) -> pl.DataFrame:
    if not parquet_files(table_path(lake, BRONZE, FEEDBACK_RECORDS) / f"bucket={partition}"):
        return pl.DataFrame(
            schema={
                "source": pl.String,
                "file": pl.String,
                "line": pl.Int64,
                "record_format": pl.String,
                "record_id": pl.String,
                "raw": pl.String,
                "ingested_at": pl.Datetime("us", "UTC"),
            }
        )
    ingested = scan_table(lake, BRONZE, INGEST_LOG).select(
        "ingest_key", pl.col("finished_at").alias("ingested_at")
    )
    return (
        scan_table(lake, BRONZE, FEEDBACK_RECORDS)
        .filter((pl.col("bucket") == partition) & (pl.col("record_format") == "conversation"))
        .join(ingested.unique("ingest_key"), on="ingest_key", how="left")
        .select("source", "file", "line", "record_format", "record_id", "raw", "ingested_at")
        .collect()
    )


def conversation_turns(records: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Turn rows and rejects from bronze conversation records (the latest copy of each conversation)."""
    latest = records.sort("ingested_at", "file", "line", nulls_last=False).unique(
        "record_id", keep="last", maintain_order=True
    )
    decoded = latest.with_columns(_decoded(latest["raw"]).alias("_c"))
    unreadable = decoded.filter(pl.col("_c").is_null() | pl.col("_c").struct.field("turns").is_null())
    no_turns = decoded.filter(
        pl.col("_c").is_not_null() & (pl.col("_c").struct.field("turns").list.len() == 0)
    )
    readable = decoded.filter(pl.col("_c").struct.field("turns").list.len() > 0)
    rejects = [
        _rejects(unreadable, "unreadable_transcript", "the transcript does not decode as a conversation"),
        _rejects(no_turns, "no_turns", "the conversation has no turns"),
    ]
    conversation = pl.col("_c").struct
    rows = (
        readable.select(
            "source",
            "file",
            "line",
            "record_id",
            conversation.field("conversation_id"),
            conversation.field("patient_source"),
            conversation.field("patient_reference")
            .str.extract(PATIENT_REFERENCE_PATTERN, 1)
            .alias("patient_id"),
            conversation.field("channel"),
            conversation.field("agent_id"),
            conversation.field("department"),
            fhir_timestamp(conversation.field("started_at")).alias("started_at"),
            fhir_timestamp(conversation.field("ended_at")).alias("ended_at"),
            conversation.field("escalated_from_bot").fill_null(False),
            conversation.field("turns"),
        )
        .explode("turns")
        .with_columns(
            pl.col("turns").struct.field("turn"),
            pl.col("turns").struct.field("speaker").str.to_lowercase(),
            fhir_timestamp(pl.col("turns").struct.field("at")).alias("at"),
            pl.col("turns").struct.field("text"),
        )
    )
    bad_speaker = ~pl.col("speaker").is_in(list(SPEAKERS)) | pl.col("speaker").is_null()
    rejects.append(
        _rejects(
            rows.filter(bad_speaker),
            "unknown_speaker",
            "the turn has no speaker or one other than patient, agent or bot",
            turn=True,
        )
    )
    turns = rows.filter(~bad_speaker).select([pl.col(n).cast(t) for n, t in TURN_SCHEMA.items()])
    return turns.sort("conversation_id", "turn"), pl.concat(rejects, how="vertical_relaxed")


def _decoded(raw: pl.Series) -> pl.Series:
    """The transcripts decoded with the declared schema. Bronze accepted every line as JSON, so one pass
    normally decodes all; if a transcript no longer fits (a field of another type), the batch is decoded
    one transcript at a time and the misfits become null (then rejected with a reason)."""
    try:
        return raw.str.json_decode(_TRANSCRIPT)
    except pl.exceptions.ComputeError:
        values = []
        for text in raw.to_list():  # the error path only: one bad transcript among a batch
            try:
                values.append(pl.Series([text]).str.json_decode(_TRANSCRIPT)[0])
            except pl.exceptions.ComputeError:
                values.append(None)
        return pl.Series(values, dtype=_TRANSCRIPT)


def _rejects(frame: pl.DataFrame, code: str, reason: str, turn: bool = False) -> pl.DataFrame:
    return frame.select(
        "source",
        "file",
        "line",
        "record_id",
        (pl.col("turn") if turn else pl.lit(None, pl.Int64)).alias("turn"),
        pl.lit(code).alias("reason_code"),
        pl.lit(reason).alias("reason"),
    ).select([pl.col(n).cast(t) for n, t in REJECT_SCHEMA.items()])


def build_conversation_partition(lake: UPath, partition: str) -> ConversationReport:
    """Rebuild `conversation_turn` and its rejects for one bronze partition."""
    report = ConversationReport(partition)
    records = _bronze(lake, partition)
    turns, rejects = conversation_turns(records)
    write_parquet_atomic(
        turns, table_path(lake, SILVER, CONVERSATION_TURN) / f"bucket={partition}" / PARTITION_FILE
    )
    write_parquet_atomic(
        rejects, table_path(lake, SILVER, CONVERSATION_TURN_REJECTS) / f"bucket={partition}" / PARTITION_FILE
    )
    report.conversations = turns["conversation_id"].n_unique()
    report.turns = turns.height
    report.rejects = dict(rejects.group_by("reason_code").len().iter_rows())
    return report
