"""Property-based tests of every bronze reader: arbitrary and mutated inputs never crash a reader, and
every record is accounted for exactly once (records in = kept + quarantined, each at its own position),
with a documented reason code and no record content in the reason.

Inputs are valid seed files (the corpus's clean cases) mutated byte by byte (inserted BOMs, CRs, NULs,
invalid UTF-8, quotes, brackets, NaN, truncation, duplication), and documents built from arbitrary JSON
values put where the readers look for their key fields.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import tempfile
from pathlib import Path, PurePosixPath

import orjson
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from upath import UPath

from pipelines.bronze import discovery as d
from pipelines.bronze.compression import DecompressionLimits, DecompressionRefused, gunzip
from pipelines.bronze.device_reader import (
    load_csv_mapping,
    read_device_csv,
    read_enrolment_csv,
    read_fitbit_payload,
    read_ihealth_payload,
    read_omh_document,
    read_omh_ndjson,
    read_withings_payload,
)
from pipelines.bronze.feedback_reader import read_conversations_ndjson
from pipelines.bronze.fhir_documents import read_fhir_deleted_ndjson, read_fhir_document, read_fhir_documents
from pipelines.bronze.fhir_reader import read_fhir_ndjson
from pipelines.bronze.outreach_reader import (
    CHANNELS,
    EVENTS,
    FIELDS,
    read_outreach_events_csv,
    read_outreach_events_ndjson,
)
from pipelines.bronze.tables import ReadResult
from tests.corpus.cases import CORPUS, MARKERS
from tests.test_corpus import REASON_CODES

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INTERESTING = [
    b"\n",
    b"\r\n",
    b"\r",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\x00",
    b"NaN",
    b"-Infinity",
    b"1e999",
    b'"',
    b"'",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"\\u0000",
    b"\\ud800",
    b'"id":',
    b'"resourceType":"Patient",',
    b"Zorblax Quuxley",
]


def seed(relative: str) -> bytes:
    """A clean corpus file to mutate."""
    return (CORPUS / relative).read_bytes()


def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` with a few random edits: insert, replace, delete, truncate or duplicate at random places."""
    edit = st.tuples(
        st.sampled_from(["insert", "replace", "delete", "truncate", "duplicate"]),
        st.integers(0, max(len(data), 1)),
        st.sampled_from(INTERESTING) | st.binary(min_size=1, max_size=6),
    )
    return st.lists(edit, max_size=5).map(lambda edits: _apply(data, edits))


def _apply(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    for kind, at, piece in edits:
        at = min(at, len(data))
        if kind == "insert":
            data = data[:at] + piece + data[at:]
        elif kind == "replace":
            data = data[:at] + piece + data[at + len(piece) :]
        elif kind == "delete":
            data = data[:at] + data[at + len(piece) :]
        elif kind == "truncate":
            data = data[:at]
        else:
            data = data[:at] + data[max(0, at - 40) : at] + data[at:]
    return data


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["Patient", "Observation", "Zorblax Quuxley", "p1", "Patient/p1", "", "2026-13-01"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def records_like(template: dict[str, object]) -> st.SearchStrategy[dict[str, object]]:
    """`template` with some of its members (and a few new ones) replaced by arbitrary JSON values."""
    keys = st.sampled_from([*template, "id", "meta", "subject", "header", "resourceType", "x"])
    return st.dictionaries(keys, json_values, max_size=4).map(lambda changes: {**template, **changes})


def check(result: ReadResult) -> None:
    """What every reader result must satisfy, whatever the input."""
    assert result.balanced, (result.records_in, result.bronze.height, result.quarantine.height)
    assert set(result.quarantine["reason_code"].to_list()) <= REASON_CODES
    assert (result.quarantine["reason"].str.len_chars() > 0).all()
    assert not [r for r in result.quarantine["reason"].to_list() if any(m in r for m in MARKERS)]


def check_lines(data: bytes, result: ReadResult) -> None:
    """A line-based file: every non-blank physical line is exactly one kept or quarantined record."""
    check(result)
    body = data.removeprefix(b"\xef\xbb\xbf")
    physical = 0 if not body else body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
    assert result.records_in + result.blank_lines == physical
    lines = pl.concat([result.bronze["line"], result.quarantine["line"]])
    assert lines.null_count() == 0 and lines.n_unique() == lines.len() == result.records_in
    assert lines.len() == 0 or 1 <= lines.min() <= lines.max() <= physical  # type: ignore[operator]


def ndjson(*records: object) -> bytes:
    return b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in records)


# --- FHIR ------------------------------------------------------------------------------------------------
PATIENT = orjson.loads(seed("fhir_ndjson/clean.ndjson").splitlines()[0])
OBSERVATION = orjson.loads(seed("fhir_ndjson/clean.ndjson").splitlines()[1])
KNOWN = pl.Series("patient_key", ["Patient/p1"])


@PROPERTY
@given(mutations(seed("fhir_ndjson/clean.ndjson") + seed("surveys/clean.ndjson")))
def test_fhir_ndjson_mutated_bytes(data: bytes) -> None:
    check_lines(data, read_fhir_ndjson(data, KNOWN))


@PROPERTY
@given(st.lists(records_like(PATIENT) | records_like(OBSERVATION) | json_values, max_size=12))
def test_fhir_ndjson_arbitrary_records(values: list[object]) -> None:
    data = ndjson(*values)
    result = read_fhir_ndjson(data, pl.Series("patient_key", [], dtype=pl.String))
    check_lines(data, result)
    assert not result.bronze["resource_type"].is_null().any()


@PROPERTY
@given(st.lists(records_like(PATIENT) | json_values, max_size=8), mutations(b""))
def test_fhir_deleted_files(values: list[object], noise: bytes) -> None:
    bundles = [{"resourceType": "Bundle", "type": "transaction", "entry": [v]} for v in values]
    data = ndjson(*bundles) + noise
    check(read_fhir_deleted_ndjson(data))


def bundles() -> st.SearchStrategy[bytes]:
    entries = st.lists(
        st.builds(lambda r: {"resource": r}, records_like(PATIENT) | records_like(OBSERVATION))
        | st.builds(lambda u: {"request": {"method": "DELETE", "url": u}}, st.text(max_size=20))
        | json_values,
        max_size=8,
    )
    documents = st.builds(
        lambda e, kind: {"resourceType": "Bundle", "type": kind, "entry": e},
        entries,
        st.sampled_from(["collection", "transaction", "searchset"]),
    ).map(orjson.dumps)
    return documents | documents.flatmap(mutations) | mutations(seed("fhir_bundle/collection.json"))


def _repeats_a_member(data: bytes) -> bool:
    """Whether any JSON object of `data` names a member twice (an independent check: the standard library)."""
    repeated = False

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        nonlocal repeated
        repeated |= len({k for k, _ in items}) < len(items)
        return dict(items)

    try:
        json.loads(data.removeprefix(b"\xef\xbb\xbf"), object_pairs_hook=pairs)
    except (ValueError, RecursionError):  # what the standard library cannot read, it cannot judge
        return False
    return repeated


@PROPERTY
@given(st.lists(bundles(), min_size=1, max_size=4))
def test_fhir_bundles_alone_and_in_a_batch(documents: list[bytes]) -> None:
    alone = [read_fhir_document(data, KNOWN) for data in documents]
    for data, result in zip(documents, alone, strict=True):
        check(result)
        try:
            value = orjson.loads(data.removeprefix(b"\xef\xbb\xbf"))
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            entries = value.get("entry") or []
            if _repeats_a_member(data):  # invalid_json, the document whole (orjson keeps the last value)
                assert result.bronze.is_empty() and result.quarantine["entry"].to_list() == [None]
            elif isinstance(entries, list):
                found = pl.concat([result.bronze["entry"], result.quarantine["entry"]]).sort().to_list()
                assert found == list(range(len(entries)))
    # batch reading (many small documents at once) must not change any document's outcome
    together = read_fhir_documents(documents, KNOWN)
    for one, batched in zip(alone, together, strict=True):
        assert one.bronze.equals(batched.bronze)
        assert one.quarantine.equals(batched.quarantine)


# --- Bulk Data manifests ---------------------------------------------------------------------------------
url_parts = st.sampled_from(
    ["Patient.000.ndjson", "..", ".", "", "/", "%2e%2e", "%2F", "%00", "sub", "C:", "\\", "..\\", "x.gz", "~"]
)
urls = (
    st.lists(url_parts, max_size=5).map("/".join)
    | st.builds(
        lambda scheme, rest: f"{scheme}{rest}",
        st.sampled_from(["http://h/", "https://h/a/", "file://", "file:", "ftp://h/", "//h/", "s3://b/", ""]),
        st.lists(url_parts, max_size=4).map("/".join),
    )
    | st.text(max_size=30)
)


@PROPERTY
@given(st.lists(urls, max_size=8))
def test_manifest_urls_never_leave_the_source_folder(listed: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "landing"
        source = root / "ehr"
        (source / "sub").mkdir(parents=True)
        (source / "Patient.000.ndjson").write_bytes(ndjson(PATIENT))
        (Path(tmp) / "secret.ndjson").write_bytes(ndjson(PATIENT))
        body = {
            "transactionTime": "2026-06-30T23:00:00Z",
            "output": [{"type": "X", "url": u} for u in listed],
        }
        (source / "manifest.json").write_bytes(orjson.dumps(body))
        plan = d.discover(UPath(root))
        outputs = [f for f in plan.files if f.format != d.BULK_MANIFEST]
        real_source = os.path.realpath(source)
        for planned in outputs:
            assert os.path.commonpath([os.path.realpath(planned.path), real_source]) == real_source
            assert planned.path.is_file()
        # every listed url is read once, refused or missing: nothing else is planned
        assert len(outputs) + len(plan.manifest_issues) <= len(listed)
        assert {i.url for i in plan.manifest_issues} <= set(listed)


@PROPERTY
@given(urls)
def test_resolving_a_url_never_climbs_out(url: str) -> None:
    source = UPath("/landing/ehr")
    path, refusal = d.resolve_manifest_url(source, url)
    assert (path is None) != (refusal is None)
    if path is not None:
        inside = PurePosixPath(str(path)).relative_to("/landing/ehr")
        assert inside.parts and ".." not in inside.parts


@PROPERTY
@given(
    json_values
    | st.dictionaries(st.sampled_from(["transactionTime", "output", "deleted", "error"]), json_values)
)
def test_arbitrary_manifests_are_planned_or_refused(body: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "ehr"
        source.mkdir()
        (source / "manifest.json").write_bytes(orjson.dumps(body))
        plan = d.discover(UPath(tmp))
        assert [f.format for f in plan.files][:1] == [d.BULK_MANIFEST]


# --- device payloads -------------------------------------------------------------------------------------
OMH_POINT = orjson.loads(seed("omh_ndjson/clean.ndjson").splitlines()[0])


@PROPERTY
@given(mutations(seed("omh_ndjson/clean.ndjson")))
def test_openmhealth_ndjson_mutated_bytes(data: bytes) -> None:
    check_lines(data, read_omh_ndjson(data, "folder-user"))


@PROPERTY
@given(
    st.lists(
        records_like(OMH_POINT) | records_like({"header": OMH_POINT["header"]}) | json_values, max_size=10
    )
)
def test_openmhealth_documents(values: list[object]) -> None:
    data = orjson.dumps(values)
    result = read_omh_document(data, None)
    check(result)
    assert result.records_in == len(values)
    check(read_omh_document(data[: len(data) // 2], None))


def vendor_payloads(seed_file: str) -> st.SearchStrategy[bytes]:
    template = orjson.loads(seed(seed_file))
    structured = records_like(template).map(orjson.dumps)
    return structured | mutations(seed(seed_file)) | json_values.map(orjson.dumps)


@PROPERTY
@given(vendor_payloads("ihealth/bp_clean.json"))
def test_ihealth_payloads(data: bytes) -> None:
    check(read_ihealth_payload(data, "ih-user"))


@PROPERTY
@given(
    vendor_payloads("withings/measuregrps_clean.json") | vendor_payloads("withings/series_keyed_by_time.json")
)
def test_withings_payloads(data: bytes) -> None:
    check(read_withings_payload(data, "wi-user"))


@PROPERTY
@given(vendor_payloads("fitbit/weight_clean.json") | vendor_payloads("fitbit/intraday_clean.json"))
def test_fitbit_payloads(data: bytes) -> None:
    check(read_fitbit_payload(data, "fb-user"))


# --- CSV -------------------------------------------------------------------------------------------------
csv_fields = st.text(max_size=8) | st.sampled_from(['"', '""', ",", "\n", "\r", '"a,b"', "Zorblax", ""])
csv_rows = st.lists(csv_fields, min_size=0, max_size=11).map(lambda fields: ",".join(fields))


@PROPERTY
@given(
    mutations(seed("device_csv/clean.csv"))
    | st.lists(csv_rows, max_size=8).map(
        lambda rows: (
            seed("device_csv/clean.csv").splitlines(keepends=True)[0].decode() + "\n".join(rows)
        ).encode()
    )
)
def test_device_csv(data: bytes) -> None:
    check(read_device_csv(data, load_csv_mapping("generic_bp_csv")))


@PROPERTY
@given(mutations(seed("enrolment_csv/clean.csv")))
def test_enrolment_csv(data: bytes) -> None:
    check(read_enrolment_csv(data))


# --- conversations and compressed files ------------------------------------------------------------------
CONVERSATION = orjson.loads(seed("conversations/clean.ndjson").splitlines()[0])


@PROPERTY
@given(
    mutations(seed("conversations/clean.ndjson"))
    | st.lists(records_like(CONVERSATION) | json_values, max_size=8).map(lambda v: ndjson(*v))
)
def test_conversations(data: bytes) -> None:
    check_lines(data, read_conversations_ndjson(data))


# --- outreach outcome events --------------------------------------------------------------------------------
OUTREACH_EVENT = orjson.loads(seed("outreach_events/events.ndjson").splitlines()[1])
OUTREACH_HEADER = seed("outreach_events/clean.csv").splitlines(keepends=True)[0]


def check_outreach(result: ReadResult) -> None:
    """Every outreach event kept in bronze is complete and normalized, its reply text only in raw."""
    check(result)
    bronze = result.bronze
    assert set(bronze["channel"].to_list()) <= set(CHANNELS)
    assert set(bronze["event"].to_list()) <= set(EVENTS)
    assert set(bronze["reply_keyword"].to_list()) <= {"STOP", "START", "HELP", "OTHER", None}
    required = ["event_id", "campaign_id", "run_id", "occurred_at", "patient_key"]
    assert not bronze.select(pl.any_horizontal(pl.col(required).is_null()).any()).item()
    assert "reply_text" not in bronze.columns


@PROPERTY
@given(
    mutations(seed("outreach_events/events.ndjson"))
    | st.lists(records_like(OUTREACH_EVENT) | json_values, max_size=8).map(lambda v: ndjson(*v))
)
def test_outreach_events_ndjson(data: bytes) -> None:
    result = read_outreach_events_ndjson(data)
    check_lines(data, result)
    check_outreach(result)


@PROPERTY
@given(
    mutations(seed("outreach_events/clean.csv"))
    | st.lists(csv_rows, max_size=8).map(lambda rows: OUTREACH_HEADER + "\n".join(rows).encode())
)
def test_outreach_events_csv(data: bytes) -> None:
    check_outreach(read_outreach_events_csv(data))


field_texts = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00\ufeff"), max_size=8
) | st.sampled_from(
    [
        *CHANNELS,
        *EVENTS,
        "SMS",
        " Email ",
        "opted_out",
        "2026-06-30T08:15:00Z",
        "2026-06-30T10:15:00.5+02:00",
        "2026-06-30T08:15:00",
        "2026-06-30",
        "P1",
        "urn:oid:1.2.3|MRN-1",
        "STOP",
        " start ",
        "",
        "  ",
        "Zorblax Quuxley",
    ]
)
outreach_events = st.fixed_dictionaries(
    {
        "campaign_id": st.just("c") | field_texts,
        "run_id": st.just("r") | field_texts,
        "channel": st.sampled_from(CHANNELS) | field_texts,
        "event": st.sampled_from(EVENTS) | field_texts,
        "occurred_at": st.just("2026-06-30T08:15:00Z") | field_texts,
    },
    optional={name: field_texts for name in ("event_id", "person_id", "source_identifier", "reply_text")},
)


@PROPERTY
@given(st.lists(outreach_events, min_size=1, max_size=8))
def test_outreach_events_read_the_same_from_csv_and_ndjson(events: list[dict[str, str]]) -> None:
    """The same events delivered as CSV and as JSON lines: the same bronze rows (derived ids included)
    and the same quarantine reasons."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(events)
    as_csv = read_outreach_events_csv(out.getvalue().encode())
    as_ndjson = read_outreach_events_ndjson(ndjson(*events))
    check_outreach(as_csv)
    check_outreach(as_ndjson)
    columns = pl.exclude("line", "record_format", "raw")
    assert as_csv.bronze.select(columns).equals(as_ndjson.bronze.select(columns))
    assert (as_csv.bronze["line"] - 1).equals(as_ndjson.bronze["line"])
    reasons = ["line", "reason_code", "reason"]
    assert (
        as_csv.quarantine.select(pl.col("line") - 1, *reasons[1:])
        .sort("line")
        .equals(as_ndjson.quarantine.select(reasons).sort("line"))
    )


SMALL_LIMITS = DecompressionLimits(max_bytes=1 << 16, max_ratio=50, ratio_floor=1 << 12)


@PROPERTY
@given(st.binary(max_size=2000) | mutations(gzip.compress(seed("fhir_ndjson/clean.ndjson"))))
def test_gunzip_refuses_or_returns_within_the_limits(data: bytes) -> None:
    try:
        content = gunzip(data, SMALL_LIMITS)
    except DecompressionRefused as refused:
        assert refused.code in REASON_CODES and not any(m in str(refused) for m in MARKERS)
        return
    assert len(content) <= SMALL_LIMITS.max_bytes
    assert len(content) <= max(SMALL_LIMITS.ratio_floor, SMALL_LIMITS.max_ratio * len(data))


@PROPERTY
@given(st.binary(max_size=5000))
def test_gunzip_round_trips(content: bytes) -> None:
    assert gunzip(gzip.compress(content), DecompressionLimits()) == content
