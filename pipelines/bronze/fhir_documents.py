"""FHIR JSON documents: Bundles (each entry a record), single resources, Bulk `deleted[]` files.

Small documents are the rule here (one Bundle per patient), so many are read as one batch: entries of
all documents form one frame tagged with `doc`, go through the vectorized parse and checks once, and are
split back into one result per document. Only JSON decoding and re-serializing each entry is per record
(orjson, in C); `urn:uuid:` references are resolved per document, since a fullUrl is scoped to its Bundle.
"""

from __future__ import annotations

from typing import Any

import orjson
import polars as pl

from pipelines.bronze.diagnostics import load_object
from pipelines.bronze.fhir_reader import check_patient_references, parse_fhir_records
from pipelines.bronze.json_records import (
    NO_PROBLEM,
    ndjson_records,
    problem,
    split_by_problem,
    whole_file_quarantine,
)
from pipelines.bronze.lines import DUPLICATE_MEMBER, NESTED_TOO_DEEPLY, UTF8_BOM
from pipelines.bronze.tables import DOC, FHIR_RESOURCES, ReadResult, quarantine_rows, split_by_document

ENTRY_SCHEMA = {
    DOC: pl.Int64,
    "line": pl.Int64,
    "entry": pl.Int64,
    "kind": pl.String,  # resource | delete | no_resource | not_object
    "full_url": pl.String,
    "url": pl.String,
    "resource_type": pl.String,
    "resource_id": pl.String,
    "raw": pl.String,
}


def read_fhir_document(data: bytes, known_patients: pl.Series | None = None) -> ReadResult:
    """One JSON document: a Bundle or a single resource."""
    return read_fhir_documents([data], known_patients)[0]


def read_fhir_documents(documents: list[bytes], known_patients: pl.Series | None = None) -> list[ReadResult]:
    """Several JSON documents of one source read as a batch; one result per document, in order."""
    entries: list[tuple[Any, ...]] = []
    whole_file: list[tuple[int, bytes, str, str]] = []
    records_in: list[int] = []
    loaded = [load_object(data.removeprefix(UTF8_BOM), "") for data in documents]
    repeated = _repeated_members(documents, [value for value, _ in loaded])
    for doc, data in enumerate(documents):
        value, verdict = loaded[doc]
        if verdict is not None:
            whole_file.append((doc, data, verdict.reason_code, verdict.reason))
            records_in.append(1)
        elif repeated[doc]:  # orjson kept one of the two values: which was meant is unknown
            whole_file.append((doc, data, "invalid_json", DUPLICATE_MEMBER))
            records_in.append(1)
        elif value.get("resourceType") == "Bundle" and not isinstance(value.get("entry") or [], list):  # type: ignore[union-attr]
            whole_file.append((doc, data, "invalid_field_type", "Bundle.entry is not a list"))
            records_in.append(1)
        else:
            try:
                shaped = _document_shape(doc, value)  # type: ignore[arg-type]
            except TypeError:  # orjson writes no value nested deeper than 254 levels
                whole_file.append((doc, data, "nested_too_deeply", NESTED_TOO_DEEPLY))
                records_in.append(1)
                continue
            entries.extend(shaped)
            records_in.append(len(shaped))
    bronze, quarantine = read_entries(
        pl.DataFrame(entries, schema=ENTRY_SCHEMA, orient="row"), known_patients
    )
    broken = pl.concat(
        [
            whole_file_quarantine(data, code, reason).with_columns(pl.lit(doc).alias(DOC))
            for doc, data, code, reason in whole_file
        ]
        or [quarantine.clear()],
        how="diagonal_relaxed",
    )
    quarantine = pl.concat([quarantine, broken], how="diagonal_relaxed")
    return split_by_document(FHIR_RESOURCES, records_in, bronze, quarantine)


_MEMBER_END = r'[^\\]"\s*:'
"""The end of a member name: a quote that is not escaped, then a colon (inside a string a quote is always
escaped, so text never counts)."""


def _repeated_members(documents: list[bytes], values: list[Any]) -> list[bool]:
    """For each document, whether an object in it repeats a member (`values`: the documents as orjson
    parsed them, None where they did not parse).

    orjson keeps the last of two repeated members, so the parsed document has fewer members than its text
    names exactly when one was repeated: both counts are taken vectorized, over the text as delivered and
    over orjson's own compact writing of the parsed value. (A member name ending in a backslash counts in
    neither.) Costs one orjson write per document, in C: 1,000 generated people's Bundles (17.6 MB) in
    about 0.2 s, where tokenizing them (`pipelines.bronze.lines.duplicate_members`) took 0.5 s.
    """
    texts: list[str | None] = []
    written: list[str | None] = []
    for data, value in zip(documents, values, strict=True):
        try:
            compact = orjson.dumps(value).decode() if value is not None else None
        except TypeError:  # nested deeper than orjson writes: refused whole when shaped
            compact = None
        written.append(compact)
        texts.append(data.removeprefix(UTF8_BOM).decode("utf-8", "replace") if compact is not None else None)
    text, compact = pl.Series(texts, dtype=pl.String), pl.Series(written, dtype=pl.String)
    in_text, in_written = _literal_member_ends(text), _literal_member_ends(compact)
    # white space before a colon (never in orjson's writing, rare in files) needs the slower expression,
    # on those documents only
    spaced = text.str.contains(r'"[ \t\r\n]+:').fill_null(False)
    if spaced.any():
        exact = text.str.count_matches(_MEMBER_END)
        in_text = pl.select(pl.when(spaced).then(exact).otherwise(in_text)).to_series()
    return (in_text > in_written).fill_null(False).to_list()


def _literal_member_ends(text: pl.Series) -> pl.Series:
    """Member-name ends (`":`) of JSON texts with no white space before their colons, less the escaped
    quotes followed by a colon inside strings."""
    return text.str.count_matches('":', literal=True) - text.str.count_matches('\\":', literal=True)


def _document_shape(doc: int, value: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The records of a parsed document as rows of `ENTRY_SCHEMA`: a Bundle's entries, or the resource."""
    if value.get("resourceType") != "Bundle":
        return [_resource_shape(doc, None, None, None, None, value)]
    return [_entry_shape(doc, None, i, e) for i, e in enumerate(value.get("entry") or [])]


def read_entries(frame: pl.DataFrame, known_patients: pl.Series | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bronze and quarantine rows (tagged with `doc`) from shaped entries (see `ENTRY_SCHEMA`)."""
    resources, nested, shared_url = _misplaced_entries(frame.filter(pl.col("kind") == "resource"))
    resources = _resolve_references(resources)
    bronze, rejected = parse_fhir_records(resources.select(DOC, "line", "entry", "raw"))
    # a conditional delete (`Observation?subject=…`) or one without a url names no resource to remove
    deletes, bad_deletes = split_by_problem(
        _delete_records(frame.filter(pl.col("kind") == "delete")),
        pl.when(pl.col("resource_type").is_null())
        .then(problem("invalid_field_type", "a DELETE request.url must name a resource as Type/id"))
        .otherwise(NO_PROBLEM),
    )
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
    quarantine = pl.concat(
        [not_objects, no_resource, nested, shared_url, bad_deletes, rejected, orphans], how="diagonal_relaxed"
    )
    order = [DOC, "line", "entry"]
    return bronze.sort(order, nulls_last=True), quarantine.sort(order, nulls_last=True)


NESTED_BUNDLE = "nested_bundle"
DUPLICATE_FULL_URL = "duplicate_full_url"


def _misplaced_entries(resources: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Entries (of `resources`, shaped rows) that bronze keeps, and quarantine rows for two kinds it
    cannot take as delivered resources:

    - a Bundle inside a Bundle's entry (`nested_bundle`): not expanded, since its entries are not
      resources delivered to us (a searchset or a document kept inside a collection is a copy, possibly of
      other versions) and their fullUrls would be scoped to the inner Bundle;
    - entries of one Bundle that share a fullUrl but are different resources (`duplicate_full_url`): a
      reference to that fullUrl could mean either, so both are quarantined and references to it stay
      unresolved (a patient reference then names no patient). Entries sharing a fullUrl that are the same
      resource (versions in a history Bundle) are kept.
    """
    nested = pl.col("entry").is_not_null() & (pl.col("resource_type") == "Bundle")
    resource_key = pl.concat_str(
        pl.col("resource_type").fill_null(""), pl.lit("/"), pl.col("resource_id").fill_null("")
    )
    shared = (
        pl.col("full_url").is_not_null()
        & pl.col("entry").is_not_null()
        & (resource_key.n_unique().over(DOC, "full_url") > 1)
    )
    nested, shared = nested.fill_null(False), shared.fill_null(False)  # a null type is checked later
    marked = resources.with_columns(nested.alias("_nested"), (shared & ~nested).alias("_shared"))
    return (
        marked.filter(~pl.col("_nested") & ~pl.col("_shared")).drop("_nested", "_shared"),
        quarantine_rows(
            marked.filter(pl.col("_nested")),
            NESTED_BUNDLE,
            "a Bundle inside a Bundle entry is not expanded: its entries are not delivered resources",
        ),
        quarantine_rows(
            marked.filter(pl.col("_shared")),
            DUPLICATE_FULL_URL,
            "another entry of the Bundle, a different resource, has the same fullUrl: references to it are"
            " ambiguous",
        ),
    )


def _resolve_references(resources: pl.DataFrame) -> pl.DataFrame:
    """Rewrite each `"reference":"<fullUrl>"` naming an entry of the same document to `"Type/id"`.

    Only Reference.reference values change (an identifier that happens to hold a urn:uuid stays as
    received); entries are serialized compactly, so the key and value are adjacent. A fullUrl only
    means something inside its own Bundle. In practice fullUrls are unique (urn:uuid),
    so one vectorized replace over the whole batch is exact whenever no document mentions a fullUrl that
    only another document of the batch defines; otherwise the batch is resolved document by document.
    """
    targets = _reference_targets(resources)
    if targets.is_empty():
        return resources
    mentioned = (
        resources.select(DOC, pl.col("raw").str.extract_all(r'"reference":"[^"]*"').alias("pattern"))
        .explode("pattern")
        .join(targets.select("pattern").unique(), on="pattern", how="semi")
        .unique()
    )
    foreign = mentioned.join(targets, on=[DOC, "pattern"], how="anti")
    ambiguous = (
        targets.group_by("pattern").agg(pl.col("replacement").n_unique().alias("n")).filter(pl.col("n") > 1)
    )
    if foreign.is_empty() and ambiguous.is_empty():
        mapping = targets.unique(subset="pattern", keep="first", maintain_order=True)
        return resources.with_columns(
            pl.col("raw").str.replace_many(mapping["pattern"].to_list(), mapping["replacement"].to_list())
        )
    by_doc = targets.partition_by(DOC, as_dict=True, maintain_order=True)
    parts = []
    for (doc,), part in resources.partition_by(DOC, as_dict=True, maintain_order=True).items():
        mapping = by_doc.get((doc,))
        if mapping is not None:
            part = part.with_columns(
                pl.col("raw").str.replace_many(mapping["pattern"].to_list(), mapping["replacement"].to_list())
            )
        parts.append(part)
    return pl.concat(parts)


def _reference_targets(resources: pl.DataFrame) -> pl.DataFrame:
    """(doc, pattern, replacement): `"reference":"<fullUrl>"` → `"reference":"Type/id"` per entry."""
    quoted_type_id = pl.concat_str(
        pl.lit('"reference":"'), pl.col("resource_type"), pl.lit("/"), pl.col("resource_id"), pl.lit('"')
    )
    return (
        resources.filter(pl.col("full_url").is_not_null() & pl.col("resource_type").is_not_null())
        .select(
            DOC,
            pl.concat_str(pl.lit('"reference":"'), pl.col("full_url"), pl.lit('"')).alias("pattern"),
            quoted_type_id.alias("replacement"),
        )
        .filter(pl.col("replacement").is_not_null() & (pl.col("pattern") != pl.col("replacement")))
    )


def _entry_shape(doc: int, line: int | None, index: int, entry: Any) -> tuple[Any, ...]:
    """One Bundle entry as a row of `ENTRY_SCHEMA`."""
    if not isinstance(entry, dict):
        return (doc, line, index, "not_object", None, None, None, None, orjson.dumps(entry).decode())
    request = entry.get("request") if isinstance(entry.get("request"), dict) else {}
    method = request.get("method") if isinstance(request.get("method"), str) else None
    url = request.get("url") if isinstance(request.get("url"), str) else None
    full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
    resource = entry.get("resource")
    if resource is None:
        kind = "delete" if method == "DELETE" else "no_resource"
        return (doc, line, index, kind, full_url, url, None, None, orjson.dumps(entry).decode())
    return _resource_shape(doc, line, index, full_url, url, resource)


def _resource_shape(
    doc: int, line: int | None, index: int | None, full_url: str | None, url: str | None, resource: Any
) -> tuple[Any, ...]:
    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    rid = resource.get("id") if isinstance(resource, dict) else None
    if isinstance(resource, dict) and rid is None and full_url and full_url.startswith("urn:uuid:"):
        # a transaction Bundle may leave the id to the server: the urn:uuid is the identity it uses
        rid = full_url.removeprefix("urn:uuid:")
        resource = {**resource, "id": rid}
    return (
        doc,
        line,
        index,
        "resource",
        full_url,
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

    Each entry is one record; a line that is not a usable Bundle is one quarantined record, and an
    entry that is not a DELETE request is quarantined (a deletions file holds nothing else).
    """
    split, _, undecodable = ndjson_records(data)
    entries: list[tuple[Any, ...]] = []
    bad_lines: list[tuple[int, str, str, str]] = []
    for line, raw in split.lines.iter_rows():  # one Bundle per line
        value, verdict = load_object(raw, "")
        bundle_entries = value.get("entry") if value is not None else None
        if verdict is not None:
            bad_lines.append((line, raw, verdict.reason_code, verdict.reason))
        elif value.get("resourceType") != "Bundle" or not isinstance(bundle_entries, list):  # type: ignore[union-attr]
            bad_lines.append(
                (line, raw, "invalid_field_type", "a deleted[] line must be a Bundle with an entry list")
            )
        else:
            try:
                entries.extend([_entry_shape(0, line, i, e) for i, e in enumerate(bundle_entries)])
            except TypeError:  # orjson writes no value nested deeper than 254 levels
                bad_lines.append((line, raw, "nested_too_deeply", NESTED_TOO_DEEPLY))
    bronze, quarantine = read_entries(pl.DataFrame(entries, schema=ENTRY_SCHEMA, orient="row"), None)
    misplaced = bronze.filter(pl.col("operation") != "delete")
    bronze = bronze.filter(pl.col("operation") == "delete")
    lines = pl.DataFrame(
        [(line, None, raw) for line, raw, _, _ in bad_lines],
        schema={"line": pl.Int64, "entry": pl.Int64, "raw": pl.String},
        orient="row",
    )
    quarantine = pl.concat(
        [
            undecodable,
            quarantine.drop(DOC),
            quarantine_rows(
                misplaced.drop(DOC), "invalid_field_type", "a deleted[] entry must be a DELETE request"
            ),
            quarantine_rows(
                lines.with_columns(
                    pl.Series("code", [c for *_, c, _ in bad_lines], dtype=pl.String),
                    pl.Series("why", [w for *_, w in bad_lines], dtype=pl.String),
                ),
                pl.col("code"),
                pl.col("why"),
            ),
        ],
        how="diagonal_relaxed",
    )
    records_in = split.invalid_utf8.height + len(bad_lines) + len(entries)
    return ReadResult(FHIR_RESOURCES, records_in, bronze, quarantine, blank_lines=split.blank_lines)
