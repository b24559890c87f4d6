"""`gold/sentiment_message` and `gold/sentiment_conversation` for the persons of one bucket.

Messages are what patients and the service center said: conversation turns (every turn is kept for
context, only the patient's are scored), messages patients sent (FHIR Communication with a Patient sender)
and survey comments. Each scored text carries the deployed sentiment model's label and score in [-1, 1]
and its text status (empty, non-text and non-English texts are marked, not scored).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import polars as pl
from upath import UPath

from models.sentiment.aggregate import (
    negative_themes,
    survey_scores,
    weekly_sentiment,
)
from pipelines.fhir.times import fhir_timestamp
from pipelines.gold.records import PersonRecords
from pipelines.lake import parquet_files, read_table, scan_table, table_path, write_parquet_atomic
from pipelines.silver.build import SILVER

GOLD = "gold"
REPORT_FILE = "data.parquet"
SENTIMENT_MESSAGE = "sentiment_message"
SENTIMENT_CONVERSATION = "sentiment_conversation"
CONVERSATION_SUMMARY = (
    "conversation_id",
    "department",
    "agent_id",
    "channel",
    "mean_score",
    "trajectory",
    "escalated",
    "resolved",
)
"""The columns that describe a conversation in a report or on the dashboard (worst conversations)."""
MESSAGE_SCHEMA: dict[str, pl.DataType] = {
    # conversation_turn/<conversation>/<turn>, Communication/<id> or QuestionnaireResponse/<id>
    "message_id": pl.String(),
    "kind": pl.String(),  # conversation_turn | patient_message | survey_comment
    "person_id": pl.String(),
    "at": pl.Datetime("us", "UTC"),
    "conversation_id": pl.String(),
    "conversation_started_at": pl.Datetime("us", "UTC"),
    "turn": pl.Int64(),
    "department": pl.String(),
    "agent_id": pl.String(),
    "channel": pl.String(),
    "escalated": pl.Boolean(),
    "speaker": pl.String(),  # patient | agent | bot
    "text": pl.String(),
    "text_status": pl.String(),  # ok | empty | not_text | not_english (null: not scored, e.g. agent turns)
    "label": pl.String(),
    "score": pl.Float64(),
    "model_version": pl.String(),
}


def _turns(records: PersonRecords) -> pl.DataFrame:
    turns = records.table("conversation_turn")
    if not turns.height or "turn" not in turns.columns:
        return pl.DataFrame(schema=MESSAGE_SCHEMA)
    return turns.select(
        pl.format("conversation_turn/{}/{}", "conversation_id", "turn").alias("message_id"),
        pl.lit("conversation_turn").alias("kind"),
        "person_id",
        "at",
        "conversation_id",
        pl.col("started_at").alias("conversation_started_at"),
        "turn",
        "department",
        "agent_id",
        "channel",
        pl.col("escalated_from_bot").alias("escalated"),
        "speaker",
        "text",
    )


def _patient_messages(records: PersonRecords) -> pl.DataFrame:
    messages = records.table("communication")
    if not messages.height or "payload_text" not in messages.columns:
        return pl.DataFrame(schema=MESSAGE_SCHEMA)
    return messages.filter(pl.col("sender_reference").str.starts_with("Patient/")).select(
        # resource ids are unique within their source only: two EHRs may both send Communication/1
        pl.format("{}:Communication/{}", "source", "id").alias("message_id"),
        pl.lit("patient_message").alias("kind"),
        "person_id",
        fhir_timestamp(pl.coalesce(pl.col("sent"), pl.col("received"))).alias("at"),
        pl.lit("patient").alias("speaker"),
        pl.col("payload_text").alias("text"),
    )


def _survey_comments(records: PersonRecords) -> pl.DataFrame:
    answers = records.table("questionnaire_response_item")
    if not answers.height or "item_link_id" not in answers.columns:
        return pl.DataFrame(schema=MESSAGE_SCHEMA)
    return answers.filter(pl.col("item_link_id") == "comment").select(
        pl.format("{}:QuestionnaireResponse/{}", "source", "questionnaire_response_id").alias("message_id"),
        pl.lit("survey_comment").alias("kind"),
        "person_id",
        fhir_timestamp(pl.col("authored")).alias("at"),
        pl.lit("patient").alias("speaker"),
        pl.col("answer_value_string").alias("text"),
    )


def build_sentiment_messages(
    records: PersonRecords, as_of: date, model: Any | None, version: str | None
) -> pl.DataFrame:
    """Every message of these persons up to the end of `as_of`, patients' texts scored with `model`
    (unscored when no model is deployed)."""
    end = pl.lit(datetime.combine(as_of + timedelta(days=1), time())).dt.replace_time_zone("UTC")
    frames = [f for f in (_turns(records), _patient_messages(records), _survey_comments(records)) if f.height]
    if not frames:
        return pl.DataFrame(schema=MESSAGE_SCHEMA)
    messages = (
        pl.concat(frames, how="diagonal_relaxed")
        .filter(pl.col("at").is_not_null() & (pl.col("at") < end))
        .with_row_index("_row")
    )
    scorable = messages.filter(pl.col("speaker") == "patient")
    if model is not None and scorable.height:
        scored = model.score(scorable["text"], scorable["kind"]).with_columns(
            scorable["_row"], pl.lit(version).alias("model_version")
        )
        messages = messages.join(
            scored.rename({"sentiment_label": "label", "sentiment_score": "score"}), on="_row", how="left"
        )
    missing = [pl.lit(None, t).alias(n) for n, t in MESSAGE_SCHEMA.items() if n not in messages.columns]
    return (
        messages.drop("_row")
        .with_columns(missing)
        .select([pl.col(n).cast(t) for n, t in MESSAGE_SCHEMA.items()])
        .sort("person_id", "at", "message_id")
    )


def with_latest_sentiment(view: pl.DataFrame, messages: pl.DataFrame) -> pl.DataFrame:
    """The 360 view with `latest_sentiment`: the score of the person's latest scored message."""
    latest = (
        messages.filter(pl.col("score").is_not_null())
        .sort("person_id", "at")
        .group_by("person_id")
        .agg(pl.col("score").last().alias("_latest"))
    )
    return (
        view.join(latest, on="person_id", how="left", maintain_order="left")
        .with_columns(pl.col("_latest").alias("latest_sentiment"))
        .drop("_latest")
    )


SENTIMENT_AGENT_WEEKLY = "sentiment_agent_weekly"
SENTIMENT_DEPARTMENT_WEEKLY = "sentiment_department_weekly"
SURVEY_SCORES = "survey_scores"
SENTIMENT_THEMES = "sentiment_themes"
REPORT_TABLES = (SENTIMENT_AGENT_WEEKLY, SENTIMENT_DEPARTMENT_WEEKLY, SURVEY_SCORES, SENTIMENT_THEMES)


def build_sentiment_reports(lake: UPath) -> dict[str, pl.DataFrame]:
    """The service-center and survey summaries over every person bucket, written as one file each."""
    columns = ["kind", "speaker", "at", "conversation_id", "agent_id", "department", "label", "score", "text"]
    messages = (
        scan_table(lake, GOLD, SENTIMENT_MESSAGE).select(columns).collect()
        if parquet_files(table_path(lake, GOLD, SENTIMENT_MESSAGE))
        else pl.DataFrame(schema={c: MESSAGE_SCHEMA[c] for c in columns})
    )
    answers = read_table(lake, SILVER, "questionnaire_response_item")
    ratings = (
        answers.filter(pl.col("item_link_id") == "rating").select(
            pl.col("answer_value_integer").alias("rating"), fhir_timestamp(pl.col("authored")).alias("at")
        )
        if answers.height and "item_link_id" in answers.columns
        else pl.DataFrame(schema={"rating": pl.Int64, "at": pl.Datetime("us", "UTC")})
    )
    negative = messages.filter((pl.col("label") == "negative") & (pl.col("speaker") == "patient"))
    reports = {
        SENTIMENT_AGENT_WEEKLY: weekly_sentiment(messages, "agent_id"),
        SENTIMENT_DEPARTMENT_WEEKLY: weekly_sentiment(messages, "department"),
        SURVEY_SCORES: survey_scores(ratings),
        SENTIMENT_THEMES: negative_themes(negative.sort("at")["text"].to_list()),
    }
    for table, frame in reports.items():
        write_parquet_atomic(frame, table_path(lake, GOLD, table) / REPORT_FILE)
    return reports
