"""The bad-input corpus (tests/corpus) through the real ingest and the real definition loaders.

Every landing case is ingested into its own lake, and checked for the invariants every input must keep:
the run does not crash; every record is accounted for (records in = bronze rows + quarantine rows, by the
ingest log and by the stored tables); every quarantine row has a documented reason code, a reason, the
file and its position in it; no record content (the planted fake name) reaches a reason, a log record, the
run's metadata or an error; and the case's expected outcome (kept, quarantined where and why, refused).
The whole corpus is then ingested at once, to show that cases do not depend on their neighbours and that
a second run adds nothing. Definition cases load, or fail with a `DefinitionError` naming file and line.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import shutil
import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import polars as pl
import pytest
from upath import UPath

from pipelines.bronze.accounting import accounting_discrepancies
from pipelines.bronze.discovery import UNLISTED
from pipelines.bronze.ingest import IngestReport, ingest_landing
from pipelines.bronze.tables import (
    BRONZE,
    INGEST_LOG,
    INGEST_LOG_SCHEMA,
    PROVENANCE_SCHEMA,
    QUARANTINE,
    QUARANTINE_RECORD_SCHEMA,
)
from pipelines.bronze.writer import RECORD_TABLES
from pipelines.lake import parquet_files, read_table, table_path
from pipelines.measures.definitions import DefinitionError, load_measure, value_sets
from pipelines.outreach.campaigns import load_campaigns
from pipelines.segments.engine import load_segments
from tests.corpus.cases import (
    ANY_LINE,
    CORPUS,
    DEFINITION_CASES,
    LANDING_CASES,
    LAYOUTS,
    MARKERS,
    OUTSIDE_SECRET,
    Case,
    DefinitionCase,
    links_of_every_kind,
    place,
)

README = Path(__file__).resolve().parents[1] / "README.md"
LINE_FORMATS = {
    "fhir_ndjson",
    "fhir_error_ndjson",
    "fhir_deleted_ndjson",
    "openmhealth_ndjson",
    "conversations_ndjson",
    "device_csv",
    "device_enrolment_csv",
    "outreach_events_csv",
    "outreach_events_ndjson",
}
WHOLE_FILE_CODES = {"reader_error", "invalid_compression", "decompression_limit", "unrecognized_format"}
"""Codes a record of a line-based file may carry without a line: it is the whole file."""


def documented_reason_codes() -> set[str]:
    """The quarantine reason codes of the README's table (every code used must be documented)."""
    text = README.read_text(encoding="utf-8")
    table = text.split("Quarantine reason codes:", 1)[1].split("\n\n", 2)[1]
    return {code for row in table.splitlines() for code in re.findall(r"`([a-z_0-9]+)`", row.split("|")[1])}


REASON_CODES = documented_reason_codes()


def marked(text: object) -> bool:
    """True when a planted fake-patient marker appears in `text`."""
    return any(marker in str(text) for marker in MARKERS)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Manifests name http(s) urls: nothing may ever be fetched."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the ingest tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --- reading the outcome back from the lake -------------------------------------------------------------
def table(lake: Path, name: str) -> pl.DataFrame:
    """A bronze table, or an empty frame with its columns when nothing was written to it."""
    if parquet_files(table_path(UPath(lake), BRONZE, name)):
        return read_table(UPath(lake), BRONZE, name)
    schema = INGEST_LOG_SCHEMA if name == INGEST_LOG else {**PROVENANCE_SCHEMA, **QUARANTINE_RECORD_SCHEMA}
    return pl.DataFrame(schema=schema)


def position(item: Case, file: str, line: int | None, entry: int | None) -> int | str:
    """A quarantine row's position as the case table writes it."""
    where: int | str = line if line is not None else f"e{entry}" if entry is not None else "file"
    if not item.layout.folder_cases:
        return where
    inside = file.split("/", 1)[1]
    return f"{inside}:{where}"


def outcome(item: Case, lake: Path, source: str) -> dict[str, object]:
    """What the lake holds for the case's source, in the terms of the case table."""
    kept = sum(table(lake, t).filter(pl.col("source") == source).height for t in RECORD_TABLES)
    quarantine = table(lake, QUARANTINE).filter(pl.col("source") == source)
    positions: dict[str, list[int | str]] = {}
    for code, file, line, entry in quarantine.select("reason_code", "file", "line", "entry").iter_rows():
        positions.setdefault(code, []).append(position(item, file, line, entry))
    manifests = table(lake, INGEST_LOG).filter(
        (pl.col("source") == source) & (pl.col("format") == "bulk_manifest")
    )
    details = [orjson.loads(d) for d in manifests["detail"].drop_nulls().to_list()]
    not_read = table(lake, INGEST_LOG).filter(
        (pl.col("source") == source) & pl.col("status").is_in(["skipped", "refused"])
    )
    logged = [
        (status, file.split("/", 1)[1] if "/" in file else "", orjson.loads(detail)["reason"])
        for status, file, detail in not_read.select("status", "file", "detail").iter_rows()
    ]
    return {
        "kept": kept,
        "quarantined": {code: sorted(found, key=str) for code, found in positions.items()},
        "refused": sorted((r["url"][:120], r["reason"]) for d in details for r in d["refused"]),
        "missing": sorted(url for d in details for url in d["missing"]),
        "unlisted": sum(len(d["unlisted_files"]) for d in details),
        # files beside a manifest it does not list are counted by "unlisted" (and logged as skipped)
        "logged": sorted(row for row in logged if row[2] != UNLISTED),
    }


def expected(item: Case) -> dict[str, object]:
    """The case table's expectation in the shape of `outcome`."""
    return {
        "kept": item.kept,
        "quarantined": {code: sorted(found, key=str) for code, found in item.quarantined.items()},
        "refused": sorted((url[:120], why) for url, why in item.refused),
        "missing": sorted(item.missing),
        "unlisted": item.unlisted,
        "logged": sorted(item.logged),
    }


def same(found: dict[str, object], wanted: dict[str, object]) -> bool:
    """Outcome equality, where a refusal matches when the expected fragment is part of the reason."""
    refused_found, refused_wanted = found["refused"], wanted["refused"]
    assert isinstance(refused_found, list) and isinstance(refused_wanted, list)
    refusals_match = len(refused_found) == len(refused_wanted) and all(
        url == want_url and fragment in reason
        for (url, reason), (want_url, fragment) in zip(refused_found, refused_wanted, strict=True)
    )
    logged_found, logged_wanted = found["logged"], wanted["logged"]
    assert isinstance(logged_found, list) and isinstance(logged_wanted, list)
    logged_match = len(logged_found) == len(logged_wanted) and all(
        (status, path) == (want_status, want_path) and fragment in reason
        for (status, path, reason), (want_status, want_path, fragment) in zip(
            logged_found, logged_wanted, strict=True
        )
    )
    rest = [k for k in found if k not in ("refused", "logged")]
    return refusals_match and logged_match and all(found[k] == wanted[k] for k in rest)


# --- the invariants ------------------------------------------------------------------------------------
def check_invariants(lake: Path, report: IngestReport, records: list[logging.LogRecord]) -> None:
    """What must hold after ingesting any input at all."""
    assert report.unbalanced_files == 0
    assert accounting_discrepancies(UPath(lake)).is_empty()
    log = table(lake, INGEST_LOG)
    assert (log["records_in"] == log["records_bronze"] + log["records_quarantined"]).all()
    assert (log["blank_lines"] >= 0).all()
    assert report.records_in == log["records_in"].sum()
    # paths not read: a row with a reason, and nothing of their content
    not_read = log.filter(pl.col("status").is_in(["skipped", "refused"]))
    assert (not_read["records_in"] == 0).all() and not_read["file_sha256"].is_null().all()
    reasons = [orjson.loads(d)["reason"] for d in not_read["detail"].to_list()]
    assert all(reasons) and not [r for r in reasons if marked(r)]
    assert report.files_skipped + report.files_refused >= not_read.height
    unlisted = sum(1 for r in reasons if r == UNLISTED)
    assert unlisted == report.files_unlisted
    quarantine = table(lake, QUARANTINE)
    assert quarantine.join(log, on="ingest_key", how="anti").is_empty(), "a quarantine row names no file"
    undocumented = set(quarantine["reason_code"].to_list()) - REASON_CODES
    assert not undocumented, f"reason codes missing from the README table: {undocumented}"
    assert (quarantine["reason"].str.len_chars() > 0).all()
    assert quarantine["file"].is_not_null().all()
    line_formats = log.filter(pl.col("format").is_in(sorted(LINE_FORMATS)))["ingest_key"]
    unplaced = quarantine.filter(
        pl.col("ingest_key").is_in(line_formats.implode())
        & pl.col("line").is_null()
        & ~pl.col("reason_code").is_in(sorted(WHOLE_FILE_CODES))
    )
    assert unplaced.is_empty(), f"quarantined lines without a line number: {unplaced['reason_code']}"
    # no record content outside the record itself
    assert not [r for r in quarantine["reason"].to_list() if marked(r)]
    assert not [d for d in log["detail"].drop_nulls().to_list() if marked(d)]
    assert not marked(report.as_metadata()) and not marked(dict(report.quarantine_by_reason))
    leaked = [message for message in log_messages(records) if marked(message)]
    assert not leaked, leaked


def log_messages(records: list[logging.LogRecord]) -> list[str]:
    """Every log record as it would be written, with any traceback."""
    formatter = logging.Formatter()
    return [
        record.getMessage() + (formatter.formatException(record.exc_info) if record.exc_info else "")
        for record in records
    ]


def make_contents_unique(landing: Path) -> None:
    """Files are ingested once by content, so a file repeating an earlier case's bytes gets a blank line
    (a gzip member holding one, for .gz files) until it is new: records and positions stay the same."""
    seen: set[str] = set()
    for path in sorted(p for p in landing.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        while (digest := hashlib.sha256(data).hexdigest()) in seen:
            data += gzip.compress(b"\n", mtime=0) if path.name.endswith(".gz") else b"\n"
        seen.add(digest)
        path.write_bytes(data)


def ingest(landing: Path, lake: Path, workers: int = 1) -> IngestReport:
    return ingest_landing(UPath(landing), UPath(lake), buckets=4, workers=workers)


# --- the tests -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("item", LANDING_CASES, ids=str)
def test_landing_case(
    item: Case, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in item.env.items():
        monkeypatch.setenv(name, value)
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    place(item, landing / item.name)
    caplog.set_level(logging.DEBUG)
    if item.error is not None:
        with pytest.raises(ValueError, match=item.error) as refused:
            ingest(landing, lake)
        assert not marked(refused.value) and not [m for m in log_messages(caplog.records) if marked(m)]
        return
    report = ingest(landing, lake)
    check_invariants(lake, report, caplog.records)
    found, wanted = outcome(item, lake, item.name), expected(item)
    assert same(found, wanted), f"\nfound:    {found}\nexpected: {wanted}"


def test_the_whole_corpus_at_once_gives_the_same_outcomes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every case as its own source of one landing folder, two reader threads, then a second run."""
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    together = [item for item in LANDING_CASES if item.error is None and not item.env]
    for item in together:
        place(item, landing / f"{item.reader}__{item.name}")
    make_contents_unique(landing)
    caplog.set_level(logging.DEBUG)
    report = ingest(landing, lake, workers=2)
    check_invariants(lake, report, caplog.records)
    differing = {
        item.path: (found, wanted)
        for item in together
        if not same(found := outcome(item, lake, f"{item.reader}__{item.name}"), wanted := expected(item))
    }
    assert not differing, differing
    again = ingest(landing, lake, workers=2)
    assert again.files_ingested == 0 and again.records_in == 0


def test_the_corpus_is_big_and_every_file_in_it_is_a_case() -> None:
    assert len(LANDING_CASES) + len(DEFINITION_CASES) >= 200
    paths = [item.path for item in LANDING_CASES] + [item.path for item in DEFINITION_CASES]
    assert len(paths) == len(set(paths)), [p for p, n in Counter(paths).items() if n > 1]
    committed = {
        f"{folder.name}/{entry.name}"
        for folder in CORPUS.iterdir()
        if folder.is_dir() and not folder.name.startswith("_")
        for entry in folder.iterdir()
    }
    assert committed - set(paths) == set(), "corpus files without a case"
    generated = {p for p in paths if p not in committed}
    made = {i.path for i in LANDING_CASES if i.make} | {i.path for i in DEFINITION_CASES if i.make}
    assert generated == made, "cases without a corpus file or a generator"
    readers = {item.reader for item in LANDING_CASES} | {item.kind for item in DEFINITION_CASES}
    assert set(LAYOUTS) | {"measures", "value_sets", "segments", "campaigns"} == readers


KNOWN_VALUE_SETS = set(value_sets()["value_set"].to_list())
SEGMENT_COLUMNS = {"person_id", "age", "has_diabetes", "last_hba1c", "gap_GSD", "trigger_inpatient_discharge"}
LOADERS: dict[str, Callable[[Path], object]] = {
    "measures": lambda folder: [load_measure(p, KNOWN_VALUE_SETS) for p in sorted(folder.glob("*.yaml"))],
    "value_sets": lambda folder: value_sets.__wrapped__(folder),
    "segments": lambda folder: load_segments(SEGMENT_COLUMNS, folder),
    "campaigns": lambda folder: load_campaigns({"s"}, folder, measure_ids={"BCS", "GSD"}),
}


@pytest.mark.parametrize("item", DEFINITION_CASES, ids=str)
def test_definition_case(item: DefinitionCase, tmp_path: Path) -> None:
    folder = tmp_path / item.kind
    folder.mkdir()
    committed = CORPUS / item.path
    if item.make is not None:
        (folder / committed.name).write_bytes(item.make())
    elif committed.is_dir():
        shutil.copytree(committed, folder, dirs_exist_ok=True)
    else:
        shutil.copyfile(committed, folder / committed.name)
    load = LOADERS[item.kind]
    if item.line is None:
        load(folder)
        return
    with pytest.raises(DefinitionError) as failure:
        load(folder)
    message = str(failure.value)
    line = r"\d+" if item.line == ANY_LINE else str(item.line)
    assert re.match(rf"{re.escape(item.file or committed.name)}:{line}: ", message), message
    assert item.message in message, message


def test_a_gzip_delivery_is_known_by_the_hash_of_its_bytes(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    source = landing / "ehr"
    source.mkdir(parents=True)
    plain = (CORPUS / "fhir_ndjson" / "clean.ndjson").read_bytes()
    packed = gzip.compress(plain, mtime=0)
    (source / "Patient.000.ndjson.gz").write_bytes(packed)
    first = ingest(landing, lake)
    log = table(lake, INGEST_LOG)
    assert log["file_sha256"].to_list() == [hashlib.sha256(packed).hexdigest()]
    assert log.select("file_bytes", "format", "records_in").row(0) == (len(packed), "fhir_ndjson", 3)
    assert first.bytes_read == len(packed)
    (source / "Patient.001.ndjson.gz").write_bytes(packed)  # the same delivery again: not read twice
    assert ingest(landing, lake).files_skipped_duplicate == 2


@pytest.mark.parametrize("value", ["lots", "0", "-5"])
def test_a_misconfigured_decompression_limit_stops_the_run_before_it_reads(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "landing" / "ehr").mkdir(parents=True)
    monkeypatch.setenv("PATIENT_INSIGHTS_MAX_DECOMPRESSED_BYTES", value)
    with pytest.raises(ValueError, match="PATIENT_INSIGHTS_MAX_DECOMPRESSED_BYTES must be a positive number"):
        ingest(tmp_path / "landing", tmp_path / "lake")
    assert not (tmp_path / "lake" / "bronze" / "ingest_log").exists()


# issue 25: which landing files bronze reads -----------------------------------------------------------
def test_no_byte_from_outside_the_landing_folder_reaches_the_lake(tmp_path: Path) -> None:
    """Links of every kind to files outside the landing folder, holding a secret: none of its bytes is in
    any file of the lake (nor in any value of its tables, compressed or not), and each link is refused."""
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    links_of_every_kind(_made(landing / "ehr"))
    outside = tmp_path / "outside-the-landing-i25"
    os.symlink(outside / "source.yaml", _made(landing / "configured") / "source.yaml")
    (landing / "configured" / "Patient.000.ndjson").write_bytes(
        (landing / "ehr" / "Patient.000.ndjson").read_bytes()
    )
    bulk = _made(landing / "bulk")
    os.symlink(outside / "secret.ndjson", bulk / "Patient.000.ndjson")
    os.symlink(outside / "secret.ndjson.gz", bulk / "Patient.001.ndjson.gz")
    urls = ["Patient.000.ndjson", "Patient.001.ndjson.gz", "../../outside-the-landing-i25/secret.ndjson"]
    manifest = {
        "transactionTime": "2026-06-30T23:00:00Z",
        "output": [{"type": "Patient", "url": u} for u in urls],
    }
    (bulk / "manifest.json").write_bytes(orjson.dumps(manifest))
    os.symlink(outside / "folder", landing / "linked_source")  # a source folder that is a link out
    os.symlink(landing / "ehr", landing / "linked_inside")  # a linked folder, even inside: never walked
    report = ingest(landing, lake)
    secret = OUTSIDE_SECRET.encode()
    for path in (p for p in lake.rglob("*") if p.is_file()):
        assert secret not in path.read_bytes(), path
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            for name, dtype in frame.schema.items():
                if dtype == pl.String:
                    assert not frame[name].str.contains(OUTSIDE_SECRET, literal=True).any(), (path, name)
                elif dtype == pl.Binary:
                    assert not frame[name].bin.contains(secret).any(), (path, name)
    refused = {
        file: orjson.loads(detail)["reason"]
        for file, detail in table(lake, INGEST_LOG)
        .filter(pl.col("status") == "refused")
        .select("file", "detail")
        .iter_rows()
    }
    for name in (
        "Observation.000.ndjson",
        "passwd.ndjson",
        "Condition.000.ndjson.gz",
        "more",
        "user-9/bp.json",
    ):
        assert "leads out" in refused.pop(f"ehr/{name}")
    assert "leads nowhere" in refused.pop("ehr/dangling.ndjson")
    assert "not a regular file" in refused.pop("ehr/fifo.ndjson")
    assert "not a regular file" in refused.pop("ehr/socket.ndjson")
    assert "leads out" in refused.pop("configured/source.yaml")
    assert "leads out" in refused.pop("bulk/Patient.000.ndjson")
    assert "leads out" in refused.pop("bulk/Patient.001.ndjson.gz")
    assert "leads out" in refused.pop("linked_source")
    assert "linked folder" in refused.pop("linked_inside")
    assert refused == {}
    assert set(report.sources_refused) == {"configured", "linked_source", "linked_inside"}
    assert report.files_refused == 13
    kept = table(lake, "fhir_resources")
    assert sorted(kept["source"].to_list()) == ["ehr"]  # the one real Patient file, read once
    assert accounting_discrepancies(UPath(lake)).is_empty()


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder


def test_a_file_swapped_for_a_link_after_the_check_is_not_read(tmp_path: Path) -> None:
    """The gap between the check and the read: the opened handle must be the file that was checked."""
    from pipelines.bronze import discovery as d

    landing = tmp_path / "landing"
    source = _made(landing / "ehr")
    (source / "Patient.000.ndjson").write_bytes(b'{"resourceType":"Patient","id":"p1"}\n')
    (tmp_path / "secret.ndjson").write_bytes(OUTSIDE_SECRET.encode())
    plan = d.discover(UPath(landing))
    (planned,) = plan.files
    assert d.read_checked(planned.path, planned.checked).startswith(b'{"resourceType"')
    (source / "Patient.000.ndjson").rename(tmp_path / "moved-away")  # its inode stays in use
    os.symlink(tmp_path / "secret.ndjson", source / "Patient.000.ndjson")
    with pytest.raises(d.FileRefused, match="became a link"):
        d.read_checked(planned.path, planned.checked)
    (source / "Patient.000.ndjson").unlink()
    (source / "Patient.000.ndjson").write_bytes(OUTSIDE_SECRET.encode())  # another file under the name
    with pytest.raises(d.FileRefused, match="replaced"):
        d.read_checked(planned.path, planned.checked)
    lake = tmp_path / "lake"
    report = ingest_landing(UPath(landing), UPath(lake), buckets=4)  # planned afresh: read, it is regular
    assert report.files_ingested == 1


def test_a_file_swapped_between_discovery_and_its_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.bronze import discovery as d

    landing, lake = tmp_path / "landing", tmp_path / "lake"
    source = _made(landing / "ehr")
    (source / "Patient.000.ndjson").write_bytes(b'{"resourceType":"Patient","id":"p1"}\n')
    (source / "Patient.001.ndjson").write_bytes(b'{"resourceType":"Patient","id":"p2"}\n')
    (tmp_path / "secret.ndjson").write_bytes(OUTSIDE_SECRET.encode())
    planned = d.discover

    def discover_then_swap(root: UPath) -> d.LandingPlan:
        plan = planned(root)
        (source / "Patient.001.ndjson").rename(tmp_path / "moved-away")
        os.symlink(tmp_path / "secret.ndjson", source / "Patient.001.ndjson")
        return plan

    monkeypatch.setattr(d, "discover", discover_then_swap)
    report = ingest(landing, lake)
    assert (report.files_ingested, report.files_refused) == (1, 1)
    log = table(lake, INGEST_LOG)
    refused = log.filter(pl.col("status") == "refused")
    assert refused["file"].to_list() == ["ehr/Patient.001.ndjson"]
    assert "became a link" in orjson.loads(refused["detail"][0])["reason"]
    assert not any(OUTSIDE_SECRET.encode() in p.read_bytes() for p in lake.rglob("*") if p.is_file())
    assert table(lake, "fhir_resources")["resource_id"].to_list() == ["p1"]


def test_skipped_files_are_logged_once_and_the_checks_stay_true(tmp_path: Path) -> None:
    from pipelines.bronze.accounting import duplicate_ingests

    landing, lake = tmp_path / "landing", tmp_path / "lake"
    source = _made(landing / "outreach")
    (source / "source.yaml").write_text("format: outreach_events\n")
    (source / "notices_2026-07.csv").write_bytes((CORPUS / "outreach_events" / "clean.csv").read_bytes())
    (source / "README.md").write_text("about the files\n")
    (source / ".DS_Store").write_bytes(b"\x00\x01")
    first = ingest(landing, lake)
    assert (first.files_ingested, first.files_skipped, first.records_in) == (1, 2, 3)
    log = table(lake, INGEST_LOG)
    assert sorted(log.select("file", "status").iter_rows()) == [
        ("outreach/.DS_Store", "skipped"),
        ("outreach/README.md", "skipped"),
        ("outreach/notices_2026-07.csv", "ingested"),
    ]  # source.yaml is configuration: no row
    second = ingest(landing, lake)
    assert second.files_skipped == 2 and second.files_ingested == 0  # counted, not logged again
    assert table(lake, INGEST_LOG).height == 3
    assert accounting_discrepancies(UPath(lake)).is_empty() and duplicate_ingests(UPath(lake)) == 0
