"""Tests of the synthetic landing generator (`pipelines.generate`)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
import statistics
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B import get_fhir_model_class

from pipelines.generate import MARKER, ROTATE_LINES, generate_landing, texts
from pipelines.generate import bulk_writer as bulk_writer_module
from pipelines.generate.clock import Clock
from pipelines.generate.rng import new_uuid

AS_OF = date(2026, 6, 30)
SEED = 11
SURVEY_LOW, SURVEY_HIGH = 3, 9
ENROLMENT_COLUMNS = 8
IHEALTH_FILES = {
    "bp.json": ("BPDataList", "BPUnit"),
    "weight.json": ("WeightDataList", "WeightUnit"),
    "glucose.json": ("BGDataList", "BGUnit"),
}


# --- helpers -------------------------------------------------------------------------------------------
def _tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _dict_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def _ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]


def _manifest(landing: Path) -> dict[str, Any]:
    return json.loads((landing / "ehr_a" / "manifest.json").read_text())


def _ehr_a(landing: Path, rtype: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in _manifest(landing)["output"]:
        if item["type"] == rtype:
            out.extend(_ndjson(landing / "ehr_a" / item["url"]))
    return out


def _bundles(landing: Path) -> list[tuple[Path, dict[str, Any]]]:
    return [
        (p, json.loads(p.read_bytes()))
        for p in sorted((landing / "ehr_b").glob("[0-9][0-9][0-9][0-9]/*.json"))
    ]


def _references(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_references(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_references(value))
    return found


def _generate(root: Path, patients: int, seed: int = SEED, **kwargs: Any) -> tuple[Path, Path]:
    landing, truth = root / "landing", root / "truth"
    generate_landing(landing, patients, seed, truth_out=truth, **kwargs)
    return landing, truth


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """300 people, no defects."""
    return _generate(tmp_path_factory.mktemp("clean"), 300)


@pytest.fixture(scope="module")
def defective(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """250 people, 8% defects (enough for every kind of defect, including the rare CSV rows)."""
    return _generate(tmp_path_factory.mktemp("defective"), 250, defects=0.08)


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """800 people, for the statistical signals."""
    return _generate(tmp_path_factory.mktemp("large"), 800, seed=5)


# --- determinism ---------------------------------------------------------------------------------------
def test_same_arguments_give_byte_identical_trees(tmp_path: Path) -> None:
    first = _generate(tmp_path / "one", 60, defects=0.02)
    second = _generate(tmp_path / "two", 60, defects=0.02)
    assert _tree_digest(first[0]) == _tree_digest(second[0])
    assert _tree_digest(first[1]) == _tree_digest(second[1])


def test_different_seed_or_as_of_gives_different_data(tmp_path: Path) -> None:
    base = _tree_digest(_generate(tmp_path / "base", 40)[0])
    other_seed = _tree_digest(_generate(tmp_path / "seed", 40, seed=SEED + 1)[0])
    other_day = _tree_digest(_generate(tmp_path / "day", 40, as_of=date(2025, 1, 15))[0])
    assert base != other_seed
    assert base != other_day
    assert base["ehr_a/Patient.000.ndjson"] != other_seed["ehr_a/Patient.000.ndjson"]


def test_genuine_records_do_not_depend_on_the_defect_rate(tmp_path: Path) -> None:
    clean_landing, _ = _generate(tmp_path / "clean", 50)
    dirty_landing, _ = _generate(tmp_path / "dirty", 50, defects=0.05)
    for name in ("Patient.000.ndjson", "Observation.000.ndjson", "Encounter.000.ndjson"):
        genuine = (clean_landing / "ehr_a" / name).read_bytes().splitlines()
        remaining = iter((dirty_landing / "ehr_a" / name).read_bytes().splitlines())
        # every genuine line is still there, in order; defects are only added
        assert all(any(line == other for other in remaining) for line in genuine), name
    assert (dirty_landing / "ehr_a" / "Observation.000.ndjson").stat().st_size > (
        clean_landing / "ehr_a" / "Observation.000.ndjson"
    ).stat().st_size


def test_uuid_helper_matches_the_standard_library() -> None:
    a, b = random.Random(5), random.Random(5)
    for _ in range(2000):
        assert new_uuid(a) == str(uuid.UUID(int=b.getrandbits(128), version=4))


def test_clock_formats_eastern_time_like_zoneinfo() -> None:
    clock = Clock(AS_OF)
    eastern = ZoneInfo("America/New_York")
    rng = random.Random(1)
    for _ in range(5000):
        ts = rng.randrange(clock.window_start - 10 * 365 * 86400, clock.future_end)
        assert clock.dt(ts) == datetime.fromtimestamp(ts, eastern).isoformat()
        assert clock.instant(ts) == datetime.fromtimestamp(ts, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- folder handling -----------------------------------------------------------------------------------
def test_refuses_a_foreign_non_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "landing"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        generate_landing(out, 5, 1)
    assert (out / "precious.txt").read_text() == "keep me"


def test_regenerates_over_a_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "landing"
    generate_landing(out, 5, 1)
    (out / "ehr_a" / "leftover.ndjson").write_text("{}\n")
    summary = generate_landing(out, 5, 2)
    assert (out / MARKER).is_file()
    assert not (out / "ehr_a" / "leftover.ndjson").exists()
    assert summary.truth_out == tmp_path / "ground_truth"
    assert (tmp_path / "ground_truth" / "summary.json").is_file()
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_ground_truth_must_stay_outside_the_landing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside"):
        generate_landing(tmp_path / "landing", 5, 1, truth_out=tmp_path / "landing" / "truth")
    with pytest.raises(ValueError):
        generate_landing(tmp_path / "x", 0, 1)
    with pytest.raises(ValueError):
        generate_landing(tmp_path / "x", 5, 1, defects=1.5)


def test_summary_object_reports_what_was_written(tmp_path: Path) -> None:
    landing, truth = tmp_path / "landing", tmp_path / "truth"
    summary = generate_landing(landing, 30, 3, truth_out=truth, defects=0.05, progress=True)
    files = [p for p in landing.rglob("*") if p.is_file()]
    assert summary.patients == 30
    assert summary.files_written == len(files)
    assert summary.bytes_written == sum(p.stat().st_size for p in files)
    truth_summary = json.loads((truth / "summary.json").read_text())
    assert summary.records_per_source == truth_summary["records_per_source"]
    assert summary.defects_injected == len(_dict_rows(truth / "defects.csv")) > 0
    assert summary.patient_resources == truth_summary["patients_per_source"]


# --- the Bulk Data export ------------------------------------------------------------------------------
def test_manifest_lists_every_output_with_counts(clean: tuple[Path, Path]) -> None:
    landing, truth = clean
    manifest = _manifest(landing)
    assert manifest["transactionTime"] == f"{AS_OF.isoformat()}T23:00:00Z"
    assert manifest["request"] == "https://ehr-a.example.org/fhir/$export"
    assert manifest["requiresAccessToken"] is False
    listed = set()
    for section in ("output", "deleted", "error"):
        assert manifest[section], section
        for item in manifest[section]:
            assert not item["url"].startswith(("/", "http")), item["url"]
            path = landing / "ehr_a" / item["url"]
            lines = path.read_bytes().splitlines()
            assert item["count"] == len(lines)
            assert all(json.loads(line)["resourceType"] == item["type"] for line in lines)
            assert all(json.loads(line)["meta"]["versionId"] == "1" for line in lines)
            listed.add(item["url"])
    types = {item["type"] for item in manifest["output"]}
    assert {
        "Patient",
        "Practitioner",
        "Organization",
        "Encounter",
        "Condition",
        "Observation",
        "Procedure",
        "Immunization",
        "MedicationRequest",
        "Coverage",
        "Consent",
        "Appointment",
        "Communication",
        "QuestionnaireResponse",
    } <= types
    on_disk = {p.relative_to(landing / "ehr_a").as_posix() for p in (landing / "ehr_a").rglob("*.ndjson")}
    unlisted = json.loads((truth / "summary.json").read_text())["unlisted_files"]
    assert on_disk - listed == {u.removeprefix("ehr_a/") for u in unlisted}
    assert len(unlisted) >= 2
    scratch = _ndjson(landing / "ehr_a" / "Scratch.000.ndjson")
    assert scratch and all(r["resourceType"] == "Patient" for r in scratch)


def test_rotation_every_rotate_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ROTATE_LINES == 50_000
    monkeypatch.setattr(bulk_writer_module, "ROTATE_LINES", 400)
    landing, _ = _generate(tmp_path, 40)
    observations = [o for o in _manifest(landing)["output"] if o["type"] == "Observation"]
    assert [o["url"] for o in observations] == [
        f"Observation.{i:03d}.ndjson" for i in range(len(observations))
    ]
    assert len(observations) >= 3
    assert all(o["count"] == 400 for o in observations[:-1]) and 0 < observations[-1]["count"] <= 400
    omh = sorted((landing / "devices_omh").glob("datapoints.*.ndjson"))
    assert all(len(p.read_bytes().splitlines()) <= 400 for p in omh)


def test_every_line_parses_without_defects(clean: tuple[Path, Path]) -> None:
    landing, _ = clean
    fhir_now = f"{AS_OF.isoformat()}T23:00:00Z"
    for path in sorted(landing.rglob("*.ndjson")):
        for line in path.read_bytes().splitlines():
            record = json.loads(line)
            assert isinstance(record, dict), path
            if path.parts[-2] in ("ehr_a",) and "resourceType" in record:
                assert record["meta"]["versionId"] == "1"
                assert record["meta"]["lastUpdated"] <= fhir_now
                assert isinstance(record["id"], str)
            elif path.parts[-2] == "devices_omh":
                assert record["header"]["id"] and record["header"]["user_id"]
            elif path.parts[-2] == "service_center":
                assert record["conversation_id"] and record["turns"]


def test_fhir_resources_validate_against_r4b_models(clean: tuple[Path, Path]) -> None:
    landing, _ = clean
    checked: Counter[str] = Counter()
    for item in _manifest(landing)["output"]:
        for record in _ndjson(landing / "ehr_a" / item["url"])[:60]:
            get_fhir_model_class(record["resourceType"]).model_validate(record)
            checked[record["resourceType"]] += 1
    for _, bundle in _bundles(landing)[:15]:
        get_fhir_model_class("Bundle").model_validate(bundle)
    get_fhir_model_class("Bundle").model_validate(
        json.loads((landing / "ehr_b" / "directory.json").read_bytes())
    )
    assert len(checked) >= 14


def test_ehr_a_references_resolve(clean: tuple[Path, Path]) -> None:
    landing, _ = clean
    ids: dict[str, set[str]] = defaultdict(set)
    everything = []
    for item in _manifest(landing)["output"]:
        for record in _ndjson(landing / "ehr_a" / item["url"]):
            ids[record["resourceType"]].add(record["id"])
            everything.append(record)
    dangling = [
        ref
        for record in everything
        for ref in _references(record)
        if ref.split("/")[1] not in ids[ref.split("/")[0]]
    ]
    assert not dangling
    assert all("/" in ref and not ref.startswith("urn:") for r in everything[:500] for ref in _references(r))


def test_deleted_bundles_delete_exported_resources(clean: tuple[Path, Path]) -> None:
    landing, truth = clean
    exported = {
        (r["resourceType"], r["id"]) for t in ("Observation", "Appointment") for r in _ehr_a(landing, t)
    }
    deleted = []
    for item in _manifest(landing)["deleted"]:
        for bundle in _ndjson(landing / "ehr_a" / item["url"]):
            assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
            for entry in bundle["entry"]:
                assert entry["request"]["method"] == "DELETE"
                rtype, rid = entry["request"]["url"].split("/")
                deleted.append((rtype, rid))
    assert deleted and set(deleted) <= exported
    assert {t for t, _ in deleted} == {"Observation", "Appointment"}
    observations = sum(1 for t, _ in exported if t == "Observation")
    assert 0.0005 < sum(1 for t, _ in deleted if t == "Observation") / observations < 0.006
    summary = json.loads((truth / "summary.json").read_text())
    assert [(d["type"], d["id"]) for d in summary["deleted_ids"]] == deleted
    for item in _manifest(landing)["error"]:
        for outcome in _ndjson(landing / "ehr_a" / item["url"]):
            assert outcome["issue"][0]["severity"] == "error" and outcome["issue"][0]["code"] == "processing"


# --- EHR B bundles -------------------------------------------------------------------------------------
def test_bundles_reference_only_their_entries_or_the_directory(clean: tuple[Path, Path]) -> None:
    landing, _ = clean
    directory = json.loads((landing / "ehr_b" / "directory.json").read_bytes())
    assert directory["type"] == "collection"
    known = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in directory["entry"]}
    bundles = _bundles(landing)
    assert bundles
    for path, bundle in bundles:
        assert bundle["type"] == "transaction" and path.stem == bundle["id"]
        full_urls = set()
        for entry in bundle["entry"]:
            resource = entry["resource"]
            assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
            assert entry["request"] == {"method": "POST", "url": resource["resourceType"]}
            assert resource["meta"]["versionId"] == "1"
            full_urls.add(entry["fullUrl"])
        assert bundle["entry"][0]["resource"]["resourceType"] == "Patient"
        for ref in _references(bundle):
            assert ref in full_urls if ref.startswith("urn:uuid:") else ref in known, ref
        patient_url = bundle["entry"][0]["fullUrl"]
        for entry in bundle["entry"][1:]:
            resource = entry["resource"]
            subject = resource.get("subject") or resource.get("patient") or resource.get("beneficiary")
            if subject:
                assert subject["reference"] == patient_url


def test_bundle_folders_follow_person_index(clean: tuple[Path, Path]) -> None:
    landing, truth = clean
    identity = list(_dict_rows(truth / "identity.csv"))
    person_of = {
        row["source_patient_id"]: int(row["person_index"]) for row in identity if row["source"] == "ehr_b"
    }
    for path, bundle in _bundles(landing):
        assert path.parent.name == f"{person_of[bundle['entry'][0]['resource']['id']] // 1000:04d}"


def test_risk_truth_holds_every_persons_latent_rates(clean: tuple[Path, Path]) -> None:
    _, truth = clean
    rows = list(_dict_rows(truth / "risk.csv"))
    assert [int(r["person_index"]) for r in rows] == list(range(300))
    assert all(float(r["ed_rate"]) >= 0.1 and float(r["ip_rate"]) >= 0.012 for r in rows)
    assert all(0.06 <= float(r["readmit_p"]) <= 0.45 for r in rows)
    assert len({r["ed_rate"] for r in rows}) > 10  # people differ: the signal a risk model can learn


# --- identity ------------------------------------------------------------------------------------------
def test_identity_covers_every_patient_and_overlap_share(clean: tuple[Path, Path]) -> None:
    landing, truth = clean
    rows = list(_dict_rows(truth / "identity.csv"))
    a_ids = {r["id"] for r in _ehr_a(landing, "Patient")}
    b_ids = {b["entry"][0]["resource"]["id"] for _, b in _bundles(landing)}
    assert {r["source_patient_id"] for r in rows if r["source"] == "ehr_a"} == a_ids
    assert {r["source_patient_id"] for r in rows if r["source"] == "ehr_b"} == b_ids
    sources: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        sources[row["person_index"]].add(row["source"])
    assert len(sources) == 300
    shares = Counter("both" if len(s) == 2 else next(iter(s)) for s in sources.values())
    assert abs(shares["both"] / 300 - 0.30) < 0.08
    assert abs(shares["ehr_a"] / 300 - 0.55) < 0.08
    assert abs(shares["ehr_b"] / 300 - 0.15) < 0.06


def test_shared_people_differ_realistically_between_sources(large: tuple[Path, Path]) -> None:
    landing, truth = large
    rows = list(_dict_rows(truth / "identity.csv"))
    patients = {r["id"]: r for r in _ehr_a(landing, "Patient")}
    patients.update(
        {b["entry"][0]["resource"]["id"]: b["entry"][0]["resource"] for _, b in _bundles(landing)}
    )
    by_person: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        by_person[row["person_index"]][row["source"]] = patients[row["source_patient_id"]]
    pairs = [(p["ehr_a"], p["ehr_b"]) for p in by_person.values() if len(p) == 2]
    assert len(pairs) > 150
    same_birth = sum(a["birthDate"] == b["birthDate"] for a, b in pairs) / len(pairs)
    same_given = sum(a["name"][0]["given"][0] == b["name"][0]["given"][0] for a, b in pairs) / len(pairs)
    same_family = sum(a["name"][0]["family"] == b["name"][0]["family"] for a, b in pairs) / len(pairs)
    assert 0.9 < same_birth < 1.0
    assert 0.6 < same_given < 0.98
    assert 0.6 < same_family < 0.98
    systems_a = {i["system"] for a, _ in pairs for i in a["identifier"]}
    systems_b = {i["system"] for _, b in pairs for i in b["identifier"]}
    assert (
        "http://hospital-a.example.org/fhir/sid/mrn" in systems_a
        and "http://clinic-b.example.org/mrn" in systems_b
    )
    with_ssn = [
        p
        for p in patients.values()
        if any(i["system"] == "http://hl7.org/fhir/sid/us-ssn" for i in p["identifier"])
    ]
    assert 0.4 < len(with_ssn) / len(patients) < 0.6
    mrns = [i["value"] for p in patients.values() for i in p["identifier"] if i["system"].endswith("mrn")]
    assert len(mrns) == len(set(mrns))
    deceased = sum("deceasedDateTime" in p for p in patients.values()) / len(patients)
    assert 0.003 < deceased < 0.04
    minors = [p for p in patients.values() if p["birthDate"] > "2008-07-01"]
    assert minors and all(p.get("contact") for p in minors)


# --- ground truth of defects ---------------------------------------------------------------------------
def _line(landing: Path, rel: str, line: int) -> bytes:
    return (landing / rel).read_bytes().split(b"\n")[line - 1]


def _is_known_fhir_type(name: Any) -> bool:
    try:
        get_fhir_model_class(name)
    except Exception:
        return False
    return True


def test_defects_csv_points_at_really_defective_records(defective: tuple[Path, Path]) -> None:
    landing, truth = defective
    rows = list(_dict_rows(truth / "defects.csv"))
    assert len(rows) > 100
    reasons = Counter(r["expected_reason"] for r in rows)
    assert set(reasons) == {
        "invalid_json",
        "not_an_object",
        "invalid_field_type",
        "unknown_resource_type",
        "missing_id",
        "unknown_patient_reference",
        "invalid_utf8",
        "kept_newer_version",
        "missing_resource",
        "malformed_csv_row",
    }
    patient_ids = {r["source_patient_id"] for r in _dict_rows(truth / "identity.csv")}
    listed = {("ehr_a/" + item["url"]) for s in ("output",) for item in _manifest(landing)[s]}
    summary = json.loads((truth / "summary.json").read_text())
    duplicates = {(d["type"], d["id"]) for d in summary["duplicate_versions"]}
    assert len(duplicates) == reasons["kept_newer_version"]
    for row in rows:
        reason, rel = row["expected_reason"], row["file"]
        assert "\\" not in rel and (landing / rel).is_file()
        if row["source"] == "ehr_a":
            assert rel in listed, rel
        if row["entry"]:
            assert not row["line"]
            entry = json.loads((landing / rel).read_bytes())["entry"][int(row["entry"])]
            if reason == "missing_resource":
                assert "resource" not in entry
            else:
                assert reason == "unknown_resource_type" and not _is_known_fhir_type(
                    entry["resource"]["resourceType"]
                )
            continue
        raw = _line(landing, rel, int(row["line"]))
        if reason == "malformed_csv_row":
            assert len(next(csv.reader(io.StringIO(raw.decode())))) != ENROLMENT_COLUMNS
            continue
        if reason == "invalid_utf8":
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
            continue
        text = raw.decode("utf-8")
        if reason == "invalid_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)
            continue
        record = json.loads(text)
        if reason == "not_an_object":
            assert not isinstance(record, dict)
        elif reason == "missing_id":
            holder = record.get("header", record) if row["source"] == "devices_omh" else record
            assert "id" not in holder and "conversation_id" not in holder
        elif reason == "invalid_field_type":
            assert (
                isinstance(record.get("id"), int)
                or isinstance(record.get("subject"), str)
                or isinstance(record.get("meta", {}).get("lastUpdated"), int)
            )
        elif reason == "unknown_resource_type":
            assert not _is_known_fhir_type(record["resourceType"])
        elif reason == "unknown_patient_reference":
            ref = (record.get("subject") or record.get("patient"))["reference"]
            assert ref.startswith("Patient/") and ref.removeprefix("Patient/") not in patient_ids
        elif reason == "kept_newer_version":
            assert record["meta"]["versionId"] == "2"
            assert (record["resourceType"], record["id"]) in duplicates
            original = [
                json.loads(x)
                for x in (landing / rel).read_bytes().splitlines()[: int(row["line"]) - 1]
                if b'"' + record["id"].encode() + b'"' in x
            ]
            assert original and original[-1]["meta"]["versionId"] == "1"
            assert (
                original[-1]["meta"]["lastUpdated"] < record["meta"]["lastUpdated"] <= "2026-06-30T23:00:00Z"
            )
            assert original[-1] != {**record, "meta": original[-1]["meta"]}
        else:
            pytest.fail(f"unexpected reason {reason}")


def test_every_unlisted_line_is_clean(defective: tuple[Path, Path]) -> None:
    """The defect list is complete: every line that defects.csv does not name is a valid record."""
    landing, truth = defective
    flagged = {(r["file"], int(r["line"])) for r in _dict_rows(truth / "defects.csv") if r["line"]}
    checked = 0
    for path in sorted(landing.rglob("*.ndjson")):
        rel = path.relative_to(landing).as_posix()
        for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
            if (rel, number) in flagged:
                continue
            record = json.loads(raw.decode("utf-8"))
            assert isinstance(record, dict)
            if "resourceType" in record:
                assert isinstance(record["id"], str) and _is_known_fhir_type(record["resourceType"])
                assert record.get("meta", {}).get("versionId", "1") == "1"
            checked += 1
    for number, row in enumerate(_rows(landing / "rpm_enrolment" / "enrolment.csv"), start=1):
        if ("rpm_enrolment/enrolment.csv", number) not in flagged:
            assert len(row) == ENROLMENT_COLUMNS
    assert checked > 1000


def test_summary_counts_match_the_files(defective: tuple[Path, Path]) -> None:
    landing, truth = defective
    summary = json.loads((truth / "summary.json").read_text())
    files = summary["files"]
    for rel, count in files.items():
        path = landing / rel
        if rel.endswith(".ndjson"):
            actual = sum(1 for line in path.read_bytes().split(b"\n") if line.strip())
        elif rel.endswith(".csv"):
            actual = len(path.read_bytes().splitlines()) - 1
        elif rel.startswith("devices_ihealth/"):
            list_key, _ = IHEALTH_FILES[path.name]
            actual = len(json.loads(path.read_bytes())[list_key])
        else:
            actual = len(json.loads(path.read_bytes())["entry"])
        assert actual == count, rel
    data_files = {p.relative_to(landing).as_posix() for p in landing.rglob("*") if p.is_file()}
    expected = data_files - {MARKER, "ehr_a/manifest.json", *summary["unlisted_files"]}
    assert set(files) == expected
    per_source: Counter[str] = Counter()
    for rel, count in files.items():
        per_source[rel.split("/")[0]] += count
    assert dict(per_source) == summary["records_per_source"]


# --- time ----------------------------------------------------------------------------------------------
def test_timestamps_are_relative_to_as_of(tmp_path: Path) -> None:
    as_of = date(2024, 2, 29)
    landing, _ = _generate(tmp_path, 80, as_of=as_of)
    horizon_start = datetime(2024, 2, 29, tzinfo=ZoneInfo("America/New_York")) - timedelta(days=5 * 366)
    end_of_day = datetime(2024, 3, 1, tzinfo=ZoneInfo("America/New_York"))
    for encounter in _ehr_a(landing, "Encounter"):
        start = datetime.fromisoformat(encounter["period"]["start"])
        assert horizon_start <= start <= end_of_day
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-0[45]:00", encounter["period"]["start"])
    booked = [a for a in _ehr_a(landing, "Appointment") if a["status"] == "booked"]
    assert booked
    for appointment in booked:
        start = datetime.fromisoformat(appointment["start"])
        assert end_of_day - timedelta(days=1) < start <= end_of_day + timedelta(days=91)
    assert _manifest(landing)["transactionTime"] == "2024-02-29T23:00:00Z"
    for resource in _ehr_a(landing, "Observation"):
        assert resource["meta"]["lastUpdated"] <= "2024-02-29T23:00:00Z"


# --- devices -------------------------------------------------------------------------------------------
def test_device_feeds_follow_the_schemas(large: tuple[Path, Path]) -> None:
    landing, truth = large
    enrolment = list(_dict_rows(landing / "rpm_enrolment" / "enrolment.csv"))
    assert list(enrolment[0]) == [
        "vendor",
        "vendor_user_id",
        "device_id",
        "device_type",
        "patient_source",
        "patient_id",
        "enrolled_on",
        "unenrolled_on",
    ]
    patient_ids = {(r["source"], r["source_patient_id"]) for r in _dict_rows(truth / "identity.csv")}
    assert all((r["patient_source"], r["patient_id"]) in patient_ids for r in enrolment)
    assert {r["vendor"] for r in enrolment} == {"omh_app", "ihealth"}
    assert any(r["unenrolled_on"] == "" for r in enrolment) and any(r["unenrolled_on"] for r in enrolment)
    adults = sum(1 for r in _ehr_a(landing, "Patient") if r["birthDate"] <= "2008-06-30")
    enrolled_people = {(r["patient_source"], r["patient_id"]) for r in enrolment}
    assert 0.08 < len(enrolled_people) / (adults * 1.15) < 0.35
    devices = {r["device_id"] for r in enrolment}
    users = {r["vendor_user_id"] for r in enrolment}
    units: dict[str, set[str]] = defaultdict(set)
    schemas = Counter()
    unknown_users = 0
    points = [
        p for path in sorted((landing / "devices_omh").glob("datapoints.*.ndjson")) for p in _ndjson(path)
    ]
    for point in points:
        header, body = point["header"], point["body"]
        name = header["schema_id"]["name"]
        schemas[name] += 1
        assert header["schema_id"]["namespace"] == "omh"
        assert header["acquisition_provenance"]["modality"] == "sensed"
        if header["user_id"] not in users:
            unknown_users += 1
            continue
        assert header["acquisition_provenance"]["device_id"] in devices
        if name == "blood-pressure":
            assert header["schema_id"]["version"] == "4.0"
            assert (
                body["systolic_blood_pressure"]["unit"] == body["diastolic_blood_pressure"]["unit"] == "mmHg"
            )
            assert "date_time" in body["effective_time_frame"]
        elif name == "body-weight":
            units[name].add(body["body_weight"]["unit"])
        elif name == "blood-glucose":
            units[name].add(body["blood_glucose"]["unit"])
            assert body["specimen_source"] == "capillary blood" and body["temporal_relationship_to_meal"]
        elif name == "heart-rate":
            assert body["heart_rate"]["unit"] == "beats/min"
        elif name == "step-count":
            interval = body["effective_time_frame"]["time_interval"]
            assert interval["start_date_time"] < interval["end_date_time"]
            assert body["step_count"]["unit"] == "steps"
    assert set(schemas) == {"blood-pressure", "heart-rate", "body-weight", "blood-glucose", "step-count"}
    assert units["body-weight"] == {"kg", "lb"}
    assert units["blood-glucose"] == {"mg/dL", "mmol/L"} or units["blood-glucose"] == {"mg/dL"}
    assert unknown_users < 0.02 * len(points)
    systolic = [
        p["body"]["systolic_blood_pressure"]["value"]
        for p in points
        if p["header"]["schema_id"]["name"] == "blood-pressure"
    ]
    assert 0 < sum(v >= 250 or v < 60 for v in systolic) < 0.03 * len(systolic)


def test_ihealth_payloads(large: tuple[Path, Path]) -> None:
    landing, _ = large
    folders = sorted((landing / "devices_ihealth").iterdir())
    assert folders
    empty_users = 0
    for folder in folders:
        assert {p.name for p in folder.iterdir()} == set(IHEALTH_FILES)
        total = 0
        for name, (list_key, unit_key) in IHEALTH_FILES.items():
            payload = json.loads((folder / name).read_bytes())
            items = payload[list_key]
            total += len(items)
            assert payload["RecordCount"] == payload["CurrentRecordCount"] == len(items)
            assert payload["PageNumber"] == 1 and payload["NextPageUrl"] == ""
            assert payload[unit_key] in (0, 1)
            for item in items:
                assert re.fullmatch(r"[0-9a-f]{32}", item["DataID"])
                assert re.fullmatch(r"[-+]\d{4}", item["TimeZone"])
                offset = (-1 if item["TimeZone"][0] == "-" else 1) * int(item["TimeZone"][1:3]) * 3600
                assert item["LastChangeTime"] > item["MDate"] - offset  # MDate is local time as epoch
                if name == "bp.json":
                    assert item["HP"] > 0 and item["LP"] >= 0 and "HR" in item and "IsArr" in item
                elif name == "glucose.json":
                    assert item["BG"] > 0 and item["DinnerSituation"]
                else:
                    assert item["WeightValue"] > 0
        empty_users += total == 0
    assert 0 < empty_users < len(folders)


# --- signals -------------------------------------------------------------------------------------------
def test_uncontrolled_diabetes_brings_more_emergency_care_and_readmissions(large: tuple[Path, Path]) -> None:
    landing, _ = large
    diabetics = {
        c["subject"]["reference"]
        for c in _ehr_a(landing, "Condition")
        if c["code"]["coding"][0]["code"] == "44054006"
    }
    a1c: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for o in _ehr_a(landing, "Observation"):
        if o["code"]["coding"][0]["code"] == "4548-4":
            a1c[o["subject"]["reference"]].append((o["effectiveDateTime"], o["valueQuantity"]["value"]))
    emergency: Counter[str] = Counter()
    stays: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for e in _ehr_a(landing, "Encounter"):
        if e["class"]["code"] == "EMER":
            emergency[e["subject"]["reference"]] += 1
        elif e["class"]["code"] == "IMP":
            period = e["period"]
            stays[e["subject"]["reference"]].append(
                (datetime.fromisoformat(period["start"]), datetime.fromisoformat(period["end"]))
            )
    groups: dict[str, list[str]] = defaultdict(list)
    for patient in diabetics:
        if a1c[patient]:
            latest = max(a1c[patient])[1]
            groups["poor" if latest > 9 else "controlled" if latest < 8 else "fair"].append(patient)
    assert len(groups["poor"]) >= 8 and len(groups["controlled"]) >= 20
    ed_poor = statistics.mean(emergency[p] for p in groups["poor"])
    ed_controlled = statistics.mean(emergency[p] for p in groups["controlled"])
    assert ed_poor > 1.8 * ed_controlled

    def readmissions(patients: list[str]) -> tuple[float, float]:
        """(30-day readmissions per person, share of stays followed by a readmission)."""
        readmitted = total = 0
        for patient in patients:
            ordered = sorted(stays[patient])
            total += len(ordered)
            readmitted += sum((b[0] - a[1]).days <= 30 for a, b in pairwise(ordered))
        return readmitted / len(patients), readmitted / max(total, 1)

    per_person_poor, per_stay_poor = readmissions(groups["poor"])
    per_person_controlled, per_stay_controlled = readmissions(groups["controlled"])
    assert per_person_poor > 2 * per_person_controlled
    assert per_stay_poor > per_stay_controlled
    inpatient = [e for e in _ehr_a(landing, "Encounter") if e["class"]["code"] == "IMP"]
    assert all(e["hospitalization"]["dischargeDisposition"]["coding"][0]["code"] for e in inpatient)


def test_hypertension_control_drives_blood_pressure(large: tuple[Path, Path]) -> None:
    landing, _ = large
    hypertensive = {
        c["subject"]["reference"]
        for c in _ehr_a(landing, "Condition")
        if c["code"]["coding"][0]["code"] in ("59621000", "38341003")
    }
    systolic: dict[str, list[float]] = defaultdict(list)
    for o in _ehr_a(landing, "Observation"):
        if o["code"]["coding"][0]["code"] in ("85354-9", "55284-4"):
            systolic[o["subject"]["reference"]].append(o["component"][0]["valueQuantity"]["value"])
    means = [statistics.mean(v) for p, v in systolic.items() if p in hypertensive and len(v) >= 3]
    others = [statistics.mean(v) for p, v in systolic.items() if p not in hypertensive and len(v) >= 3]
    assert statistics.mean(means) > statistics.mean(others) + 10
    assert sum(m >= 140 for m in means) / len(means) > 0.25  # uncontrolled hypertensives exist
    assert sum(m < 135 for m in means) / len(means) > 0.25  # and controlled ones


def test_screening_gaps_are_open_for_some_and_closed_for_others(large: tuple[Path, Path]) -> None:
    landing, _ = large
    women_50_74 = {
        f"Patient/{p['id']}"
        for p in _ehr_a(landing, "Patient")
        if p["gender"] == "female" and "1952-07-01" <= p["birthDate"] <= "1974-06-30"
    }
    mammography = {
        p["subject"]["reference"]
        for p in _ehr_a(landing, "Procedure")
        if p["code"]["coding"][0]["code"] in ("71651007", "24623002")
        and p["performedDateTime"] >= "2024-04-01"
    }
    screened = len(women_50_74 & mammography) / len(women_50_74)
    assert 0.2 < screened < 0.9
    booked = [a for a in _ehr_a(landing, "Appointment") if a["status"] == "booked" and a.get("reasonCode")]
    assert booked, "some overdue people have a screening appointment booked"
    exclusions = {p["code"]["coding"][0]["code"] for p in _ehr_a(landing, "Procedure")}
    assert {"27865001", "116140006"} & exclusions


def test_survey_comments_follow_ratings(large: tuple[Path, Path]) -> None:
    landing, _ = large

    def pattern(template: str) -> re.Pattern[str]:
        return re.compile(re.sub(r"\\\{\w+\\\}", ".+?", re.escape(template)))

    pools = {
        name: [pattern(t) for t in pool]
        for name, pool in (("negative", texts.NEGATIVE), ("mixed", texts.MIXED), ("positive", texts.POSITIVE))
    }

    def polarity(comment: str) -> str:
        return next(name for name, patterns in pools.items() if any(p.match(comment) for p in patterns))

    by_rating: dict[str, list[str]] = defaultdict(list)
    ratings = []
    for response in _ehr_a(landing, "QuestionnaireResponse"):
        assert response["questionnaire"] == "Questionnaire/post-visit-survey"
        items = {i["linkId"]: i["answer"][0] for i in response["item"]}
        rating = items["rating"]["valueInteger"]
        ratings.append(rating)
        assert 0 <= rating <= 10
        if "comment" in items:
            bucket = "low" if rating <= SURVEY_LOW else "high" if rating >= SURVEY_HIGH else "middle"
            by_rating[bucket].append(polarity(items["comment"]["valueString"]))
    assert len(set(ratings)) >= 8
    low, high = Counter(by_rating["low"]), Counter(by_rating["high"])
    assert low["negative"] / sum(low.values()) > 0.8
    assert high["positive"] / sum(high.values()) > 0.8
    assert Counter(by_rating["middle"])["mixed"] > 0


def test_conversations_carry_department_agent_and_escalation_signals(large: tuple[Path, Path]) -> None:
    landing, _ = large
    conversations = [
        c for p in sorted((landing / "service_center").glob("conversations.*.ndjson")) for c in _ndjson(p)
    ]
    assert len(conversations) > 300
    negative_closings = set(texts.PATIENT_CLOSINGS["negative"])
    frustrated_bot_replies = set(texts.BOT_FRUSTRATED_REPLIES)

    def negative(conversation: dict[str, Any]) -> bool:
        return any(
            t["speaker"] == "patient" and t["text"] in negative_closings for t in conversation["turns"]
        )

    by_department: dict[str, list[bool]] = defaultdict(list)
    by_agent: dict[str, list[bool]] = defaultdict(list)
    for c in conversations:
        assert set(c) >= {
            "conversation_id",
            "patient_source",
            "patient_reference",
            "channel",
            "agent_id",
            "department",
            "started_at",
            "ended_at",
            "escalated_from_bot",
            "turns",
        }
        assert c["started_at"] <= c["turns"][-1]["at"] <= c["ended_at"]
        assert [t["turn"] for t in c["turns"]] == list(range(1, len(c["turns"]) + 1))
        if c["channel"] == "bot" and not c["escalated_from_bot"]:
            assert c["agent_id"] is None and {t["speaker"] for t in c["turns"]} == {"bot", "patient"}
        else:
            assert c["agent_id"]
        if c["escalated_from_bot"]:
            assert c["channel"] == "bot"
            assert any(t["text"] in frustrated_bot_replies for t in c["turns"] if t["speaker"] == "patient")
        by_department[c["department"]].append(negative(c))
        if c["agent_id"]:
            by_agent[c["agent_id"]].append(negative(c))
    rate = {d: sum(v) / len(v) for d, v in by_department.items()}
    assert set(rate) == {"scheduling", "billing", "pharmacy", "nurse_line", "referrals"}
    assert rate["billing"] > rate["nurse_line"] + 0.05
    agent_rates = sorted(sum(v) / len(v) for v in by_agent.values() if len(v) >= 5)
    assert agent_rates[-1] - agent_rates[0] > 0.2
    assert any(c["escalated_from_bot"] for c in conversations)


def test_consents_and_communications(large: tuple[Path, Path]) -> None:
    landing, _ = large
    consents = _ehr_a(landing, "Consent")
    assert consents
    denied: dict[str, set[str]] = defaultdict(set)
    for consent in consents:
        assert consent["status"] == "active"
        assert consent["scope"]["coding"][0]["code"] == "patient-privacy"
        assert consent["category"][0]["coding"][0] == {
            "system": "http://loinc.org",
            "code": "59284-0",
            "display": "Patient Consent",
        }
        coding = consent["provision"]["code"][0]["coding"][0]
        assert consent["provision"]["type"] == "deny"
        assert coding["system"] == "urn:patient-insights:contact-channel"
        assert coding["code"] in {"email", "sms", "phone", "mail", "all"}
        denied[consent["patient"]["reference"]].add(coding["code"])
    medium_channel = {"EMAILWRIT": "email", "SMSWRIT": "sms", "PHONE": "phone", "MAILWRIT": "mail"}
    communications = _ehr_a(landing, "Communication")
    assert {c["category"][0]["coding"][0]["code"] for c in communications} == {"reminder", "notification"}
    for c in communications:
        assert c["status"] == "completed" and c["payload"][0]["contentString"]
        if "medium" in c:
            channel = medium_channel[c["medium"][0]["coding"][0]["code"]]
            assert channel not in denied[c["subject"]["reference"]]
            assert "all" not in denied[c["subject"]["reference"]]


# --- streaming -----------------------------------------------------------------------------------------
_PEAK_SCRIPT = """
import sys, tracemalloc
from pathlib import Path
from pipelines.generate import generate_landing
folder, patients = Path(sys.argv[1]), int(sys.argv[2])
tracemalloc.start()
generate_landing(folder / f"l{patients}", patients, 9, truth_out=folder / f"t{patients}", defects=0.01)
print(tracemalloc.get_traced_memory()[1])
"""


def _peak(tmp_path: Path, patients: int) -> int:
    """Peak traced memory of a generation in a fresh interpreter: inside a long test session, cyclic
    garbage waits for a full collection that a large heap postpones, which measures the session, not
    the generator."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(tmp_path), str(patients)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_memory_does_not_grow_with_patients(tmp_path: Path) -> None:
    small = _peak(tmp_path, 150)
    big = _peak(tmp_path, 900)
    assert big < 1.5 * small, (small, big)
