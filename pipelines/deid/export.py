"""The de-identified export of the lake: `<lake>/deidentified/<table>/data.parquet`, one file per table.

Each exported table is read file by file (one bucket in memory at a time), de-identified by its policy,
scanned, and appended to a hidden temporary file. The tables are put in place only when the scanner found
nothing in any of them; otherwise every temporary file is dropped and the previous export stays as it was.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

import polars as pl
from upath import UPath

from pipelines.deid.rules import PERSON_ID, TablePolicy, check_columns, load_policy
from pipelines.deid.scanner import Finding, IdentifyingValues, scan
from pipelines.deid.transform import deidentify, export_schema, link_persons, pseudonym
from pipelines.lake import (
    AtomicParquetWriter,
    parquet_files,
    read_parquet,
    read_table,
    remove_files,
    scan_parquet,
    scan_table,
    table_path,
)

DEIDENTIFIED = "deidentified"
EXPORT_FILE = "data.parquet"
IDENTITY, SILVER = "identity", "silver"
_IDENTIFYING_COLUMNS: dict[tuple[str, str], tuple[str, ...]] = {
    # where the identifiable values live, to be looked for in the export
    (IDENTITY, "person"): (
        "person_id", "given", "family", "birth_date", "address_line", "address_city", "phone", "email",
    ),
    (IDENTITY, "person_link"): ("source_patient_id", "person_id"),
    (SILVER, "patient"): ("id", "given", "family", "birth_date", "address_line", "address_city"),
    (SILVER, "patient_name"): ("given", "family", "text"),
    (SILVER, "patient_identifier"): ("value",),
    (SILVER, "patient_telecom"): ("value",),
    (SILVER, "patient_contact"): ("given", "family", "phone", "email", "address_line"),
    (SILVER, "device"): ("id", "udi_device_identifier", "serial_number"),
    (SILVER, "device_reading"): ("vendor_user_id", "device_id"),
}  # fmt: skip
_FULL_NAMES = (
    (IDENTITY, "person"),
    (SILVER, "patient"),
    (SILVER, "patient_name"),
    (SILVER, "patient_contact"),
)


@dataclass(frozen=True)
class TableExport:
    """What one table's export holds (counts only)."""

    table: str
    rows: int
    columns: int
    dropped_columns: int
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class ExportReport:
    """The outcome of one export: per table, and whether it was published."""

    as_of: date
    tables: dict[str, TableExport]
    published: bool

    @property
    def findings(self) -> list[Finding]:
        """Every residual identifier found, over all tables."""
        return [f for t in self.tables.values() for f in t.findings]


def export_file(lake: UPath, table: str) -> UPath:
    """Where one de-identified table lives."""
    return table_path(lake, DEIDENTIFIED, table) / EXPORT_FILE


def export_deidentified(
    lake: UPath,
    key: bytes,
    as_of: date,
    identifying: IdentifyingValues | None = None,
    policies: dict[str, TablePolicy] | None = None,
) -> ExportReport:
    """De-identify every table of `policies` (default: data_contracts/deid/policy.yaml) with the salt `key`
    as of `as_of`, scan each against `identifying` (default: read from the lake's identity and silver
    tables) and publish all of them only if nothing was found. A column without a rule raises
    `PolicyError` and nothing is published."""
    policies = policies if policies is not None else load_policy()
    identifying = identifying if identifying is not None else identifying_values(lake)
    person_link = _person_link(lake) if any(p.link_persons for p in policies.values()) else pl.DataFrame()
    writers: dict[str, AtomicParquetWriter | None] = {}
    reports: dict[str, TableExport] = {}
    try:
        for name, policy in policies.items():
            writers[name], reports[name] = _export_table(lake, policy, key, as_of, identifying, person_link)
        clean = not any(r.findings for r in reports.values())
        for name, writer in writers.items():
            if writer is None:
                if clean:  # nothing to export now: an older export of the table must not stay
                    remove_files([export_file(lake, name)])
            elif clean:
                writer.commit()
            else:
                writer.abort()
    except BaseException:
        for writer in writers.values():
            if writer is not None:
                writer.abort()
        raise
    return ExportReport(as_of, reports, clean)


def _export_table(
    lake: UPath,
    policy: TablePolicy,
    key: bytes,
    as_of: date,
    identifying: IdentifyingValues,
    person_link: pl.DataFrame,
) -> tuple[AtomicParquetWriter | None, TableExport]:
    """One table into a temporary file (None when the source has no file), scanned bucket by bucket."""
    files = parquet_files(table_path(lake, policy.layer, policy.source_table))
    if not files:
        return None, TableExport(policy.table, 0, 0, 0)
    source = _union_schema(files)
    check_columns(list(source), policy)  # before the link adds person_id: a source person_id is a column too
    if policy.link_persons:
        source[PERSON_ID] = pl.String()
    target = export_schema(pl.Schema(source), policy, as_of)
    writer = AtomicParquetWriter(
        export_file(lake, policy.table), pl.DataFrame(schema=target).to_arrow().schema
    )
    rows, found = 0, Counter[tuple[str, str]]()
    try:
        # files in an order set by the salt: row groups in bucket order would tell the real ids' buckets
        for path in sorted(files, key=lambda f: pseudonym(f"{f.parent.name}/{f.name}", key)):
            frame = _conform(read_parquet(path), source, policy.link_persons)
            if policy.link_persons:
                frame = link_persons(frame, person_link)
            out = deidentify(frame, policy, key, as_of).select(target.names()).cast(dict(target))
            for finding in scan(out, policy, identifying, as_of):
                found[(finding.column, finding.check)] += finding.count
            writer.write(out.to_arrow())
            rows += out.height
    except BaseException:
        writer.abort()
        raise
    findings = [Finding(policy.table, column, check, n) for (column, check), n in sorted(found.items())]
    dropped = len(source) - len(target)
    return writer, TableExport(policy.table, rows, len(target), dropped, findings)


def _person_link(lake: UPath) -> pl.DataFrame:
    """identity/person_link (empty before identity has run: no device row has a person then)."""
    schema = {"source": pl.String(), "source_patient_id": pl.String(), PERSON_ID: pl.String()}
    if not parquet_files(table_path(lake, IDENTITY, "person_link")):
        return pl.DataFrame(schema=schema)
    return read_table(lake, IDENTITY, "person_link").select(list(schema))


def _union_schema(files: list[UPath]) -> dict[str, pl.DataType]:
    """Every column of any file of a table (a file written before a column was added lacks it)."""
    schema: dict[str, pl.DataType] = {}
    for path in files:
        for column, dtype in scan_parquet([path]).collect_schema().items():
            if schema.get(column, pl.Null()) == pl.Null:  # an all-null column may be stored untyped
                schema[column] = dtype
    return schema


def _conform(frame: pl.DataFrame, schema: dict[str, pl.DataType], linked: bool) -> pl.DataFrame:
    """`frame` with the table's columns, in order and type (missing ones null); the link adds person_id."""
    columns = [c for c in schema if not (linked and c == PERSON_ID)]
    return frame.select(
        (pl.col(c) if c in frame.columns else pl.lit(None)).cast(schema[c]).alias(c) for c in columns
    )


def identifying_values(lake: UPath) -> IdentifyingValues:
    """The identifiable values the export must not contain, from identity and silver: names (and full
    names), birth dates, street lines, phones, e-mails, MRNs, SSNs and other identifiers, source patient
    ids, person ids, device ids and serials, vendor accounts."""
    columns: list[pl.Series] = []
    for (layer, table), wanted in _IDENTIFYING_COLUMNS.items():
        if not parquet_files(table_path(lake, layer, table)):
            continue
        scanned = scan_table(lake, layer, table)
        present = [c for c in wanted if c in scanned.collect_schema().names()]
        extra = (
            [_full_name()] if (layer, table) in _FULL_NAMES and {"given", "family"} <= set(present) else []
        )
        frame = scanned.select(*present, *extra).unique().collect()
        columns.extend(frame.get_column(c) for c in frame.columns)
    return IdentifyingValues.from_columns(columns)


def _full_name() -> pl.Expr:
    """'<first given name> <family name>': the form a name takes inside a sentence."""
    first = pl.col("given").str.split(" ").list.first()
    return pl.concat_str([first, pl.col("family")], separator=" ").alias("full_name")


def scan_export(
    lake: UPath,
    identifying: IdentifyingValues | None = None,
    as_of: date | None = None,
    policies: dict[str, TablePolicy] | None = None,
) -> list[Finding]:
    """Scan the published export files (e.g. after copying them, or in a test): every residual identifier
    found, as counts; also every file under `<lake>/deidentified/` that no policy names."""
    policies = policies if policies is not None else load_policy()
    identifying = identifying if identifying is not None else identifying_values(lake)
    findings: list[Finding] = []
    for name, policy in policies.items():
        path = export_file(lake, name)
        if path.exists():
            findings.extend(scan(scan_parquet([path]), policy, identifying, as_of))
    root = lake / DEIDENTIFIED
    for path in parquet_files(root):
        table = path.parent.name
        if table not in policies or path.name != EXPORT_FILE:
            findings.append(Finding(table, "*", "file_without_policy", 1))
    return findings
