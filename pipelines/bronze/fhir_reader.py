"""FHIR R4 resources: the Bulk Data NDJSON reader and the parse and checks every FHIR record goes through.

The fast path parses only the fields bronze needs (type, id, meta, patient references) with an
explicit Arrow schema; the full resource is kept as its raw JSON text. Checks are Polars expressions
over the whole file. Records that fail them go to quarantine with a reason code. JSON documents
(Bundles, deleted[] files) are shaped into records by `fhir_documents` and then take the same path.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from pipelines.bronze.diagnostics import diagnose_fhir
from pipelines.bronze.json_records import (
    NO_PROBLEM,
    ndjson_records,
    parse_records,
    problem,
    split_by_problem,
)
from pipelines.bronze.tables import DOC, FHIR_RESOURCES, ReadResult, quarantine_rows
from pipelines.fhir.resource_types import (
    FHIR_ID_PATTERN,
    PATIENT_REFERENCE_PATTERN,
    R4_RESOURCE_TYPES,
    SINGLE_REFERENCE_PATIENT_ELEMENTS,
)
from pipelines.silver.views import patient_reference_elements

PATIENT_ELEMENTS = patient_reference_elements()
"""Resource type -> the element silver reads its patient from, for the types silver keeps per patient."""
assert set(PATIENT_ELEMENTS.values()) <= set(SINGLE_REFERENCE_PATIENT_ELEMENTS), "parsed key fields"
NO_PATIENT_REFERENCE = "no_patient_reference"
NO_PATIENT_REASON = (
    "silver keeps this resource type per patient, but its patient element names no Patient that can be"
    " resolved (absent, a contained '#' reference, an unresolved urn:uuid, or another resource type)"
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
    bronze, rejected = parse_fhir_records(records, split.payload, check_duplicates=True)
    bronze, orphans = check_patient_references(bronze, known_patients)
    quarantine = pl.concat([undecodable, rejected, orphans], how="vertical_relaxed")
    records_in = split.lines.height + split.invalid_utf8.height
    return ReadResult(FHIR_RESOURCES, records_in, bronze, quarantine, blank_lines=split.blank_lines)


def parse_fhir_records(
    records: pl.DataFrame, payload: bytes | None = None, check_duplicates: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse `records` (line, entry, raw) into bronze rows and quarantine rows (reference check aside).

    `check_duplicates` for records as delivered (NDJSON lines): a repeated member anywhere is invalid
    JSON. Bundle entries are re-serialized and never hold one (their documents are checked whole)."""
    parsed, rejected = parse_records(
        records,
        FHIR_KEY_SCHEMA,
        diagnose=lambda raw, error: diagnose_fhir(raw, error, FHIR_KEY_SCHEMA),
        payload=payload,
        check_duplicates=check_duplicates,
    )
    keyed = parsed.with_columns(*_key_columns(), _modifier_extensions(parsed["raw"]))
    bronze, bad = split_by_problem(keyed, _fhir_problem())
    bronze = bronze.drop("_modifier")
    quarantine = pl.concat([rejected, bad], how="vertical_relaxed")
    return bronze.with_columns(pl.lit("upsert").alias("operation")), quarantine


def _patient_of(element: str) -> pl.Expr:
    return pl.col(element).struct.field("reference").str.extract(PATIENT_REFERENCE_PATTERN, 1)


def _required_patient() -> pl.Expr:
    """The patient id of a resource of a type silver keeps per patient, read from the element silver
    reads (so that bronze's bucket and silver's patient_id agree); null for every other type."""
    expr: pl.Expr | None = None
    for element in sorted(set(PATIENT_ELEMENTS.values())):
        types = sorted(t for t, e in PATIENT_ELEMENTS.items() if e == element)
        condition = pl.col("resourceType").is_in(types)
        expr = (pl.when(condition) if expr is None else expr.when(condition)).then(_patient_of(element))  # type: ignore[attr-defined]
    return pl.lit(None, pl.String) if expr is None else expr.otherwise(None)


def _key_columns() -> list[pl.Expr]:
    patient_ids = [_patient_of(name) for name in SINGLE_REFERENCE_PATIENT_ELEMENTS]
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
        .when(pl.col("resourceType").is_in(sorted(PATIENT_ELEMENTS)))
        .then(_required_patient())
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


UNKNOWN_MODIFIER = "unknown_modifier_extension"
_MODIFIER_MEMBER = r'[{,]\s*"modifierExtension"\s*:\s*(?:[^\[\s]|\[\s*[^\]\s])'
"""A `modifierExtension` member (not text inside a string: a quote there is escaped) that is not empty."""


def _modifier_extensions(raw: pl.Series) -> pl.Series:
    """Whether each resource carries a `modifierExtension`, at any depth.

    FHIR: a modifier extension changes the meaning of the element holding it (e.g. "this is NOT the
    patient's condition"), and a system that does not know it must not use the element as if it were not
    there. The platform understands none, so such resources are quarantined. A literal search first:
    the regular expression runs only when some record holds the word.
    """
    maybe = raw.str.contains("modifierExtension", literal=True).fill_null(False)
    if maybe.any():
        maybe = maybe & raw.str.contains(_MODIFIER_MEMBER).fill_null(False)
    return maybe.alias("_modifier")


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
        .when(pl.col("_modifier"))
        .then(
            problem(
                UNKNOWN_MODIFIER,
                "the resource has a modifierExtension, which changes its meaning in a way the platform"
                " does not understand (FHIR: it must not be used as if the extension were absent)",
            )
        )
        .when(rtype.is_in(sorted(PATIENT_ELEMENTS)) & pl.col("patient_key").is_null())
        .then(problem(NO_PATIENT_REFERENCE, NO_PATIENT_REASON))
        .otherwise(NO_PROBLEM)
    )


def check_patient_references(
    bronze: pl.DataFrame, known_patients: pl.Series | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Quarantine resources whose patient is neither in the same document nor known for the source.

    `known_patients` holds patient keys ('Patient/<id>') seen before; None turns the check off. A
    document is a file, or one Bundle of a batch read together (rows tagged with `doc`).
    """
    if known_patients is None or bronze.is_empty():
        return bronze, quarantine_rows(bronze.clear(), "", "")
    tagged = bronze if DOC in bronze.columns else bronze.with_columns(pl.lit(0).alias(DOC))
    own = (
        tagged.filter(pl.col("resource_type") == "Patient")
        .select(DOC, "patient_key")
        .unique()
        .with_columns(pl.lit(True).alias("_own_patient"))
    )
    tagged = tagged.join(own, on=[DOC, "patient_key"], how="left", maintain_order="left")
    orphan = (
        pl.col("patient_key").is_not_null()
        & (pl.col("resource_type") != "Patient")
        & (pl.col("operation") == "upsert")
        & pl.col("_own_patient").is_null()
        & ~pl.col("patient_key").is_in(known_patients.cast(pl.String).implode())
    )
    orphans = tagged.filter(orphan)
    kept = tagged.filter(~orphan).drop("_own_patient")
    if DOC not in bronze.columns:
        kept, orphans = kept.drop(DOC), orphans.drop(DOC)
    # the ingest releases such records into bronze once the Patient arrives (`ingest.release_quarantined`)
    reason = (
        "the referenced Patient is not in this source (not in this file nor ingested before); "
        "released into bronze when it arrives"
    )
    return kept, quarantine_rows(orphans, "unknown_patient_reference", reason)
