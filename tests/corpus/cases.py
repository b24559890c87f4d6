"""The bad-input corpus as a table: every case with its expected outcome.

Small cases are files (or folders) under `tests/corpus/<reader>/`; big and binary ones (10 MB strings,
deep nesting, gzip files and bombs, links) are generated at test time by the `make` functions below, so
nothing large is committed. A file case lands as `<landing>/<source>/<file>` (vendor payloads inside a
vendor-user folder) beside the reader's `source.yaml`; a folder case is the source folder itself.

Expected outcomes:
- landing cases: `kept` bronze rows, and per quarantine reason code the positions of the quarantined
  records: a line number (NDJSON, CSV), `e<n>` for entry n of a JSON document, `file` for a record that is
  the whole file (or a member of it); folder cases prefix each position with the file (`error/x.ndjson:2`).
  Manifest urls that are `refused` (with a fragment of the reason) or `missing`, files a manifest does not
  list (`unlisted`), or an `error`: the run is refused before reading anything, with that message.
- definition cases (measures, value sets, segments, campaigns): they load, or fail with a
  `DefinitionError` naming the file and `line`, its message holding `message`.

Every landing file carries a planted fake patient name (`MARKERS`) so tests can prove that no record
content leaks into reasons, logs or exceptions.
"""

from __future__ import annotations

import gzip
import os
import shutil
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

CORPUS = Path(__file__).resolve().parent
MARKERS = ("Zorblax", "Quuxley")
"""A made-up patient name planted in the corpus; it must never appear in a reason, log or error."""
TEN_MB = 10 * 1024 * 1024
Position = int | str


@dataclass(frozen=True)
class Layout:
    """How a reader's file cases land: the source.yaml of their source, and a vendor-user folder."""

    source_yaml: str | None = None
    user_folder: str | None = None
    folder_cases: bool = False  # each case is a whole source folder (manifests, landing layouts)


LAYOUTS: dict[str, Layout] = {
    "fhir_ndjson": Layout("format: fhir\n"),
    "surveys": Layout("format: fhir\n"),
    "fhir_bundle": Layout("format: fhir\n"),
    "bulk_manifest": Layout(folder_cases=True),
    "omh_ndjson": Layout("format: openmhealth\n"),
    "omh_json": Layout("format: openmhealth\n"),
    "ihealth": Layout("format: ihealth\n", user_folder="ih-user-1"),
    "withings": Layout("format: withings\n", user_folder="wi-user-1"),
    "fitbit": Layout("format: fitbit\n", user_folder="fb-user-1"),
    "device_csv": Layout("format: device_csv\nmapping: generic_bp_csv\n"),
    "wide_csv": Layout("format: device_csv\nmapping: fitbit_weight_log\n"),
    "apple_health": Layout("format: apple_health_export\n", user_folder="ah-user-1"),
    "enrolment_csv": Layout("format: device_enrolment\n"),
    "conversations": Layout("format: conversations\n"),
    "outreach_events": Layout("format: outreach_events\n"),
    "source_folders": Layout(folder_cases=True),
}


@dataclass(frozen=True)
class Case:
    """One landing case and what ingesting it must give."""

    path: str  # <reader>/<file or folder> under tests/corpus, or <reader>/<name> when generated
    kept: int = 0
    quarantined: Mapping[str, tuple[Position, ...]] = field(default_factory=dict)
    refused: tuple[tuple[str, str], ...] = ()  # (manifest url, fragment of the reason)
    missing: tuple[str, ...] = ()
    unlisted: int = 0
    error: str | None = None  # a regular expression the refusal of the whole run matches
    make: Callable[[Path], None] | None = None  # generated: writes the case into this folder
    env: Mapping[str, str] = field(default_factory=dict)
    # ingest_log rows of paths not read: (status, path inside the source folder, fragment of the reason)
    logged: tuple[tuple[str, str, str], ...] = ()

    @property
    def reader(self) -> str:
        """The reader folder the case belongs to."""
        return self.path.split("/", 1)[0]

    @property
    def name(self) -> str:
        """The case's name: its file or folder name without suffixes."""
        return self.path.split("/", 1)[1].split(".", 1)[0]

    @property
    def layout(self) -> Layout:
        """How the case lands."""
        return LAYOUTS[self.reader]

    def __str__(self) -> str:
        return self.path


def case(
    path: str,
    kept: int = 0,
    *,
    refused: tuple[tuple[str, str], ...] = (),
    missing: tuple[str, ...] = (),
    unlisted: int = 0,
    error: str | None = None,
    make: Callable[[Path], None] | None = None,
    env: Mapping[str, str] | None = None,
    logged: tuple[tuple[str, str, str], ...] = (),
    **quarantined: list[Position],
) -> Case:
    """A case; keyword arguments named after reason codes list the positions quarantined with them."""
    return Case(
        path,
        kept,
        {code: tuple(positions) for code, positions in quarantined.items()},
        refused,
        missing,
        unlisted,
        error,
        make,
        env or {},
        logged,
    )


def place(item: Case, source_dir: Path) -> None:
    """Write the case as the landing source folder `source_dir` (created here)."""
    layout = item.layout
    source_dir.mkdir(parents=True)
    target = source_dir / layout.user_folder if layout.user_folder else source_dir
    target.mkdir(exist_ok=True)
    committed = CORPUS / item.path
    if item.make is not None:
        item.make(target)
    elif committed.is_dir():
        shutil.copytree(committed, target, dirs_exist_ok=True)
    else:
        shutil.copyfile(committed, target / committed.name)
    if layout.source_yaml and not (source_dir / "source.yaml").exists():
        (source_dir / "source.yaml").write_text(layout.source_yaml)


# --- generated cases ---------------------------------------------------------------------------------
def _json(value: object) -> bytes:
    return orjson.dumps(value)


PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "meta": {"versionId": "1", "lastUpdated": "2026-01-02T03:04:05Z"},
    "name": [{"family": "Quuxley", "given": ["Zorblax"]}],
}


def _observation(oid: str = "o1", **extra: object) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
        "subject": {"reference": "Patient/p1"},
        **extra,
    }


def _ndjson(*lines: bytes | dict[str, object]) -> bytes:
    return b"".join((line if isinstance(line, bytes) else _json(line)) + b"\n" for line in lines)


def _nested(depth: int, inner: str = "0") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


def _deep_observation(depth: int) -> bytes:
    """An Observation whose arrays nest `depth` levels deep (written by hand: orjson stops at 254)."""
    return (
        b'{"resourceType":"Observation","id":"o9","subject":{"reference":"Patient/p1"},"extension":'
        + _nested(depth - 1, '"Zorblax"')
        + b"}"
    )


def _bundle_of(*resources: bytes) -> bytes:
    entries = b",".join(b'{"resource":' + r + b"}" for r in resources)
    return b'{"resourceType":"Bundle","type":"collection","entry":[' + entries + b"]}"


def _weights(extra: bytes) -> bytes:
    return b'{"weight":[{"logId":1},{"logId":2,"extra":' + extra + b"}]}"


def _nested_objects(depth: int) -> bytes:
    return ('{"a":' * depth + '"Zorblax"' + "}" * depth).encode()


def _big_text() -> str:
    return ("Zorblax Quuxley " * (TEN_MB // 16))[:TEN_MB]


def _write(name: str, data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data() if callable(data) else data)

    return make


def _files(**files: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    """A maker writing several files; keyword names use `__` for `/` and `_` + suffix for dots."""

    def make(folder: Path) -> None:
        for name, data in files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data() if callable(data) else data)

    return make


def _gzip_of(relative: str) -> Callable[[], bytes]:
    return lambda: gzip.compress((CORPUS / relative).read_bytes(), mtime=0)


def _zeros_gzip(size: int) -> bytes:
    """A gzip stream of `size` zero bytes, compressed chunk by chunk (a decompression bomb)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    parts = [packer.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join([*parts, packer.flush()])


def _corrupt(data: bytes) -> bytes:
    """Flip bytes in the middle of the deflate stream (header and trailer intact)."""
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 8]) + data[middle + 8 :]


def _clean_gz() -> bytes:
    return _gzip_of("fhir_ndjson/clean.ndjson")()


def _repetitive_lines() -> bytes:
    return _ndjson(*[{**PATIENT, "id": f"p{i}"} for i in range(20_000)])


def _many_lines() -> bytes:
    lines = [
        _json({**PATIENT, "id": f"p{i}"}) if i % 997 else b'{"resourceType":"Patient","id":'
        for i in range(1, 10_001)
    ]
    return b"\n".join(lines) + b"\n"


MANY_LINES_BAD = tuple(i for i in range(1, 10_001) if i % 997 == 0)


def _symlink_out(folder: Path) -> None:
    """A manifest listing a file that is a link to a file outside the landing folder."""
    outside = folder.parent.parent / "outside-the-landing"
    outside.mkdir(exist_ok=True)
    (outside / "secret.ndjson").write_bytes(_ndjson({**PATIENT, "id": "p9"}))
    (folder / "Patient.000.ndjson").write_bytes(_ndjson(PATIENT))
    os.symlink(outside / "secret.ndjson", folder / "Secret.000.ndjson")
    (folder / "manifest.json").write_bytes(
        _json(
            {
                "transactionTime": "2026-06-30T23:00:00Z",
                "output": [
                    {"type": "Patient", "url": "Patient.000.ndjson"},
                    {"type": "Patient", "url": "Secret.000.ndjson"},
                ],
            }
        )
    )


def _symlink_loop(folder: Path) -> None:
    """Folders linking back to their parent: walking them naively never ends."""
    (folder / "Patient.000.ndjson").write_bytes(_ndjson(PATIENT))
    (folder / "sub").mkdir()
    os.symlink("..", folder / "sub" / "up")
    os.symlink(".", folder / "self")


def _refused_yaml(fragment: str) -> tuple[str, str, str]:
    """The ingest_log row of a refused source.yaml."""
    return ("refused", "source.yaml", fragment)


def _manifest(*urls: str) -> bytes:
    outputs = [{"type": u.rsplit("/", 1)[-1].split(".")[0], "url": u} for u in urls]
    return _json({"transactionTime": "2026-06-30T23:00:00Z", "output": outputs})


BOMB_ENV = {"PATIENT_INSIGHTS_MAX_DECOMPRESSED_BYTES": str(1 << 20)}
"""A 1 MiB cap on inflated size, so a bomb of a few MiB trips it quickly."""

OBS = _observation()
BUNDLE = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [{"resource": PATIENT}, {"resource": _observation()}],
}
OMH = {
    "header": {
        "id": "dp-1",
        "schema_id": {"namespace": "omh", "name": "heart-rate", "version": "2.0"},
        "user_id": "omh-user-1",
    },
    "body": {"heart_rate": {"value": 61, "unit": "beats/min"}},
}
CONVERSATION = {"conversation_id": "c1", "patient_source": "ehr_a", "patient_reference": "Patient/p1"}
OUTREACH_EVENT = {
    "event_id": "ev-1",
    "campaign_id": "breast_screening_reminder",
    "run_id": "2026-06-30",
    "person_id": "P1",
    "channel": "sms",
    "event": "replied",
    "occurred_at": "2026-06-30T08:15:00Z",
}


def _alias_bomb(levels: int = 12) -> bytes:
    lines = ['a0: &a0 ["Zorblax", "Quuxley"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return ("\n".join(lines) + "\n").encode()


def _deep_yaml(depth: int) -> bytes:
    return (
        "id: x\ntype: dynamic\nrule: " + "{not: " * depth + "{column: age, op: is_null}" + "}" * depth + "\n"
    ).encode()


# --- the landing cases -------------------------------------------------------------------------------
F, S, B, M = "fhir_ndjson/", "surveys/", "fhir_bundle/", "bulk_manifest/"
LANDING_CASES: list[Case] = [
    # FHIR Bulk Data NDJSON
    case(F + "clean.ndjson", 3),
    case(F + "truncated_last_line.ndjson", 2, invalid_json=[3]),
    case(F + "truncated_middle_line.ndjson", 2, invalid_json=[2]),
    case(F + "garbage_line.ndjson", 2, invalid_json=[2]),
    case(F + "two_values_on_a_line.ndjson", 1, invalid_json=[2]),
    case(F + "trailing_comma.ndjson", 1, invalid_json=[2]),
    case(F + "single_quotes.ndjson", 1, invalid_json=[2]),
    case(F + "comment_line.ndjson", 1, invalid_json=[1, 3]),
    case(F + "bom.ndjson", 2),
    case(F + "bom_on_every_line.ndjson", 2),  # files concatenated with their BOMs
    case(F + "crlf.ndjson", 2),
    case(F + "cr_only.ndjson", 0, invalid_json=[1]),
    case(F + "mixed_line_ends.ndjson", 3),
    case(F + "invalid_utf8_line.ndjson", 2, invalid_utf8=[2]),
    case(F + "invalid_utf8_last_line_without_newline.ndjson", 1, invalid_utf8=[2]),
    case(F + "latin1_file.ndjson", 0, invalid_utf8=[1, 2]),
    case(F + "utf16_file.ndjson", 0, invalid_utf8=[1], invalid_json=[2, 3]),
    case(F + "overlong_utf8.ndjson", 2, invalid_utf8=[2]),
    case(F + "surrogate_bytes.ndjson", 1, invalid_utf8=[2]),
    case(F + "nul_byte.ndjson", 2, invalid_json=[2]),
    case(F + "escaped_nul.ndjson", 2),
    case(F + "lone_surrogate_escape.ndjson", 1, invalid_json=[2]),
    case(F + "nan.ndjson", 2, invalid_json=[2]),
    case(F + "infinity.ndjson", 1, invalid_json=[2, 3]),
    case(F + "nan_in_string.ndjson", 2),
    case(F + "huge_exponent.ndjson", 1, invalid_json=[2]),
    case(F + "big_integer.ndjson", 2),
    case(F + "numbers_as_strings.ndjson", 3),
    case(F + "version_id_number.ndjson", 1, invalid_field_type=[2]),
    case(F + "id_number.ndjson", 1, invalid_field_type=[2]),
    case(F + "id_boolean.ndjson", 1, invalid_field_type=[2]),
    case(F + "id_null.ndjson", 1, missing_id=[2]),
    case(F + "id_object.ndjson", 1, invalid_field_type=[2]),
    case(F + "id_empty.ndjson", 1, missing_id=[2]),
    case(F + "id_bad_characters.ndjson", 1, invalid_id=[2]),
    case(F + "id_too_long.ndjson", 1, invalid_id=[2]),
    case(F + "missing_id.ndjson", 1, missing_id=[2]),
    case(F + "resource_type_missing.ndjson", 1, missing_resource_type=[2]),
    case(F + "resource_type_unknown.ndjson", 1, unknown_resource_type=[2]),
    case(F + "resource_type_lowercase.ndjson", 1, unknown_resource_type=[2]),
    case(F + "resource_type_r5_only.ndjson", 1, unknown_resource_type=[2]),
    case(F + "resource_type_number.ndjson", 1, invalid_field_type=[2]),
    case(F + "meta_not_object.ndjson", 1, invalid_field_type=[2]),
    case(F + "subject_string.ndjson", 1, invalid_field_type=[2]),
    case(F + "subject_list.ndjson", 1, invalid_field_type=[2]),
    case(F + "versions.ndjson", 4),  # every version is kept; silver takes the latest
    case(F + "same_id_two_types.ndjson", 2),
    case(F + "orphan_reference.ndjson", 1, unknown_patient_reference=[2]),
    case(F + "reference_forms.ndjson", 3, unknown_patient_reference=[4], no_patient_reference=[5, 6, 7]),
    case(F + "last_updated_year_0.ndjson", 2),
    case(F + "last_updated_year_10000.ndjson", 1, invalid_field_type=[2]),
    case(F + "last_updated_month_13.ndjson", 1, invalid_field_type=[2]),
    case(F + "last_updated_february_30.ndjson", 1, invalid_field_type=[2]),
    case(F + "last_updated_no_zone.ndjson", 1, invalid_field_type=[2]),
    case(F + "last_updated_date_only.ndjson", 1, invalid_field_type=[2]),
    case(F + "last_updated_odd_zones.ndjson", 5),
    case(F + "last_updated_bad_zones.ndjson", 2, invalid_field_type=[2, 4]),  # " UTC" is read as Z
    case(F + "last_updated_leap_second.ndjson", 2),
    case(F + "birth_date_out_of_range.ndjson", 2),  # not a key field: bronze keeps it, silver types it
    case(F + "empty.ndjson"),
    case(F + "blank_lines.ndjson"),
    case(F + "no_final_newline.ndjson", 2),
    case(F + "null_line.ndjson", 1, not_an_object=[2, 3]),
    case(F + "null_then_nan.ndjson", 1, invalid_json=[2]),  # was quarantined four times
    case(F + "not_objects.ndjson", 0, not_an_object=[1, 2, 3, 4]),
    case(F + "empty_object.ndjson", 1, missing_resource_type=[2]),
    case(F + "duplicate_member.ndjson", 1, invalid_json=[2]),
    case(F + "duplicate_unknown_member.ndjson", 1, invalid_json=[2]),  # issue 25: any member, not only keys
    case(F + "unknown_member_named_after_the_patient.ndjson", 1, invalid_field_type=[2]),
    case(
        F + "ten_mb_string",
        2,
        make=_write("big.ndjson", lambda: _ndjson(PATIENT, _observation(note=[{"text": _big_text()}]))),
    ),
    case(
        F + "ten_mb_garbage_line",
        1,
        invalid_json=[2],
        make=_write("big.ndjson", lambda: _ndjson(PATIENT, _big_text().encode())),
    ),
    case(
        F + "ten_mb_id",
        1,
        invalid_field_type=[2],
        make=_write("big.ndjson", lambda: _ndjson(PATIENT, _observation("x" * TEN_MB))),
    ),
    case(
        F + "ten_mb_string_key",
        1,
        invalid_field_type=[2],
        make=_write("big.ndjson", lambda: _ndjson(PATIENT, _observation(**{_big_text(): 1}))),
    ),
    case(
        F + "nested_100k_arrays",
        1,
        nested_too_deeply=[2],
        make=_write(
            "deep.ndjson",
            lambda: _ndjson(
                PATIENT, b'{"resourceType":"Observation","id":"o1","extension":' + _nested(100_000) + b"}"
            ),
        ),
    ),
    case(
        F + "nested_100k_objects_in_key_field",
        1,
        nested_too_deeply=[2],
        make=_write(
            "deep.ndjson",
            lambda: _ndjson(
                PATIENT, b'{"resourceType":"Observation","id":"o1","meta":' + _nested_objects(100_000) + b"}"
            ),
        ),
    ),
    case(
        F + "nested_2000_arrays",
        1,
        nested_too_deeply=[2],
        make=_write(
            "deep.ndjson",
            lambda: _ndjson(
                PATIENT, b'{"resourceType":"Observation","id":"o1","extension":' + _nested(2000) + b"}"
            ),
        ),
    ),
    case(
        F + "unbalanced_brackets",
        1,
        nested_too_deeply=[2],
        make=_write(
            "deep.ndjson",
            lambda: _ndjson(PATIENT, b'{"resourceType":"Observation","id":"o1","extension":' + b"[" * 50_000),
        ),
    ),
    case(
        F + "nested_128_arrays",
        2,
        make=_write("deep.ndjson", lambda: _ndjson(PATIENT, _deep_observation(128))),
    ),
    case(
        F + "nested_129_arrays",
        1,
        nested_too_deeply=[2],
        make=_write("deep.ndjson", lambda: _ndjson(PATIENT, _deep_observation(129))),
    ),
    case(
        F + "brackets_inside_strings",
        2,
        make=_write("text.ndjson", lambda: _ndjson(PATIENT, _observation(note=[{"text": "[{" * 5000}]))),
    ),
    case(
        F + "many_lines",
        10_000 - len(MANY_LINES_BAD),
        invalid_json=list(MANY_LINES_BAD),
        make=_write("Patient.big.ndjson", _many_lines),
    ),
    case(F + "gzip", 3, make=_write("clean.ndjson.gz", _clean_gz)),
    case(
        F + "gzip_multi_member",
        2,
        make=_write("two.ndjson.gz", lambda: gzip.compress(_ndjson(PATIENT)) + gzip.compress(_ndjson(OBS))),
    ),
    case(
        F + "gzip_truncated",
        0,
        invalid_compression=["file"],
        make=_write("cut.ndjson.gz", lambda: _clean_gz()[:-12]),
    ),
    case(
        F + "gzip_corrupt",
        0,
        invalid_compression=["file"],
        make=_write("bad.ndjson.gz", lambda: _corrupt(gzip.compress(_repetitive_lines()))),
    ),
    case(
        F + "gzip_trailing_garbage",
        0,
        invalid_compression=["file"],
        make=_write("tail.ndjson.gz", lambda: _clean_gz() + b"Zorblax Quuxley"),
    ),
    case(
        F + "gzip_not_gzip",
        0,
        invalid_compression=["file"],
        make=_write("plain.ndjson.gz", lambda: (CORPUS / F / "clean.ndjson").read_bytes()),
    ),
    case(F + "gzip_empty_file", 0, make=_write("empty.ndjson.gz", b"")),
    case(
        F + "gzip_of_bad_lines",
        1,
        invalid_json=[2],
        invalid_utf8=[3],
        make=_write("bad.ndjson.gz", lambda: gzip.compress(_ndjson(PATIENT, b"{Zorblax", b"\xff\xfe"))),
    ),
    case(
        F + "gzip_repetitive_within_limits",
        20_000,
        make=_write("Patient.rep.ndjson.gz", lambda: gzip.compress(_repetitive_lines())),
    ),
    case(
        F + "gzip_bomb_by_ratio",
        0,
        decompression_limit=["file"],
        make=_write("bomb.ndjson.gz", lambda: _zeros_gzip(80 << 20)),
    ),
    case(
        F + "gzip_bomb_by_size",
        0,
        decompression_limit=["file"],
        env=BOMB_ENV,
        make=_write("bomb.ndjson.gz", lambda: gzip.compress(_repetitive_lines())),
    ),
    # surveys: FHIR QuestionnaireResponse resources
    case(S + "clean.ndjson", 3),
    case(S + "orphan_subject.ndjson", 1, unknown_patient_reference=[2]),
    # silver reads a response's patient from `subject` only: without one it has no patient (issue 25)
    case(S + "no_subject.ndjson", 1, no_patient_reference=[2]),
    case(S + "source_is_the_patient.ndjson", 1, no_patient_reference=[2]),
    case(S + "score_as_string.ndjson", 2),
    case(S + "score_nan.ndjson", 1, invalid_json=[2]),
    case(S + "authored_odd_zones.ndjson", 3),
    case(S + "truncated.ndjson", 1, invalid_json=[2]),
    case(S + "missing_id.ndjson", 1, missing_id=[2]),
    case(S + "item_not_a_list.ndjson", 2),
    case(S + "subject_string.ndjson", 1, invalid_field_type=[2]),
    case(S + "status_number.ndjson", 2),
    case(S + "questionnaire_unknown_type.ndjson", 1, unknown_resource_type=[2]),
    case(S + "invalid_utf8_comment.ndjson", 1, invalid_utf8=[2]),
    case(S + "duplicate_versions.ndjson", 3),
    # FHIR Bundles (collection and transaction documents) and single resources
    case(B + "collection.json", 2),
    case(B + "transaction_urn_uuid.json", 2),
    case(B + "transaction_ids_from_full_urls.json", 2),
    case(B + "truncated.json", 0, invalid_json=["file"]),
    case(B + "bom.json", 2),
    case(B + "crlf_pretty.json", 2),
    case(B + "invalid_utf8.json", 0, invalid_json=["file"]),
    case(B + "latin1.json", 0, invalid_json=["file"]),
    case(B + "array_document.json", 0, not_an_object=["file"]),
    case(B + "string_document.json", 0, not_an_object=["file"]),
    case(B + "empty.json", 0, invalid_json=["file"]),
    case(B + "whitespace_only.json", 0, invalid_json=["file"]),
    case(B + "entry_not_a_list.json", 0, invalid_field_type=["file"]),
    case(B + "entry_item_not_an_object.json", 1, not_an_object=["e1", "e2", "e3"]),
    case(B + "entry_without_resource.json", 1, missing_resource=["e1"]),
    case(B + "entry_request_not_an_object.json", 1, missing_resource=["e1"]),
    case(B + "delete_entries.json", 3),
    case(B + "delete_without_a_reference.json", 1, invalid_field_type=["e1", "e2"]),
    case(B + "entry_unknown_type.json", 1, unknown_resource_type=["e1"]),
    case(B + "entry_missing_id.json", 1, missing_id=["e1"]),
    case(B + "entry_orphan_reference.json", 1, unknown_patient_reference=["e1"]),
    case(B + "entry_id_number.json", 1, invalid_field_type=["e1"]),
    case(B + "entry_bad_last_updated.json", 1, invalid_field_type=["e1"]),
    case(B + "nan.json", 0, invalid_json=["file"]),
    case(B + "versions.json", 3),
    case(B + "single_resource.json", 1),
    case(B + "single_resource_unknown_type.json", 0, unknown_resource_type=["file"]),
    case(B + "single_resource_without_id.json", 0, missing_id=["file"]),
    case(B + "entry_null.json"),
    case(B + "entry_empty.json"),
    case(B + "nested_bundle.json", 1, nested_bundle=["e1"]),  # issue 25: was kept, neither read nor refused
    case(B + "same_full_url_twice.json", 0, duplicate_full_url=["e0", "e1"]),  # issue 25: bound to the first
    case(B + "duplicate_member.json", 0, invalid_json=["file"]),  # issue 25: orjson kept the last one
    case(B + "numbers_as_strings.json", 2),
    case(B + "gzip", 2, make=_write("bundle.json.gz", lambda: gzip.compress(_json(BUNDLE)))),
    case(
        B + "gzip_bomb",
        0,
        decompression_limit=["file"],
        env=BOMB_ENV,
        make=_write("bundle.json.gz", lambda: _zeros_gzip(4 << 20)),
    ),
    case(
        B + "nested_100k",
        0,
        invalid_json=["file"],
        make=_write(
            "deep.json",
            lambda: b'{"resourceType":"Bundle","type":"collection","entry":' + _nested(100_000) + b"}",
        ),
    ),
    case(
        B + "entry_nested_200",
        1,
        nested_too_deeply=["e1"],
        make=_write("deep.json", lambda: _bundle_of(_json(PATIENT), _deep_observation(200))),
    ),
    case(
        B + "entry_nested_300",
        0,
        nested_too_deeply=["file"],
        make=_write("deep.json", lambda: _bundle_of(_json(PATIENT), _deep_observation(300))),
    ),
    case(
        B + "ten_mb_string",
        2,
        make=_write(
            "big.json",
            lambda: _json(
                {
                    **BUNDLE,
                    "entry": [
                        {"resource": PATIENT},
                        {"resource": _observation(note=[{"text": _big_text()}])},
                    ],
                }
            ),
        ),
    ),
    case(
        B + "ten_thousand_entries",
        10_000,
        make=_write(
            "many.json",
            lambda: _json(
                {
                    **BUNDLE,
                    "entry": [{"resource": PATIENT}]
                    + [{"resource": _observation(f"o{i}")} for i in range(9_999)],
                }
            ),
        ),
    ),
    # FHIR Bulk Data exports: manifests and the files they list
    case(M + "clean", 4),
    case(
        M + "traversal",
        1,
        refused=(
            ("../../etc/passwd", "leaves the source folder"),
            ("sub/../../Patient.000.ndjson", "leaves the source folder"),
        ),
    ),
    case(
        M + "absolute_paths",
        1,
        refused=(("/etc/passwd", "absolute"), ("/work/landing/ehr/Patient.000.ndjson", "absolute")),
    ),
    case(
        M + "file_urls",
        1,
        refused=(
            ("file:///etc/passwd", "scheme file"),
            ("file:Patient.000.ndjson", "scheme file"),
            ("file://localhost/etc/shadow", "scheme file"),
        ),
    ),
    case(M + "http_url_downloaded", 1),
    case(
        M + "http_url_not_downloaded", 1, missing=("http://ehr.example.org/bulk/7f3a/Observation.000.ndjson",)
    ),
    case(
        M + "http_url_traversal",
        1,
        missing=("https://evil.example.org/a/../../etc/passwd",),
        refused=(
            ("https://evil.example.org/files/..", "names no file"),
            ("https://evil.example.org/", "names no file"),
        ),
    ),
    case(
        M + "encoded_traversal",
        1,
        refused=(
            ("..%2F..%2Fetc%2Fpasswd", "leaves"),
            ("%2e%2e/%2e%2e/etc/passwd", "leaves"),
            ("sub%2F..%2F..%2Fx.ndjson", "leaves"),
        ),
    ),
    case(
        M + "windows_paths",
        1,
        refused=(("C:/Windows/win.ini", "scheme c"), ("C:\\Windows\\win.ini", "scheme c")),
        missing=("\\\\server\\share\\x.ndjson",),
    ),
    case(
        M + "other_schemes",
        1,
        refused=(
            ("ftp://ehr.example.org/x.ndjson", "scheme ftp"),
            ("s3://bucket/x.ndjson", "scheme s3"),
            ("//ehr.example.org/share/x.ndjson", "network path"),
            ("data:application/fhir+ndjson,{}", "scheme data"),
        ),
    ),
    case(
        M + "url_names_a_folder",
        1,
        refused=(("sub", "folder"), (".", "names no file"), ("", "names no file")),
        unlisted=1,
    ),
    case(M + "entries_without_urls", 1, refused=(("", "has no url"),) * 3, unlisted=1),
    case(M + "output_not_a_list", 0, refused=(("", "output is not a list"),), unlisted=1),
    case(M + "manifest_truncated", 0, refused=(("", "not a JSON object"),), unlisted=1),
    case(M + "manifest_is_an_array", 0, refused=(("", "not a JSON object"),), unlisted=1),
    case(M + "manifest_not_utf8", 0, refused=(("", "not a JSON object"),), unlisted=1),
    case(M + "manifest_with_bom", 1),
    case(M + "manifest_crlf", 1),
    case(M + "listed_twice", 1),
    case(M + "unlisted_file", 1, unlisted=1),
    case(M + "transaction_time_not_a_string", 1),
    case(M + "two_manifests", 2),
    case(
        M + "deleted_file_defects",
        2,
        invalid_field_type=[
            "deleted/Bundle.000.ndjson:2",
            "deleted/Bundle.000.ndjson:3",
            "deleted/Bundle.000.ndjson:5",
        ],
        invalid_json=["deleted/Bundle.000.ndjson:4"],
    ),
    case(
        M + "error_file_defects",
        2,
        invalid_json=["error/OperationOutcome.000.ndjson:2"],
        missing_id=["error/OperationOutcome.000.ndjson:3"],
    ),
    case(M + "output_with_orphans", 2, unknown_patient_reference=["Observation.000.ndjson:2"]),
    case(M + "missing_output", 1, missing=("Observation.000.ndjson",)),
    case(
        M + "deleted_line_nested_300",
        1,
        nested_too_deeply=["deleted/Bundle.000.ndjson:1"],
        make=_files(
            **{
                "manifest.json": lambda: _json(
                    {
                        "transactionTime": "2026-06-30T23:00:00Z",
                        "output": [{"type": "Patient", "url": "Patient.000.ndjson"}],
                        "deleted": [{"type": "Bundle", "url": "deleted/Bundle.000.ndjson"}],
                    }
                ),
                "Patient.000.ndjson": _ndjson(PATIENT),
                "deleted/Bundle.000.ndjson": lambda: (
                    b'{"resourceType":"Bundle","entry":[' + _nested(300) + b"]}\n"
                ),
            }
        ),
    ),
    case(M + "url_with_nul", 1, refused=(("Observation\x00.ndjson", "NUL"),)),
    case(
        M + "gzip_outputs",
        2,
        make=_files(
            **{
                "manifest.json": _manifest(
                    "Patient.000.ndjson.gz", "https://ehr.example.org/b/Observation.000.ndjson.gz?x=1"
                ),
                "Patient.000.ndjson.gz": gzip.compress(_ndjson(PATIENT)),
                "Observation.000.ndjson.gz": gzip.compress(_ndjson(OBS)),
            }
        ),
    ),
    case(
        M + "gzip_bomb_output",
        1,
        decompression_limit=["Observation.000.ndjson.gz:file"],
        env=BOMB_ENV,
        make=_files(
            **{
                "manifest.json": _manifest("Patient.000.ndjson", "Observation.000.ndjson.gz"),
                "Patient.000.ndjson": _ndjson(PATIENT),
                "Observation.000.ndjson.gz": lambda: _zeros_gzip(4 << 20),
            }
        ),
    ),
    case(
        M + "link_out_of_the_folder",
        1,
        refused=(("Secret.000.ndjson", "link that leads out"),),
        logged=(("refused", "Secret.000.ndjson", "link that leads out"),),  # the folder walk refuses it too
        make=_symlink_out,
    ),
    case(
        M + "manifest_nested_100k",
        0,
        refused=(("", "not a JSON object"),),
        unlisted=1,
        make=_files(
            **{
                "manifest.json": b'{"transactionTime":"2026-06-30T23:00:00Z","output":'
                + _nested(100_000)
                + b"}",
                "Patient.000.ndjson": _ndjson(PATIENT),
            }
        ),
    ),
    case(
        M + "url_name_too_long_for_the_file_system",
        1,
        missing=("x" * 300 + ".ndjson",),
        make=_files(
            **{
                "manifest.json": _manifest("Patient.000.ndjson", "x" * 300 + ".ndjson"),
                "Patient.000.ndjson": _ndjson(PATIENT),
            }
        ),
    ),
    case(
        M + "url_with_encoded_nul",
        1,
        refused=(("Observation%00.ndjson", "NUL"),),
        make=_files(
            **{
                "manifest.json": _manifest("Patient.000.ndjson", "Observation%00.ndjson"),
                "Patient.000.ndjson": _ndjson(PATIENT),
            }
        ),
    ),
    case(
        M + "manifest_ten_mb_url",
        1,
        refused=(("x" * 120, "too long"),),
        make=_files(
            **{
                "manifest.json": lambda: _manifest("Patient.000.ndjson", "x" * TEN_MB),
                "Patient.000.ndjson": _ndjson(PATIENT),
            }
        ),
    ),
]

# issue 25: FHIR records (records without a resolvable patient, record rules, time travel, birth dates)
LANDING_CASES += [
    # an Observation/Condition without subject, with a contained `#p1` or a Group subject: no patient;
    # Organization, Practitioner, Location and Medication have none and are kept
    case(F + "no_resolvable_patient.ndjson", 6, no_patient_reference=[2, 3, 4, 10]),
    case(B + "unresolved_urn_uuid.json", 3, no_patient_reference=["e2"]),
    # a modifierExtension at any depth, not an empty one nor the word inside a text
    case(F + "modifier_extension.ndjson", 3, unknown_modifier_extension=[2, 3, 6]),
    case(B + "history_same_full_url.json", 2),  # versions of one resource may share their fullUrl
    # a member repeated deep inside (line 2), beside the same names in different objects (line 3: kept)
    case(F + "duplicate_nested_member.ndjson", 2, invalid_json=[2]),
    case(B + "duplicate_nested_member.json", 0, invalid_json=["file"]),
]

OM, J, IH, W, FB = "omh_ndjson/", "omh_json/", "ihealth/", "withings/", "fitbit/"
LANDING_CASES += [
    # Open mHealth data points, NDJSON and JSON
    case(OM + "clean.ndjson", 2),
    case(OM + "truncated.ndjson", 1, invalid_json=[2]),
    case(OM + "missing_header_id.ndjson", 1, missing_id=[2]),
    case(OM + "header_id_number.ndjson", 1, invalid_field_type=[2]),
    case(OM + "header_id_empty.ndjson", 1, missing_id=[2]),
    case(OM + "no_header.ndjson", 1, not_a_data_point=[2]),
    case(OM + "header_not_an_object.ndjson", 1, invalid_field_type=[2]),
    case(OM + "missing_schema_id.ndjson", 1, missing_schema_id=[2]),
    case(OM + "schema_name_number.ndjson", 1, invalid_field_type=[2]),
    case(OM + "user_id_number.ndjson", 1, invalid_field_type=[2]),
    case(OM + "values_as_strings.ndjson", 2),
    case(OM + "nan_value.ndjson", 1, invalid_json=[2]),
    case(OM + "bom_crlf.ndjson", 2),
    case(OM + "invalid_utf8.ndjson", 1, invalid_utf8=[2]),
    case(OM + "odd_time_zones.ndjson", 3),
    case(OM + "dates_out_of_range.ndjson", 2),  # bronze keeps them; silver rejects the readings
    case(OM + "duplicate_ids.ndjson", 2),
    case(OM + "empty.ndjson"),
    case(OM + "not_objects.ndjson", 1, not_an_object=[2, 3, 4]),
    case(
        OM + "ten_mb_string",
        1,
        make=_write(
            "big.ndjson",
            lambda: _ndjson(
                {**OMH, "header": {**OMH["header"], "acquisition_provenance": {"source_name": _big_text()}}}
            ),
        ),
    ),
    case(OM + "gzip", 2, make=_write("points.ndjson.gz", _gzip_of(OM + "clean.ndjson"))),
    case(J + "single_point.json", 1),
    case(J + "list_of_points.json", 3),
    case(J + "list_with_non_objects.json", 2, not_an_object=["e1", "e3"]),
    case(J + "truncated.json", 0, invalid_json=["file"]),
    case(J + "bom.json", 1),
    case(J + "empty_list.json"),
    case(J + "scalar_document.json", 0, not_an_object=["e0"]),
    case(J + "invalid_utf8.json", 0, invalid_json=["file"]),
    case(J + "nan.json", 0, invalid_json=["file"]),
    case(J + "empty.json", 0, invalid_json=["file"]),
    case(J + "missing_id_in_list.json", 1, missing_id=["e1"]),
    case(J + "nested_100k", 0, invalid_json=["file"], make=_write("deep.json", lambda: _nested(100_000))),
    # iHealth, Withings and Fitbit API payloads (in a vendor-user folder)
    case(IH + "bp_clean.json", 2),
    case(IH + "item_missing_dataid.json", 1, missing_id=["e1"]),
    case(IH + "dataid_number.json", 1, invalid_field_type=["e1"]),
    case(IH + "dataid_empty.json", 1, missing_id=["e1"]),
    case(IH + "item_not_an_object.json", 1, not_an_object=["e1", "e2"]),
    case(IH + "list_not_a_list.json", 0, invalid_field_type=["file"]),
    case(IH + "no_data_list.json", 0, unrecognized_format=["file"]),
    case(IH + "truncated.json", 0, invalid_json=["file"]),
    case(IH + "bom.json", 2),
    case(IH + "empty_list.json"),
    case(IH + "document_array.json", 0, unrecognized_format=["file"]),
    case(IH + "nan.json", 0, invalid_json=["file"]),
    case(IH + "two_lists.json", 3),
    case(IH + "values_as_strings.json", 1),
    case(IH + "invalid_utf8.json", 0, invalid_json=["file"]),
    case(IH + "odd_time_zones.json", 2),
    case(IH + "gzip", 2, make=_write("bp.json.gz", _gzip_of(IH + "bp_clean.json"))),
    case(
        IH + "nested_100k",
        0,
        invalid_json=["file"],
        make=_write("deep.json", lambda: b'{"BPDataList":' + _nested(100_000) + b"}"),
    ),
    case(W + "measuregrps_clean.json", 2),
    case(W + "status_error.json", 0, vendor_error=["file"]),
    case(W + "status_as_string.json", 0, vendor_error=["file"]),
    case(W + "no_body.json", 0, unrecognized_format=["file"]),
    case(W + "body_without_lists.json", 0, unrecognized_format=["file"]),
    case(W + "measuregrps_not_a_list.json", 0, invalid_field_type=["file"]),
    case(W + "item_not_an_object.json", 1, not_an_object=["e1"]),
    case(W + "grpid_float.json", 1, invalid_field_type=["e1"]),
    case(W + "grpid_boolean.json", 1, invalid_field_type=["e1"]),
    case(W + "series_keyed_by_time.json", 2),
    case(W + "truncated.json", 0, invalid_json=["file"]),
    case(W + "nan.json", 0, invalid_json=["file"]),
    case(W + "empty_lists.json"),
    case(W + "bom.json", 2),
    case(W + "document_array.json", 0, unrecognized_format=["file"]),
    case(
        W + "nested_100k",
        0,
        invalid_json=["file"],
        make=_write("deep.json", lambda: b'{"status":0,"body":{"measuregrps":' + _nested(100_000) + b"}}"),
    ),
    case(FB + "weight_clean.json", 2),
    case(FB + "errors.json", 0, vendor_error=["file"]),
    case(FB + "success_false.json", 0, vendor_error=["file"]),
    case(FB + "no_lists.json", 0, unrecognized_format=["file"]),
    case(FB + "intraday_clean.json", 4),
    case(FB + "intraday_without_dataset.json", 1, invalid_field_type=["file"]),
    case(FB + "log_id_float.json", 1, invalid_field_type=["e1"]),
    case(FB + "log_id_string.json", 2),
    case(FB + "item_not_an_object.json", 1, not_an_object=["e1"]),
    case(FB + "truncated.json", 0, invalid_json=["file"]),
    case(FB + "infinity.json", 0, invalid_json=["file"]),
    case(FB + "bom.json", 2),
    case(FB + "empty_list.json"),
    case(FB + "document_array.json", 0, unrecognized_format=["file"]),
    case(FB + "odd_dates.json", 2),
    case(
        FB + "item_nested_200",
        1,
        nested_too_deeply=["e1"],
        make=_write("deep.json", lambda: _weights(_nested(200))),
    ),
    case(
        FB + "item_nested_300",
        0,
        nested_too_deeply=["file"],
        make=_write("deep.json", lambda: _weights(_nested(300))),
    ),
    case(
        J + "item_nested_300",
        0,
        nested_too_deeply=["file"],
        make=_write("deep.json", lambda: b'[{"header":{"id":"dp-1"}},' + _nested(300) + b"]"),
    ),
    case(
        IH + "item_nested_300",
        0,
        nested_too_deeply=["file"],
        make=_write("deep.json", lambda: b'{"BPDataList":[{"DataID":"d1"},' + _nested(300) + b"]}"),
    ),
    case(
        FB + "ten_mb_string",
        1,
        make=_write(
            "big.json", lambda: _json({"weight": [{"logId": 1, "weight": 81.5, "note": _big_text()}]})
        ),
    ),
]

C, E, V, L = "device_csv/", "enrolment_csv/", "conversations/", "source_folders/"
LANDING_CASES += [
    # device CSV exports read with the generic_bp_csv mapping
    case(C + "clean.csv", 3),
    case(C + "bom_crlf.csv", 3),
    case(C + "missing_column.csv", 0, unrecognized_format=[2, 3]),
    case(C + "repeated_column.csv", 0, unrecognized_format=[2, 3]),
    case(C + "header_with_an_unnamed_column.csv", 0, unrecognized_format=[2]),
    case(C + "short_row.csv", 2, malformed_csv_row=[3]),
    case(C + "long_row.csv", 2, malformed_csv_row=[3]),
    case(C + "blank_user.csv", 1, missing_id=[2]),
    case(C + "invalid_utf8_row.csv", 2, invalid_utf8=[3]),
    case(C + "quoted_newline.csv", 3),  # RFC 4180: a quoted line break stays in its field
    case(C + "unbalanced_quote.csv", 2, unclosed_quote=[3]),
    case(C + "quote_inside_field.csv", 3),
    case(C + "header_only.csv"),
    case(C + "empty.csv"),
    case(C + "odd_values.csv", 4),  # bronze keeps the strings; silver rejects what is not a reading
    case(C + "spaces_in_header.csv", 0, unrecognized_format=[2]),
    case(C + "semicolon_separated.csv", 0, unrecognized_format=[2]),
    case(C + "nul_byte_in_field.csv", 1),
    case(C + "latin1_rows.csv", 0, invalid_utf8=[2, 3]),
    case(C + "blank_lines.csv", 2),
    case(C + "gzip", 3, make=_write("readings.csv.gz", _gzip_of(C + "clean.csv"))),
    case(
        C + "ten_mb_field",
        1,
        make=_write(
            "big.csv",
            lambda: (
                (CORPUS / C / "clean.csv").read_bytes().splitlines(keepends=True)[0]
                + f"bp-user-1,SN-1,r1,2026-01-01 07:59:00,Europe/Berlin,SYS,128,{_big_text()},g1\n".encode()
            ),
        ),
    ),
    # remote-monitoring enrolment CSV
    case(E + "clean.csv", 2),
    case(E + "missing_columns.csv", 0, unrecognized_format=[2, 3]),
    case(E + "header_with_a_carriage_return.csv", 0, unrecognized_format=[2]),
    case(E + "blank_patient_id.csv", 1, missing_id=[3]),
    case(E + "whitespace_key.csv", 0, missing_id=[2]),
    case(E + "malformed_row.csv", 2, malformed_csv_row=[3]),
    case(E + "bom_crlf.csv", 2),
    case(E + "invalid_utf8.csv", 1, invalid_utf8=[3]),
    case(E + "dates_out_of_range.csv", 2),
    case(E + "header_only.csv"),
    case(E + "empty.csv"),
    case(E + "duplicate_rows.csv", 2),
    case(E + "quoted_fields.csv", 1),
    case(E + "quoted_newline.csv", 3),
    # service-center conversations
    case(V + "clean.ndjson", 2),
    case(V + "missing_conversation_id.ndjson", 1, missing_id=[2]),
    case(V + "empty_conversation_id.ndjson", 1, missing_id=[2]),
    case(V + "conversation_id_number.ndjson", 1, invalid_field_type=[2]),
    case(V + "truncated.ndjson", 1, invalid_json=[2]),
    case(V + "turns_not_a_list.ndjson", 2),
    case(V + "odd_dates.ndjson", 4),
    case(V + "patient_reference_number.ndjson", 1, invalid_field_type=[2]),
    case(V + "started_at_object.ndjson", 1, invalid_field_type=[2]),
    case(V + "nan_score.ndjson", 1, invalid_json=[2]),
    case(V + "invalid_utf8.ndjson", 1, invalid_utf8=[2]),
    case(V + "bom_crlf.ndjson", 2),
    case(V + "duplicate_conversation_ids.ndjson", 2),
    case(V + "not_objects.ndjson", 1, not_an_object=[2, 3, 4, 5]),
    case(V + "unknown_patient.ndjson", 2),  # conversations keep their patient link for silver to resolve
    case(V + "empty.ndjson"),
    case(V + "numbers_as_strings.ndjson", 1),
    case(
        V + "ten_mb_transcript",
        1,
        make=_write(
            "big.ndjson",
            lambda: _ndjson(
                {**CONVERSATION, "turns": [{"turn": 1, "speaker": "patient", "text": _big_text()}]}
            ),
        ),
    ),
    case(
        V + "nested_100k",
        1,
        nested_too_deeply=[2],
        make=_write(
            "deep.ndjson",
            lambda: _ndjson(CONVERSATION, b'{"conversation_id":"c2","turns":' + _nested(100_000) + b"}"),
        ),
    ),
    case(V + "gzip", 2, make=_write("chats.ndjson.gz", _gzip_of(V + "clean.ndjson"))),
    # source folders themselves: source.yaml, formats, hidden files, links
    # a source.yaml that cannot be used refuses its source (nothing of it read); the run goes on
    case(L + "source_yaml_unknown_format", logged=(_refused_yaml("format must be one of"),)),
    case(L + "source_yaml_not_yaml", logged=(_refused_yaml("source.yaml:2: not valid YAML"),)),
    case(L + "source_yaml_a_list", logged=(_refused_yaml("must be a mapping"),)),
    case(L + "source_yaml_not_utf8", logged=(_refused_yaml("not UTF-8"),)),
    case(L + "csv_mapping_unknown", logged=(_refused_yaml("CSV mapping no_such_mapping not found"),)),
    case(L + "csv_mapping_path_traversal", logged=(_refused_yaml("must be letters, digits"),)),
    case(L + "csv_mapping_missing", logged=(_refused_yaml("format device_csv needs mapping"),)),
    case(L + "unrecognized_file", unrecognized_format=["notes.bin:file"]),
    case(L + "undeclared_unknown_json", unrecognized_format=["data.json:file"]),
    case(L + "declared_format_other_suffix", unrecognized_format=["user-1/bp.ndjson:file"]),
    case(L + "undeclared_sniffed", 5),
    case(
        L + "hidden_and_documentation",
        1,
        logged=(
            ("skipped", ".partial.ndjson", "hidden"),
            ("skipped", "LICENSE", "documentation"),
            ("skipped", "README.md", "documentation"),
            ("skipped", "_tmp.ndjson", "hidden"),
            ("skipped", "notes.txt", "not a data file"),
        ),
    ),
    case(
        L + "gzip_unknown_inside",
        unrecognized_format=["notes.bin.gz:file"],
        make=_write("notes.bin.gz", lambda: gzip.compress(b"\x00Zorblax Quuxley")),
    ),
    case(L + "gzip_sniffed", 3, make=_write("Patient.000.ndjson.gz", _clean_gz)),
    case(L + "gzip_sniffed_bundle", 2, make=_write("bundle.json.gz", lambda: gzip.compress(_json(BUNDLE)))),
    case(
        L + "gzip_corrupt_sniffed",
        invalid_compression=["x.ndjson.gz:file"],
        make=_write("x.ndjson.gz", b"\x1f\x8b\x08\x00Zorblax"),
    ),
    case(
        L + "links_looping_back",
        1,
        make=_symlink_loop,
        logged=(("refused", "self", "linked folder"), ("refused", "sub/up", "linked folder")),
    ),
    # outreach files where no source.yaml declares them are never read as outreach events
    case(
        L + "outreach_undeclared",
        unrecognized_format=["events.csv:2", "events.csv:3", "events.csv:4"],
        missing_resource_type=["events.ndjson:1"],
    ),
]

OE = "outreach_events/"
LANDING_CASES += [
    # outreach outcome CSV
    case(OE + "clean.csv", 3),
    case(OE + "bom_crlf.csv", 2),
    case(OE + "blank_lines.csv", 2),
    case(OE + "case_and_spelling.csv", 5),  # channel and event in any case, `_` for `-`, ISO 8601 variants
    case(OE + "extra_columns.csv", 2),
    case(OE + "duplicate_events.csv", 4),  # bronze keeps every delivery; gold de-duplicates by event_id
    case(OE + "missing_campaign_id.csv", 1, missing_field=[3, 4]),
    case(OE + "no_person.csv", 1, missing_id=[2, 3]),
    case(OE + "invalid_source_identifier.csv", 1, invalid_id=[2, 3, 4, 5]),
    case(OE + "unknown_event.csv", 1, unknown_event=[2, 3]),
    case(OE + "unknown_channel.csv", 1, unknown_channel=[2, 3, 4]),
    case(OE + "timestamp_without_offset.csv", 2, invalid_timestamp=[2, 3]),
    case(OE + "date_only.csv", 1, invalid_timestamp=[2, 3]),
    case(OE + "invalid_timestamps.csv", 0, invalid_timestamp=[2, 3, 4, 5]),
    case(OE + "ragged_rows.csv", 2, malformed_csv_row=[3, 4]),
    case(OE + "unclosed_quote.csv", 2, unclosed_quote=[3]),
    case(OE + "quoted_newline.csv", 3),
    case(OE + "missing_column.csv", 0, unrecognized_format=[2, 3]),
    case(OE + "no_person_columns.csv", 0, unrecognized_format=[2, 3]),
    # issue 25: outreach. Events from the future land in bronze as delivered; gold quarantines them as
    # `future_date` and no opt-in trusts them (tests/test_outreach_effect.py reads this file through gold).
    case(OE + "future_start.csv", 5),
    case(OE + "semicolon_separated.csv", 0, unrecognized_format=[2]),
    case(OE + "invalid_utf8.csv", 2, invalid_utf8=[3]),
    case(OE + "header_only.csv"),
    case(OE + "empty.csv"),
    case(OE + "gzip_csv", 3, make=_write("events.csv.gz", _gzip_of(OE + "clean.csv"))),
    case(
        OE + "gzip_corrupt",
        invalid_compression=["file"],
        make=_write("events.csv.gz", lambda: _corrupt(_gzip_of(OE + "clean.csv")())),
    ),
    case(
        OE + "ten_mb_reply",
        1,
        make=_write(
            "big.csv",
            lambda: (
                (CORPUS / OE / "clean.csv").read_bytes().splitlines(keepends=True)[0]
                + f"ev-1,c,r,P1,,sms,replied,2026-06-30T08:15:00Z,{_big_text()},\n".encode()
            ),
        ),
    ),
    # outreach outcome NDJSON / JSON lines
    case(OE + "events.ndjson", 3),
    case(OE + "events_jsonl.jsonl", 2),
    case(OE + "bom_crlf_ndjson.ndjson", 2),
    case(OE + "duplicate_events_ndjson.ndjson", 4),
    case(
        OE + "bad_records.ndjson",
        1,
        missing_field=[1, 9],
        missing_id=[2],
        unknown_event=[3],
        unknown_channel=[4],
        invalid_timestamp=[5, 6, 7],
        invalid_id=[8],
    ),
    case(OE + "not_objects.ndjson", 1, not_an_object=[2, 3, 4, 5]),
    case(OE + "truncated.ndjson", 2, invalid_json=[2]),
    case(OE + "invalid_json_lines.ndjson", 1, invalid_json=[1, 2, 3, 4]),
    case(OE + "wrong_types.ndjson", 1, invalid_field_type=[1, 2, 3, 4]),
    case(OE + "nan_detail.ndjson", 1, invalid_json=[2]),
    case(OE + "invalid_utf8_ndjson.ndjson", 2, invalid_utf8=[2]),
    case(OE + "empty_ndjson.ndjson"),
    case(OE + "bundle.json", unrecognized_format=["file"]),  # declared outreach: only CSV and JSON lines
    case(OE + "gzip_ndjson", 3, make=_write("events.ndjson.gz", _gzip_of(OE + "events.ndjson"))),
    case(
        OE + "ten_mb_reply_ndjson",
        1,
        make=_write("big.ndjson", lambda: _ndjson({**OUTREACH_EVENT, "reply_text": _big_text()})),
    ),
    case(
        OE + "nested_100k",
        1,
        nested_too_deeply=[2],
        make=_write(
            "deep.ndjson",
            lambda: _ndjson(
                OUTREACH_EVENT, _json(OUTREACH_EVENT)[:-1] + b',"detail":' + _nested(100_000) + b"}"
            ),
        ),
    ),
]


# issue 25: which landing files bronze reads, skipped files, refused sources, patients first
OUTSIDE_SECRET = "Zorblax-outside-the-landing-7c41e9"
"""Planted only in files outside the landing folder: none of its bytes may reach the lake."""


def _outside(folder: Path) -> Path:
    """A folder beside the landing folder (the case's source folder is `<landing>/<source>`)."""
    outside = folder.parent.parent / "outside-the-landing-i25"
    outside.mkdir(exist_ok=True)
    secret = {**PATIENT, "id": "s1", "name": [{"family": OUTSIDE_SECRET}]}
    (outside / "secret.ndjson").write_bytes(_ndjson(secret))
    (outside / "system.conf").write_bytes(f"root:x:0:0:{OUTSIDE_SECRET}:/root:/bin/sh\n".encode())
    (outside / "secret.ndjson.gz").write_bytes(gzip.compress(_ndjson(secret), mtime=0))
    (outside / "folder").mkdir(exist_ok=True)
    (outside / "folder" / "Patient.ndjson").write_bytes(_ndjson(secret))
    (outside / "source.yaml").write_bytes(f"format: fhir\n# {OUTSIDE_SECRET}\n".encode())
    return outside


def links_of_every_kind(folder: Path) -> None:
    """Links to files and folders outside the landing folder, a dangling link, a FIFO and a socket beside
    one real Patient file, and a link that stays inside (read as the file it names: the same content)."""
    import stat

    outside = _outside(folder)
    (folder / "Patient.000.ndjson").write_bytes(_ndjson(PATIENT))
    os.symlink(outside / "secret.ndjson", folder / "Observation.000.ndjson")
    os.symlink(outside / "system.conf", folder / "passwd.ndjson")
    os.symlink(outside / "secret.ndjson.gz", folder / "Condition.000.ndjson.gz")
    os.symlink(outside / "folder", folder / "more")
    (folder / "user-9").mkdir()
    os.symlink(outside / "secret.ndjson", folder / "user-9" / "bp.json")
    os.symlink(folder / "gone.ndjson", folder / "dangling.ndjson")
    os.mkfifo(folder / "fifo.ndjson")
    os.mknod(folder / "socket.ndjson", stat.S_IFSOCK | 0o600)
    os.symlink("Patient.000.ndjson", folder / "latest.ndjson")


def _source_yaml_out(folder: Path) -> None:
    """source.yaml itself a link to a file outside: the source is refused, its Patient file not read."""
    os.symlink(_outside(folder) / "source.yaml", folder / "source.yaml")
    (folder / "Patient.000.ndjson").write_bytes(_ndjson(PATIENT))


def _documentation_and_data(folder: Path) -> None:
    """Documentation known by the first word of its name (whatever follows, unless it ends like data:
    `LICENSE.apache2` as shipped with the Synthea sample), hidden files, and an outreach file whose name
    merely starts like documentation (`notices_…`): only the last is data."""
    (folder / "notices_2026-07.csv").write_bytes((CORPUS / "outreach_events" / "clean.csv").read_bytes())
    documentation = ("README", "LICENSE.txt", "LICENSE.apache2", "Licence", "NOTICE.md", "COPYING-LESSER")
    for name in (*documentation, ".DS_Store", "notes.yaml"):
        (folder / name).write_bytes(b"Zorblax Quuxley wrote this\n")
    (folder / "_partial").mkdir()
    (folder / "_partial" / "events.csv").write_bytes(b"x\n")


def _patients_named_otherwise(folder: Path) -> None:
    """A folder without a manifest whose patient file is not named Patient* (read after the others by
    name order): the check must still see the Patients."""
    (folder / "observations.ndjson").write_bytes(_ndjson(_observation("o1"), _observation("o2")))
    (folder / "patients.ndjson").write_bytes(_ndjson(PATIENT))


ORGANIZATIONS = 800  # past discovery's 64 KiB look at a file's head


def _patient_beyond_the_head(folder: Path) -> None:
    """The Patient comes after 64 KiB of other resources, in a file read after its Observation: the
    Observation is quarantined when read, and released at the end of the same run."""
    (folder / "a.ndjson").write_bytes(_ndjson(_observation("o1")))
    organizations = [
        {"resourceType": "Organization", "id": f"org{i}", "name": "x" * 80} for i in range(ORGANIZATIONS)
    ]
    (folder / "b.ndjson").write_bytes(_ndjson(*organizations, PATIENT))


_LINKS = (
    ("refused", "Condition.000.ndjson.gz", "leads out of the landing folder"),
    ("refused", "Observation.000.ndjson", "leads out of the landing folder"),
    ("refused", "dangling.ndjson", "leads nowhere"),
    ("refused", "fifo.ndjson", "not a regular file"),
    ("refused", "more", "leads out of the landing folder"),
    ("refused", "passwd.ndjson", "leads out of the landing folder"),
    ("refused", "socket.ndjson", "not a regular file"),
    ("refused", "user-9/bp.json", "leads out of the landing folder"),
)
LANDING_CASES += [
    case(L + "links_of_every_kind", 1, make=links_of_every_kind, logged=_LINKS),
    case(L + "source_yaml_link_out", make=_source_yaml_out, logged=(_refused_yaml("leads out"),)),
    case(
        L + "source_yaml_dangling",
        make=lambda folder: os.symlink("nowhere.yaml", folder / "source.yaml"),
        logged=(_refused_yaml("leads nowhere"),),
    ),
    case(
        OE + "documentation_and_data",
        3,
        make=_documentation_and_data,
        logged=(
            ("skipped", ".DS_Store", "hidden"),
            ("skipped", "COPYING-LESSER", "documentation"),
            ("skipped", "LICENSE.apache2", "documentation"),
            ("skipped", "LICENSE.txt", "documentation"),
            ("skipped", "Licence", "documentation"),
            ("skipped", "NOTICE.md", "documentation"),
            ("skipped", "README", "documentation"),
            ("skipped", "_partial", "hidden"),
            ("skipped", "notes.yaml", "not a data file"),
        ),
    ),
    case("fhir_ndjson/patients_named_otherwise", 3, make=_patients_named_otherwise),
    case(
        "fhir_ndjson/patient_beyond_the_head",
        ORGANIZATIONS + 2,
        make=_patient_beyond_the_head,
        unknown_patient_reference=[1],  # the quarantine row stays as history; the record is in bronze
    ),
]


# issue 25: devices (device values, future readings, RFC 4180 CSV); silver outcomes in test_device_corpus.py
LANDING_CASES += [
    # values no column can hold: bronze keeps them (but 1e309 in JSON, which no parser reads); silver rejects
    case(OM + "huge_values.ndjson", 4, invalid_json=[3, 4]),
    case(J + "huge_values.json", 4),
    case(C + "non_finite_values.csv", 11),
    case(IH + "huge_values.json", 3),
    case(W + "huge_values.json", 5),
    case(FB + "huge_values.json", 3),
    # readings from the future: bronze keeps them; silver rejects them against the as-of day
    case(OM + "future_readings.ndjson", 4),
    case(C + "future_readings.csv", 5),
    # RFC 4180 records: quoted line breaks (CRLF, blank lines inside), doubled quotes, a quote never closed
    case(C + "note_with_line_break_crlf.csv", 4),
    case(C + "unclosed_quote_at_end.csv", 1, unclosed_quote=[3]),
    case(OE + "stop_reply_crlf.csv", 3),
]


# issue 27: Apple Health exports (one person's folder) and wide device CSV (a Fitbit-style weight log);
# silver outcomes of the values and dates in test_device_corpus.py and test_device_apple_health.py
AH, WC = "apple_health/", "wide_csv/"


def _apple(name: str, make: str, *args: object) -> Callable[[Path], None]:
    """A maker writing an export built by tests/apple_health_samples.py (binary cases: zips, bombs)."""
    from tests import apple_health_samples as samples

    return _write(name, lambda: getattr(samples, make)(*args))


def _apple_zip(member: str) -> Callable[[], bytes]:
    from tests.apple_health_samples import several_metrics, zipped

    return lambda: zipped(several_metrics(), member)


def _apple_zip_without_export() -> bytes:
    from tests.apple_health_samples import zipped

    return zipped(b"<?xml version='1.0'?><ClinicalDocument><title>Zorblax</title></ClinicalDocument>")


def _apple_unpacked(folder: Path) -> None:
    """The Health app's zip unpacked: the export beside its clinical-document copy and an ECG file."""
    export = folder / "apple_health_export"
    (export / "electrocardiograms").mkdir(parents=True)
    (export / "export.xml").write_bytes((CORPUS / AH / "clean.xml").read_bytes())
    (export / "export_cda.xml").write_bytes(b"<?xml version='1.0'?><ClinicalDocument><title>Zorblax</title>")
    (export / "electrocardiograms" / "ecg_2026-05-03.csv").write_bytes(b"Name,Zorblax Quuxley\n")


def _apple_links(folder: Path) -> None:
    """An export, a link to it beside it (the same delivery: read once) and a link to an export outside."""
    (folder / "export.xml").write_bytes((CORPUS / AH / "clean.xml").read_bytes())
    os.symlink("export.xml", folder / "latest.xml")
    outside = _outside(folder.parent)
    (outside / "export.xml").write_bytes((CORPUS / AH / "clean.xml").read_bytes())
    os.symlink(outside / "export.xml", folder / "other.xml")


def _apple_outside_a_person_folder(folder: Path) -> None:
    (folder.parent / "export.xml").write_bytes((CORPUS / AH / "clean.xml").read_bytes())


def _apple_nested(depth: int) -> bytes:
    from tests.apple_health_samples import body, record

    inner = "<x>" * depth + "</x>" * depth
    one = record("HeartRate", "count/min", "70", "2026-05-03 08:00:00 -0700")
    return body(one.replace("/>\n", f">{inner}</Record>\n"))


def _apple_big_value() -> bytes:
    from tests.apple_health_samples import body, record

    return body(record("HeartRate", "count/min", _big_text(), "2026-05-03 08:00:00 -0700"))


LANDING_CASES += [
    case(AH + "clean.xml", 10),
    case(AH + "bom_crlf.xml", 10),
    case(AH + "latin1.xml", 10),
    case(AH + "only_other_types.xml"),  # workouts, activity rings, other types: counted, nothing kept
    case(AH + "huge_values.xml", 8),  # bronze keeps the text; silver rejects what no column holds
    case(AH + "future_readings.xml", 5),
    # XML that stops being well-formed: what came before is kept, the rest is one record with its line
    case(AH + "truncated.xml", 10, invalid_xml=[50]),
    case(AH + "broken_in_the_middle.xml", 3, invalid_xml=[39]),
    case(AH + "junk_after_root.xml", 1, invalid_xml=[38]),
    case(AH + "empty.xml", 0, invalid_xml=["file"]),
    case(AH + "unknown_encoding.xml", 0, invalid_xml=["file"]),
    case(AH + "not_health_data.xml", 0, unrecognized_format=["file"]),
    # entities: the billion laughs, and one naming a file to read; refused before anything expands
    case(AH + "entity_expansion.xml", 0, xml_entity_declaration=["file"]),
    case(AH + "external_entity.xml", 0, xml_entity_declaration=["file"]),
    case(AH + "nested_100k", 1, make=_write("export.xml", lambda: _apple_nested(100_000))),
    case(AH + "ten_mb_value", 1, make=_write("export.xml", _apple_big_value)),
    case(AH + "gzip", 10, make=_write("export.xml.gz", _gzip_of(AH + "clean.xml"))),
    # the Health app's zip, under its English and Spanish names
    case(AH + "zip", 10, make=_write("export.zip", _apple_zip("apple_health_export/export.xml"))),
    case(
        AH + "zip_localized", 10, make=_write("exportar.zip", _apple_zip("apple_health_export/exportar.xml"))
    ),
    case(
        AH + "zip_without_export",
        0,
        unrecognized_format=["file"],
        make=_write("export.zip", _apple_zip_without_export),
    ),
    case(
        AH + "zip_with_traversal", 0, unsafe_archive=["file"], make=_apple("export.zip", "zip_with_traversal")
    ),
    case(
        AH + "zip_truncated",
        0,
        invalid_compression=["file"],
        make=_write("export.zip", lambda: _apple_zip("apple_health_export/export.xml")()[:-300]),
    ),
    case(
        AH + "zip_bomb",
        0,
        decompression_limit=["file"],
        make=_apple("export.zip", "zip_bomb", 4 << 20),
        env=BOMB_ENV,
    ),
    case(
        AH + "unpacked_zip",
        10,
        make=_apple_unpacked,
        logged=(
            (
                "skipped",
                "ah-user-1/apple_health_export/electrocardiograms/ecg_2026-05-03.csv",
                "not an Apple",
            ),
            ("skipped", "ah-user-1/apple_health_export/export_cda.xml", "clinical-document copy"),
        ),
    ),
    case(
        AH + "links",
        10,
        make=_apple_links,
        logged=(("refused", "ah-user-1/other.xml", "leads out of the landing folder"),),
    ),
    case(AH + "outside_a_person_folder", 0, missing_id=["file"], make=_apple_outside_a_person_folder),
    # a Fitbit-style weight log read with the wide mapping fitbit_weight_log
    case(WC + "clean.csv", 3),
    case(WC + "bom_crlf.csv", 3),
    case(WC + "mixed_formats.csv", 6),  # bronze keeps the rows; silver rejects what fits no format
    case(WC + "non_finite_values.csv", 8),
    case(WC + "quoted_newline.csv", 2),
    case(WC + "header_only.csv"),
    case(WC + "blank_id.csv", 1, missing_id=[3]),
    case(WC + "short_row.csv", 1, malformed_csv_row=[3]),
    case(WC + "invalid_utf8.csv", 1, invalid_utf8=[3]),
    case(WC + "missing_value_column.csv", 0, unrecognized_format=[2, 3]),
    case(WC + "daily_activity_file.csv", 0, unrecognized_format=[2]),
    case(WC + "gzip", 3, make=_write("weightLogInfo.csv.gz", _gzip_of(WC + "clean.csv"))),
]


# --- definition files --------------------------------------------------------------------------------
@dataclass(frozen=True)
class DefinitionCase:
    """One definition file (or folder of files) and whether it loads or fails at which line."""

    path: str  # <kind>/<file or folder> under tests/corpus, or <kind>/<name>.yaml when generated
    line: int | None = None  # None: the file loads; ANY_LINE: any line (where an alias bomb trips)
    message: str = ""
    make: Callable[[], bytes] | None = None
    file: str | None = None  # the file the error names, when the case is a folder of files

    @property
    def kind(self) -> str:
        """measures | value_sets | segments | campaigns."""
        return self.path.split("/", 1)[0]

    def __str__(self) -> str:
        return self.path


ANY_LINE = 0


def fails(
    path: str, line: int, message: str, make: Callable[[], bytes] | None = None, file: str | None = None
) -> DefinitionCase:
    """A definition case that must fail at `line` with `message` in its error."""
    return DefinitionCase(path, line, message, make, file)


def loads(path: str) -> DefinitionCase:
    """A definition case that must load."""
    return DefinitionCase(path)


MS, VS, SG, CP = "measures/", "value_sets/", "segments/", "campaigns/"
DEFINITION_CASES: list[DefinitionCase] = [
    loads(MS + "valid.yaml"),
    loads(MS + "bom_crlf.yaml"),
    fails(MS + "not_yaml.yaml", 8, "not valid YAML"),  # the line where the parser finds out
    fails(MS + "tab_indentation.yaml", 7, "not valid YAML"),
    fails(MS + "not_utf8.yaml", 3, "not UTF-8"),
    fails(MS + "a_list.yaml", 1, "must be a mapping"),
    fails(MS + "empty.yaml", 1, "must be a mapping"),
    fails(MS + "only_a_comment.yaml", 1, "must be a mapping"),
    fails(MS + "unknown_key.yaml", 19, "unknown key 'denominator_fudge'"),
    fails(MS + "eligible_a_list.yaml", 6, "eligible must be a mapping"),
    fails(MS + "age_as_words.yaml", 7, "eligible.age.min must be a whole number"),
    fails(MS + "lookback_as_string.yaml", 9, "lookback_months must be a whole number"),
    fails(MS + "threshold_nan.yaml", 15, "numerator.threshold must be a number"),
    fails(MS + "threshold_infinite.yaml", 15, "numerator.threshold must be a number"),
    fails(MS + "threshold_as_string.yaml", 15, "numerator.threshold must be a number"),
    fails(MS + "unknown_value_set.yaml", 17, "unknown value set 'hba1c_typo'"),
    fails(MS + "no_modalities.yaml", 14, "at least one modality"),
    fails(MS + "empty_exclusion.yaml", 11, "exclusions[0] is empty"),
    fails(MS + "exclusions_a_mapping.yaml", 10, "exclusions must be a list"),
    fails(MS + "numerator_type_unknown.yaml", 14, "numerator type must be one of"),
    fails(MS + "nested_unknown_key.yaml", 17, "unknown key 'window_month'"),
    fails(MS + "repeated_key.yaml", 19, "key 'numerator' repeated"),
    fails(MS + "boolean_for_a_number.yaml", 18, "prospective_days must be a whole number"),
    fails(MS + "two_documents.yaml", 19, "not valid YAML"),
    fails(MS + "wrong_label.yaml", 4, "label must be"),
    fails(MS + "modality_not_a_mapping.yaml", 17, "modalities[0] must be a mapping"),
    fails(MS + "undefined_alias.yaml", 11, "not valid YAML"),
    loads(MS + "window_months_huge.yaml"),
    fails(MS + "alias_bomb.yaml", ANY_LINE, "expands to more than", _alias_bomb),
    fails(MS + "nested_10k.yaml", 1, "nested too deeply", lambda: b"id: " + _nested(10_000) + b"\n"),
    loads(VS + "valid"),
    fails(VS + "unknown_code_system", 6, "unknown code system", file="corpus_set.yaml"),
    fails(VS + "codes_not_a_list", 5, "codes must be a list", file="corpus_set.yaml"),
    fails(VS + "code_without_display", 6, "needs a code and a display", file="corpus_set.yaml"),
    fails(VS + "name_not_the_file_name", 2, "name must be the file name", file="corpus_set.yaml"),
    fails(VS + "code_a_mapping", 6, "codes[0].code must be text", file="corpus_set.yaml"),
    fails(VS + "second_file_broken", 2, "not valid YAML", file="second.yaml"),
    loads(SG + "valid.yaml"),
    loads(SG + "bom_crlf.yaml"),
    fails(SG + "not_yaml.yaml", 8, "not valid YAML"),
    fails(SG + "not_utf8.yaml", 3, "not UTF-8"),
    fails(SG + "a_list.yaml", 1, "must be a mapping"),
    fails(SG + "type_unknown.yaml", 4, "type must be one of"),
    fails(SG + "rule_missing.yaml", 1, "a rule must be a mapping"),
    fails(SG + "rule_a_string.yaml", 3, "a rule must be a mapping"),
    fails(SG + "all_not_a_list.yaml", 4, "`all` needs a list"),
    fails(SG + "all_a_number.yaml", 4, "`all` needs a list"),
    fails(SG + "all_empty.yaml", 4, "`all` needs a list"),
    fails(SG + "unknown_column.yaml", 9, "unknown column 'last_hba1c_typo'"),
    fails(SG + "column_a_list.yaml", 3, "unknown column"),
    fails(SG + "operator_unknown.yaml", 3, "unknown operator 'roughly'"),
    fails(SG + "operator_a_list.yaml", 3, "unknown operator"),
    fails(SG + "in_without_a_list.yaml", 3, "op `in` needs a list"),
    fails(SG + "between_one_value.yaml", 3, "op `between` needs a list of two"),
    fails(SG + "within_days_as_string.yaml", 3, "within_days must be a whole number"),
    fails(SG + "within_days_negative.yaml", 3, "within_days must be a whole number"),
    fails(SG + "within_days_too_large.yaml", 3, "within_days must be a whole number"),
    fails(SG + "care_gap_unknown.yaml", 3, "unknown measure 'XYZ'"),
    fails(SG + "care_gap_status_not_a_list.yaml", 3, "status must be a list"),
    fails(SG + "unknown_rule_keys.yaml", 3, "unknown rule keys"),
    fails(SG + "repeated_key.yaml", 11, "key 'type' repeated"),
    fails(SG + "tab_indentation.yaml", 6, "not valid YAML"),
    fails(SG + "alias_bomb.yaml", ANY_LINE, "expands to more than", _alias_bomb),
    fails(SG + "not_nested_2000.yaml", 1, "nested too deeply", lambda: _deep_yaml(2000)),
    loads(CP + "valid.yaml"),
    loads(CP + "bom_crlf.yaml"),
    fails(CP + "not_yaml.yaml", 7, "not valid YAML"),
    fails(CP + "not_utf8.yaml", 3, "not UTF-8"),
    fails(CP + "a_list.yaml", 1, "must be a mapping"),
    fails(CP + "unknown_key.yaml", 17, "unknown key 'colour'"),
    fails(CP + "missing_keys.yaml", 1, "missing key(s)"),
    fails(CP + "unknown_segment.yaml", 4, "unknown segment 'nope'"),
    fails(CP + "unknown_channel.yaml", 6, "unknown channel 'pigeon'"),
    fails(CP + "end_before_start.yaml", 14, "end is before start"),
    fails(CP + "month_13.yaml", 13, "a value cannot be read"),
    fails(CP + "start_not_a_date.yaml", 13, "start and end must be dates"),
    fails(CP + "start_with_a_time.yaml", 6, "start and end must be dates"),
    fails(CP + "time_zone_out_of_range.yaml", 13, "a value cannot be read"),
    fails(CP + "max_list_size_negative.yaml", 15, "max_list_size must be a whole number"),
    fails(CP + "max_list_size_as_string.yaml", 15, "max_list_size must be a whole number"),
    fails(CP + "priority_boolean.yaml", 16, "priority must be a whole number"),
    fails(CP + "frequency_not_a_mapping.yaml", 10, "frequency takes"),
    fails(CP + "channels_empty.yaml", 6, "channels must be a list"),
    fails(CP + "segments_a_string.yaml", 4, "segments must be a list"),
    fails(CP + "unknown_measure.yaml", 5, "unknown measure 'NOPE'"),
    fails(CP + "repeated_key.yaml", 17, "key 'priority' repeated"),
    fails(CP + "duplicate_ids", 2, "campaign id 'x' is already used by a.yaml", file="b.yaml"),
    fails(CP + "alias_bomb.yaml", ANY_LINE, "expands to more than", _alias_bomb),
]
