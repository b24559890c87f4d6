"""Run one ViewDefinition over NDJSON and Bundle files into a Parquet file, one input file at a time.

Inputs go through the bronze readers, so a broken line is counted with its reason instead of
stopping the run; each file's rows are appended to the output as a row group, cast to the view's
declared column types (values that do not fit become null and are counted).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from pipelines.bronze.fhir_documents import read_fhir_document
from pipelines.bronze.fhir_reader import read_fhir_ndjson
from pipelines.silver.views import column_dtypes
from pipelines.sof.engine import view_rows
from pipelines.sof.frames import contexts_from_json
from pipelines.sof.view import parse_view


@dataclass
class ViewFileReport:
    """What a file run read and wrote (counts only)."""

    files: int = 0
    resources: int = 0
    rows: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # reason code -> records
    values_nulled: Counter[str] = field(default_factory=Counter)  # column -> values that did not fit


def run_view_files(definition: dict[str, Any], inputs: list[Path], output: Path) -> ViewFileReport:
    """Rows of `definition` over every resource of its type in `inputs`, written to `output`."""
    view = parse_view(definition)
    dtypes = column_dtypes(definition)
    report = ViewFileReport()
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    schema = pl.DataFrame(schema=dtypes).to_arrow().schema
    with pq.ParquetWriter(str(partial), schema, compression="zstd") as writer:
        for path in inputs:
            data = path.read_bytes()
            result = (
                read_fhir_ndjson(data) if path.suffix in (".ndjson", ".jsonl") else read_fhir_document(data)
            )
            report.files += 1
            report.rejected.update(result.quarantine["reason_code"].to_list())
            raw = result.bronze.filter(pl.col("resource_type") == view.resource)["raw"]
            report.resources += raw.len()
            if raw.is_empty():
                continue
            contexts = contexts_from_json(raw).contexts
            rows = view_rows(view, contexts)
            typed = _cast(rows, dtypes, report)
            report.rows += typed.height
            writer.write_table(typed.to_arrow().cast(schema))
    partial.replace(output)
    return report


def _cast(rows: pl.DataFrame, dtypes: dict[str, pl.DataType], report: ViewFileReport) -> pl.DataFrame:
    columns = []
    for name, dtype in dtypes.items():
        cast = rows[name].cast(dtype, strict=False) if rows.schema[name] != dtype else rows[name]
        lost = int((rows[name].is_not_null() & cast.is_null()).sum())
        if lost:
            report.values_nulled[name] += lost
        columns.append(cast)
    return pl.DataFrame(columns)
