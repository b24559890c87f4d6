"""Landing discovery: formats, manifests honoured, unsafe manifest urls refused."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from upath import UPath

from pipelines.bronze import discovery as d
from tests.conftest import patient, write_ndjson


def manifest(folder: Path, outputs: list[str], deleted: list[str] = (), errors: list[str] = ()) -> None:
    body = {
        "transactionTime": "2026-06-30T23:00:00Z",
        "request": "https://ehr.example.org/fhir/$export",
        "requiresAccessToken": False,
        "output": [{"type": u.split(".")[0].split("/")[-1], "url": u} for u in outputs],
        "deleted": [{"type": "Bundle", "url": u} for u in deleted],
        "error": [{"type": "OperationOutcome", "url": u} for u in errors],
    }
    (folder / "manifest.json").write_bytes(orjson.dumps(body))


@pytest.mark.parametrize(
    ("url", "expected", "refused"),
    [
        ("Patient.000.ndjson", "Patient.000.ndjson", False),
        ("sub/Observation.000.ndjson", "sub/Observation.000.ndjson", False),
        ("https://server.example.org/files/Patient.000.ndjson?token=x", "Patient.000.ndjson", False),
        ("../../etc/passwd", None, True),
        ("/etc/passwd", None, True),
        ("file:///etc/passwd", None, True),
        ("ftp://server/x.ndjson", None, True),
        ("//server/share/x.ndjson", None, True),
        ("sub/../../x.ndjson", None, True),
        ("C:/data/x.ndjson", None, True),
        ("https://server.example.org/", None, True),
    ],
)
def test_manifest_url_resolution(tmp_path: Path, url: str, expected: str | None, refused: bool) -> None:
    source = UPath(tmp_path)
    path, refusal = d.resolve_manifest_url(source, url)
    assert (refusal is not None) == refused
    if expected is not None:
        assert path == source.joinpath(*expected.split("/"))


def test_manifest_source_reads_only_listed_files(landing: UPath) -> None:
    src = Path(landing) / "ehr"
    write_ndjson(src / "Patient.000.ndjson", [patient("p1")])
    write_ndjson(src / "Scratch.000.ndjson", [patient("p2")])
    write_ndjson(
        src / "deleted" / "del.ndjson", [{"resourceType": "Bundle", "type": "transaction", "entry": []}]
    )
    manifest(
        src, ["Patient.000.ndjson", "Missing.000.ndjson", "../escape.ndjson"], deleted=["deleted/del.ndjson"]
    )
    plan = d.discover(landing)
    formats = {f.relative: f.format for f in plan.files}
    assert formats == {
        "ehr/manifest.json": d.BULK_MANIFEST,
        "ehr/Patient.000.ndjson": d.FHIR_NDJSON,
        "ehr/deleted/del.ndjson": d.FHIR_DELETED,
    }
    assert plan.unlisted == ["ehr/Scratch.000.ndjson"]
    assert sorted((i.status, i.url) for i in plan.manifest_issues) == [
        ("missing", "Missing.000.ndjson"),
        ("refused", "../escape.ndjson"),
    ]
    assert [f.relative for f in plan.files][-1] == "ehr/deleted/del.ndjson"  # deletions last
    assert all(f.transaction_time == "2026-06-30T23:00:00Z" for f in plan.files)


def test_formats_are_sniffed_or_declared(landing: UPath) -> None:
    root = Path(landing)
    write_ndjson(root / "a" / "Observation.ndjson", [{"resourceType": "Observation", "id": "o"}])
    write_ndjson(root / "a" / "Patient.ndjson", [patient("p")])
    (root / "a" / "bundle.json").write_bytes(orjson.dumps({"resourceType": "Bundle", "entry": []}))
    write_ndjson(root / "dev" / "points.ndjson", [{"header": {"id": "1"}, "body": {}}])
    (root / "ih" / "user-1").mkdir(parents=True)
    (root / "ih" / "user-1" / "bp.json").write_bytes(orjson.dumps({"BPDataList": []}))
    write_ndjson(root / "sc" / "c.jsonl", [{"conversation_id": "c"}])
    (root / "enrol").mkdir()
    (root / "enrol" / "e.csv").write_text("vendor,vendor_user_id\n")
    (root / "decl").mkdir()
    (root / "decl" / "source.yaml").write_text("format: openmhealth\n")
    (root / "decl" / "x.json").write_bytes(b"[]")
    (root / "a" / "notes.bin").write_bytes(b"\x00")
    (root / "a" / ".hidden.ndjson").write_bytes(b"x")
    (root / "a" / "README.md").write_text("docs")
    plan = d.discover(landing)
    found = {f.relative: (f.format, f.folder_user) for f in plan.files}
    assert found == {
        "a/Observation.ndjson": (d.FHIR_NDJSON, None),
        "a/Patient.ndjson": (d.FHIR_NDJSON, None),
        "a/bundle.json": (d.FHIR_DOCUMENT, None),
        "a/notes.bin": (d.UNRECOGNIZED, None),
        "dev/points.ndjson": (d.OMH_NDJSON, None),
        "ih/user-1/bp.json": (d.IHEALTH, "user-1"),
        "sc/c.jsonl": (d.CONVERSATIONS, None),
        "enrol/e.csv": (d.ENROLMENT_CSV, None),
        "decl/x.json": (d.OMH_DOCUMENT, None),
    }
    source_a = [f.relative for f in plan.files if f.source == "a"]
    assert source_a[0] == "a/Patient.ndjson"  # patients first: references are checked against them


def test_a_bad_source_config_refuses_that_source_only(landing: UPath) -> None:
    (Path(landing) / "x").mkdir()
    (Path(landing) / "x" / "source.yaml").write_text("format: hl7v2\n")
    write_ndjson(Path(landing) / "x" / "Patient.ndjson", [patient("p")])
    write_ndjson(Path(landing) / "y" / "Patient.ndjson", [patient("p")])
    plan = d.discover(landing)
    assert [f.relative for f in plan.files] == ["y/Patient.ndjson"]
    assert "format must be one of" in plan.refused_sources["x"]
    assert [(n.relative, n.status) for n in plan.not_read] == [("x/source.yaml", d.REFUSED)]


def test_missing_landing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        d.discover(UPath(tmp_path / "nope"))
