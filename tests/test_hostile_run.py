"""The whole pipeline on the demo with defects, every hostile class of issue 25 and the bad-input corpus.

One `ingest` (the real command line, in its own interpreter, no as-of set) over 120 generated people with
5 % defective records, in which ehr_a's people carry formula-leading names and implausible birth and death
dates, beside hostile sources: FHIR files read in an order that puts records before their Patient,
records without a resolvable patient, duplicated JSON members, unknown modifier extensions, quantities
written as text, a future `meta.lastUpdated`, Bundles nested and with a shared fullUrl, a Bulk manifest
dated in the year 3026, links to files outside the landing folder, device readings too large for any
column and dated in the year 3000, and survey answers whose `item` is one object instead of a list; and
beside them every case of the bad-input corpus (tests/corpus) as a source of its own, except those that
refuse their whole source for its source.yaml (by design `ingest` then exits 3: test_corpus.py and
test_assets.py). The run must exit 0, fail no
contract, account for every record with a documented reason, read nothing outside the landing folder,
keep the as-of day of the real data and write no CSV cell a spreadsheet would run.
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import orjson
import polars as pl
import pytest
from upath import UPath

from pipelines.bronze.accounting import accounting_discrepancies
from pipelines.generate import generate_landing
from pipelines.incremental import read_state
from pipelines.lake import read_table
from tests.conftest import observation, patient, write_ndjson
from tests.corpus.cases import LANDING_CASES, Case, place
from tests.test_corpus import REASON_CODES, make_contents_unique

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 6, 30)
SECRET = "OUTSIDE-THE-LANDING-7f3a9c"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"^-?(\d+(\.\d*)?([eE][+-]?\d+)?|inf)$")
HOSTILE_FAMILIES = ('=HYPERLINK("http://x.example","y")', "+1+2", "-3+4", "@SUM(A1)", "\tTab", "\rReturn")
IMPLAUSIBLE_BIRTHS = ("0000-01-01", "1885-03-04", "1900-01-01", "2999-01-01")


def _lines(path: Path) -> list[dict[str, object] | bytes]:
    """The file's records, parsed where they parse (the demo's defects stay as the bytes they are)."""
    records: list[dict[str, object] | bytes] = []
    for line in path.read_bytes().splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            record = None
        records.append(record if isinstance(record, dict) else line)
    return records


def _write(path: Path, records: list[dict[str, object] | bytes]) -> None:
    path.write_bytes(b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in records))


def _hostile_people(landing: Path) -> list[str]:
    """Formula-leading names, e-mails and address lines, implausible birth dates and a future death on
    ehr_a's own people (so they reach every table and the outreach lists); returns their ids."""
    path = landing / "ehr_a" / "Patient.000.ndjson"
    records = _lines(path)
    people = [r for r in records if isinstance(r, dict) and r.get("resourceType") == "Patient"]
    changed: list[str] = []
    for n, person in enumerate(people[:12]):
        start = HOSTILE_FAMILIES[n % len(HOSTILE_FAMILIES)]
        for name in person.get("name", []):
            name["family"] = start + str(name.get("family", ""))
        for telecom in person.get("telecom", []):
            if telecom.get("system") == "email":
                telecom["value"] = "=" + str(telecom["value"])
        for address in person.get("address", []):
            address["line"] = ["@" + str(line) for line in address.get("line", [])]
        if n < len(IMPLAUSIBLE_BIRTHS):
            person["birthDate"] = IMPLAUSIBLE_BIRTHS[n]
        if n == len(IMPLAUSIBLE_BIRTHS):
            person["deceasedDateTime"] = "2099-01-01T00:00:00Z"
        changed.append(str(person["id"]))
    _write(path, records)
    return changed


def _hostile_sources(landing: Path, outside: Path) -> None:
    """Sources beside the demo's, each holding one or more hostile classes."""
    outside.mkdir()
    (outside / "secret.ndjson").write_text(orjson.dumps(patient("s1", SECRET)).decode() + "\n")
    (outside / "folder").mkdir()
    (outside / "folder" / "Patient.ndjson").write_text(orjson.dumps(patient("s2", SECRET)).decode() + "\n")

    fhir = landing / "ehr_hostile"
    fhir.mkdir()
    (fhir / "source.yaml").write_text("format: fhir\n")
    # "observations" sorts before "patients": records met before their Patient
    write_ndjson(fhir / "observations.ndjson", [observation(f"o{n}", f"h{n}") for n in range(3)])
    write_ndjson(
        fhir / "patients.ndjson",
        [patient(f"h{n}", "Hostile") for n in range(3)]
        + [patient("h0", "Hostile", meta={"versionId": "9", "lastUpdated": "2099-01-01T00:00:00Z"})],
    )
    no_subject = observation("ns", "h0")
    del no_subject["subject"]
    contained = observation("ct", "h0", subject={"reference": "#p1"}, contained=[patient("p1")])
    text_value = observation("tv", "h1", valueQuantity={"value": "7.1", "unit": "%"})
    modifier = observation(
        "mx", "h1", modifierExtension=[{"url": "http://example.org/negated", "valueBoolean": True}]
    )
    survey = {
        "resourceType": "QuestionnaireResponse",
        "id": "qr-object",
        "status": "completed",
        "subject": {"reference": "Patient/h1"},
        "authored": "2026-05-01T10:00:00Z",
        "item": {"linkId": "nps", "answer": [{"valueInteger": 9}]},  # FHIR says a list: silver must cope
    }
    records = (no_subject, contained, text_value, modifier, survey)
    lines = [orjson.dumps(r).decode() for r in records]
    lines.append(
        '{"resourceType":"Observation","id":"dm","id":"dm2","status":"final",'
        '"code":{"text":"x"},"subject":{"reference":"Patient/h2"}}'
    )
    (fhir / "more.ndjson").write_text("\n".join(lines) + "\n")
    os.symlink(outside / "secret.ndjson", fhir / "Linked.ndjson")
    os.symlink(outside / "folder", fhir / "linked_folder")

    bundles = landing / "bundles_hostile"
    bundles.mkdir()
    (bundles / "source.yaml").write_text("format: fhir\n")
    inner = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient("n1")}]}
    shared = "urn:uuid:6a1f1f54-0000-4000-8000-000000000001"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:6a1f1f54-0000-4000-8000-000000000009", "resource": inner},
            {"fullUrl": shared, "resource": patient("b1", "Bundled")},
            {"fullUrl": shared, "resource": patient("b2", "Bundled")},
            {"resource": observation("bo", "x", subject={"reference": shared})},
            {"resource": observation("bu", "x", subject={"reference": "urn:uuid:00000000-dead-4000-8000-0"})},
        ],
    }
    (bundles / "bundle.json").write_bytes(orjson.dumps(bundle))

    future = landing / "ehr_future"
    future.mkdir()
    write_ndjson(future / "Patient.000.ndjson", [patient("f1", "Future")])
    manifest = {
        "transactionTime": "3026-01-01T00:00:00Z",
        "request": "https://future.example.org/fhir/$export",
        "requiresAccessToken": False,
        "output": [{"type": "Patient", "url": "Patient.000.ndjson"}],
        "error": [],
    }
    (future / "manifest.json").write_bytes(orjson.dumps(manifest))


def _hostile_devices(landing: Path) -> None:
    """Open mHealth readings of the demo's own users: too large for any column, not a number, and dated in
    the year 3000."""
    path = landing / "devices_omh" / "datapoints.000.ndjson"
    points = [r for r in _lines(path) if isinstance(r, dict) and "header" in r]
    hostile = []
    for n, value in enumerate(("1e308", "NaN", "1e309")):
        point = orjson.loads(orjson.dumps(points[n]))
        point["header"]["id"] = f"hostile-{n}"
        metric = next(k for k, v in point["body"].items() if isinstance(v, dict) and "value" in v)
        point["body"][metric]["value"] = f"@{value}@"
        hostile.append(point)
    future = orjson.loads(orjson.dumps(points[3]))
    future["header"]["id"] = "hostile-future"
    future["body"]["effective_time_frame"] = {"date_time": "3000-01-01T08:00:00Z"}
    hostile.append(future)
    text = "".join(orjson.dumps(p).decode() + "\n" for p in hostile).encode()
    # as JSON number literals (NaN is not JSON: the reader must quarantine that line, not crash)
    for value in ("1e308", "NaN", "1e309"):
        text = text.replace(f'"@{value}@"'.encode(), value.encode())
    path.write_bytes(path.read_bytes() + text)


def _refuses_its_source(item: Case) -> bool:
    return any(status == "refused" and path.endswith("source.yaml") for status, path, _ in item.logged)


def _the_corpus(landing: Path) -> int:
    """Every landing case of the corpus as a source of its own beside the demo's; returns how many."""
    cases = [c for c in LANDING_CASES if c.error is None and not c.env and not _refuses_its_source(c)]
    for item in cases:
        place(item, landing / f"corpus_{item.reader}__{item.name}")
    make_contents_unique(landing)  # files are ingested once by content: cases sharing bytes stay apart
    return len(cases)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("hostile")
    landing, lake, exports, home = root / "landing", root / "lake", root / "exports", root / "home"
    generate_landing(landing, 120, seed=17, defects=0.05, truth_out=root / "truth", as_of=AS_OF)
    people = _hostile_people(landing)
    _hostile_sources(landing, root / "outside")
    _hostile_devices(landing)
    assert _the_corpus(landing) > 350
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATIENT_INSIGHTS_")}
    env["DAGSTER_HOME"] = str(home)
    command = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "ingest",
        "--landing",
        str(landing),
        "--lake",
        str(lake),
    ]
    command += ["--exports", str(exports)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    return {"done": done, "lake": lake, "exports": exports, "people": people, "root": root}


def test_the_run_exits_0_and_fails_no_contract(hostile_run: dict[str, object]) -> None:
    done = hostile_run["done"]
    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    lake = hostile_run["lake"]
    assert isinstance(lake, Path)
    record = orjson.loads(sorted((lake / "meta" / "pipeline_runs").glob("*.json"))[-1].read_bytes())
    assert record["success"] and not record["failed_checks"]


def test_every_record_is_accounted_with_a_documented_reason(hostile_run: dict[str, object]) -> None:
    lake = UPath(hostile_run["lake"])
    assert accounting_discrepancies(lake).is_empty()
    quarantine = read_table(lake, "bronze", "quarantine")
    assert quarantine.height > 0
    assert set(quarantine["reason_code"].unique()) <= REASON_CODES
    assert quarantine.filter(pl.col("reason").is_null() | (pl.col("reason") == "")).is_empty()


def test_nothing_outside_the_landing_folder_reaches_the_lake(hostile_run: dict[str, object]) -> None:
    lake = hostile_run["lake"]
    assert isinstance(lake, Path)
    for path in lake.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path.relative_to(lake)
    log = read_table(UPath(lake), "bronze", "ingest_log")
    linked = log.filter(pl.col("file").str.contains("ehr_hostile/(Linked|linked_folder)"))
    assert linked.height >= 1 and set(linked["status"]) == {"refused"}


def test_the_as_of_day_is_the_real_data_s(hostile_run: dict[str, object]) -> None:
    state = read_state(UPath(hostile_run["lake"]))
    assert state is not None and state.as_of == AS_OF.isoformat()


def test_no_csv_cell_would_run_as_a_formula(hostile_run: dict[str, object]) -> None:
    exports = hostile_run["exports"]
    assert isinstance(exports, Path)
    files = [p for p in exports.rglob("*.csv") if p.is_file()]
    assert files
    for path in files:
        for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")):
            for cell in row:  # a number keeps its sign (pipelines/csv_cells: numbers are never run)
                assert not cell.startswith(FORMULA_STARTS) or NUMBER.match(cell), (path.name, cell[:1])


def test_people_with_implausible_dates_stay_with_an_unknown_age(hostile_run: dict[str, object]) -> None:
    lake = UPath(hostile_run["lake"])
    people = hostile_run["people"]
    assert isinstance(people, list)
    bronze = read_table(lake, "bronze", "fhir_resources").filter(
        (pl.col("source") == "ehr_a") & (pl.col("resource_type") == "Patient")
    )
    assert set(people) <= set(bronze["resource_id"])  # nobody dropped at the door
    silver = read_table(lake, "silver", "patient").filter(pl.col("source") == "ehr_a")
    assert set(people) <= set(silver["id"])
    gold = read_table(lake, "gold", "patient_360")
    flagged = gold.filter(pl.col("age_flag").is_not_null())
    assert flagged.height >= len(IMPLAUSIBLE_BIRTHS)  # each kept, with the reason its age is unknown
    assert flagged["age"].is_null().all()  # no age of 2026 or 135
    assert gold["age"].drop_nulls().max() <= 125
    # and each still has a risk score: a living person without a birth date to trust is still scored
    living = flagged.filter(~pl.col("deceased").cast(pl.Boolean).fill_null(False))
    scores = read_table(lake, "gold", "risk_scores")
    assert living.height and set(living["person_id"]) <= set(scores["person_id"])


def test_a_survey_answer_of_the_wrong_shape_costs_only_that_element(hostile_run: dict[str, object]) -> None:
    lake = UPath(hostile_run["lake"])
    conflicts = read_table(lake, "silver", "type_conflicts")
    item = conflicts.filter((pl.col("table") == "QuestionnaireResponse") & (pl.col("column") == "item"))
    assert item["values_nulled"].sum() >= 1  # counted where the data-quality page shows it
    items = read_table(lake, "silver", "questionnaire_response_item")
    assert items.height > 0  # the batch's other answers were read
