"""Device feeds → bronze/device_records: Open mHealth data points, vendor API payloads (iHealth,
Withings, Fitbit), device CSV exports described by a column mapping, and the enrolment CSV.

Bronze keeps each data point, payload item or CSV row raw; units and metrics are normalized in silver.
The patient key of a device record is the device source's own user key (OMH `header.user_id`, the
vendor-user folder a payload was delivered in, or a device CSV's user column); enrolment rows link
those keys to EHR patients.
"""

from __future__ import annotations

import csv
import hashlib
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import yaml

from pipelines.bronze.csv_records import UNCLOSED_QUOTE, split_csv_records
from pipelines.bronze.json_records import (
    NO_PROBLEM,
    item_records,
    ndjson_records,
    parse_records,
    problem,
    split_by_problem,
    whole_file_quarantine,
)
from pipelines.bronze.lines import MAX_JSON_DEPTH, NESTED_TOO_DEEPLY, json_depth
from pipelines.bronze.tables import DEVICE_RECORDS, DOC, ReadResult, quarantine_rows, split_by_document

_OMH_HEADER = pa.struct(
    [
        ("id", pa.string()),
        ("creation_date_time", pa.string()),
        (
            "schema_id",
            pa.struct([("namespace", pa.string()), ("name", pa.string()), ("version", pa.string())]),
        ),
        (
            "acquisition_provenance",
            pa.struct([("source_name", pa.string()), ("modality", pa.string()), ("device_id", pa.string())]),
        ),
        ("user_id", pa.string()),
    ]
)
OMH_KEY_SCHEMA = pa.schema([("header", _OMH_HEADER)])
OMH_STRING_PATHS = (("header", "id"), ("header", "user_id"), ("header", "schema_id", "name"))

IHEALTH_ITEM_SCHEMA = pa.schema([("DataID", pa.string())])
IHEALTH_STRING_PATHS = (("DataID",),)
IHEALTH_LIST_SUFFIX = "DataList"

ENROLMENT_COLUMNS = ("vendor", "vendor_user_id", "device_id", "patient_source", "patient_id")


def read_omh_ndjson(data: bytes, folder_user: str | None) -> ReadResult:
    """Open mHealth data points, one per line."""
    split, records, undecodable = ndjson_records(data)
    bronze, quarantine = _omh_rows(records, folder_user, split.payload)
    records_in = split.lines.height + split.invalid_utf8.height
    return ReadResult(
        DEVICE_RECORDS,
        records_in,
        bronze,
        pl.concat([undecodable, quarantine], how="vertical_relaxed"),
        blank_lines=split.blank_lines,
    )


def read_omh_document(data: bytes, folder_user: str | None) -> ReadResult:
    """A JSON file holding one Open mHealth data point or a list of them."""
    try:
        value = orjson.loads(data.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as err:
        return ReadResult(
            DEVICE_RECORDS, 1, pl.DataFrame(), whole_file_quarantine(data, "invalid_json", str(err))
        )
    items = value if isinstance(value, list) else [value]
    try:
        records = item_records(items)
    except TypeError:  # orjson writes no value nested deeper than 254 levels: refuse the document
        return ReadResult(
            DEVICE_RECORDS,
            1,
            pl.DataFrame(),
            whole_file_quarantine(data, "nested_too_deeply", NESTED_TOO_DEEPLY),
        )
    bronze, quarantine = _omh_rows(records, folder_user)
    return ReadResult(DEVICE_RECORDS, len(items), bronze, quarantine)


def _omh_rows(
    records: pl.DataFrame, folder_user: str | None, payload: bytes | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    parsed, rejected = parse_records(records, OMH_KEY_SCHEMA, OMH_STRING_PATHS, payload=payload)
    header = pl.col("header")
    keyed = parsed.with_columns(
        pl.lit("openmhealth").alias("record_format"),
        header.struct.field("schema_id").struct.field("name").alias("record_type"),
        header.struct.field("id").alias("record_id"),
        header.struct.field("acquisition_provenance").struct.field("device_id").alias("device_id"),
        pl.coalesce(header.struct.field("user_id"), pl.lit(folder_user, pl.String)).alias("patient_key"),
    )
    check = (
        pl.when(header.is_null())
        .then(problem("not_a_data_point", "the record has no Open mHealth header"))
        .when(pl.col("record_id").is_null() | (pl.col("record_id") == ""))
        .then(problem("missing_id", "the data point has no header.id"))
        .when(pl.col("record_type").is_null())
        .then(problem("missing_schema_id", "the data point has no header.schema_id.name"))
        .otherwise(NO_PROBLEM)
    )
    bronze, bad = split_by_problem(keyed, check)
    return bronze, pl.concat([rejected, bad], how="vertical_relaxed")


def read_ihealth_payload(data: bytes, folder_user: str | None) -> ReadResult:
    """One iHealth-style API response (see `read_ihealth_payloads`)."""
    return read_ihealth_payloads([(data, folder_user)])[0]


def read_ihealth_payloads(payloads: list[tuple[bytes, str | None]]) -> list[ReadResult]:
    """iHealth-style API responses, read as one batch: every item of each `*DataList` is one record.

    The payload-level fields (units such as `BPUnit`, paging) are kept with each item as
    `payload_context`, because an item alone cannot be interpreted without them. Each payload comes
    with the vendor-user folder it was delivered in, which is its records' patient key.
    """
    items: list[tuple[int, int, str, str | None, str, str]] = []  # doc, entry, list, user, context, raw
    broken: list[pl.DataFrame] = []
    records_in: list[int] = []
    for doc, (data, folder_user) in enumerate(payloads):
        count = 0
        try:
            value = orjson.loads(data.removeprefix(b"\xef\xbb\xbf"))
        except orjson.JSONDecodeError as err:
            broken.append(_tagged(whole_file_quarantine(data, "invalid_json", str(err)), doc))
            records_in.append(1)
            continue
        lists = (
            {k: v for k, v in value.items() if k.endswith(IHEALTH_LIST_SUFFIX)}
            if isinstance(value, dict)
            else {}
        )
        if not lists:
            reason = "the payload has no *DataList member: not an iHealth-style response"
            broken.append(_tagged(whole_file_quarantine(data, "unrecognized_format", reason), doc))
            records_in.append(1)
            continue
        done = len(items), len(broken)
        try:
            context = orjson.dumps(
                {k: v for k, v in value.items() if k not in lists}, option=orjson.OPT_SORT_KEYS
            ).decode()
            for name, list_items in sorted(lists.items()):
                if not isinstance(list_items, list):
                    reason = f"{name} is not a list"
                    broken.append(
                        _tagged(
                            whole_file_quarantine(orjson.dumps(list_items), "invalid_field_type", reason), doc
                        )
                    )
                    count += 1
                    continue
                items.extend(
                    (doc, count + i, name, folder_user, context, orjson.dumps(item).decode())
                    for i, item in enumerate(list_items)
                )
                count += len(list_items)
        except TypeError:  # orjson writes no value nested deeper than 254 levels: refuse the document
            del items[done[0] :], broken[done[1] :]
            broken.append(_tagged(whole_file_quarantine(data, "nested_too_deeply", NESTED_TOO_DEEPLY), doc))
            records_in.append(1)
            continue
        records_in.append(count)
    records = pl.DataFrame(
        items,
        schema={
            DOC: pl.Int64,
            "entry": pl.Int64,
            "record_type": pl.String,
            "patient_key": pl.String,
            "payload_context": pl.String,
            "raw": pl.String,
        },
        orient="row",
    ).with_columns(pl.lit(None, pl.Int64).alias("line"))
    parsed, rejected = parse_records(records, IHEALTH_ITEM_SCHEMA, IHEALTH_STRING_PATHS)
    keyed = parsed.with_columns(pl.lit("ihealth").alias("record_format"), pl.col("DataID").alias("record_id"))
    missing = pl.col("record_id").is_null() | (pl.col("record_id") == "")
    bronze, bad = split_by_problem(
        keyed, pl.when(missing).then(problem("missing_id", "the item has no DataID")).otherwise(NO_PROBLEM)
    )
    quarantine = pl.concat([rejected, bad, *broken], how="diagonal_relaxed")
    return split_by_document(DEVICE_RECORDS, records_in, bronze, quarantine)


def _tagged(frame: pl.DataFrame, doc: int) -> pl.DataFrame:
    return frame.with_columns(pl.lit(doc, pl.Int64).alias(DOC))


# --- Withings and Fitbit API responses ------------------------------------------------------------------
@dataclass(frozen=True)
class _ItemList:
    """One list of a vendor payload: its items, the payload-level fields they need, their id member."""

    name: str  # becomes record_type
    items: list[tuple[str | None, Any]]  # (key when the vendor sends an object keyed by time, item)
    context: dict[str, Any]
    id_member: str | None


@dataclass
class _PayloadLists:
    """What a vendor payload splits into: item lists, and members that should be lists but are not."""

    lists: list[_ItemList] = field(default_factory=list)
    broken: list[tuple[Any, str]] = field(default_factory=list)  # (member value, reason)
    # reasons name no member: Fitbit and Withings record lists are any list-valued member, so a name is
    # file content as much as structure


PayloadSplitter = Callable[[Any], "_PayloadLists | tuple[str, str]"]
"""Splits a parsed payload into item lists, or refuses it with (reason_code, reason)."""

WITHINGS_LISTS = ("activities", "measuregrps", "series")
WITHINGS_ID_MEMBERS = {"measuregrps": "grpid", "series": "id"}
FITBIT_ID_MEMBER = "logId"
FITBIT_INTRADAY_SUFFIX = "-intraday"
ITEM_KEY = "item_key"
"""payload_context member holding an item's key when the vendor sends items as an object keyed by time."""


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _withings_lists(value: Any) -> _PayloadLists | tuple[str, str]:
    """A Withings response: `{"status": 0, "body": {...}}`; the lists in `body` hold the records.

    `body.series` is a list (sleep) or an object keyed by epoch second (intraday activity); each entry of
    the object is one record and its key is kept in the payload context. Body fields beside the lists
    (`timezone`, `updatetime`, `more`, ...) and the top-level `status` are the payload context.
    """
    if not isinstance(value, dict):
        return "unrecognized_format", "the payload is not a JSON object: not a Withings API response"
    if value.get("status", 0) != 0:
        return "vendor_error", "the response is a Withings error (status is not 0), not data"
    body = value.get("body")
    if not isinstance(body, dict):
        return "unrecognized_format", "the payload has no body object: not a Withings API response"
    named = {k: v for k, v in body.items() if k in WITHINGS_LISTS or isinstance(v, list)}
    if not named:
        return "unrecognized_format", "the body has no measuregrps, activities or series list"
    context = {
        **{k: v for k, v in value.items() if k != "body"},
        **{k: v for k, v in body.items() if k not in named},
    }
    found = _PayloadLists()
    for name, member in sorted(named.items()):
        id_member = WITHINGS_ID_MEMBERS.get(name)
        if isinstance(member, list):
            found.lists.append(_ItemList(name, [(None, item) for item in member], context, id_member))
        elif name == "series" and isinstance(member, dict):
            found.lists.append(_ItemList(name, [(str(k), v) for k, v in member.items()], context, id_member))
        else:
            found.broken.append((member, "a body member that holds records is not a list"))
    return found


def _fitbit_lists(value: Any) -> _PayloadLists | tuple[str, str]:
    """A Fitbit response: every top-level list is a record list (`weight`, `sleep`, `activities`,
    `activities-steps`, `activities-heart`, ...), and every `<series>-intraday` object's `dataset` too.

    Only top-level scalars are payload context (Fitbit sends none itself; a sync job may add the user's
    profile `timezone`, `offsetFromUTCMillis` or `weightUnit` there). An intraday point carries only a
    time of day, so its context also holds the `dateTime` of the one-day summary sent beside it, and
    the dataset's `datasetInterval` and `datasetType`.
    """
    if not isinstance(value, dict):
        return "unrecognized_format", "the payload is not a JSON object: not a Fitbit API response"
    if "errors" in value or value.get("success") is False:
        return "vendor_error", "the response is a Fitbit error, not data"
    context = {k: v for k, v in value.items() if _is_scalar(v)}
    found = _PayloadLists()
    for name, member in sorted(value.items()):
        if isinstance(member, list):
            found.lists.append(_ItemList(name, [(None, item) for item in member], context, FITBIT_ID_MEMBER))
        elif name.endswith(FITBIT_INTRADAY_SUFFIX):
            dataset = member.get("dataset") if isinstance(member, dict) else None
            if not isinstance(dataset, list):
                found.broken.append((member, "an intraday series has no dataset list"))
                continue
            point_context = {
                **context,
                **{k: v for k, v in member.items() if k != "dataset" and _is_scalar(v)},
            }
            summary = value.get(name.removesuffix(FITBIT_INTRADAY_SUFFIX))
            if isinstance(summary, list) and len(summary) == 1 and isinstance(summary[0], dict):
                day = summary[0].get("dateTime")
                if isinstance(day, str):
                    point_context["dateTime"] = day
            found.lists.append(_ItemList(name, [(None, item) for item in dataset], point_context, None))
    if not found.lists and not found.broken:
        return "unrecognized_format", "the payload has no Fitbit data list: not a Fitbit API response"
    return found


def read_withings_payload(data: bytes, folder_user: str | None) -> ReadResult:
    """One Withings API response (see `read_withings_payloads`)."""
    return read_withings_payloads([(data, folder_user)])[0]


def read_withings_payloads(payloads: list[tuple[bytes, str | None]]) -> list[ReadResult]:
    """Withings API responses, read as one batch: each measure group, activity day or series entry is
    one record (`record_type` = its list name), keyed by the vendor-user folder it was delivered in."""
    return _read_vendor_payloads(payloads, "withings", _withings_lists)


def read_fitbit_payload(data: bytes, folder_user: str | None) -> ReadResult:
    """One Fitbit API response (see `read_fitbit_payloads`)."""
    return read_fitbit_payloads([(data, folder_user)])[0]


def read_fitbit_payloads(payloads: list[tuple[bytes, str | None]]) -> list[ReadResult]:
    """Fitbit API responses, read as one batch: each item of a top-level list and each intraday point
    is one record (`record_type` = the list name), keyed by the vendor-user folder it was delivered in."""
    return _read_vendor_payloads(payloads, "fitbit", _fitbit_lists)


def _read_vendor_payloads(
    payloads: list[tuple[bytes, str | None]], vendor: str, splitter: PayloadSplitter
) -> list[ReadResult]:
    """Split vendor payloads into one bronze record per list item, with exact per-file accounting.

    `record_id` is the vendor's id member when the item has one, else `<file hash>/<list>/<position>`
    (the entry key for keyed series), stable for the same content. `entry` numbers the records of a
    file across its lists. An empty list is a valid payload with no records.
    """
    rows: list[tuple[int, int, str, str, str | None, str, str]] = []
    quarantined: list[tuple[int, int | None, str, str, bytes]] = []  # doc, entry, code, reason, raw
    records_in: list[int] = []
    for doc, (data, folder_user) in enumerate(payloads):
        try:
            value = orjson.loads(data.removeprefix(b"\xef\xbb\xbf"))
        except orjson.JSONDecodeError as err:
            quarantined.append((doc, None, "invalid_json", f"invalid JSON: {err}", data))
            records_in.append(1)
            continue
        found = splitter(value)
        if isinstance(found, tuple):
            quarantined.append((doc, None, found[0], found[1], data))
            records_in.append(1)
            continue
        done = len(rows), len(quarantined)
        try:
            for member, reason in found.broken:
                quarantined.append((doc, None, "invalid_field_type", reason, orjson.dumps(member)))
            file_id = hashlib.sha256(data).hexdigest()[:16]
            entry = 0
            for item_list in found.lists:
                shared_context = orjson.dumps(item_list.context, option=orjson.OPT_SORT_KEYS).decode()
                for position, (key, item) in enumerate(item_list.items):
                    if not isinstance(item, dict):
                        reason = "a list item is not a JSON object"
                        quarantined.append((doc, entry, "not_an_object", reason, orjson.dumps(item)))
                        entry += 1
                        continue
                    raw = orjson.dumps(item)
                    vendor_id = item.get(item_list.id_member) if item_list.id_member else None
                    if isinstance(vendor_id, bool) or not (
                        vendor_id is None or isinstance(vendor_id, str | int)
                    ):
                        reason = "the item's vendor id is not a string or an integer"
                        quarantined.append((doc, entry, "invalid_field_type", reason, raw))
                        entry += 1
                        continue
                    if (
                        raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH
                        and json_depth(raw) > MAX_JSON_DEPTH
                    ):
                        quarantined.append((doc, entry, "nested_too_deeply", NESTED_TOO_DEEPLY, raw))
                        entry += 1
                        continue
                    record_id = (
                        str(vendor_id)
                        if vendor_id not in (None, "")
                        else f"{file_id}/{item_list.name}/{key if key is not None else position}"
                    )
                    context = (
                        shared_context
                        if key is None
                        else orjson.dumps(
                            {**item_list.context, ITEM_KEY: key}, option=orjson.OPT_SORT_KEYS
                        ).decode()
                    )
                    rows.append((doc, entry, item_list.name, record_id, folder_user, context, raw.decode()))
                    entry += 1
        except TypeError:  # orjson writes no value nested deeper than 254 levels: refuse the document
            del rows[done[0] :], quarantined[done[1] :]
            quarantined.append((doc, None, "nested_too_deeply", NESTED_TOO_DEEPLY, data))
            records_in.append(1)
            continue
        records_in.append(entry + len(found.broken))
    bronze = pl.DataFrame(
        rows,
        schema={
            DOC: pl.Int64,
            "entry": pl.Int64,
            "record_type": pl.String,
            "record_id": pl.String,
            "patient_key": pl.String,
            "payload_context": pl.String,
            "raw": pl.String,
        },
        orient="row",
    ).with_columns(pl.lit(vendor).alias("record_format"), pl.lit(None, pl.Int64).alias("line"))
    quarantine = pl.DataFrame(
        quarantined,
        schema={
            DOC: pl.Int64,
            "entry": pl.Int64,
            "reason_code": pl.String,
            "reason": pl.String,
            "raw": pl.Binary,
        },
        orient="row",
    ).with_columns(pl.lit(None, pl.Int64).alias("line"))
    return split_by_document(DEVICE_RECORDS, records_in, bronze, quarantine)


def read_enrolment_csv(data: bytes) -> ReadResult:
    """Remote-monitoring enrolment rows (vendor user and device → EHR patient), one record per data row."""
    table = _csv_table(data, ENROLMENT_COLUMNS)
    if table.rows is None:
        return table.result(pl.DataFrame())
    frame = table.rows.with_columns(
        pl.lit("device_enrolment").alias("record_format"),
        pl.lit("enrolment").alias("record_type"),
        pl.concat_str("vendor", "vendor_user_id", "device_id", separator="/").alias("record_id"),
        pl.col("vendor_user_id").alias("patient_key"),
    )
    blank_key = pl.any_horizontal([pl.col(c).str.strip_chars() == "" for c in ENROLMENT_COLUMNS])
    bronze, bad_keys = split_by_problem(
        frame,
        pl.when(blank_key)
        .then(problem("missing_id", "a required enrolment field is empty"))
        .otherwise(NO_PROBLEM),
    )
    table.quarantine.append(bad_keys)
    return table.result(bronze)


@dataclass
class _CsvTable:
    """A CSV file's data rows as strings (`line`, `entry`, one column per header name, `raw` = the row
    as a JSON object), or None when the header is unusable; plus the quarantine so far."""

    records_in: int
    blank_lines: int
    rows: pl.DataFrame | None
    quarantine: list[pl.DataFrame]

    def result(self, bronze: pl.DataFrame) -> ReadResult:
        return ReadResult(
            DEVICE_RECORDS,
            self.records_in,
            bronze,
            pl.concat(self.quarantine, how="vertical_relaxed"),
            blank_lines=self.blank_lines,
        )


def _csv_table(data: bytes, required: tuple[str, ...]) -> _CsvTable:
    """Read a CSV file with a header row (RFC 4180 records: `csv_records.split_csv_records`); undecodable
    records, records with a quote never closed and records with another number of fields than the header
    go to quarantine by the line they start on."""
    split = split_csv_records(data)
    undecodable = quarantine_rows(split.invalid_utf8, "invalid_utf8", "the record is not valid UTF-8")
    unclosed = quarantine_rows(split.unclosed, UNCLOSED_QUOTE, pl.col("reason"))
    set_aside = [undecodable, unclosed]
    records_in = split.invalid_utf8.height + split.unclosed.height
    if split.records.is_empty():
        return _CsvTable(records_in, split.blank_lines, None, set_aside)
    try:
        header = next(csv.reader([split.records["raw"][0]]), [])
    except csv.Error:  # e.g. a stray carriage return: no usable header, so no usable row
        header = []
    data_lines = split.records.slice(1).with_columns(pl.lit(None, pl.Int64).alias("entry"))
    records_in += data_lines.height
    missing = [c for c in required if c not in header]
    if missing or len(set(header)) != len(header) or "" in header:
        reason = (
            f"the header lacks required columns {missing}"
            if missing
            else "the header repeats a column"
            if len(set(header)) != len(header)
            else "the header has a column without a name"
        )
        bad = quarantine_rows(data_lines, "unrecognized_format", reason)
        return _CsvTable(records_in, split.blank_lines, None, [*set_aside, bad])
    # the field count of every record is known from the split: records of another width never reach the
    # parser, which then returns exactly one row per record it is given
    fits = split.fields[1:] == len(header)
    good_lines, malformed = (
        (data_lines, data_lines.clear())
        if fits.all()
        else (data_lines.filter(pl.Series(fits)), data_lines.filter(pl.Series(~fits)))
    )
    rows, unparsed = _parse_records(good_lines["raw"], header, split.body if fits.all() else None)
    if unparsed.any():  # e.g. a carriage return alone inside an unquoted field
        malformed = pl.concat([malformed, good_lines.filter(pl.Series(unparsed))]).sort("line")
        good_lines, rows = good_lines.filter(pl.Series(~unparsed)), rows.filter(pl.Series(~unparsed))
    frame = pl.concat([good_lines.select("line", "entry"), rows], how="horizontal").with_columns(
        pl.struct(list(header)).struct.json_encode().alias("raw")
    )
    malformed_rows = quarantine_rows(
        malformed, "malformed_csv_row", "the row has a different number of fields than the header"
    )
    return _CsvTable(records_in, split.blank_lines, frame, [*set_aside, malformed_rows])


def _parse_records(
    records: pl.Series, header: list[str], body: memoryview | None = None
) -> tuple[pl.DataFrame, np.ndarray]:
    """The fields of records that each hold `len(header)` fields, as strings, and which records could not
    be read after all. pyarrow parses them all at once (quoted line breaks allowed), from `body` (the same
    records as the file holds them) when given. Where it reads them otherwise than the split did (a
    carriage return alone in an unquoted field ends a row for it), Python's csv module reads each record on
    its own; a record it cannot read either is marked in the returned mask (all rows kept, in order)."""
    schema = dict.fromkeys(header, pl.String)
    unparsed = np.zeros(records.len(), dtype=bool)
    if records.is_empty():
        return pl.DataFrame(schema=schema), unparsed
    text = body if body is not None else records.str.join("\n").item().encode() + b"\n"
    longest = int(records.str.len_bytes().max() or 0)
    block_size = max(1 << 20, 2 * longest + 2)  # a block must hold the longest record whole
    disagreed: list[int] = []

    def _refuse(row: pa_csv.InvalidRow) -> str:
        disagreed.append(row.number or 0)
        return "skip"

    try:
        table = pa_csv.read_csv(
            pa.BufferReader(pa.py_buffer(text)),
            read_options=pa_csv.ReadOptions(use_threads=False, block_size=block_size, column_names=header),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=_refuse),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False
            ),
        )
        rows = pl.from_arrow(table)
        assert isinstance(rows, pl.DataFrame)
        if not disagreed and rows.height == records.len():
            return rows, unparsed
    except pa.ArrowInvalid:
        pass
    parsed: list[list[str]] = []
    for index, record in enumerate(records.to_list()):  # a rare file: pyarrow and the split disagree
        try:
            fields = next(csv.reader([record]), [])
        except csv.Error:
            fields = []
        if len(fields) != len(header):
            unparsed[index] = True
            fields = [""] * len(header)
        parsed.append(fields)
    return pl.DataFrame(parsed, schema=schema, orient="row"), unparsed


# --- device CSV exports described by a column mapping --------------------------------------------------
CSV_MAPPINGS_DIR = Path(__file__).resolve().parents[2] / "data_contracts" / "devices" / "csv_mappings"
METRICS_FILE = Path(__file__).resolve().parents[2] / "data_contracts" / "devices" / "metrics.yaml"
CSV_REQUIRED_ROLES = ("user_id", "timestamp", "metric", "value")
CSV_OPTIONAL_ROLES = ("device_id", "time_zone", "unit", "group_id", "record_id")
WIDE_REQUIRED_ROLES = ("user_id", "timestamp")
LONG_ONLY_ROLES = ("metric", "value", "unit")
"""Roles of a long file (one row per value) that a wide mapping's `value_columns` replace."""
_MAPPING_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_FIXED_OFFSET = re.compile(r"^[+-]\d{2}:?\d{2}$")
TIME_OF_DAY_CODES = ("%H", "%I", "%k", "%l", "%M", "%S", "%T", "%R", "%X", "%c", "%p", "%s")
"""strftime codes that put a time of day in a timestamp; a format with none of them is date-only."""


@dataclass(frozen=True)
class ValueColumn:
    """One column of a wide device CSV: it holds values of `metric`, written in `unit`."""

    column: str
    metric: str
    unit: str


@dataclass(frozen=True)
class CsvMapping:
    """How to read one kind of device CSV export (data_contracts/devices/csv_mappings/<name>.yaml).

    A long file has one row per value (metric, value and unit columns); a wide file has one column per
    metric (`value_columns`, each with its unit) and one row per time. Timestamps are tried against
    `timestamp_formats` in order; the first that reads the whole text wins."""

    name: str
    columns: dict[str, str]  # role (user_id, timestamp, metric, value, ...) → CSV column name
    timestamp_formats: tuple[str, ...]  # strftime codes; local wall-clock time unless they have %z
    fixed_time_zone: str | None = None  # the time zone of every row when there is no time_zone column
    metrics: dict[str, str] = field(default_factory=dict)  # the file's metric names → platform metrics
    units: dict[str, str] = field(default_factory=dict)  # the file's unit spellings → accepted spellings
    value_columns: tuple[ValueColumn, ...] = ()  # a wide file's value columns, in the order they are tried

    def __post_init__(self) -> None:
        if isinstance(self.timestamp_formats, str):  # one format given as a string
            object.__setattr__(self, "timestamp_formats", (self.timestamp_formats,))

    @property
    def record_format(self) -> str:
        """The bronze `record_format` of this file kind's records."""
        return "device_csv"

    @property
    def wide(self) -> bool:
        """One column per metric instead of metric/value/unit columns."""
        return bool(self.value_columns)

    @property
    def offset_in_timestamp(self) -> bool:
        """The timestamps carry their own UTC offset (%z)."""
        return "%z" in self.timestamp_formats[0]

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Every CSV column the file's header must have."""
        return (*self.columns.values(), *(v.column for v in self.value_columns))


def date_only(timestamp_format: str) -> bool:
    """Whether a timestamp format writes a day without a time of day (`4/12/2016`)."""
    return not any(code in timestamp_format for code in TIME_OF_DAY_CODES)


@cache
def _catalogue_units() -> dict[str, frozenset[str]]:
    """Platform metrics and the unit spellings each accepts (data_contracts/devices/metrics.yaml): a wide
    mapping's metrics and units are checked against them when it is loaded."""
    document = yaml.safe_load(METRICS_FILE.read_text(encoding="utf-8"))
    return {name: frozenset(spec["units"]) for name, spec in document["metrics"].items()}


def parse_csv_mapping(name: str, document: Any) -> CsvMapping:
    """Validate a mapping document (the parsed YAML); a ValueError names what is wrong."""
    where = f"CSV mapping {name}"
    if not isinstance(document, dict) or document.get("version") != 1:
        raise ValueError(f"{where}: must be a mapping with version: 1")
    columns = document.get("columns")
    if not isinstance(columns, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in columns.items()
    ):
        raise ValueError(f"{where}: columns must map roles to CSV column names")
    value_columns = _value_columns(where, document.get("value_columns"))
    required = WIDE_REQUIRED_ROLES if value_columns else CSV_REQUIRED_ROLES
    unknown = sorted(set(columns) - set(CSV_REQUIRED_ROLES) - set(CSV_OPTIONAL_ROLES))
    missing = [r for r in required if r not in columns]
    if unknown or missing:
        raise ValueError(f"{where}: unknown column roles {unknown}, missing roles {missing}")
    if value_columns and set(columns) & set(LONG_ONLY_ROLES):
        raise ValueError(f"{where}: a mapping with value_columns has no metric, value or unit role")
    named = [*columns.values(), *(v.column for v in value_columns)]
    if len(set(named)) != len(named):
        raise ValueError(f"{where}: two roles name the same CSV column")
    formats = _timestamp_formats(where, document)
    fixed = document.get("fixed_time_zone")
    if fixed is not None and not (
        isinstance(fixed, str) and (_FIXED_OFFSET.match(fixed) or fixed in zoneinfo.available_timezones())
    ):
        raise ValueError(f"{where}: fixed_time_zone must be a UTC offset like +01:00 or an IANA name")
    # a timestamp is only an instant with its zone: from a column, the mapping, or the text itself (%z)
    with_offset = ["%z" in f for f in formats]
    if any(with_offset) and not all(with_offset):
        raise ValueError(f"{where}: either every timestamp format has %z or none has")
    zone_sources = ("time_zone" in columns) + (fixed is not None) + all(with_offset)
    if zone_sources != 1:
        raise ValueError(f"{where}: give exactly one of a time_zone column, fixed_time_zone, or %z")
    translations = {}
    for key in ("metrics", "units"):
        value = document.get(key) or {}
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ValueError(f"{where}: {key} must map strings to strings")
        translations[key] = dict(value)
    return CsvMapping(
        name,
        dict(columns),
        formats,
        fixed,
        translations["metrics"],
        translations["units"],
        value_columns,
    )


def _timestamp_formats(where: str, document: dict[str, Any]) -> tuple[str, ...]:
    """`timestamp_format: <format>` or `timestamp_formats: [<format>, ...]` (tried in order)."""
    one, several = document.get("timestamp_format"), document.get("timestamp_formats")
    if (one is None) == (several is None):
        raise ValueError(f"{where}: give timestamp_format or timestamp_formats (a list tried in order)")
    formats = [one] if several is None else several
    if (
        not isinstance(formats, list)
        or not formats
        or not all(isinstance(f, str) and "%" in f for f in formats)
    ):
        raise ValueError(f"{where}: timestamp_format must be a strftime format (timestamp_formats a list)")
    if "%z" in "".join(formats) and any(date_only(f) for f in formats):
        raise ValueError(f"{where}: a date-only timestamp format cannot carry an offset (%z)")
    return tuple(formats)


def _value_columns(where: str, value: Any) -> tuple[ValueColumn, ...]:
    """A wide mapping's `value_columns: {<CSV column>: {metric: <metric>, unit: <unit>}}`; each metric must
    be a platform metric and each unit a spelling metrics.yaml accepts for it (a configuration error is
    found when the mapping is loaded, before any file is read)."""
    if value is None:
        return ()
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{where}: value_columns must map CSV column names to a metric and unit")
    catalogue = _catalogue_units()
    found = []
    for column, spec in value.items():
        if not (
            isinstance(column, str)
            and column
            and isinstance(spec, dict)
            and set(spec) == {"metric", "unit"}
            and all(isinstance(v, str) for v in spec.values())
        ):
            raise ValueError(f"{where}: value_columns entry {column!r} must be {{metric: ..., unit: ...}}")
        if spec["metric"] not in catalogue:
            raise ValueError(f"{where}: value column {column!r}: {spec['metric']!r} is not a platform metric")
        if spec["unit"] not in catalogue[spec["metric"]]:
            raise ValueError(
                f"{where}: value column {column!r}: unit {spec['unit']!r} is not one metrics.yaml accepts "
                f"for {spec['metric']}"
            )
        found.append(ValueColumn(column, spec["metric"], spec["unit"]))
    return tuple(found)


@cache
def load_csv_mapping(name: str) -> CsvMapping:
    """The mapping data_contracts/devices/csv_mappings/<name>.yaml, validated."""
    if not _MAPPING_NAME.match(name):
        raise ValueError(f"CSV mapping name {name!r} must be letters, digits, '_' or '-'")
    path = CSV_MAPPINGS_DIR / f"{name}.yaml"
    if not path.exists():
        raise ValueError(f"CSV mapping {name} not found in data_contracts/devices/csv_mappings")
    return parse_csv_mapping(name, yaml.safe_load(path.read_text(encoding="utf-8")))


def read_device_csv(data: bytes, mapping: CsvMapping) -> ReadResult:
    """A device CSV export: each data row is one record (`raw` = the row as a JSON object of strings).

    `record_type` is the mapping's name, so silver reads the row with the same mapping; the patient key
    is the user column and `record_id` the mapping's record_id column, else `<file hash>/<line>`.
    Rows with a blank user id are quarantined (they could never be linked to a patient).
    """
    columns = mapping.columns
    table = _csv_table(data, mapping.required_columns)
    if table.rows is None:
        return table.result(pl.DataFrame())
    file_id = hashlib.sha256(data).hexdigest()[:16]
    position_id = pl.format(f"{file_id}/{{}}", "line")
    record_id = (
        pl.when(pl.col(columns["record_id"]).str.strip_chars() != "")
        .then(pl.col(columns["record_id"]).str.strip_chars())
        .otherwise(position_id)
        if "record_id" in columns
        else position_id
    )
    device = (
        pl.col(columns["device_id"]).str.strip_chars().replace("", None)
        if "device_id" in columns
        else pl.lit(None, pl.String)
    )
    frame = table.rows.with_columns(
        pl.lit(mapping.record_format).alias("record_format"),
        pl.lit(mapping.name).alias("record_type"),
        record_id.alias("record_id"),
        device.alias("device_id"),
        pl.col(columns["user_id"]).str.strip_chars().alias("patient_key"),
    )
    bronze, bad_keys = split_by_problem(
        frame,
        pl.when(pl.col("patient_key") == "")
        .then(problem("missing_id", "the row's user id is empty"))
        .otherwise(NO_PROBLEM),
    )
    table.quarantine.append(bad_keys)
    return table.result(bronze)
