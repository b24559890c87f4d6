"""Column contracts of the bronze tables (what each reader returns and what lands in the lake).

Readers return only the record-level columns; `ingest` adds the provenance columns shared by every
bronze table (source, file, file_sha256, ingest_key, ingest_run_id) and the `bucket` partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

FHIR_RESOURCES = "fhir_resources"
DEVICE_RECORDS = "device_records"
FEEDBACK_RECORDS = "feedback_records"
OUTREACH_EVENTS = "outreach_events"
QUARANTINE = "quarantine"
INGEST_LOG = "ingest_log"
UNRECOGNIZED_TABLE = "unrecognized"  # target of files whose format could not be recognized
BRONZE = "bronze"

PROVENANCE_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "file": pl.String(),
    "file_sha256": pl.String(),
    "ingest_key": pl.String(),
    "ingest_run_id": pl.String(),
}
"""Where a record came from: landing source folder, file path relative to landing, content hash, the
key that identifies the delivery (see `ingest.ingest_key`), run."""

POSITION_SCHEMA: dict[str, pl.DataType] = {
    "line": pl.Int64(),  # 1-based physical line in NDJSON/CSV files; null for JSON documents
    "entry": pl.Int64(),  # 0-based entry / list index inside a JSON document; null for plain NDJSON
}

FHIR_RECORD_SCHEMA: dict[str, pl.DataType] = {
    **POSITION_SCHEMA,
    "operation": pl.String(),  # 'upsert' for a resource, 'delete' for a Bulk `deleted[]` / DELETE entry
    "resource_type": pl.String(),
    "resource_id": pl.String(),
    "version_id": pl.String(),
    "last_updated": pl.Datetime("us", "UTC"),
    "patient_key": pl.String(),  # 'Patient/<id>' in the source's own id space, null if none
    "raw": pl.String(),  # the resource JSON as received (Bundle urn:uuid references resolved)
}

DEVICE_RECORD_SCHEMA: dict[str, pl.DataType] = {
    **POSITION_SCHEMA,
    "record_format": pl.String(),  # openmhealth | ihealth | withings | fitbit | device_csv | apple_health |
    # device_enrolment
    "record_type": pl.String(),  # OMH schema name, vendor list name, CSV mapping name, HealthKit type,
    # 'enrolment'
    "record_id": pl.String(),  # OMH header.id, vendor item id (else file hash/list/position), CSV row id,
    # '<file hash>/<element>' for an Apple Health record, or '<vendor>/<user>/<device>' for enrolment
    "device_id": pl.String(),
    "patient_key": pl.String(),  # the device source's own user key (vendor user id)
    "payload_context": pl.String(),  # JSON of payload-level fields (units, paging) for list items
    "raw": pl.String(),
}

FEEDBACK_RECORD_SCHEMA: dict[str, pl.DataType] = {
    **POSITION_SCHEMA,
    "record_format": pl.String(),  # conversation
    "record_id": pl.String(),
    "patient_source": pl.String(),  # the landing source whose Patient ids `patient_key` uses
    "patient_key": pl.String(),
    "occurred_at": pl.Datetime("us", "UTC"),
    "raw": pl.String(),
}

OUTREACH_EVENT_SCHEMA: dict[str, pl.DataType] = {
    **POSITION_SCHEMA,
    "record_format": pl.String(),  # csv | ndjson
    "event_id": pl.String(),  # the vendor's id, else sha256 of the canonical content (see outreach_reader)
    "campaign_id": pl.String(),
    "run_id": pl.String(),
    "person_id": pl.String(),
    "source_identifier": pl.String(),  # system|value, e.g. an MRN
    "channel": pl.String(),  # sms | email | phone | mail
    "event": pl.String(),  # sent | delivered | bounced | opened | clicked | replied | opted-out |
    # called-no-answer | booked
    "occurred_at": pl.Datetime("us", "UTC"),
    "reply_keyword": pl.String(),  # STOP | START | HELP | OTHER, null without a reply (the text stays in raw)
    "patient_key": pl.String(),  # person_id, else source_identifier: what the writer buckets the row by
    "raw": pl.String(),  # the JSON line as received, or the CSV row as a JSON object of header → value
}
"""Outcomes of exported outreach campaigns as vendors deliver them (`outreach_reader`)."""

QUARANTINE_RECORD_SCHEMA: dict[str, pl.DataType] = {
    **POSITION_SCHEMA,
    "target_table": pl.String(),  # the bronze table the record was meant for
    "reason_code": pl.String(),  # machine-readable, e.g. invalid_json, unknown_resource_type
    "reason": pl.String(),  # human-readable detail; never carries record content
    "raw": pl.Binary(),  # the bytes as received (lossless even when not UTF-8)
}

RECORD_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    FHIR_RESOURCES: FHIR_RECORD_SCHEMA,
    DEVICE_RECORDS: DEVICE_RECORD_SCHEMA,
    FEEDBACK_RECORDS: FEEDBACK_RECORD_SCHEMA,
    OUTREACH_EVENTS: OUTREACH_EVENT_SCHEMA,
    QUARANTINE: QUARANTINE_RECORD_SCHEMA,
}

INGEST_LOG_SCHEMA: dict[str, pl.DataType] = {
    **PROVENANCE_SCHEMA,
    "file_bytes": pl.Int64(),
    "format": pl.String(),
    "target_table": pl.String(),
    "status": pl.String(),  # ingested | skipped (not data) | refused (may not be read) | released (records
    # taken out of quarantine once their Patient arrived; `detail` names the file's ingest key they came from)
    "records_in": pl.Int64(),
    "records_bronze": pl.Int64(),
    "records_quarantined": pl.Int64(),
    "blank_lines": pl.Int64(),
    "manifest_file": pl.String(),  # the Bulk manifest that listed this file, if any
    "manifest_transaction_time": pl.String(),
    "manifest_errors": pl.String(),  # JSON list of OperationOutcome diagnostics from manifest error[] files
    "detail": pl.String(),
    "started_at": pl.Datetime("us", "UTC"),
    "finished_at": pl.Datetime("us", "UTC"),
}


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with exactly this schema."""
    return pl.DataFrame(schema=schema)


def conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Select and cast `frame` to `schema`, adding absent columns as nulls."""
    if frame.width == 0:
        return empty(schema)
    if frame.schema == pl.Schema(schema):
        return frame
    return frame.select(
        [
            (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in schema.items()
        ]
    )


@dataclass
class ReadResult:
    """What a reader made of one landing file."""

    target_table: str
    records_in: int
    bronze: pl.DataFrame
    quarantine: pl.DataFrame
    blank_lines: int = 0
    # elements of a document that are not records the platform reads (an Apple Health export's workouts,
    # other record types, ...): counted by kind in the file's ingest_log `detail`, never stored
    skipped: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bronze = conform(self.bronze, RECORD_SCHEMAS.get(self.target_table, POSITION_SCHEMA))
        self.quarantine = conform(
            self.quarantine.with_columns(pl.lit(self.target_table).alias("target_table")),
            QUARANTINE_RECORD_SCHEMA,
        )

    @property
    def balanced(self) -> bool:
        """Accounting: every record in the file is either in bronze or in quarantine, once."""
        return self.records_in == self.bronze.height + self.quarantine.height


DOC = "doc"
"""Index of a document within a batch of documents read together (dropped before writing)."""


def quarantine_rows(rows: pl.DataFrame, reason_code: str | pl.Expr, reason: str | pl.Expr) -> pl.DataFrame:
    """Quarantine rows from a frame that has `line`, `entry` and `raw` (String or Binary), and `doc`
    when several documents are read as one batch."""
    code = pl.lit(reason_code) if isinstance(reason_code, str) else reason_code
    text = pl.lit(reason) if isinstance(reason, str) else reason
    return rows.select(
        *([pl.col(DOC)] if DOC in rows.columns else []),
        pl.col("line").cast(pl.Int64) if "line" in rows.columns else pl.lit(None, pl.Int64).alias("line"),
        pl.col("entry").cast(pl.Int64) if "entry" in rows.columns else pl.lit(None, pl.Int64).alias("entry"),
        code.alias("reason_code"),
        text.alias("reason"),
        pl.col("raw").cast(pl.Binary),
    )


def split_by_document(
    target_table: str, records_in: list[int], bronze: pl.DataFrame, quarantine: pl.DataFrame
) -> list[ReadResult]:
    """One ReadResult per document of a batch, from frames that carry the `doc` column."""
    bronze = conform(bronze, {DOC: pl.Int64(), **RECORD_SCHEMAS[target_table]})
    quarantine = conform(
        quarantine.with_columns(pl.lit(target_table).alias("target_table")),
        {DOC: pl.Int64(), **QUARANTINE_RECORD_SCHEMA},
    )
    bronze_parts = bronze.partition_by(DOC, as_dict=True, include_key=False)
    quarantine_parts = quarantine.partition_by(DOC, as_dict=True, include_key=False)
    empty_bronze, empty_quarantine = bronze.drop(DOC).clear(), quarantine.drop(DOC).clear()
    return [
        ReadResult(
            target_table,
            count,
            bronze_parts.get((doc,), empty_bronze),
            quarantine_parts.get((doc,), empty_quarantine),
        )
        for doc, count in enumerate(records_in)
    ]
