"""Shared machinery of the JSON readers (FHIR resources, device data points, vendor items, conversations).

A reader declares the Arrow schema of the key fields it needs and which of them must be strings; this
module parses NDJSON files or lists of JSON items into positioned rows plus quarantine rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import polars as pl
import pyarrow as pa

from pipelines.bronze.diagnostics import Verdict, lenient_fields, load_object, quarantine, wrong_types
from pipelines.bronze.lines import SplitLines, parse_json_lines, split_lines
from pipelines.bronze.tables import quarantine_rows

POSITIONED = {"line": pl.Int64, "entry": pl.Int64, "raw": pl.String}


def diagnose_json(
    raw: str | bytes, arrow_error: str, schema: pa.Schema, string_paths: tuple[tuple[str, ...], ...]
) -> Verdict:
    """A rejected non-FHIR record: quarantine when a key field is broken, else accept leniently."""
    value, verdict = load_object(raw, arrow_error)
    if verdict is not None:
        return verdict
    assert value is not None
    problem = wrong_types(value, string_paths)
    if problem:
        return quarantine("invalid_field_type", problem)
    return Verdict(fields={f.name: lenient_fields(value.get(f.name), f.type) for f in schema})


Diagnose = Callable[[str, str], Verdict]
"""Decides about one rejected record from its raw text and pyarrow's error."""


def parse_records(
    records: pl.DataFrame,
    schema: pa.Schema,
    string_paths: tuple[tuple[str, ...], ...] = (),
    diagnose: Diagnose | None = None,
    payload: bytes | None = None,
    check_duplicates: bool = False,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse positioned records (line, entry, raw): rows with the schema's fields, and quarantine rows.

    Rows pyarrow rejects go through `diagnose` (default: `diagnose_json` with `string_paths`);
    `payload` is the records' file as NDJSON, when they come straight from one (see `parse_json_lines`);
    `check_duplicates` rejects records with a repeated member at any depth (see `duplicate_members`).
    """
    if diagnose is None:

        def diagnose(raw: str, error: str) -> Verdict:
            return diagnose_json(raw, error, schema, string_paths)

    parsed = parse_json_lines(records["raw"], schema, payload, check_duplicates)
    if parsed.rejected.is_empty():  # the common case: rows and parsed fields are aligned
        no_rejects = quarantine_rows(records.clear(), "", "")
        return pl.concat([records, parsed.parsed.drop("_row")], how="horizontal"), no_rejects
    positioned = records.with_row_index("_row")
    rejected = positioned.join(parsed.rejected, on="_row", maintain_order="left")
    accepted: list[dict[str, Any]] = []
    accepted_rows: list[int] = []
    bad: list[tuple[int, str, str]] = []
    for row, raw, error in rejected.select("_row", "raw", "error").iter_rows():
        verdict = diagnose(raw, error)
        if verdict.fields is None:
            bad.append((row, verdict.reason_code, verdict.reason))
        else:
            accepted.append(verdict.fields)
            accepted_rows.append(row)
    fields = parsed.parsed
    if accepted:
        slow = pl.from_arrow(pa.Table.from_pylist(accepted, schema=schema))
        assert isinstance(slow, pl.DataFrame)
        slow = slow.with_columns(pl.Series("_row", accepted_rows, dtype=pl.UInt32)).select(
            "_row", *schema.names
        )
        fields = pl.concat([fields, slow], how="vertical_relaxed").sort("_row")
    verdicts = pl.DataFrame(
        bad, schema={"_row": pl.UInt32, "reason_code": pl.String, "reason": pl.String}, orient="row"
    )
    quarantined = quarantine_rows(
        rejected.join(verdicts, on="_row", how="inner", maintain_order="left"),
        pl.col("reason_code"),
        pl.col("reason"),
    )
    return positioned.join(fields, on="_row", maintain_order="left").drop("_row"), quarantined


def ndjson_records(data: bytes) -> tuple[SplitLines, pl.DataFrame, pl.DataFrame]:
    """Split an NDJSON file: the split, positioned records, and quarantine rows for undecodable lines."""
    split = split_lines(data)
    records = split.lines.with_columns(pl.lit(None, pl.Int64).alias("entry")).select("line", "entry", "raw")
    bad = quarantine_rows(split.invalid_utf8, "invalid_utf8", "the line is not valid UTF-8")
    return split, records, bad


def item_records(items: list[Any]) -> pl.DataFrame:
    """JSON items of a document (a list) as positioned records; `entry` is the 0-based list index."""
    return pl.DataFrame(
        {
            "line": [None] * len(items),
            "entry": list(range(len(items))),
            "raw": [orjson.dumps(item).decode() for item in items],
        },
        schema=POSITIONED,
    )


def whole_file_quarantine(data: bytes, code: str, reason: str) -> pl.DataFrame:
    """One quarantine row holding a whole file that could not be split into records."""
    frame = pl.DataFrame(
        {"line": [None], "entry": [None], "raw": [data]},
        schema={"line": pl.Int64, "entry": pl.Int64, "raw": pl.Binary},
    )
    return quarantine_rows(frame, code, reason)


def problem(code: str, reason: str) -> pl.Expr:
    """A (code, reason) struct literal used by the vectorized checks."""
    return pl.struct(pl.lit(code).alias("code"), pl.lit(reason).alias("reason"))


NO_PROBLEM = pl.lit(None, pl.Struct({"code": pl.String, "reason": pl.String}))


def split_by_problem(frame: pl.DataFrame, check: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows where `check` (a problem struct or null) is null, and quarantine rows for the others."""
    marked = frame.with_columns(check.alias("_problem"))
    bad = marked.filter(pl.col("_problem").is_not_null())
    return (
        marked.filter(pl.col("_problem").is_null()).drop("_problem"),
        quarantine_rows(
            bad, pl.col("_problem").struct.field("code"), pl.col("_problem").struct.field("reason")
        ),
    )
