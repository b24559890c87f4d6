"""Service-center conversations → bronze/feedback_records (one conversation per JSON line)."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from pipelines.bronze.json_records import NO_PROBLEM, ndjson_records, parse_records, problem, split_by_problem
from pipelines.bronze.tables import FEEDBACK_RECORDS, ReadResult
from pipelines.fhir.resource_types import PATIENT_REFERENCE_PATTERN

CONVERSATION_KEY_SCHEMA = pa.schema(
    [
        ("conversation_id", pa.string()),
        ("patient_source", pa.string()),
        ("patient_reference", pa.string()),
        ("started_at", pa.string()),
    ]
)
CONVERSATION_STRING_PATHS = tuple((f.name,) for f in CONVERSATION_KEY_SCHEMA)


def read_conversations_ndjson(data: bytes) -> ReadResult:
    """Conversation transcripts; the text stays in `raw` and is read by the silver layer."""
    split, records, undecodable = ndjson_records(data)
    parsed, rejected = parse_records(
        records, CONVERSATION_KEY_SCHEMA, CONVERSATION_STRING_PATHS, payload=split.payload
    )
    keyed = parsed.with_columns(
        pl.lit("conversation").alias("record_format"),
        pl.col("conversation_id").alias("record_id"),
        pl.col("patient_source"),
        pl.concat_str(
            pl.lit("Patient/"), pl.col("patient_reference").str.extract(PATIENT_REFERENCE_PATTERN, 1)
        ).alias("patient_key"),
        pl.col("started_at")
        .str.to_datetime("%+", time_zone="UTC", time_unit="us", strict=False)
        .alias("occurred_at"),
    )
    missing = pl.col("record_id").is_null() | (pl.col("record_id") == "")
    bronze, bad = split_by_problem(
        keyed,
        pl.when(missing)
        .then(problem("missing_id", "the conversation has no conversation_id"))
        .otherwise(NO_PROBLEM),
    )
    return ReadResult(
        FEEDBACK_RECORDS,
        split.lines.height + split.invalid_utf8.height,
        bronze,
        pl.concat([undecodable, rejected, bad], how="vertical_relaxed"),
        blank_lines=split.blank_lines,
    )
