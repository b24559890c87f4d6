"""PHI hygiene: the people's data stays in the lake and the exports, never in what operators read.

A whole pipeline run on generated people (a few defective records included, so the quarantine paths run
too) is searched for the people's names, birth dates, addresses, phones, e-mails, identifiers and free
text in everything it leaves beside the data: Python log records at DEBUG, stdout/stderr, warnings, every
Dagster event and run record of a persisted (SQLite) instance, the raw files of that instance, the run
records under `<lake>/meta`, the model cards, the outreach audit log and the export manifests.

What counts as a person's data is read from the generated landing files themselves (Patient resources,
survey answers, patient messages, conversation turns), not from the generator's ground truth. Matching
rules, chosen so that a hit is a leak and not a coincidence:

- names: family and given names of at least 4 characters, case-sensitive, as whole words (shorter names
  such as "Li" or "Ann" hit ordinary words); every "given family" pair as a whole, whatever its length;
- birth dates (ISO text) more than 4 years before the as-of day, not inside other digits: younger
  children's birth dates fall among the dates run records carry (training cut-offs, snapshots, weeks);
- address lines, e-mails, phone numbers (as written, with dashes, digits only), identifier values (MRN,
  SSN with and without dashes, insurance member ids, device vendors' user ids and device serials);
- free text (survey comments, patient messages, conversation turns): every sentence and the start of the
  text, at least 20 characters and cut to 40, so a truncated quote is found too.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from upath import UPath

from pipelines.bronze import discovery as d
from pipelines.bronze import ingest as ingest_module
from pipelines.bronze.ingest import ingest_landing
from pipelines.config import Settings
from pipelines.generate import generate_landing
from pipelines.lake import read_table
from tests.conftest import patient, write_ndjson

PEOPLE = 250
SEED = 23
DEFECTS = 0.01
BUCKETS = 2
AS_OF = date(2026, 6, 30)
MIN_NAME = 4
MIN_TEXT = 20
TEXT_CUT = 40
BIRTH_DATE_CUTOFF = AS_OF - timedelta(days=4 * 366)
DAGSTER_YAML = """\
telemetry:
  enabled: false
# the project's own Python loggers go to the event log too, at every level, as a deployment may configure
python_logs:
  python_log_level: DEBUG
  managed_python_loggers: [pipelines, models, assets]
"""
MARKER = ("Zeppelina", "Quarkworth")  # a planted fake name: in the quarantined bytes, nowhere else


# --- what counts as a person's data -----------------------------------------------------------------------
@dataclass(frozen=True)
class Needle:
    """One value to look for: its kind and how a hit must be delimited to count."""

    kind: str
    before: str = ""  # a negative look-behind class, e.g. r"[A-Za-z]": a hit inside a longer word is none
    after: str = ""

    def found_in(self, value: str, text: str) -> bool:
        """Whether `value` occurs in `text` as this kind of value (whole word, whole number)."""
        if not self.before and not self.after:
            return value in text
        pattern = (
            (f"(?<!{self.before})" if self.before else "")
            + re.escape(value)
            + (f"(?!{self.after})" if self.after else "")
        )
        return re.search(pattern, text) is not None


WORD = r"[A-Za-z]", r"[A-Za-z]"  # not inside a longer word
NUMBER = r"[\d.]", r"\d"  # not inside a longer number nor the fraction of a float
ALPHANUMERIC = r"[A-Za-z0-9]", r"[A-Za-z0-9]"


def _add(needles: dict[str, Needle], value: object, needle: Needle) -> None:
    """`value` and its JSON-escaped spelling (Dagster stores metadata as ASCII JSON)."""
    if not isinstance(value, str) or not value.strip():
        return
    needles.setdefault(value, needle)
    escaped = json.dumps(value)[1:-1]
    if escaped != value:
        needles.setdefault(escaped, needle)


def _text_needles(needles: dict[str, Needle], text: object) -> None:
    """The start of a free text and each of its sentences, at least MIN_TEXT and at most TEXT_CUT long."""
    if not isinstance(text, str):
        return
    for piece in [text, *re.split(r"(?<=[.!?;])\s+", text)]:
        piece = piece.strip()
        if len(piece) >= MIN_TEXT:
            _add(needles, piece[:TEXT_CUT], Needle("free text"))


def _names(needles: dict[str, Needle], name: dict[str, Any]) -> None:
    family = name.get("family") if isinstance(name.get("family"), str) else ""
    given = [g for g in name.get("given") or [] if isinstance(g, str)]
    for part in [family, *given]:
        if len(part) >= MIN_NAME:
            _add(needles, part, Needle("family name" if part == family else "given name", *WORD))
    if family and given:
        _add(needles, f"{given[0]} {family}", Needle("full name", *WORD))
        _add(needles, " ".join([*given, family]), Needle("full name", *WORD))


def _telecom(needles: dict[str, Needle], telecom: list[Any]) -> None:
    for contact in telecom:
        value = contact.get("value") if isinstance(contact, dict) else None
        if not isinstance(value, str):
            continue
        if contact.get("system") == "email":
            _add(needles, value, Needle("e-mail"))
            continue
        _add(needles, value, Needle("phone", r"[\d]", r"\d"))
        digits = re.sub(r"\D", "", value)
        if len(digits) == 10:
            _add(needles, digits, Needle("phone", *NUMBER))
            _add(needles, f"{digits[:3]}-{digits[3:6]}-{digits[6:]}", Needle("phone", *NUMBER))


def _address(needles: dict[str, Needle], address: dict[str, Any]) -> None:
    for line in address.get("line") or []:
        if isinstance(line, str) and len(line) >= 6:
            _add(needles, line, Needle("address", *ALPHANUMERIC))


def _patient(needles: dict[str, Needle], resource: dict[str, Any]) -> None:
    for name in resource.get("name") or []:
        if isinstance(name, dict):
            _names(needles, name)
    birth = resource.get("birthDate")
    if (
        isinstance(birth, str)
        and re.fullmatch(r"\d{4}-\d{2}-\d{2}", birth)
        and birth < str(BIRTH_DATE_CUTOFF)
    ):
        _add(needles, birth, Needle("birth date", *NUMBER))
    _telecom(needles, resource.get("telecom") or [])
    for address in resource.get("address") or []:
        if isinstance(address, dict):
            _address(needles, address)
    for identifier in resource.get("identifier") or []:
        value = identifier.get("value") if isinstance(identifier, dict) else None
        if isinstance(value, str):
            _add(needles, value, Needle("identifier", *NUMBER))
            if re.fullmatch(r"\d{3}-\d{2}-\d{4}", value):  # an SSN is also written without dashes
                _add(needles, value.replace("-", ""), Needle("identifier", *NUMBER))
    for contact in resource.get("contact") or []:  # a guardian's data is PHI as well
        if isinstance(contact, dict):
            if isinstance(contact.get("name"), dict):
                _names(needles, contact["name"])
            _telecom(needles, contact.get("telecom") or [])
            if isinstance(contact.get("address"), dict):
                _address(needles, contact["address"])


def _walk(needles: dict[str, Needle], value: Any) -> None:
    """Collect the PHI of every resource or conversation nested anywhere in a parsed landing record."""
    if isinstance(value, list):
        for item in value:
            _walk(needles, item)
        return
    if not isinstance(value, dict):
        return
    kind = value.get("resourceType")
    if kind == "Patient":
        _patient(needles, value)
    elif kind == "QuestionnaireResponse":
        for item in value.get("item") or []:
            for answer in (item.get("answer") or []) if isinstance(item, dict) else []:
                _text_needles(needles, answer.get("valueString") if isinstance(answer, dict) else None)
    elif kind == "Communication" and str((value.get("sender") or {}).get("reference", "")).startswith(
        "Patient/"
    ):
        for payload in value.get("payload") or []:
            _text_needles(needles, payload.get("contentString") if isinstance(payload, dict) else None)
    elif kind == "Coverage":
        _add(needles, value.get("subscriberId"), Needle("identifier", *NUMBER))
    if "conversation_id" in value and isinstance(value.get("turns"), list):
        for turn in value["turns"]:
            _text_needles(needles, turn.get("text") if isinstance(turn, dict) else None)
    for child in value.values():
        if isinstance(child, dict | list):
            _walk(needles, child)


def landing_phi(landing: Path) -> dict[str, Needle]:
    """Every PHI value of the landing folder's JSON and NDJSON files (records that do not parse are left
    out: the generator's broken records are copies of genuine ones)."""
    needles: dict[str, Needle] = {}
    for path in sorted(landing.rglob("*")):
        name = path.name.removesuffix(".gz")
        if not path.is_file() or not name.endswith((".json", ".ndjson", ".csv")):
            continue
        data = path.read_bytes()
        data = gzip.decompress(data) if path.name.endswith(".gz") else data
        if name.endswith(".csv"):  # device enrolment: a vendor's user id and a device serial identify too
            for row in csv.DictReader(io.StringIO(data.decode("utf-8", "replace"))):
                for column in ("vendor_user_id", "device_id"):
                    _add(needles, row.get(column), Needle("device identifier", *ALPHANUMERIC))
            continue
        for chunk in data.splitlines() if name.endswith(".ndjson") else [data]:
            try:
                _walk(needles, orjson.loads(chunk))
            except orjson.JSONDecodeError:
                continue
    return needles


def find_phi(haystack: list[tuple[str, str]], needles: dict[str, Needle]) -> list[str]:
    """Each (where, kind, value) of `needles` found in the texts of `haystack`, described for a report.

    Candidates come from one Aho-Corasick pass over every text (Polars' extract_many); each is then
    confirmed with its kind's delimiters."""
    if not haystack or not needles:
        return []
    texts = pl.Series("text", [text for _, text in haystack], dtype=pl.String)
    candidates = texts.str.extract_many(list(needles), overlapping=True)
    leaks = []
    for (where, text), found in zip(haystack, candidates, strict=True):
        for value in sorted(set(found)):
            if needles[value].found_in(value, text):
                at = text.find(value)
                context = text[max(0, at - 60) : at + len(value) + 60].replace("\n", " ")
                leaks.append(f"{where}: {needles[value].kind} {value!r} in …{context}…")
    return leaks


def test_the_needles_are_found_and_delimited() -> None:
    needles: dict[str, Needle] = {}
    _walk(
        needles,
        {
            "resourceType": "Bundle",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Patient",
                        "name": [{"family": "Li", "given": ["Rosalind"]}, {"family": "Pérez"}],
                        "birthDate": "1961-02-03",
                        "telecom": [{"system": "phone", "value": "(908) 555-4959"}],
                        "identifier": [{"value": "86302059"}, {"value": "923-69-1805"}],
                    }
                }
            ],
        },
    )
    assert "Li" not in needles and needles["Rosalind Li"].kind == "full name"  # short names only in pairs
    assert "P\\u00e9rez" in needles  # the JSON-escaped spelling as well
    haystack = [
        ("a", "Rosalindas and 0.86302059 and 1961-02-031 and rosalind"),  # no whole word, number or date
        ("b", '{"x": "Rosalind", "at": "1961-02-03T00:00:00", "n": 9085554959, "ssn": "923691805"}'),
    ]
    leaks = find_phi(haystack, needles)
    assert [leak.split(":")[0] for leak in leaks] == ["b"] * 4, leaks


# --- a whole pipeline run ----------------------------------------------------------------------------------
@contextmanager
def _on_every_logger(handler: logging.Handler) -> Iterator[None]:
    """Also attach `handler` to the loggers that do not propagate to the root (caplog listens there only)."""
    loggers = [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def _record_text(record: logging.LogRecord) -> str:
    """A log record as a handler would write it: message, exception and stack."""
    formatter = logging.Formatter()
    parts = [record.name, record.levelname, record.getMessage()]
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return " ".join(parts)


def dagster_records(home: Path) -> tuple[list[tuple[str, str]], list[Any], int]:
    """Every run record and event of the persisted instance under `home`, serialized as stored, named by job
    and event type; with the runs and the number of events (a search of nothing finds nothing)."""
    import dagster as dg

    found: list[tuple[str, str]] = []
    events = 0
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = list(instance.get_runs())
        for dagster_run in runs:
            found.append((f"dagster run {dagster_run.job_name}", dg.serialize_value(dagster_run)))
            for entry in instance.all_logs(dagster_run.run_id):
                events += 1
                kind = entry.dagster_event_type.value if entry.dagster_event_type else "log message"
                found.append((f"dagster event {dagster_run.job_name} {kind}", dg.serialize_value(entry)))
    return found, runs, events


def _files(root: Path, patterns: tuple[str, ...]) -> list[tuple[str, str]]:
    """(relative path, text) of the files under `root` that match one of `patterns` (binary files too:
    SQLite keeps its text as UTF-8 bytes)."""
    found = sorted({p for pattern in patterns for p in root.glob(pattern) if p.is_file()})
    return [(str(p.relative_to(root)), p.read_bytes().decode("utf-8", "replace")) for p in found]


@pytest.mark.slow
def test_a_pipeline_run_leaves_no_phi_in_logs_events_or_run_records(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    recwarn: pytest.WarningsRecorder,
) -> None:
    import pipelines.definitions  # noqa: F401 - its imports create the loggers before they are listened to
    from pipelines.run import run_pipeline

    landing, lake, exports, home = (tmp_path / n for n in ("landing", "lake", "exports", "dagster_home"))
    generate_landing(landing, PEOPLE, seed=SEED, defects=DEFECTS, as_of=AS_OF)
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    labels = tmp_path / "ground_truth" / "conversation_turns.csv"  # as `make run` and demo_lake do
    monkeypatch.setenv("PATIENT_INSIGHTS_SENTIMENT_LABELS", str(labels))
    caplog.set_level(logging.DEBUG)
    with _on_every_logger(caplog.handler):
        run = run_pipeline(Settings(UPath(landing), UPath(lake), UPath(exports), BUCKETS, AS_OF), workers=1)
    assert run.success, (run.failed_checks, run.warnings)

    out, err = capfd.readouterr()
    haystack: list[tuple[str, str]] = [("stdout", out), ("stderr", err)]
    haystack += [(f"log record {r.name}", _record_text(r)) for r in caplog.records]
    haystack += [(f"warning {w.category.__name__}", str(w.message)) for w in recwarn.list]
    records, runs, events = dagster_records(home)
    haystack += records
    instance_files = _files(home, ("**/*",))
    haystack += [(f"dagster home file {name}", text) for name, text in instance_files]
    run_records = _files(lake, ("meta/**/*",))
    model_records = _files(lake, ("models/**/*.json", "models/**/*.md"))
    audit = _files(exports, ("audit.log",))
    manifests = _files(exports, ("*/*/manifest.json",))
    for what, files in (
        ("run record", run_records),
        ("model record", model_records),
        ("audit log", audit),
        ("export manifest", manifests),
    ):
        haystack += [(f"{what} {name}", text) for name, text in files]
    # every source really was there: a search of nothing finds nothing
    assert len(runs) >= 1 and events > 200 and caplog.records  # one run for the whole pass
    assert any("pipeline_runs" in name for name, _ in run_records) and audit and manifests
    assert any(name.endswith(".db") for name, _ in instance_files)

    needles = landing_phi(landing)
    kinds = Counter(n.kind for n in needles.values())
    assert all(kinds[k] > 50 for k in ("family name", "given name", "birth date", "address", "phone"))
    assert all(kinds[k] > 50 for k in ("e-mail", "identifier", "free text")) and kinds["device identifier"]
    leaks = find_phi(haystack, needles)
    print(  # the sizes of the search, for the record (pytest -rP shows them)
        f"searched {len(caplog.records)} log records, {len(recwarn.list)} warnings, {len(out) + len(err)} "
        f"characters of stdout/stderr, {events} Dagster events of {len(runs)} runs, {len(instance_files)} "
        f"instance files, {len(run_records)} run records, {len(model_records)} model records, "
        f"{len(audit)} audit log, {len(manifests)} manifests for {len(needles)} PHI values: {dict(kinds)}"
    )
    assert not leaks, f"{len(leaks)} PHI values outside the data:\n" + "\n".join(leaks[:40])


# --- a malformed record with a planted name ----------------------------------------------------------------
def _marked_landing(landing: Path) -> dict[int, str]:
    """A Bulk Data export whose Patient file holds, on known lines, broken records that carry the planted
    name, and a record bronze accepts with the name in elements only full FHIR validation reads; returns
    line → the reason code the broken line is quarantined with."""
    name = {"family": MARKER[1], "given": [MARKER[0]]}
    full = " ".join(MARKER)
    bad: dict[int, tuple[bytes, str]] = {
        3: (orjson.dumps(patient("m1", family=MARKER[1]))[:-2], "invalid_json"),  # truncated
        4: (orjson.dumps([full, {"name": [name]}]), "not_an_object"),
        5: (orjson.dumps({**patient("m2"), "id": 5, "name": [name]}), "invalid_field_type"),
        6: (orjson.dumps({**patient("m3"), "meta": full, "name": [name]}), "invalid_field_type"),
        7: (orjson.dumps({**patient("m4"), "resourceType": full}), "unknown_resource_type"),
        8: (orjson.dumps({**patient("m5"), "id": f"{MARKER[0]} {MARKER[1]}!"}), "invalid_id"),
        9: (  # a key field of the wrong shape sends the record through full FHIR validation
            orjson.dumps(
                {**patient("m6"), "subject": full, "birthDate": full, "gender": full, "name": [name]}
            ),
            "invalid_field_type",
        ),
        10: (f'{{"resourceType":"Patient","id":"m7","name":"{full}\xff"}}'.encode("latin-1"), "invalid_utf8"),
        11: (f'{{"resourceType":"Patient","id":"m8","id":"m9","name":"{full}"}}'.encode(), "invalid_json"),
        12: (  # fhir.resources quotes a nested resourceType it cannot place, or fails on it with a KeyError
            orjson.dumps({**patient("m10"), "subject": full, "contained": [{"resourceType": full}]}),
            "invalid_field_type",
        ),
        13: (
            orjson.dumps({**patient("m11"), "subject": full, "name": [{"resourceType": full}]}),
            "invalid_field_type",
        ),
    }
    accepted = [  # key fields are fine: in bronze, and in the sample the bronze check validates in full
        {**patient("p3"), "birthDate": full, "gender": full, "name": [name]},
        {**patient("p4"), "contained": [{"resourceType": full, "id": "c1"}]},
        {**patient("p5"), "name": [{"resourceType": full, "family": MARKER[1]}]},
    ]
    lines = [orjson.dumps(patient("p1")), orjson.dumps(patient("p2"))]
    lines += [raw for _, (raw, _) in sorted(bad.items())] + [orjson.dumps(r) for r in accepted]
    write_ndjson(landing / "ehr_a" / "Patient.000.ndjson", lines)
    manifest = {
        "transactionTime": "2026-06-30T23:00:00Z",
        "output": [{"type": "Patient", "url": "Patient.000.ndjson"}],
        "deleted": [],
        "error": [],
    }
    (landing / "ehr_a" / "manifest.json").write_bytes(orjson.dumps(manifest))
    return {line: code for line, (_, code) in bad.items()}


def _marked(text: str) -> bool:
    return any(part in text for part in MARKER)


@pytest.mark.parametrize(
    "element",
    [
        {
            "contained": [{"resourceType": " ".join(MARKER), "id": "c1"}]
        },  # fhir.resources: KeyError quoting it
        {"name": [{"resourceType": " ".join(MARKER)}]},  # fhir.resources: a message quoting it ``so``
        {"birthDate": " ".join(MARKER), "photo": [{"data": MARKER[0]}]},
    ],
)
def test_a_fhir_validation_problem_quotes_nothing_of_the_record(element: dict[str, Any]) -> None:
    """Regression: these problems reached quarantine reasons and the bronze check's metadata, or failed the
    reader (the whole file quarantined) and the check (the record's text in the step failure)."""
    from pipelines.bronze.diagnostics import fhir_validation_problem

    problem = fhir_validation_problem({**patient("p1"), **element})
    assert problem and problem.startswith("FHIR validation failed") and not _marked(problem), problem
    assert "\n" not in problem


def test_a_quarantined_record_is_reported_by_file_and_line_without_its_content(
    landing: UPath, lake: UPath, caplog: pytest.LogCaptureFixture
) -> None:
    """Every broken record is quarantined at its file and line with a reason that quotes nothing of it;
    no log record, Dagster event or check metadata of the bronze job carries the planted name."""
    import dagster as dg

    from assets.bronze.assets import bronze_ingest
    from assets.bronze.checks import (
        accounting_balanced,
        fhir_sample_valid,
        files_ingested_once,
        quarantine_has_reasons,
    )
    from assets.resources import LakeResource

    expected = _marked_landing(Path(landing))
    caplog.set_level(logging.DEBUG)
    result = dg.materialize(
        [bronze_ingest, accounting_balanced, files_ingested_once, quarantine_has_reasons, fhir_sample_valid],
        resources={"lake": LakeResource(landing=str(landing), lake=str(lake), buckets=2)},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    quarantine = read_table(lake, "bronze", "quarantine").sort("line")
    assert quarantine.select("file", "line", "reason_code").rows() == [
        ("ehr_a/Patient.000.ndjson", line, code) for line, code in sorted(expected.items())
    ]
    assert all(_marked(bytes(raw).decode("latin-1")) for raw in quarantine["raw"])  # the bytes are kept
    assert not [reason for reason in quarantine["reason"] if _marked(reason)]
    assert not [_record_text(r) for r in caplog.records if _marked(_record_text(r))]
    assert not [e for e in result.all_events if _marked(dg.serialize_value(e))]
    sample = next(e for e in result.get_asset_check_evaluations() if e.check_name == "fhir_sample_valid")
    assert sample.metadata["resources_invalid"].value == 3  # the accepted records were validated in full


def test_a_reader_crash_names_the_file_but_not_the_record(
    landing: UPath, lake: UPath, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A reader that fails with a record in its message (a bug, or a library quoting its input): the file is
    quarantined whole and the run goes on. The log names the file by its content hash, which ingest_log
    maps to the landing path (a path can hold a vendor's user id), and the error by its type only."""
    _marked_landing(Path(landing))

    def quoting_reader(landing_file: d.LandingFile, data: bytes, known: object) -> None:
        raise ValueError(f"cannot read line 3: {data.splitlines()[2].decode()}")

    monkeypatch.setitem(ingest_module.READERS, d.FHIR_NDJSON, quoting_reader)
    caplog.set_level(logging.DEBUG)
    report = ingest_landing(landing, lake, buckets=2)  # raises nothing: the file is quarantined
    assert report.quarantine_by_reason == {"reader_error": 1}
    quarantine = read_table(lake, "bronze", "quarantine")
    assert quarantine.select("file", "line", "reason_code").rows() == [
        ("ehr_a/Patient.000.ndjson", None, "reader_error")
    ]
    assert "ValueError" in quarantine["reason"][0] and not _marked(quarantine["reason"][0])
    crash = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    sha = quarantine["file_sha256"][0]
    assert len(crash) == 1 and sha[:12] in crash[0] and "ValueError" in crash[0], crash
    log = read_table(lake, "bronze", "ingest_log").filter(pl.col("file_sha256").str.starts_with(sha[:12]))
    assert log["file"].to_list() == ["ehr_a/Patient.000.ndjson"]
    assert not [_record_text(r) for r in caplog.records if _marked(_record_text(r))]
