"""CSV records as RFC 4180 says (`pipelines/bronze/csv_records.py`): quoted line breaks, CRLF, doubled
quotes, a quote never closed, and the line each record starts on."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.bronze import csv_records
from pipelines.bronze.csv_records import UNCLOSED_QUOTE, split_csv_records
from pipelines.bronze.device_reader import load_csv_mapping, read_device_csv, read_enrolment_csv
from pipelines.bronze.outreach_reader import read_outreach_events_csv
from pipelines.outreach.responses import current_opt_outs


def records(data: bytes) -> list[tuple[int, str]]:
    split = split_csv_records(data)
    return list(split.records.select("line", "raw").iter_rows())


def test_a_quoted_line_break_stays_in_its_record_and_the_next_record_keeps_its_line() -> None:
    data = b'h1,h2\na,"STOP\nplease"\nb,c\n'
    assert records(data) == [(1, "h1,h2"), (2, 'a,"STOP\nplease"'), (4, "b,c")]
    assert split_csv_records(data).fields.tolist() == [2, 2, 2]


def test_crlf_ends_records_and_stays_inside_a_quoted_field() -> None:
    data = b'h1,h2\r\na,"x\r\ny"\r\n\r\nb,c\r\n'
    split = split_csv_records(data)
    assert records(data) == [(1, "h1,h2"), (2, 'a,"x\r\ny"'), (5, "b,c")]
    assert split.blank_lines == 1


def test_doubled_quotes_commas_and_quotes_that_do_not_start_a_field() -> None:
    data = b'h1,h2,h3\n"a ""b"", c",8"1,x\n"","""", ""\n'
    split = split_csv_records(data)
    assert records(data)[1:] == [(2, '"a ""b"", c",8"1,x'), (3, '"","""", ""')]
    assert split.fields.tolist() == [3, 3, 3]


def test_an_unclosed_quote_sets_aside_its_first_line_and_reading_resumes_on_the_next() -> None:
    data = b'h1,h2\na,b\nc,"never closed\nd,e\n'
    split = split_csv_records(data)
    assert records(data) == [(1, "h1,h2"), (2, "a,b"), (4, "d,e")]
    assert split.unclosed.select("line", "raw").rows() == [(3, b'c,"never closed')]
    assert UNCLOSED_QUOTE == "unclosed_quote"


def test_an_unclosed_quote_in_the_last_line_without_a_line_break() -> None:
    split = split_csv_records(b'h1,h2\na,b\nc,"cut off')
    assert split.records["line"].to_list() == [1, 2]
    assert split.unclosed["line"].to_list() == [3]


def test_a_bom_is_dropped_at_the_start_of_the_file_and_of_a_concatenated_one() -> None:
    data = b"\xef\xbb\xbfh1,h2\na,b\n\xef\xbb\xbfc,d\n"
    assert records(data) == [(1, "h1,h2"), (2, "a,b"), (3, "c,d")]


def test_invalid_utf8_inside_a_quoted_field_sets_aside_the_whole_record() -> None:
    data = b'h1,h2\na,"x\n\xff"\nb,c\n'
    split = split_csv_records(data)
    assert split.records["line"].to_list() == [1, 4]
    assert split.invalid_utf8.rows() == [(2, b'a,"x\n\xff"')]


def test_many_stray_quotes_are_resolved_by_walking_the_quotes(monkeypatch) -> None:
    data = b"h1,h2\n" + b'a"1,b\n' * 40 + b'x,"y\nz"\n'
    fast = records(data)
    monkeypatch.setattr(csv_records, "MAX_STRAY_QUOTE_PASSES", 0)
    assert records(data) == fast
    assert fast[-1] == (42, 'x,"y\nz"') and len(fast) == 42


# Python's csv module reads the same records (its default dialect is as lenient about stray quotes)
_TOKENS = st.sampled_from(['"', '""', ",", "\n", "a", "b c", '"x,y"', '"p\nq"', "", "Zorblax"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_TOKENS, max_size=40))
def test_records_and_fields_agree_with_pythons_csv_module(tokens: list[str]) -> None:
    text = "".join(tokens)
    split = split_csv_records(text.encode())
    if not split.unclosed.is_empty():
        return
    expected = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    kept = [(raw, fields) for raw, fields in zip(split.records["raw"], split.fields.tolist(), strict=True)]
    assert [len(row) for row in expected] == [fields for _, fields in kept]
    assert [row for row in expected] == [next(csv.reader([raw])) for raw, _ in kept]


# issue 25: every CSV reader splits its records here
CORPUS = Path(__file__).resolve().parent / "corpus"


def opt_outs(path: str) -> list[tuple[str, str, str, int]]:
    """The opt-outs the outreach responses derive from the events of a corpus CSV, as read by bronze."""
    read = read_outreach_events_csv((CORPUS / path).read_bytes())
    events = read.bronze.with_columns(pl.lit("sms_vendor").alias("source"), pl.lit(path).alias("file"))
    found = current_opt_outs(events)
    return list(found.select("person_id", "channel", "how", "line").iter_rows())


def test_a_stop_reply_with_a_line_break_is_one_event_and_an_opt_out() -> None:
    read = read_outreach_events_csv((CORPUS / "outreach_events/quoted_newline.csv").read_bytes())
    assert read.quarantine.is_empty() and read.records_in == 3
    assert read.bronze.select("event_id", "line", "reply_keyword").rows() == [
        ("ev-1", 2, "STOP"),
        ("ev-2", 4, None),
        ("ev-3", 5, "OTHER"),
    ]
    assert opt_outs("outreach_events/quoted_newline.csv") == [("P1", "sms", "reply STOP", 2)]


def test_a_crlf_file_with_a_stop_reply_on_two_lines() -> None:
    read = read_outreach_events_csv((CORPUS / "outreach_events/stop_reply_crlf.csv").read_bytes())
    assert read.bronze.select("event_id", "line", "reply_keyword").rows() == [
        ("ev-1", 2, None),
        ("ev-2", 3, "STOP"),
        ("ev-3", 5, "OTHER"),  # the keyword is the first line's: "Thanks" then "STOP" is not an opt-out
    ]
    assert opt_outs("outreach_events/stop_reply_crlf.csv") == [("P1", "sms", "reply STOP", 3)]


def test_a_device_csv_note_with_line_breaks_keeps_its_rows_and_their_lines() -> None:
    data = (CORPUS / "device_csv/note_with_line_break_crlf.csv").read_bytes()
    read = read_device_csv(data, load_csv_mapping("generic_bp_csv"))
    assert read.quarantine.is_empty() and read.records_in == 4
    assert read.bronze["line"].to_list() == [2, 4, 5, 8]
    notes = read.bronze["raw"].str.json_decode(pl.Struct({"note": pl.String, "value": pl.String}))
    assert notes.struct.field("value").to_list() == ["128", "81", "66", "131"]
    assert notes.struct.field("note").to_list()[1:] == ["", "two\n\nblank-separated lines", "no note"]
    assert (
        notes.struct.field("note")[0].endswith('felt "fine"') and "walk,\r\n" in notes.struct.field("note")[0]
    )


def test_an_unclosed_quote_at_the_end_of_an_enrolment_file() -> None:
    data = (CORPUS / "enrolment_csv/clean.csv").read_bytes() + b'ihealth,ih-9,dev-9,bp_cuff,ehr_a,"p9'
    read = read_enrolment_csv(data)
    assert read.bronze.height == 2
    assert read.quarantine.select("line", "reason_code").rows() == [(4, "unclosed_quote")]
