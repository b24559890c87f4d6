"""Outreach outcome files → bronze/outreach_events (one event per CSV row or JSON line).

Outreach vendors (SMS, e-mail, phone, mail) deliver what became of the campaign runs we exported. A source
folder whose `source.yaml` says `format: outreach_events` holds `*.csv` files (comma-separated, a header
row, UTF-8 with or without a BOM) and `*.ndjson` / `*.jsonl` files (one JSON object per line), each
possibly gzip-compressed. The CSV column names and JSON member names are the contract:

- `event_id` (optional): the vendor's unique id of the event; when absent or empty, bronze derives one
  (see below);
- `campaign_id`, `run_id` (required): our export's campaign and run, e.g. `breast_screening_reminder`,
  `2026-06-30`;
- `person_id`, `source_identifier` (at least one of them): the platform person id the export listed, or a
  source identifier `system|value` (e.g. an MRN, as the export's `source_identifiers`);
- `channel` (required): sms, email, phone or mail, in any case (stored lower case);
- `event` (required): sent, delivered, bounced, opened, clicked, replied, opted-out, called-no-answer or
  booked, in any case and with `_` for `-` (stored lower case and hyphenated);
- `occurred_at` (required): an ISO 8601 timestamp with `Z` or a UTC offset (stored in UTC); a local time
  without offset is ambiguous and refused, and so is a date alone;
- `reply_text` (optional): the patient's reply to a replied / opted-out event (e.g. "STOP"); free text, so
  it is kept only inside `raw` and summarized as `reply_keyword`;
- `detail` (optional): e.g. a bounce code; kept only inside `raw`.

Other fields are kept inside `raw` and otherwise ignored. In NDJSON every field is a JSON string (or null,
or absent); values are trimmed and an empty value counts as absent.

Derived columns:
- `event_id`, when the vendor gives none: the SHA-256 (64 hex digits) of the event's canonical content, the
  UTF-8 text joining `campaign_id`, `run_id`, `person_id`, `source_identifier`, `channel`, `event`,
  `occurred_at` with `|`, each as `<length in bytes>:<value>` (`-` when absent), values trimmed, channel and
  event normalized, `occurred_at` in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ`. The same event has the same id
  in every run and in a CSV or an NDJSON delivery alike. Bronze keeps every delivery of an event (it is
  lossless); de-duplication by `event_id` happens in gold.
- `reply_keyword`: STOP, START, HELP (the common US carrier SMS keywords, matched on the trimmed,
  upper-cased first line of the reply: a CSV field may hold line breaks), OTHER for any other reply, null
  without a reply.
- `patient_key`: `person_id`, else `source_identifier`; the writer buckets the table by it (with the
  landing source), like the patient key of every other per-patient bronze table.

Invalid events are quarantined with a reason that names fields, never values: `missing_field` (a
required field absent or empty), `missing_id` (neither person_id nor source_identifier), `invalid_id`
(source_identifier not `system|value`), `unknown_channel`, `unknown_event`, `invalid_timestamp`, and the
codes every line reader shares (`invalid_json`, `not_an_object`, `invalid_field_type`, `invalid_utf8`,
`malformed_csv_row`, `unclosed_quote`, `unrecognized_format` for a header without the required
columns). CSV records follow RFC 4180 (`csv_records`): a quoted reply may hold commas and line breaks.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from pipelines.bronze.device_reader import _csv_table
from pipelines.bronze.json_records import NO_PROBLEM, ndjson_records, parse_records, problem, split_by_problem
from pipelines.bronze.tables import OUTREACH_EVENTS, ReadResult, quarantine_rows

REQUIRED_FIELDS = ("campaign_id", "run_id", "channel", "event", "occurred_at")
PERSON_FIELDS = ("person_id", "source_identifier")
FIELDS = (
    "event_id",
    "campaign_id",
    "run_id",
    *PERSON_FIELDS,
    "channel",
    "event",
    "occurred_at",
    "reply_text",
)
"""The fields bronze reads; `detail` and any other field stay inside `raw` only."""
CANONICAL_FIELDS = ("campaign_id", "run_id", *PERSON_FIELDS, "channel", "event", "occurred_at")
"""What the derived event_id is the hash of (see the module docstring)."""

CHANNELS = ("sms", "email", "phone", "mail")
EVENTS = (
    "sent",
    "delivered",
    "bounced",
    "opened",
    "clicked",
    "replied",
    "opted-out",
    "called-no-answer",
    "booked",
)
REPLY_KEYWORDS: dict[str, tuple[str, ...]] = {
    "STOP": ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "OPT-OUT", "REVOKE"),
    "START": ("START", "UNSTOP", "YES", "SUBSCRIBE"),
    "HELP": ("HELP", "INFO"),
}
"""Reply keywords by what they ask for (common US carrier SMS practice); any other reply is OTHER."""

KEY_SCHEMA = pa.schema([(name, pa.string()) for name in FIELDS])
STRING_PATHS = tuple((name,) for name in FIELDS)
CANONICAL_TIME = "%Y-%m-%dT%H:%M:%S%.6fZ"

_DATE = r"\d{4}-\d{2}-\d{2}"
_TIME = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
_ISO_WITH_OFFSET = (
    rf"^(?<date>{_DATE})[Tt ](?<minutes>\d{{2}}:\d{{2}})(?<seconds>:\d{{2}})?(?:[.,](?<fraction>\d+))?"
    r"(?<offset>[Zz]|[+-]\d{2}(?::?\d{2})?)$"
)
_LOCAL_TIME = rf"^{_DATE}[Tt ]{_TIME}$"
_DATE_ONLY = rf"^{_DATE}$|^\d{{8}}$"
_SOURCE_IDENTIFIER = r"^[^|]*\S[^|]*\|.*\S"  # `system|value`, both non-blank (the value may hold `|`)


def read_outreach_events_csv(data: bytes) -> ReadResult:
    """An outreach outcome CSV: each data row is one event (`raw` = the row as a JSON object of strings).

    Undecodable records, records with a quote never closed or another number of fields than the header,
    and a header without the required columns are handled as in the device CSV readers
    (`device_reader._csv_table`, records split by `csv_records.split_csv_records`).
    """
    table = _csv_table(data, REQUIRED_FIELDS)
    quarantine = list(table.quarantine)
    bronze = pl.DataFrame()
    if table.rows is not None:
        rows = table.rows
        if not any(name in rows.columns for name in PERSON_FIELDS):
            reason = "the header lacks required columns: person_id or source_identifier (one of them)"
            quarantine.append(quarantine_rows(rows, "unrecognized_format", reason))
        else:
            fields = rows.select(
                "line",
                "entry",
                "raw",
                *[pl.col(f) if f in rows.columns else pl.lit(None, pl.String).alias(f) for f in FIELDS],
            )
            bronze, bad = _events(fields, "csv")
            quarantine.append(bad)
    return ReadResult(
        OUTREACH_EVENTS,
        table.records_in,
        bronze,
        pl.concat(quarantine, how="vertical_relaxed"),
        blank_lines=table.blank_lines,
    )


def read_outreach_events_ndjson(data: bytes) -> ReadResult:
    """An outreach outcome NDJSON file: each line is one event (`raw` = the line as received)."""
    split, records, undecodable = ndjson_records(data)
    parsed, rejected = parse_records(records, KEY_SCHEMA, STRING_PATHS, payload=split.payload)
    bronze, bad = _events(parsed, "ndjson")
    return ReadResult(
        OUTREACH_EVENTS,
        split.lines.height + split.invalid_utf8.height,
        bronze,
        pl.concat([undecodable, rejected, bad], how="vertical_relaxed"),
        blank_lines=split.blank_lines,
    )


def _events(fields: pl.DataFrame, record_format: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate and normalize events (`line`, `entry`, `raw` and one String column per field): bronze
    rows with the derived columns, and quarantine rows."""
    cleaned = fields.with_columns(_present(pl.col(f).str.strip_chars()).alias(f) for f in FIELDS)
    normalized = cleaned.with_columns(
        pl.lit(record_format).alias("record_format"),
        pl.col("channel").str.to_lowercase(),
        pl.col("event").str.to_lowercase().str.replace_all("_", "-", literal=True),
        _timestamp(pl.col("occurred_at")).alias("_occurred_at"),
        _reply_keyword(pl.col("reply_text")).alias("reply_keyword"),
        pl.coalesce(PERSON_FIELDS).alias("patient_key"),
    )
    bronze, bad = split_by_problem(normalized, _check())
    bronze = bronze.drop("occurred_at", "reply_text").rename({"_occurred_at": "occurred_at"})
    return _with_event_ids(bronze), bad


def _present(value: pl.Expr) -> pl.Expr:
    """The value, or null when it is empty."""
    return pl.when(value != "").then(value)


def _timestamp(text: pl.Expr) -> pl.Expr:
    """An ISO 8601 timestamp with `Z` or an offset (±HH:MM, ±HHMM, ±HH) as UTC; null for anything else."""
    parts = text.str.extract_groups(_ISO_WITH_OFFSET).struct
    offset = (
        parts.field("offset")
        .str.replace(r"^[Zz]$", "+00:00")
        .str.replace(r"^([+-]\d{2})$", "${1}:00")
        .str.replace(r"^([+-]\d{2})(\d{2})$", "${1}:${2}")
    )
    normalized = pl.concat_str(
        parts.field("date"),
        pl.lit("T"),
        parts.field("minutes"),
        pl.coalesce(parts.field("seconds"), pl.lit(":00")),
        pl.coalesce(pl.lit(".") + parts.field("fraction").str.slice(0, 9), pl.lit("")),  # to nanoseconds
        offset,
    )
    return normalized.str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%:z", time_zone="UTC", time_unit="us", strict=False
    )


def _reply_keyword(text: pl.Expr) -> pl.Expr:
    """STOP / START / HELP for a carrier keyword, OTHER for any other reply, null without one. The keyword
    is the reply's first line: phones and vendors add signatures and words on later lines ("STOP" then
    "please"), and an opt-out must not be lost to them."""
    word = text.str.strip_chars().str.extract(r"^([^\r\n]*)", 1).str.strip_chars().str.to_uppercase()
    keyword = pl.when(word.is_null() | (word == "")).then(pl.lit(None, pl.String))
    for name, words in REPLY_KEYWORDS.items():
        keyword = keyword.when(word.is_in(list(words))).then(pl.lit(name))
    return keyword.otherwise(pl.lit("OTHER"))


def _fault(code: str, reason: pl.Expr) -> pl.Expr:
    return pl.struct(pl.lit(code).alias("code"), reason.alias("reason"))


def _check() -> pl.Expr:
    """The first problem of an event (a code and a reason naming fields only), or null."""
    missing = pl.concat_str(
        [pl.when(pl.col(f).is_null()).then(pl.lit(f)) for f in REQUIRED_FIELDS],
        separator=", ",
        ignore_nulls=True,
    )
    occurred = pl.col("occurred_at")
    channels, events = ", ".join(CHANNELS), ", ".join(EVENTS)
    return (
        pl.when(missing != "")
        .then(_fault("missing_field", pl.format("required fields missing or empty: {}", missing)))
        .when(pl.all_horizontal(pl.col(f).is_null() for f in PERSON_FIELDS))
        .then(problem("missing_id", "the event has neither person_id nor source_identifier"))
        .when(
            pl.col("source_identifier").is_not_null()
            & ~pl.col("source_identifier").str.contains(_SOURCE_IDENTIFIER)
        )
        .then(problem("invalid_id", "source_identifier is not system|value"))
        .when(~pl.col("channel").is_in(list(CHANNELS)))
        .then(problem("unknown_channel", f"channel is not one of {channels}"))
        .when(~pl.col("event").is_in(list(EVENTS)))
        .then(problem("unknown_event", f"event is not one of {events}"))
        .when(occurred.str.contains(_DATE_ONLY))
        .then(problem("invalid_timestamp", "occurred_at is a date without a time of day"))
        .when(occurred.str.contains(_LOCAL_TIME))
        .then(problem("invalid_timestamp", "occurred_at has no UTC offset (an ambiguous local time)"))
        .when(pl.col("_occurred_at").is_null())
        .then(problem("invalid_timestamp", "occurred_at is not an ISO 8601 timestamp with a UTC offset"))
        .otherwise(NO_PROBLEM)
    )


def canonical_content() -> pl.Expr:
    """The text the derived event_id hashes (normalized fields, see the module docstring)."""
    parts = []
    for name in CANONICAL_FIELDS:
        value = pl.col(name).dt.strftime(CANONICAL_TIME) if name == "occurred_at" else pl.col(name)
        parts.append(
            pl.when(value.is_null())
            .then(pl.lit("-"))
            .otherwise(pl.format("{}:{}", value.str.len_bytes(), value))
        )
    return pl.concat_str(parts, separator="|")


def _with_event_ids(bronze: pl.DataFrame) -> pl.DataFrame:
    """Fill `event_id` where the vendor gave none with the SHA-256 of the event's canonical content."""
    lacking = bronze["event_id"].is_null()
    if not lacking.any():
        return bronze
    texts = bronze.filter(lacking).select(canonical_content().alias("content"))
    filled = bronze.get_column("event_id").clone().scatter(lacking.arg_true(), _sha256_hex(texts))
    return bronze.with_columns(filled)


def _sha256_hex(texts: pl.DataFrame) -> pl.Series:
    """SHA-256 (hex) of each `content` string, vectorized: Polars has no cryptographic hash (its `hash` is
    not stable across versions), DuckDB (installed for identity's Splink) has one."""
    import duckdb  # imported only when a delivery lacks event ids

    connection = duckdb.connect(config={"threads": 1})  # ingest already runs one reader per core
    try:
        connection.register("texts", texts.to_arrow())
        digests = connection.sql("select sha256(content) as digest from texts").pl()["digest"]
    finally:
        connection.close()
    return digests
