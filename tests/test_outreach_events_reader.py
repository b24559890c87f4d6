"""Outreach outcome files (`format: outreach_events`) through the real ingest into bronze/outreach_events.

Each test builds a landing folder with an outreach vendor source and ingests it into its own lake with
`ingest_landing`, then reads the stored tables back: typed values and buckets, the derived event id, reply
keywords, quarantine by reason code, file and line, no record content outside `raw`, idempotence, gzip.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl
import pytest
from upath import UPath

from assets.bronze.assets import OUTREACH_EVENTS_KEY, bronze_ingest
from pipelines.bronze import discovery as d
from pipelines.bronze import outreach_reader
from pipelines.bronze.accounting import accounting_discrepancies, accounting_table
from pipelines.bronze.ingest import IngestReport, ingest_landing
from pipelines.bronze.outreach_reader import FIELDS, read_outreach_events_csv, read_outreach_events_ndjson
from pipelines.bronze.tables import OUTREACH_EVENT_SCHEMA, PROVENANCE_SCHEMA
from pipelines.buckets import bucket_of
from pipelines.lake import parquet_files, read_table, table_path

SOURCE = "sms_vendor"
BUCKETS = 8
PLANTED = "Zorblax Quuxley"
"""A made-up patient name planted in reply texts and details: it must stay inside `raw`."""
HEADER = (*FIELDS, "detail")
EVENT: dict[str, str] = {
    "campaign_id": "breast_screening_reminder",
    "run_id": "2026-06-30",
    "person_id": "P1",
    "channel": "sms",
    "event": "delivered",
    "occurred_at": "2026-06-30T08:15:00Z",
}


# --- helpers ---------------------------------------------------------------------------------------------
def event(**fields: object) -> dict[str, object]:
    """EVENT with some fields changed (None removes a field)."""
    merged = {**EVENT, **fields}
    return {k: v for k, v in merged.items() if v is not None}


def csv_bytes(*events: dict[str, object], header: tuple[str, ...] = HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(events)
    return out.getvalue().encode()


def ndjson_bytes(*events: dict[str, object] | bytes) -> bytes:
    return b"".join((e if isinstance(e, bytes) else orjson.dumps(e)) + b"\n" for e in events)


def deliver(landing: UPath, files: dict[str, bytes], source: str = SOURCE, declared: bool = True) -> Path:
    folder = Path(landing) / source
    folder.mkdir(parents=True, exist_ok=True)
    if declared:
        (folder / "source.yaml").write_text("format: outreach_events\n")
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def ingest(landing: UPath, lake: UPath) -> IngestReport:
    report = ingest_landing(landing, lake, buckets=BUCKETS, workers=1)
    assert report.unbalanced_files == 0
    assert accounting_discrepancies(lake).is_empty()
    return report


def stored(lake: UPath, table: str) -> pl.DataFrame:
    if not parquet_files(table_path(lake, "bronze", table)):
        return pl.DataFrame()
    return read_table(lake, "bronze", table)


def expected_event_id(**fields: str | None) -> str:
    """The derived id as the contract documents it (written here independently of the reader)."""
    parts = [
        "-" if fields.get(name) is None else f"{len(str(fields[name]).encode())}:{fields[name]}"
        for name in (
            "campaign_id",
            "run_id",
            "person_id",
            "source_identifier",
            "channel",
            "event",
            "occurred_at",
        )
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


# --- landing a delivery ----------------------------------------------------------------------------------
def test_a_csv_and_an_ndjson_delivery_land_typed_in_their_buckets(landing: UPath, lake: UPath) -> None:
    csv_events = [
        event(event_id="ev-1", person_id="P1", channel="SMS", event="Delivered"),
        event(
            event_id="ev-2",
            person_id=None,
            source_identifier="urn:oid:1.2.3|MRN-2",
            channel="email",
            event="bounced",
            occurred_at="2026-06-30T08:15:00.250-04:00",
            detail="550 " + PLANTED,
        ),
        event(
            event_id="ev-3",
            person_id="P3",
            source_identifier="urn:oid:1.2.3|MRN-3",
            channel=" Phone ",
            event="CALLED_NO_ANSWER",
            occurred_at="2026-06-30 10:00:00+0200",
        ),
    ]
    ndjson_events = [
        event(
            event_id="ev-4", person_id="P4", channel="mail", event="booked", occurred_at="2026-07-01T09:00Z"
        ),
        event(event_id="ev-5", person_id="P1", event="opted_out", reply_text="STOP", vendor={"cost": 0.01}),
    ]
    deliver(landing, {"events.csv": csv_bytes(*csv_events), "events.ndjson": ndjson_bytes(*ndjson_events)})
    report = ingest(landing, lake)
    assert report.records_in == 5 and report.rows["outreach_events"] == 5 and not report.quarantine_by_reason

    bronze = stored(lake, "outreach_events").sort("event_id")
    assert set(bronze.columns) == {*PROVENANCE_SCHEMA, *OUTREACH_EVENT_SCHEMA, "bucket"}
    assert bronze.schema["occurred_at"] == pl.Datetime("us", "UTC")
    assert bronze.select(
        "event_id", "record_format", "file", "line", "person_id", "source_identifier", "channel", "event"
    ).rows() == [
        ("ev-1", "csv", f"{SOURCE}/events.csv", 2, "P1", None, "sms", "delivered"),
        ("ev-2", "csv", f"{SOURCE}/events.csv", 3, None, "urn:oid:1.2.3|MRN-2", "email", "bounced"),
        ("ev-3", "csv", f"{SOURCE}/events.csv", 4, "P3", "urn:oid:1.2.3|MRN-3", "phone", "called-no-answer"),
        ("ev-4", "ndjson", f"{SOURCE}/events.ndjson", 1, "P4", None, "mail", "booked"),
        ("ev-5", "ndjson", f"{SOURCE}/events.ndjson", 2, "P1", None, "sms", "opted-out"),
    ]
    assert bronze["occurred_at"].to_list() == [
        datetime(2026, 6, 30, 8, 15, tzinfo=UTC),
        datetime(2026, 6, 30, 12, 15, 0, 250_000, tzinfo=UTC),
        datetime(2026, 6, 30, 8, 0, tzinfo=UTC),
        datetime(2026, 7, 1, 9, 0, tzinfo=UTC),
        datetime(2026, 6, 30, 8, 15, tzinfo=UTC),
    ]
    assert bronze["campaign_id"].unique().to_list() == ["breast_screening_reminder"]
    assert bronze["run_id"].unique().to_list() == ["2026-06-30"]
    assert bronze["reply_keyword"].to_list() == [None, None, None, None, "STOP"]
    assert bronze["entry"].is_null().all() and (bronze["source"] == SOURCE).all()
    # the patient key is person_id, else source_identifier; buckets as for every per-patient bronze table
    assert bronze["patient_key"].to_list() == ["P1", "urn:oid:1.2.3|MRN-2", "P3", "P4", "P1"]
    assert bronze["bucket"].to_list() == [bucket_of(SOURCE, k, BUCKETS) for k in bronze["patient_key"]]
    # raw: a CSV row as a JSON object of header → value, a JSON line as it came
    assert orjson.loads(bronze["raw"][1]) == {h: str(csv_events[1].get(h, "")) for h in HEADER}
    assert orjson.loads(bronze["raw"][4]) == ndjson_events[1]
    log = stored(lake, "ingest_log").sort("file")
    assert log.select("format", "target_table", "records_in", "records_bronze").rows() == [
        ("outreach_events_csv", "outreach_events", 3, 3),
        ("outreach_events_ndjson", "outreach_events", 2, 2),
    ]
    accounting = accounting_table(lake)
    assert accounting["found_bronze"].sum() == 5


def test_files_of_an_outreach_source_are_planned_by_suffix(landing: UPath) -> None:
    data = csv_bytes(event())
    deliver(
        landing,
        {
            "a.csv": data,
            "b.ndjson": ndjson_bytes(event()),
            "c.jsonl": ndjson_bytes(event()),
            "d.csv.gz": gzip.compress(data),
            "e.json": b"{}",
            "README.md": b"vendor notes",
        },
    )
    plan = d.discover(landing)
    assert {f.relative.split("/")[-1]: f.format for f in plan.files} == {
        "a.csv": d.OUTREACH_CSV,
        "b.ndjson": d.OUTREACH_NDJSON,
        "c.jsonl": d.OUTREACH_NDJSON,
        "d.csv.gz": d.OUTREACH_CSV,
        "e.json": d.UNRECOGNIZED,
    }


def test_the_bronze_asset_lists_the_table() -> None:
    assert OUTREACH_EVENTS_KEY in bronze_ingest.keys


# --- the derived event id --------------------------------------------------------------------------------
def test_the_derived_event_id_is_stable_and_the_same_for_csv_and_ndjson(tmp_path: Path) -> None:
    """One event without a vendor id, delivered as CSV by one vendor and as NDJSON by another, spelt
    differently (case, `_`, white space, another UTC offset for the same instant), in two lakes."""
    as_csv = event(
        person_id=" P1 ",
        channel="SMS",
        event="OPTED_OUT",
        occurred_at="2026-06-30T10:15:00+02:00",
        reply_text="STOP",
        detail="first",
    )
    as_ndjson = event(
        channel="sms", event="opted-out", occurred_at="2026-06-30T08:15:00.000Z", detail="again"
    )
    other = event(occurred_at="2026-06-30T08:15:01Z")
    ids = []
    for run in ("one", "two"):
        landing, lake = UPath(tmp_path / run / "landing"), UPath(tmp_path / run / "lake")
        deliver(landing, {"events.csv": csv_bytes(as_csv, other)}, source="vendor_a")
        deliver(landing, {"events.ndjson": ndjson_bytes(as_ndjson)}, source="vendor_b")
        ingest(landing, lake)
        bronze = stored(lake, "outreach_events").sort("source", "line")
        ids.append(bronze["event_id"].to_list())
    assert ids[0] == ids[1]  # stable across runs and lakes
    csv_id, other_id, ndjson_id = ids[0]
    assert csv_id == ndjson_id != other_id
    assert csv_id == expected_event_id(
        campaign_id="breast_screening_reminder",
        run_id="2026-06-30",
        person_id="P1",
        channel="sms",
        event="opted-out",
        occurred_at="2026-06-30T08:15:00.000000Z",
    )


def test_a_vendor_event_id_is_kept_and_an_empty_one_is_derived() -> None:
    data = csv_bytes(event(event_id=" vendor-42 "), event(event_id=""), event(event_id=None))
    bronze = read_outreach_events_csv(data).bronze
    vendor, empty, absent = bronze["event_id"].to_list()
    assert vendor == "vendor-42"
    assert empty == absent == expected_event_id(**{**EVENT, "occurred_at": "2026-06-30T08:15:00.000000Z"})


def test_the_canonical_content_keeps_fields_apart() -> None:
    """Length prefixes: moving a `|` from one field into its neighbour gives another id."""
    a = event(run_id="r|x", person_id="y")
    b = event(run_id="r", person_id="x|y")
    c = event(person_id="x", source_identifier=None)
    e = event(person_id=None, source_identifier="x|y")
    ids = read_outreach_events_ndjson(ndjson_bytes(a, b, c, e)).bronze["event_id"].to_list()
    assert len(set(ids)) == 4


# --- reply keywords --------------------------------------------------------------------------------------
KEYWORDS = [
    *[(text, "STOP") for text in ("STOP", " stop ", "Stop", "STOPALL", "unsubscribe", "CANCEL", "end")],
    *[(text, "STOP") for text in ("QUIT", "optout", "OPT-OUT", "Revoke", "\tSTOP ")],
    *[(text, "START") for text in ("START", "unstop", "Yes", "SUBSCRIBE")],
    *[(text, "HELP") for text in ("HELP", "info", " Help ")],
    *[(text, "OTHER") for text in ("stop please", "STOP.", "no", PLANTED, "opt out", "1")],
    *[(text, None) for text in ("", "   ", None)],
]


def test_reply_keywords_are_derived_and_the_reply_text_stays_in_raw(landing: UPath, lake: UPath) -> None:
    texts = [f"{PLANTED} {i}" for i in range(3)]
    replies = [event(event_id=f"k{i}", event="replied", reply_text=t) for i, (t, _) in enumerate(KEYWORDS)]
    marked = [event(event_id=f"m{i}", event="replied", reply_text=t, detail=t) for i, t in enumerate(texts)]
    deliver(landing, {"replies.ndjson": ndjson_bytes(*replies, *marked), "replies.csv": csv_bytes(*replies)})
    ingest(landing, lake)
    bronze = stored(lake, "outreach_events")
    for record_format in ("ndjson", "csv"):
        rows = bronze.filter(
            (pl.col("record_format") == record_format) & pl.col("event_id").str.starts_with("k")
        )
        found = dict(rows.select("event_id", "reply_keyword").iter_rows())
        assert found == {f"k{i}": keyword for i, (_, keyword) in enumerate(KEYWORDS)}, record_format
    assert "reply_text" not in bronze.columns and "detail" not in bronze.columns
    outside_raw = repr(bronze.drop("raw").rows())
    assert PLANTED not in outside_raw and "unsubscribe" not in outside_raw.lower()
    assert bronze["raw"].str.contains(PLANTED).sum() == 3 + 1 + 1  # the marked events and the OTHER replies


@pytest.mark.parametrize(("text", "keyword"), KEYWORDS, ids=repr)
def test_reply_keyword_of_one_text(text: str | None, keyword: str | None) -> None:
    result = read_outreach_events_ndjson(ndjson_bytes(event(event="replied", reply_text=text)))
    assert result.bronze["reply_keyword"].to_list() == [keyword]


# --- bad records -----------------------------------------------------------------------------------------
def _line(**fields: object) -> bytes:
    return orjson.dumps(event(reply_text=PLANTED, detail=PLANTED, **fields))


BAD_NDJSON = {
    "missing_campaign_id": (_line(campaign_id=None), "missing_field", "campaign_id"),
    "empty_run_id": (_line(run_id="  "), "missing_field", "run_id"),
    "missing_both_person_ids": (_line(person_id=None), "missing_id", "person_id"),
    "unknown_event": (_line(event="read"), "unknown_event", "event"),
    "unknown_channel": (_line(channel="pigeon"), "unknown_channel", "channel"),
    "timestamp_without_offset": (_line(occurred_at="2026-06-30T08:15:00"), "invalid_timestamp", "offset"),
    "date_only": (_line(occurred_at="2026-06-30"), "invalid_timestamp", "date"),
    "not_a_timestamp": (_line(occurred_at=PLANTED), "invalid_timestamp", "ISO 8601"),
    "not_system_value": (_line(source_identifier=PLANTED), "invalid_id", "source_identifier"),
    "person_id_a_number": (_line(person_id=12), "invalid_field_type", "person_id"),
    "not_a_json_object": (orjson.dumps([PLANTED]), "not_an_object", "array"),
    "invalid_json": (b'{"campaign_id": "c", "reply_text": "' + PLANTED.encode(), "invalid_json", "JSON"),
    "invalid_utf8": (b'{"reply_text": "Zorbl\xe4x Quuxley"}', "invalid_utf8", "UTF-8"),
}
BAD_CSV = {
    "missing_campaign_id": (csv_bytes(event(campaign_id="", reply_text=PLANTED)), "missing_field"),
    "missing_both_person_ids": (csv_bytes(event(person_id="", detail=PLANTED)), "missing_id"),
    "unknown_event": (csv_bytes(event(event="Zorblax")), "unknown_event"),
    "unknown_channel": (csv_bytes(event(channel="fax", reply_text=PLANTED)), "unknown_channel"),
    "timestamp_without_offset": (csv_bytes(event(occurred_at="2026-06-30 08:15")), "invalid_timestamp"),
    "date_only": (csv_bytes(event(occurred_at="2026-06-30", detail=PLANTED)), "invalid_timestamp"),
    "ragged_row": (
        csv_bytes(event()) + f"ev,c,r,P1,,sms,sent,2026-06-30T08:15:00Z,{PLANTED},x,y\n".encode(),
        "malformed_csv_row",
    ),
    "unclosed_quote": (
        csv_bytes(event()) + f'ev,c,r,P1,,sms,sent,2026-06-30T08:15:00Z,"{PLANTED},\n'.encode(),
        "unclosed_quote",
    ),
    "invalid_utf8": (
        csv_bytes(event()) + "ev,c,r,P1,,sms,sent,2026-06-30T08:15:00Z,Zorbläx,\n".encode("latin-1"),
        "invalid_utf8",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_NDJSON))
def test_a_bad_json_line_is_quarantined_at_its_file_and_line(
    name: str, landing: UPath, lake: UPath, caplog: pytest.LogCaptureFixture
) -> None:
    line, code, named = BAD_NDJSON[name]
    good = orjson.dumps(event(event_id="good"))
    deliver(
        landing, {"events.ndjson": good + b"\n\n" + line + b"\n" + good.replace(b"good", b"good-2") + b"\n"}
    )
    caplog.set_level(logging.DEBUG)
    report = ingest(landing, lake)
    quarantine = stored(lake, "quarantine")
    assert quarantine.select("target_table", "reason_code", "file", "line").rows() == [
        ("outreach_events", code, f"{SOURCE}/events.ndjson", 3)
    ]
    assert named in quarantine["reason"][0]
    assert bytes(quarantine["raw"][0]) == line  # kept byte for byte
    assert stored(lake, "outreach_events")["event_id"].to_list() == ["good", "good-2"]
    log = stored(lake, "ingest_log")
    assert log.select("records_in", "records_bronze", "records_quarantined", "blank_lines").row(0) == (
        3,
        2,
        1,
        1,
    )
    assert_no_content(lake, report, caplog)


@pytest.mark.parametrize("name", sorted(BAD_CSV))
def test_a_bad_csv_row_is_quarantined_at_its_file_and_line(
    name: str, landing: UPath, lake: UPath, caplog: pytest.LogCaptureFixture
) -> None:
    data, code = BAD_CSV[name]
    if code in ("malformed_csv_row", "invalid_utf8", "unclosed_quote"):  # the bad row follows a good one
        bad_line, kept = 3, 1
    else:
        bad_line, kept = 2, 0
    caplog.set_level(logging.DEBUG)
    deliver(landing, {"events.csv": data})
    report = ingest(landing, lake)
    quarantine = stored(lake, "quarantine")
    assert quarantine.select("target_table", "reason_code", "file", "line").rows() == [
        ("outreach_events", code, f"{SOURCE}/events.csv", bad_line)
    ]
    assert stored(lake, "outreach_events").height == kept
    assert_no_content(lake, report, caplog)


@pytest.mark.parametrize(
    ("header", "named"),
    [
        (tuple(h for h in HEADER if h != "occurred_at"), "occurred_at"),
        (tuple(h for h in HEADER if h not in ("campaign_id", "run_id")), "campaign_id', 'run_id"),
        (
            tuple(h for h in HEADER if h not in ("person_id", "source_identifier")),
            "person_id or source_identifier",
        ),
    ],
)
def test_a_header_without_required_columns_quarantines_every_row_naming_them(
    header: tuple[str, ...], named: str, landing: UPath, lake: UPath
) -> None:
    deliver(landing, {"events.csv": csv_bytes(event(reply_text=PLANTED), event(), header=header)})
    ingest(landing, lake)
    quarantine = stored(lake, "quarantine")
    assert quarantine.select("reason_code", "line").rows() == [
        ("unrecognized_format", 2),
        ("unrecognized_format", 3),
    ]
    assert all(named in reason for reason in quarantine["reason"])
    assert stored(lake, "outreach_events").is_empty()


def assert_no_content(lake: UPath, report: IngestReport, caplog: pytest.LogCaptureFixture) -> None:
    """The planted name (or its start, for the undecodable spelling) is nowhere but in raw records."""
    markers = (PLANTED, "Zorbl")
    texts = [
        *stored(lake, "quarantine")["reason"].to_list(),
        repr(stored(lake, "ingest_log").rows()),
        repr(report.as_metadata()),
        repr(dict(report.quarantine_by_reason)),
        *[r.getMessage() for r in caplog.records],
    ]
    assert not [t for t in texts if any(m in t for m in markers)]
    bronze = stored(lake, "outreach_events")
    if not bronze.is_empty():
        assert not any(m in repr(bronze.drop("raw").rows()) for m in markers)


def test_a_reader_failure_quoting_a_record_keeps_the_file_and_quotes_nothing(
    landing: UPath, lake: UPath, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(fields: pl.DataFrame, record_format: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        raise ValueError(f"cannot read {fields['raw'][0]}")  # a bug whose message quotes the record

    monkeypatch.setattr(outreach_reader, "_events", explode)
    data = ndjson_bytes(event(reply_text=PLANTED))
    deliver(landing, {"events.ndjson": data})
    caplog.set_level(logging.DEBUG)
    report = ingest(landing, lake)
    quarantine = stored(lake, "quarantine")
    assert quarantine.select("target_table", "reason_code").rows() == [("outreach_events", "reader_error")]
    assert bytes(quarantine["raw"][0]) == data
    assert_no_content(lake, report, caplog)


# --- duplicates, re-runs, compression, other folders -----------------------------------------------------
def test_the_same_event_delivered_twice_stays_two_rows(landing: UPath, lake: UPath) -> None:
    same = event(event="replied", reply_text="STOP")
    deliver(landing, {"a.ndjson": ndjson_bytes(same, same), "b.csv": csv_bytes(same)})
    ingest(landing, lake)
    bronze = stored(lake, "outreach_events")
    assert bronze.height == 3 and bronze["event_id"].n_unique() == 1


def test_a_rerun_ingests_nothing_new(landing: UPath, lake: UPath) -> None:
    deliver(landing, {"a.csv": csv_bytes(event(), event(person_id="")), "b.ndjson": ndjson_bytes(event())})
    ingest(landing, lake)
    before = {t: stored(lake, t).drop("ingest_run_id") for t in ("outreach_events", "quarantine")}
    parts = sorted(str(p) for p in parquet_files(lake / "bronze"))
    again = ingest(landing, lake)
    assert again.files_ingested == 0 and again.records_in == 0 and again.files_skipped_duplicate == 2
    assert sorted(str(p) for p in parquet_files(lake / "bronze")) == parts
    for table, frame in before.items():
        assert stored(lake, table).drop("ingest_run_id").equals(frame), table


def test_gzip_deliveries_are_read_as_the_files_they_hold(landing: UPath, lake: UPath) -> None:
    plain_csv = csv_bytes(event(event_id="c1"), event(event_id="c2", channel="pigeon"))
    plain_ndjson = ndjson_bytes(event(event_id="n1"), b"[1]")
    deliver(landing, {"a.csv.gz": gzip.compress(plain_csv), "b.ndjson.gz": gzip.compress(plain_ndjson)})
    ingest(landing, lake)
    assert sorted(stored(lake, "outreach_events")["event_id"].to_list()) == ["c1", "n1"]
    assert sorted(stored(lake, "quarantine").select("reason_code", "line").rows()) == [
        ("not_an_object", 2),
        ("unknown_channel", 3),
    ]
    log = stored(lake, "ingest_log").sort("file")
    assert log["format"].to_list() == ["outreach_events_csv", "outreach_events_ndjson"]


def test_outreach_files_elsewhere_are_not_read_as_outreach_events(landing: UPath, lake: UPath) -> None:
    files = {"events.csv": csv_bytes(event(reply_text=PLANTED)), "events.ndjson": ndjson_bytes(event())}
    deliver(landing, files, source="undeclared", declared=False)
    conversations = deliver(landing, {"events.jsonl": ndjson_bytes(event(event_id="x"))}, source="chats")
    (conversations / "source.yaml").write_text("format: conversations\n")
    report = ingest(landing, lake)
    assert stored(lake, "outreach_events").is_empty() and report.rows["outreach_events"] == 0
    quarantine = stored(lake, "quarantine")
    assert sorted(quarantine.select("file", "target_table", "reason_code").rows()) == [
        ("chats/events.jsonl", "feedback_records", "missing_id"),
        ("undeclared/events.csv", "device_records", "unrecognized_format"),
        ("undeclared/events.ndjson", "fhir_resources", "missing_resource_type"),
    ]
