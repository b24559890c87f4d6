"""Device feeds → bronze/device_records: Open mHealth data points, iHealth-style payloads, enrolment CSV.

Bronze keeps each data point or payload item raw; units and metrics are normalized in silver. The
patient key of a device record is the device source's own user key (OMH `header.user_id`, or the
vendor-user folder a payload was delivered in); enrolment rows link those keys to EHR patients.
"""

from __future__ import annotations

import csv
import io

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv

from pipelines.bronze.json_records import (
    NO_PROBLEM,
    item_records,
    ndjson_records,
    parse_records,
    problem,
    split_by_problem,
    whole_file_quarantine,
)
from pipelines.bronze.lines import split_lines
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
    bronze, quarantine = _omh_rows(item_records(items), folder_user)
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


def read_enrolment_csv(data: bytes) -> ReadResult:
    """Remote-monitoring enrolment rows (vendor user and device → EHR patient), one record per data row."""
    split = split_lines(data)
    undecodable = quarantine_rows(split.invalid_utf8, "invalid_utf8", "the line is not valid UTF-8")
    if split.lines.is_empty():
        return ReadResult(
            DEVICE_RECORDS,
            split.invalid_utf8.height,
            pl.DataFrame(),
            undecodable,
            blank_lines=split.blank_lines,
        )
    header = next(csv.reader([split.lines["raw"][0]]))
    data_lines = split.lines.slice(1).with_columns(pl.lit(None, pl.Int64).alias("entry"))
    records_in = data_lines.height + split.invalid_utf8.height
    missing = [c for c in ENROLMENT_COLUMNS if c not in header]
    if missing or len(set(header)) != len(header):
        reason = f"the header lacks required columns {missing}" if missing else "the header repeats a column"
        bad = quarantine_rows(data_lines, "unrecognized_format", reason)
        return ReadResult(
            DEVICE_RECORDS,
            records_in,
            pl.DataFrame(),
            pl.concat([undecodable, bad]),
            blank_lines=split.blank_lines,
        )
    invalid: list[int] = []

    def _skip(row: pa_csv.InvalidRow) -> str:
        invalid.append(row.number)
        return "skip"

    text = "\n".join(split.lines["raw"].to_list()).encode()
    table = pa_csv.read_csv(
        io.BytesIO(text),
        read_options=pa_csv.ReadOptions(use_threads=False),
        parse_options=pa_csv.ParseOptions(invalid_row_handler=_skip),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False
        ),
    )
    # pyarrow numbers rows by non-blank line, header included; data row k is split.lines row k
    bad_positions = pl.Series("pos", [n - 1 for n in invalid], dtype=pl.Int64)
    positioned = data_lines.with_row_index("pos", offset=1).with_columns(pl.col("pos").cast(pl.Int64))
    malformed = positioned.filter(pl.col("pos").is_in(bad_positions.implode()))
    good_lines = positioned.filter(~pl.col("pos").is_in(bad_positions.implode()))
    rows = pl.from_arrow(table)
    assert isinstance(rows, pl.DataFrame)
    if rows.height != good_lines.height:
        raise ValueError("enrolment CSV rows and lines disagree (a quoted field spans lines)")
    frame = pl.concat([good_lines.select("line", "entry"), rows], how="horizontal").with_columns(
        pl.struct(list(header)).struct.json_encode().alias("raw"),
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
    quarantine = pl.concat(
        [
            undecodable,
            quarantine_rows(
                malformed, "malformed_csv_row", "the row has a different number of fields than the header"
            ),
            bad_keys,
        ],
        how="vertical_relaxed",
    )
    return ReadResult(DEVICE_RECORDS, records_in, bronze, quarantine, blank_lines=split.blank_lines)
