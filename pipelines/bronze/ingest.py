"""Landing → bronze, with exact per-file accounting and crash-safe, idempotent writes.

Discovery plans which landing files to read; each file not ingested before (by its ingest key: the
SHA-256 of its content as delivered; a file unchanged since it was read is not even hashed again, see
`landing_index`) goes to the reader of its format (a `.gz` file decompressed first,
within limits), which returns bronze rows and quarantine rows; `writer.BatchWriter` writes them in
crash-safe batches with one `ingest_log` row per file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import groupby

import orjson
import polars as pl
from rich.progress import Progress
from upath import UPath

from pipelines.bronze import discovery as d
from pipelines.bronze.accounting import RELEASED, released_positions
from pipelines.bronze.apple_health import read_apple_health_export
from pipelines.bronze.compression import DecompressionLimits, DecompressionRefused, content_name, gunzip
from pipelines.bronze.device_reader import (
    load_csv_mapping,
    read_device_csv,
    read_enrolment_csv,
    read_fitbit_payload,
    read_fitbit_payloads,
    read_ihealth_payload,
    read_ihealth_payloads,
    read_omh_document,
    read_omh_ndjson,
    read_withings_payload,
    read_withings_payloads,
)
from pipelines.bronze.feedback_reader import read_conversations_ndjson
from pipelines.bronze.fhir_documents import read_fhir_deleted_ndjson, read_fhir_document, read_fhir_documents
from pipelines.bronze.fhir_reader import parse_fhir_records, read_fhir_ndjson
from pipelines.bronze.json_records import whole_file_quarantine
from pipelines.bronze.landing_index import LandingIndex, look
from pipelines.bronze.outreach_reader import read_outreach_events_csv, read_outreach_events_ndjson
from pipelines.bronze.tables import (
    BRONZE,
    DEVICE_RECORDS,
    FEEDBACK_RECORDS,
    FHIR_RESOURCES,
    INGEST_LOG,
    OUTREACH_EVENTS,
    QUARANTINE,
    UNRECOGNIZED_TABLE,
    ReadResult,
)
from pipelines.bronze.writer import DEFAULT_BATCH_ROWS, RECORD_TABLES, BatchWriter, roll_back_pending
from pipelines.lake import read_table, scan_table, table_path
from pipelines.layout import resolve_buckets

logger = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """Counts of one ingest run (no record content: safe for logs and Dagster metadata)."""

    run_id: str
    files_ingested: int = 0
    files_empty: int = 0  # ingested files that held no records (an empty vendor list, an empty CSV)
    files_skipped_duplicate: int = 0
    files_unrecognized: int = 0
    files_unlisted: int = 0
    files_skipped: int = 0  # not data (documentation, hidden, unlisted by a manifest): logged `skipped`
    files_refused: int = 0  # may not be read (links out, special files, a refused source.yaml): `refused`
    sources_refused: dict[str, str] = field(default_factory=dict)  # source → why none of it was read
    records_released: int = 0  # quarantined records whose Patient arrived: moved into bronze by this run
    manifest_missing: int = 0
    manifest_refused: int = 0
    bytes_read: int = 0
    records_in: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    quarantine_by_reason: Counter[str] = field(default_factory=Counter)
    unbalanced_files: int = 0
    rolled_back_batches: int = 0
    seconds: float = 0.0
    touched: set[tuple[str, str]] = field(default_factory=set)  # (table, bucket) written by this run

    def buckets_touched(self, table: str) -> list[str]:
        """The buckets of `table` this run added rows to (downstream partitions to rebuild)."""
        return sorted(bucket for written, bucket in self.touched if written == table)

    def as_metadata(self) -> dict[str, object]:
        """Flat counts for Dagster metadata and the command-line summary."""
        return {
            "run_id": self.run_id,
            "files_ingested": self.files_ingested,
            "files_empty": self.files_empty,
            "files_skipped_duplicate": self.files_skipped_duplicate,
            "files_unrecognized": self.files_unrecognized,
            "files_unlisted_by_manifest": self.files_unlisted,
            "files_skipped": self.files_skipped,
            "files_refused": self.files_refused,
            "sources_refused": len(self.sources_refused),
            "records_released": self.records_released,
            "manifest_outputs_missing": self.manifest_missing,
            "manifest_urls_refused": self.manifest_refused,
            "bytes_read": self.bytes_read,
            "records_in": self.records_in,
            **{f"rows_{table}": self.rows[table] for table in (*RECORD_TABLES, QUARANTINE)},
            "seconds": round(self.seconds, 2),
        }


def new_run_id() -> str:
    """A sortable, unique ingest run id."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def ingest_landing(
    landing: UPath,
    lake: UPath,
    buckets: int,
    run_id: str | None = None,
    progress: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    workers: int | None = None,
) -> IngestReport:
    """Ingest every new landing file into the bronze tables; return the run's counts.

    Files are read by `workers` threads (default: one per core; Arrow and Polars release the GIL)
    and written in plan order. Within a source, files holding Patients (by name or content) are read
    first; the references of the other files are checked against the patients known when their phase
    starts (earlier runs, this run's Patient files) and their own file's patients, so the outcome does not
    depend on thread timing. Records still quarantined as `unknown_patient_reference` whose Patient this
    run delivered, wherever it was, are then released into bronze (`release_quarantined`).
    Paths not read get one `skipped` or `refused` ingest_log row each (once, not again every run).
    """
    started = time.perf_counter()
    DecompressionLimits.from_env()  # a misconfigured limit fails the run before any file is read
    report = IngestReport(run_id=run_id or new_run_id())
    resolve_buckets(lake, landing, buckets)  # records a new lake's count; another count is refused
    report.rolled_back_batches = roll_back_pending(lake)
    plan = d.discover(landing)
    report.files_unlisted = len(plan.unlisted)
    report.manifest_missing = sum(1 for i in plan.manifest_issues if i.status == "missing")
    report.manifest_refused = sum(1 for i in plan.manifest_issues if i.status == "refused")
    report.files_skipped = sum(1 for n in plan.not_read if n.status == d.SKIPPED)
    report.files_refused = sum(1 for n in plan.not_read if n.status == d.REFUSED)
    report.sources_refused = dict(plan.refused_sources)
    for source, reason in sorted(plan.refused_sources.items()):
        logger.warning("source %s refused: %s", source, reason)
    logged = logged_keys(lake)
    already_ingested = ingested_keys(lake)
    ingested = set(already_ingested)
    writer = BatchWriter(lake, report.run_id, buckets, batch_rows)
    for item in plan.not_read:
        _note(writer, logged, report.run_id, item.source, item.relative, item.status, item.reason)
    known = _KnownPatients(lake)
    issues_by_manifest: dict[str, list[d.ManifestIssue]] = {}
    for issue in plan.manifest_issues:
        issues_by_manifest.setdefault(issue.manifest, []).append(issue)
    threads = max(1, workers or os.cpu_count() or 1)
    index = LandingIndex.load(lake)
    looks = {f.relative: _look(f) for f in plan.files}  # before any file is read
    to_read = [f for f in plan.files if not index.unchanged(f, looks[f.relative], already_ingested)]
    report.files_skipped_duplicate += len(plan.files) - len(to_read)

    def read(unit: list[d.LandingFile], known_patients: pl.Series) -> list[_FileRead]:
        return read_unit(unit, known_patients, already_ingested)

    with Progress(disable=not progress, transient=True) as bar, ThreadPoolExecutor(threads) as pool:
        task = bar.add_task("ingesting landing files", total=len(to_read))
        with_new_patients: set[str] = set()
        for (source, _later), phase in groupby(to_read, key=lambda f: (f.source, f.order > 0)):
            snapshot = known.for_source(source)
            calls = [partial(read, unit, snapshot) for unit in read_units(list(phase))]
            for done in (f for unit in _in_order(pool, calls, threads) for f in unit):
                bar.advance(task)
                if done.refusal is not None:  # changed between the check and the read: not read
                    report.files_refused += 1
                    f = done.landing_file
                    _note(writer, logged, report.run_id, f.source, f.relative, d.REFUSED, done.refusal)
                    continue
                index.saw(done.landing_file, looks[done.landing_file.relative], done.key)
                if done.result is None or done.key in ingested:
                    report.files_skipped_duplicate += 1
                    continue
                ingested.add(done.key)
                # every Patient of the run is remembered; the snapshot of a phase was taken at its start,
                # so the outcome does not depend on thread timing (the release below sees them all)
                if known.add(source, done.result):
                    with_new_patients.add(source)
                log_row = _log_row(report.run_id, done, issues_by_manifest, plan)
                _count(report, done.landing_file, done.result, done.size)
                writer.add(done.landing_file, done.sha, done.key, done.result, log_row)
        writer.flush()
        report.records_released = release_quarantined(lake, writer, known, with_new_patients, report.run_id)
        report.rows[FHIR_RESOURCES] += report.records_released
        writer.flush()
    index.write()  # after the last commit: it vouches only for files whose content bronze holds
    report.touched = writer.touched
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class _FileRead:
    """One file as a worker read it: its hash and size, and the reader's result (None: seen before)."""

    landing_file: d.LandingFile
    sha: str
    key: str
    size: int
    result: ReadResult | None
    started_at: datetime
    refusal: str | None = None  # why the file was not read after all (see `discovery.open_checked`)


UNIT_MAX_FILES = 256
UNIT_MAX_BYTES = 32 << 20


def read_units(files: list[d.LandingFile]) -> list[list[d.LandingFile]]:
    """Group consecutive small documents of a batch-readable format; every other file is its own unit.

    Compressed files are read alone: their size on disk says little about the memory they need."""
    units: list[list[d.LandingFile]] = []
    size = 0
    for landing_file in files:
        batchable = landing_file.format in BATCH_READERS and landing_file.compression is None
        current = units[-1] if units else None
        if (
            batchable
            and current is not None
            and current[0].format == landing_file.format
            and len(current) < UNIT_MAX_FILES
            and size < UNIT_MAX_BYTES
        ):
            current.append(landing_file)
        else:
            units.append([landing_file])
            size = 0
        size += _size(landing_file) if batchable else 0
    return units


def read_unit(
    unit: list[d.LandingFile], known_patients: pl.Series | None, already_ingested: set[str]
) -> list[_FileRead]:
    """Read, hash and parse one unit of files (runs on a worker thread)."""
    started = datetime.now(UTC)
    refusals: dict[int, str] = {}
    contents: list[bytes] = []
    for i, f in enumerate(unit):
        try:
            contents.append(d.read_checked(f.path, f.checked))
        except OSError as err:  # swapped for a link or a FIFO since discovery, or gone: not read
            refusals[i] = str(err) if isinstance(err, d.FileRefused) else "the file could not be read"
            contents.append(b"")
    shas = [hashlib.sha256(data).hexdigest() for data in contents]
    keys = [ingest_key(f, sha) for f, sha in zip(unit, shas, strict=True)]
    todo = [i for i, key in enumerate(keys) if key not in already_ingested and i not in refusals]
    results: dict[int, ReadResult] = {}
    if len(todo) > 1 and unit[0].format in BATCH_READERS:
        try:
            batch = BATCH_READERS[unit[0].format](
                [unit[i] for i in todo], [contents[i] for i in todo], known_patients
            )
            results = dict(zip(todo, batch, strict=True))
        except Exception:  # one bad file must not sink its neighbours: retry them one by one
            logger.warning("batch read of %d files failed; reading them one at a time", len(todo))
    for i in todo:
        if i not in results:
            results[i] = read_delivered(unit[i], contents[i], shas[i], known_patients)
    return [
        _FileRead(f, shas[i], keys[i], len(contents[i]), results.get(i), started, refusals.get(i))
        for i, f in enumerate(unit)
    ]


def _size(landing_file: d.LandingFile) -> int:
    try:
        return landing_file.path.stat().st_size
    except OSError:  # gone since discovery: its read says so
        return 0


def _look(landing_file: d.LandingFile) -> tuple[int, int]:
    """`landing_index.look`, or a look no index entry matches when the file cannot be examined (its
    reader then reports why)."""
    try:
        return look(landing_file)
    except OSError:
        return (-1, -1)


def _in_order(
    pool: ThreadPoolExecutor, calls: list[Callable[[], list[_FileRead]]], window: int
) -> Iterator[list[_FileRead]]:
    """Results of `calls` in order, with at most `window` + 1 in flight (bounded memory)."""
    pending: deque[Future[list[_FileRead]]] = deque()
    for call in calls:
        pending.append(pool.submit(call))
        if len(pending) > window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _log_row(
    run_id: str, done: _FileRead, issues_by_manifest: dict[str, list[d.ManifestIssue]], plan: d.LandingPlan
) -> dict[str, object]:
    landing_file, result = done.landing_file, done.result
    assert result is not None
    return {
        "source": landing_file.source,
        "file": landing_file.relative,
        "file_sha256": done.sha,
        "ingest_key": done.key,
        "ingest_run_id": run_id,
        "file_bytes": done.size,
        "format": landing_file.format,
        "target_table": result.target_table,
        "status": "ingested",
        "records_in": result.records_in,
        "records_bronze": result.bronze.height,
        "records_quarantined": result.quarantine.height,
        "blank_lines": result.blank_lines,
        "manifest_file": landing_file.manifest,
        "manifest_transaction_time": landing_file.transaction_time,
        "manifest_errors": _manifest_errors(landing_file, result),
        "detail": _detail(landing_file, issues_by_manifest, plan) or _skipped_detail(result),
        "started_at": done.started_at,
        "finished_at": datetime.now(UTC),
    }


Reader = Callable[[d.LandingFile, bytes, pl.Series | None], ReadResult]
BatchReader = Callable[[list[d.LandingFile], list[bytes], pl.Series | None], list[ReadResult]]

READ_TARGETS: dict[str, str] = {
    d.FHIR_NDJSON: FHIR_RESOURCES,
    d.FHIR_ERRORS: FHIR_RESOURCES,
    d.FHIR_DOCUMENT: FHIR_RESOURCES,
    d.FHIR_DELETED: FHIR_RESOURCES,
    d.OMH_NDJSON: DEVICE_RECORDS,
    d.OMH_DOCUMENT: DEVICE_RECORDS,
    d.IHEALTH: DEVICE_RECORDS,
    d.WITHINGS: DEVICE_RECORDS,
    d.FITBIT: DEVICE_RECORDS,
    d.DEVICE_CSV: DEVICE_RECORDS,
    d.APPLE_HEALTH: DEVICE_RECORDS,
    d.ENROLMENT_CSV: DEVICE_RECORDS,
    d.CONVERSATIONS: FEEDBACK_RECORDS,
    d.OUTREACH_CSV: OUTREACH_EVENTS,
    d.OUTREACH_NDJSON: OUTREACH_EVENTS,
}
"""The bronze table each format's records are meant for."""

BATCH_READERS: dict[str, BatchReader] = {
    d.FHIR_DOCUMENT: lambda files, contents, known: read_fhir_documents(contents, known),
    d.IHEALTH: lambda files, contents, known: read_ihealth_payloads(
        [(data, f.folder_user) for f, data in zip(files, contents, strict=True)]
    ),
    d.WITHINGS: lambda files, contents, known: read_withings_payloads(
        [(data, f.folder_user) for f, data in zip(files, contents, strict=True)]
    ),
    d.FITBIT: lambda files, contents, known: read_fitbit_payloads(
        [(data, f.folder_user) for f, data in zip(files, contents, strict=True)]
    ),
}
"""Formats whose small files are read many at a time (per-file overhead dominates otherwise)."""

READERS: dict[str, Reader] = {
    d.FHIR_NDJSON: lambda f, data, known: read_fhir_ndjson(data, known),
    d.FHIR_ERRORS: lambda f, data, known: read_fhir_ndjson(data, None),
    d.FHIR_DOCUMENT: lambda f, data, known: read_fhir_document(data, known),
    d.FHIR_DELETED: lambda f, data, known: read_fhir_deleted_ndjson(data),
    d.OMH_NDJSON: lambda f, data, known: read_omh_ndjson(data, f.folder_user),
    d.OMH_DOCUMENT: lambda f, data, known: read_omh_document(data, f.folder_user),
    d.IHEALTH: lambda f, data, known: read_ihealth_payload(data, f.folder_user),
    d.WITHINGS: lambda f, data, known: read_withings_payload(data, f.folder_user),
    d.FITBIT: lambda f, data, known: read_fitbit_payload(data, f.folder_user),
    d.DEVICE_CSV: lambda f, data, known: read_device_csv(data, load_csv_mapping(f.mapping or "")),
    d.APPLE_HEALTH: lambda f, data, known: read_apple_health_export(
        data, f.folder_user, content_name(f.path.name)
    ),
    d.ENROLMENT_CSV: lambda f, data, known: read_enrolment_csv(data),
    d.CONVERSATIONS: lambda f, data, known: read_conversations_ndjson(data),
    d.OUTREACH_CSV: lambda f, data, known: read_outreach_events_csv(data),
    d.OUTREACH_NDJSON: lambda f, data, known: read_outreach_events_ndjson(data),
}


def read_delivered(
    landing_file: d.LandingFile, delivered: bytes, sha: str, known_patients: pl.Series | None
) -> ReadResult:
    """`read_file_safely` on a file's content: a compressed file is decompressed first, within limits.

    A file that does not decompress (corrupt, truncated, a decompression bomb) is one quarantined record
    holding the bytes as delivered; so is a reader failure on a compressed file.
    """
    if landing_file.compression is None or landing_file.format not in READERS:
        return read_file_safely(landing_file, delivered, sha, known_patients)
    try:
        data = gunzip(delivered, DecompressionLimits.from_env())
    except DecompressionRefused as err:
        logger.warning("file %s was not decompressed: %s", sha[:12], err.code)
        target = READ_TARGETS.get(landing_file.format, UNRECOGNIZED_TABLE)
        return ReadResult(target, 1, pl.DataFrame(), whole_file_quarantine(delivered, err.code, str(err)))
    return read_file_safely(landing_file, data, sha, known_patients, delivered)


def read_file_safely(
    landing_file: d.LandingFile,
    data: bytes,
    sha: str,
    known_patients: pl.Series | None,
    delivered: bytes | None = None,
) -> ReadResult:
    """`read_file`, but a reader failure quarantines the whole file instead of stopping the run.

    The quarantined bytes are the file as `delivered` (when it differs from `data`, e.g. compressed). The
    log names the file by content hash and the error by type only: messages may quote content.
    """
    try:
        return read_file(landing_file, data, known_patients)
    except Exception as err:  # a reader bug or an input nobody foresaw: keep the bytes, say so, go on
        logger.error("reader for %s failed on file %s: %s", landing_file.format, sha[:12], type(err).__name__)
        reason = (
            f"the {landing_file.format} reader failed ({type(err).__name__}); the whole file is kept here"
        )
        target = READ_TARGETS.get(landing_file.format, UNRECOGNIZED_TABLE)
        kept = data if delivered is None else delivered
        return ReadResult(target, 1, pl.DataFrame(), whole_file_quarantine(kept, "reader_error", reason))


def read_file(landing_file: d.LandingFile, data: bytes, known_patients: pl.Series | None) -> ReadResult:
    """Dispatch one file to the reader of its format."""
    if landing_file.format == d.BULK_MANIFEST:
        return ReadResult(FHIR_RESOURCES, 0, pl.DataFrame(), pl.DataFrame())
    reader = READERS.get(landing_file.format)
    if reader is None:
        reason = "the file's format is not recognized (see source.yaml to declare it)"
        return ReadResult(
            UNRECOGNIZED_TABLE, 1, pl.DataFrame(), whole_file_quarantine(data, "unrecognized_format", reason)
        )
    return reader(landing_file, data, known_patients)


def _detail(
    landing_file: d.LandingFile,
    issues_by_manifest: dict[str, list[d.ManifestIssue]],
    plan: d.LandingPlan,
) -> str | None:
    if landing_file.format != d.BULK_MANIFEST:
        return None
    issues = issues_by_manifest.get(landing_file.relative, [])
    source_prefix = f"{landing_file.source}/"
    return orjson.dumps(
        {
            "missing": [i.url for i in issues if i.status == "missing"],
            "refused": [{"url": i.url, "reason": i.reason} for i in issues if i.status == "refused"],
            "unlisted_files": [u for u in plan.unlisted if u.startswith(source_prefix)],
        }
    ).decode()


def _skipped_detail(result: ReadResult) -> str | None:
    """For a document whose elements are not all records (an Apple Health export): how many elements it
    held and how many of each kind were skipped, so that elements = records in + skipped."""
    if not result.skipped:
        return None
    skipped = sum(result.skipped.values())
    return orjson.dumps(
        {"elements": result.records_in + skipped, "skipped": skipped, "skipped_by_kind": result.skipped}
    ).decode()


def _manifest_errors(landing_file: d.LandingFile, result: ReadResult) -> str | None:
    """The diagnostics of a manifest's error[] OperationOutcomes (server messages, not patient data)."""
    if landing_file.format != d.FHIR_ERRORS or result.bronze.is_empty():
        return None
    diagnostics = (
        result.bronze.select(
            pl.col("raw").str.json_path_match("$.issue[*].diagnostics").alias("diagnostics")
        )["diagnostics"]
        .drop_nulls()
        .to_list()
    )
    return orjson.dumps(diagnostics).decode()


def _count(report: IngestReport, landing_file: d.LandingFile, result: ReadResult, size: int) -> None:
    report.files_ingested += 1
    report.files_empty += result.records_in == 0 and landing_file.format != d.BULK_MANIFEST
    report.files_unrecognized += landing_file.format == d.UNRECOGNIZED
    report.bytes_read += size
    report.records_in += result.records_in
    report.rows[result.target_table] += result.bronze.height
    report.rows[QUARANTINE] += result.quarantine.height
    report.unbalanced_files += not result.balanced
    report.quarantine_by_reason.update(result.quarantine["reason_code"].to_list())


class _KnownPatients:
    """Patient keys per source: those already in bronze plus those of this run's Patient files."""

    def __init__(self, lake: UPath) -> None:
        self._lake = lake
        self._known: dict[str, pl.Series] = {}
        self._pending: dict[str, list[pl.Series]] = {}

    def for_source(self, source: str) -> pl.Series:
        """Every patient key known for `source` so far."""
        if source not in self._known:
            self._known[source] = (
                scan_table(self._lake, BRONZE, FHIR_RESOURCES)
                .filter((pl.col("source") == source) & (pl.col("resource_type") == "Patient"))
                .select("patient_key")
                .unique()
                .collect()["patient_key"]
                if _has_table(self._lake, FHIR_RESOURCES)
                else pl.Series("patient_key", [], dtype=pl.String)
            )
        if self._pending.get(source):
            self._known[source] = pl.concat([self._known[source], *self._pending.pop(source)]).unique()
        return self._known[source]

    def add(self, source: str, result: ReadResult) -> bool:
        """Remember the Patients of a file (merged lazily, when the source's set is next asked for);
        True when the file held any."""
        if result.target_table != FHIR_RESOURCES or result.bronze.is_empty():
            return False
        new = result.bronze.filter(pl.col("resource_type") == "Patient")["patient_key"]
        if new.len():
            self._pending.setdefault(source, []).append(new)
        return bool(new.len())


def _has_table(lake: UPath, table: str) -> bool:
    folder = table_path(lake, BRONZE, table)
    return folder.exists() and any(folder.glob("**/*.parquet"))


FOLDER_KEYED_FORMATS = frozenset(
    {d.OMH_NDJSON, d.OMH_DOCUMENT, d.IHEALTH, d.WITHINGS, d.FITBIT, d.APPLE_HEALTH}
)
"""Formats whose records take their user from the folder a file was delivered in."""


def ingest_key(landing_file: d.LandingFile, content_sha256: str) -> str:
    """What makes a delivery unique: its content, and for folder-keyed payloads also its user folder.

    Two vendor users can receive byte-identical payloads (an empty list, say); they are different
    records, so the same bytes in another user's folder are ingested, while the same FHIR file under
    another name is not.
    """
    if landing_file.format in FOLDER_KEYED_FORMATS and landing_file.folder_user is not None:
        return hashlib.sha256(f"{content_sha256}\0{landing_file.folder_user}".encode()).hexdigest()
    return content_sha256


def logged_keys(lake: UPath) -> set[str]:
    """Ingest keys of every ingest_log row, whatever its status."""
    if not _has_table(lake, INGEST_LOG):
        return set()
    return set(scan_table(lake, BRONZE, INGEST_LOG).select("ingest_key").collect()["ingest_key"].to_list())


def not_read_key(source: str, relative: str, status: str, reason: str) -> str:
    """The ingest key of a `skipped` or `refused` row: the path and why, so a second run that finds the
    same path for the same reason adds no row (content is never read, so it is not part of the key)."""
    return hashlib.sha256(f"{status}\0{source}\0{relative}\0{reason}".encode()).hexdigest()


def _note(
    writer: BatchWriter, logged: set[str], run_id: str, source: str, relative: str, status: str, reason: str
) -> None:
    """Log a path that was not read, unless an earlier run logged it for the same reason."""
    key = not_read_key(source, relative, status, reason)
    if key in logged:
        return
    logged.add(key)
    now = datetime.now(UTC)
    writer.note(
        {
            "source": source,
            "file": relative,
            "ingest_key": key,
            "ingest_run_id": run_id,
            "status": status,
            "records_in": 0,
            "records_bronze": 0,
            "records_quarantined": 0,
            "blank_lines": 0,
            "detail": orjson.dumps({"reason": reason}).decode(),
            "started_at": now,
            "finished_at": now,
        }
    )


RELEASABLE = "unknown_patient_reference"


def release_quarantined(
    lake: UPath, writer: BatchWriter, known: _KnownPatients, sources: set[str], run_id: str
) -> int:
    """Move quarantined `unknown_patient_reference` records of `sources` whose Patient is now known into
    bronze; return how many. Call after the run's own batches are written (their orphans count too).

    A released record keeps its quarantine row (the bytes as received, the history) and gains one bronze
    row carrying its file, line and entry, under a `released` ingest_log row per file and run whose
    ingest key is new (`released_ingest_key`): records_in 0, records_bronze n, records_quarantined -n,
    `detail` naming the file's own ingest key. Accounting counts the record once, in bronze
    (`accounting.accounting_table`), and incremental runs see the buckets it lands in as changed. The
    record goes through the same parse and checks as any FHIR record; one that fails them stays where it is.
    Only sources that received Patients in this run are looked at: otherwise nothing can be released.
    (A run killed after its last data batch and before the release batch leaves its orphans waiting until
    the next run that delivers a Patient of that source; that run releases every waiting one it can.)
    """
    if not sources or not _has_table(lake, QUARANTINE):
        return 0
    waiting = (
        scan_table(lake, BRONZE, QUARANTINE)
        .filter(
            pl.col("source").is_in(sorted(sources))
            & (pl.col("reason_code") == RELEASABLE)
            & (pl.col("target_table") == FHIR_RESOURCES)
        )
        .select("source", "file", "file_sha256", "ingest_key", "line", "entry", "raw")
        .collect()
    )
    if waiting.is_empty():
        return 0
    done = released_positions(lake)
    if not done.is_empty():
        waiting = waiting.join(
            done.rename({"released_from": "ingest_key"}),
            on=["ingest_key", "line", "entry"],
            how="anti",
            nulls_equal=True,
        )
    waiting = waiting.unique(["ingest_key", "line", "entry"], keep="first", maintain_order=True)
    if waiting.is_empty():
        return 0
    records = waiting.with_columns(pl.col("raw").cast(pl.String, strict=False))
    bronze, _ = parse_fhir_records(records.filter(pl.col("raw").is_not_null()))
    known_keys = pl.concat(
        [pl.DataFrame({"source": s, "patient_key": known.for_source(s)}) for s in sorted(sources)]
    )
    bronze = bronze.join(known_keys.unique(), on=["source", "patient_key"], how="semi", maintain_order="left")
    if bronze.is_empty():
        return 0
    formats = dict(
        scan_table(lake, BRONZE, INGEST_LOG)
        .filter(pl.col("ingest_key").is_in(bronze["ingest_key"].unique().implode()))
        .select("ingest_key", "format")
        .unique("ingest_key")
        .collect()
        .iter_rows()
    )
    now = datetime.now(UTC)
    for (origin,), rows in bronze.partition_by("ingest_key", as_dict=True, maintain_order=True).items():
        key = released_ingest_key(str(origin), run_id)
        source, file, sha = rows["source"][0], rows["file"][0], rows["file_sha256"][0]
        log_row = {
            "source": source,
            "file": file,
            "file_sha256": sha,
            "ingest_key": key,
            "ingest_run_id": run_id,
            "file_bytes": 0,
            "format": formats.get(origin),
            "target_table": FHIR_RESOURCES,
            "status": RELEASED,
            "records_in": 0,
            "records_bronze": rows.height,
            "records_quarantined": -rows.height,
            "blank_lines": 0,
            "detail": orjson.dumps({"released_from": origin}).decode(),
            "started_at": now,
            "finished_at": now,
        }
        writer.add(
            None, str(sha), key, ReadResult(FHIR_RESOURCES, rows.height, rows, pl.DataFrame()), log_row
        )
    logger.info("released %d quarantined records whose Patient arrived", bronze.height)
    return bronze.height


def released_ingest_key(origin: str, run_id: str) -> str:
    """The ingest key of the records one run released from one file's quarantine."""
    return hashlib.sha256(f"{RELEASED}\0{origin}\0{run_id}".encode()).hexdigest()


def ingested_keys(lake: UPath) -> set[str]:
    """Ingest keys of every file already ingested."""
    if not _has_table(lake, INGEST_LOG):
        return set()
    log = read_table(lake, BRONZE, INGEST_LOG)
    return set(log.filter(pl.col("status") == "ingested")["ingest_key"].to_list())
