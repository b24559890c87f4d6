"""FHIR R4 readers: Bulk Data NDJSON, Bundles (and single-resource JSON), Bulk `deleted[]` files.

The fast path parses only the fields bronze needs (type, id, meta, patient references) with an
explicit Arrow schema; the full resource is kept as its raw JSON text. Checks are Polars expressions
over the whole file. Records that fail them go to quarantine with a reason code.
"""

from __future__ import annotations

from typing import Any

import orjson
import polars as pl
import pyarrow as pa

from pipelines.bronze.diagnostics import diagnose_fhir, load_object
from pipelines.bronze.json_records import (
    NO_PROBLEM,
    POSITIONED,
    ndjson_records,
    parse_records,
    problem,
    split_by_problem,
    whole_file_quarantine,
)
from pipelines.bronze.tables import FHIR_RESOURCES, ReadResult, quarantine_rows
from pipelines.fhir.resource_types import (
    FHIR_ID_PATTERN,
    PATIENT_REFERENCE_PATTERN,
    R4_RESOURCE_TYPES,
    SINGLE_REFERENCE_PATIENT_ELEMENTS,
)

_REFERENCE = pa.struct([("reference", pa.string())])
FHIR_KEY_SCHEMA = pa.schema(
    [
        ("resourceType", pa.string()),
        ("id", pa.string()),
        ("meta", pa.struct([("versionId", pa.string()), ("lastUpdated", pa.string())])),
        *[(name, _REFERENCE) for name in SINGLE_REFERENCE_PATIENT_ELEMENTS],
        ("participant", pa.list_(pa.struct([("actor", _REFERENCE)]))),
    ]
)


def read_fhir_ndjson(data: bytes, known_patients: pl.Series | None = None) -> ReadResult:
    """One FHIR resource per line (a Bulk Data output file)."""
    split, records, undecodable = ndjson_records(data)
    bronze, rejected = parse_fhir_records(records, split.payload)
    bronze, orphans = check_patient_references(bronze, known_patients)
    quarantine = pl.concat([undecodable, rejected, orphans], how="vertical_relaxed")
    records_in = split.lines.height + split.invalid_utf8.height
    return ReadResult(FHIR_RESOURCES, records_in, bronze, quarantine, blank_lines=split.blank_lines)


def parse_fhir_records(
    records: pl.DataFrame, payload: bytes | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse `records` (line, entry, raw) into bronze rows and quarantine rows (reference check aside)."""
    parsed, rejected = parse_records(
        records,
        FHIR_KEY_SCHEMA,
        diagnose=lambda raw, error: diagnose_fhir(raw, error, FHIR_KEY_SCHEMA),
        payload=payload,
    )
    keyed = parsed.with_columns(_key_columns())
    bronze, bad = split_by_problem(keyed, _fhir_problem())
    quarantine = pl.concat([rejected, bad], how="vertical_relaxed")
    return bronze.with_columns(pl.lit("upsert").alias("operation")), quarantine


def _key_columns() -> list[pl.Expr]:
    patient_ids = [
        pl.col(name).struct.field("reference").str.extract(PATIENT_REFERENCE_PATTERN, 1)
        for name in SINGLE_REFERENCE_PATIENT_ELEMENTS
    ]
    participant_id = (
        pl.col("participant")
        .list.eval(
            pl.element()
            .struct.field("actor")
            .struct.field("reference")
            .str.extract(PATIENT_REFERENCE_PATTERN, 1)
        )
        .list.drop_nulls()
        .list.first()
    )
    patient_id = (
        pl.when(pl.col("resourceType") == "Patient")
        .then(pl.col("id"))
        .otherwise(pl.coalesce([*patient_ids, participant_id]))
    )
    return [
        pl.col("resourceType").alias("resource_type"),
        pl.col("id").alias("resource_id"),
        pl.col("meta").struct.field("versionId").alias("version_id"),
        pl.col("meta")
        .struct.field("lastUpdated")
        .str.to_datetime("%+", time_zone="UTC", time_unit="us", strict=False)
        .alias("last_updated"),
        pl.col("meta").struct.field("lastUpdated").alias("_last_updated_text"),
        pl.concat_str(pl.lit("Patient/"), patient_id).alias("patient_key"),
    ]


def _fhir_problem() -> pl.Expr:
    """The first failed fast check of a parsed resource, or null when it passes them all."""
    rtype, rid = pl.col("resource_type"), pl.col("resource_id")
    return (
        pl.when(rtype.is_null())
        .then(problem("missing_resource_type", "the record has no resourceType"))
        .when(~rtype.is_in(sorted(R4_RESOURCE_TYPES)))
        .then(problem("unknown_resource_type", "resourceType is not a FHIR R4 resource type"))
        .when(rid.is_null() | (rid == ""))
        .then(problem("missing_id", "the resource has no id"))
        .when(~rid.str.contains(FHIR_ID_PATTERN))
        .then(problem("invalid_id", "id does not match the FHIR id pattern [A-Za-z0-9-.]{1,64}"))
        .when(pl.col("_last_updated_text").is_not_null() & pl.col("last_updated").is_null())
        .then(problem("invalid_field_type", "meta.lastUpdated is not a FHIR instant with a time zone"))
        .otherwise(NO_PROBLEM)
    )


def check_patient_references(
    bronze: pl.DataFrame, known_patients: pl.Series | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Quarantine resources whose patient is neither in this batch nor already known for the source.

    `known_patients` holds patient keys ('Patient/<id>') seen before; None turns the check off.
    """
    if known_patients is None or bronze.is_empty():
        return bronze, quarantine_rows(bronze.clear(), "", "")
    in_batch = bronze.filter(pl.col("resource_type") == "Patient")["patient_key"]
    known = pl.concat([known_patients.cast(pl.String), in_batch]).unique()
    orphan = (
        pl.col("patient_key").is_not_null()
        & (pl.col("resource_type") != "Patient")
        & (pl.col("operation") == "upsert")
        & ~pl.col("patient_key").is_in(known.implode())
    )
    orphans = bronze.filter(orphan)
    reason = "the referenced Patient is not in this source (not in this batch nor ingested before)"
    return bronze.filter(~orphan), quarantine_rows(orphans, "unknown_patient_reference", reason)


def read_fhir_document(data: bytes, known_patients: pl.Series | None = None) -> ReadResult:
    """A JSON document: a Bundle (each entry is a record) or a single resource (one record)."""
    value, verdict = load_object(data.removeprefix(b"\xef\xbb\xbf"), "")
    if verdict is not None:
        return ReadResult(
            FHIR_RESOURCES,
            1,
            pl.DataFrame(),
            whole_file_quarantine(data, verdict.reason_code, verdict.reason),
        )
    assert value is not None
    if value.get("resourceType") != "Bundle":
        records = pl.DataFrame(
            {"line": [None], "entry": [None], "raw": [orjson.dumps(value).decode()]}, schema=POSITIONED
        )
        bronze, rejected = parse_fhir_records(records)
        bronze, orphans = check_patient_references(bronze, known_patients)
        return ReadResult(FHIR_RESOURCES, 1, bronze, pl.concat([rejected, orphans], how="vertical_relaxed"))
    entries = value.get("entry") or []
    if not isinstance(entries, list):
        return ReadResult(
            FHIR_RESOURCES,
            1,
            pl.DataFrame(),
            whole_file_quarantine(data, "invalid_field_type", "Bundle.entry is not a list"),
        )
    return _read_bundle_entries(entries, known_patients)


def _read_bundle_entries(entries: list[Any], known_patients: pl.Series | None) -> ReadResult:
    """Bundle entries → records; `urn:uuid:` (and other fullUrl) references resolved to `Type/id`."""
    shaped = [_entry_shape(i, e) for i, e in enumerate(entries)]
    frame = pl.DataFrame(
        shaped,
        schema={
            "entry": pl.Int64,
            "kind": pl.String,
            "full_url": pl.String,
            "method": pl.String,
            "url": pl.String,
            "resource_type": pl.String,
            "resource_id": pl.String,
            "raw": pl.String,
        },
        orient="row",
    ).with_columns(pl.lit(None, pl.Int64).alias("line"))
    targets = (
        frame.filter(
            (pl.col("kind") == "resource")
            & pl.col("full_url").is_not_null()
            & pl.col("resource_type").is_not_null()
        )
        .select(
            pl.concat_str(pl.lit('"'), pl.col("full_url"), pl.lit('"')).alias("pattern"),
            pl.concat_str(
                pl.lit('"'), pl.col("resource_type"), pl.lit("/"), pl.col("resource_id"), pl.lit('"')
            ).alias("replacement"),
        )
        .filter(pl.col("replacement").is_not_null() & (pl.col("pattern") != pl.col("replacement")))
    )
    resources = frame.filter(pl.col("kind") == "resource")
    if targets.height:
        resources = resources.with_columns(
            pl.col("raw").str.replace_many(targets["pattern"].to_list(), targets["replacement"].to_list())
        )
    bronze, rejected = parse_fhir_records(resources.select("line", "entry", "raw"))
    deletes = _delete_records(frame.filter(pl.col("kind") == "delete"))
    bronze, orphans = check_patient_references(
        pl.concat([bronze, deletes], how="diagonal_relaxed"), known_patients
    )
    not_objects = quarantine_rows(
        frame.filter(pl.col("kind") == "not_object"), "not_an_object", "the Bundle entry is not a JSON object"
    )
    no_resource = quarantine_rows(
        frame.filter(pl.col("kind") == "no_resource"),
        "missing_resource",
        "the Bundle entry has no resource (and is not a DELETE request)",
    )
    quarantine = pl.concat([not_objects, no_resource, rejected, orphans], how="vertical_relaxed")
    return ReadResult(FHIR_RESOURCES, len(entries), bronze.sort("entry"), quarantine.sort("entry"))


def _entry_shape(index: int, entry: Any) -> tuple[Any, ...]:
    """One Bundle entry as a row; the resource is re-serialized compactly (its raw JSON)."""
    if not isinstance(entry, dict):
        return (index, "not_object", None, None, None, None, None, orjson.dumps(entry).decode())
    request = entry.get("request") if isinstance(entry.get("request"), dict) else {}
    method = request.get("method") if isinstance(request.get("method"), str) else None
    url = request.get("url") if isinstance(request.get("url"), str) else None
    full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
    resource = entry.get("resource")
    if resource is None and method == "DELETE":
        return (index, "delete", full_url, method, url, None, None, orjson.dumps(entry).decode())
    if resource is None:
        return (index, "no_resource", full_url, method, url, None, None, orjson.dumps(entry).decode())
    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    rid = resource.get("id") if isinstance(resource, dict) else None
    if isinstance(resource, dict) and rid is None and full_url and full_url.startswith("urn:uuid:"):
        # a transaction Bundle may leave the id to the server: the urn:uuid is the identity it uses
        rid = full_url.removeprefix("urn:uuid:")
        resource = {**resource, "id": rid}
    return (
        index,
        "resource",
        full_url,
        method,
        url,
        rtype if isinstance(rtype, str) else None,
        rid if isinstance(rid, str) else None,
        orjson.dumps(resource).decode(),
    )


def _delete_records(deletes: pl.DataFrame) -> pl.DataFrame:
    """DELETE requests (`Type/id` in request.url) as bronze rows with operation 'delete'."""
    parts = pl.col("url").str.extract_groups(r"^(?:.*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-\.]{1,64})$")
    return deletes.with_columns(
        parts.struct.field("1").alias("resource_type"),
        parts.struct.field("2").alias("resource_id"),
    ).with_columns(
        pl.lit("delete").alias("operation"),
        pl.when(pl.col("resource_type") == "Patient")
        .then(pl.concat_str(pl.lit("Patient/"), pl.col("resource_id")))
        .alias("patient_key"),
    )


def read_fhir_deleted_ndjson(data: bytes) -> ReadResult:
    """A Bulk Data `deleted[]` file: each line a Bundle whose entries are DELETE requests.

    Each entry is one record; a line that is not a usable Bundle is one quarantined record.
    """
    split, _, undecodable = ndjson_records(data)
    bronze_parts: list[pl.DataFrame] = []
    quarantine_parts = [undecodable]
    records_in = split.invalid_utf8.height
    for line, raw in split.lines.iter_rows():  # deleted[] files are small: one Bundle per line
        value, verdict = load_object(raw, "")
        entries = value.get("entry") if value is not None else None
        if (
            verdict is not None
            or value is None
            or value.get("resourceType") != "Bundle"
            or not isinstance(entries, list)
        ):
            records_in += 1
            code, reason = (
                (verdict.reason_code, verdict.reason)
                if verdict is not None
                else ("invalid_field_type", "a deleted[] line must be a Bundle with an entry list")
            )
            row = pl.DataFrame({"line": [line], "entry": [None], "raw": [raw]}, schema=POSITIONED)
            quarantine_parts.append(quarantine_rows(row, code, reason))
            continue
        records_in += len(entries)
        result = _read_bundle_entries(entries, None)
        positioned = [
            f.with_columns(pl.lit(line, pl.Int64).alias("line")) for f in (result.bronze, result.quarantine)
        ]
        bronze_parts.append(positioned[0])
        quarantine_parts.append(positioned[1])
    bronze = pl.concat(bronze_parts, how="vertical_relaxed") if bronze_parts else pl.DataFrame()
    non_deletes = bronze.filter(pl.col("operation") != "delete") if bronze.height else bronze
    if non_deletes.height:
        # a deleted[] file lists deletions only; anything else in it is misplaced, not data to keep as is
        quarantine_parts.append(
            quarantine_rows(non_deletes, "invalid_field_type", "a deleted[] entry must be a DELETE request")
        )
        bronze = bronze.filter(pl.col("operation") == "delete")
    quarantine = pl.concat(quarantine_parts, how="diagonal_relaxed")
    return ReadResult(FHIR_RESOURCES, records_in, bronze, quarantine, blank_lines=split.blank_lines)
