"""Line splitting and Arrow JSON parsing with exact isolation of bad lines."""

from __future__ import annotations

import json

import orjson
import polars as pl
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.bronze.lines import (
    MAX_JSON_DEPTH,
    NESTED_TOO_DEEPLY,
    json_depth,
    json_depths,
    parse_json_lines,
    split_lines,
)

SCHEMA = pa.schema([("id", pa.string())])


def test_split_lines_strips_bom_and_cr_and_counts_blank_lines() -> None:
    data = b'\xef\xbb\xbf{"id":"a"}\r\n\r\n  \n{"id":"b"}\n'
    split = split_lines(data)
    assert split.lines["line"].to_list() == [1, 4]
    assert split.lines["raw"].to_list() == ['{"id":"a"}', '{"id":"b"}']
    assert split.blank_lines == 2
    assert split.invalid_utf8.is_empty()


def test_invalid_utf8_lines_keep_their_line_numbers() -> None:
    data = b'{"id":"a"}\n{"id":"\xff\xfe"}\n{"id":"c"}\n\xc3\n{"id":"e"}'
    split = split_lines(data)
    assert split.invalid_utf8["line"].to_list() == [2, 4]
    assert split.invalid_utf8["raw"].to_list() == [b'{"id":"\xff\xfe"}', b"\xc3"]
    assert split.lines["line"].to_list() == [1, 3, 5]
    assert split.blank_lines == 0


def test_empty_file_has_no_lines() -> None:
    split = split_lines(b"")
    assert split.lines.is_empty() and split.blank_lines == 0


def test_parse_isolates_each_bad_line() -> None:
    raws = [
        '{"id":"a"}',
        '{"id":1}',
        "[1]",
        "{bad",
        '{"id":"b"}{"id":"c"}',
        '{"id":"d"}',
        '{"id":"e","id":"f"}',
    ]
    split = split_lines("\n".join(raws).encode())
    parsed = parse_json_lines(split.lines["raw"], SCHEMA)
    assert parsed.parsed["_row"].to_list() == [0, 5]
    assert parsed.parsed["id"].to_list() == ["a", "d"]
    assert parsed.rejected["_row"].to_list() == [1, 2, 3, 4, 6]
    assert "changed from string to number" in parsed.rejected["error"][0]
    assert parsed.rejected["error"][3] == "more than one JSON value on a line"


def test_parse_handles_many_lines_across_chunks() -> None:
    raws = [orjson.dumps({"id": str(i)}).decode() if i % 997 else "{" for i in range(1, 6000)]
    parsed = parse_json_lines(split_lines("\n".join(raws).encode()).lines["raw"], SCHEMA)
    bad = [i for i in range(1, 6000) if i % 997 == 0]
    assert parsed.rejected["_row"].to_list() == [i - 1 for i in bad]
    assert parsed.parsed.height == len(raws) - len(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=6,
)
line_strategy = st.one_of(
    st.builds(lambda v: orjson.dumps({"id": v}).decode(), st.text(max_size=8)),
    st.builds(lambda v: json.dumps(v, ensure_ascii=False), json_values),
    st.text(alphabet='{}[]":,ab1 ', max_size=12),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(line_strategy, max_size=40))
def test_every_line_is_parsed_or_rejected_exactly_once(lines: list[str]) -> None:
    lines = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    split = split_lines("\n".join(lines).encode())
    parsed = parse_json_lines(split.lines["raw"], SCHEMA)
    rows = parsed.parsed["_row"].to_list() + parsed.rejected["_row"].to_list()
    assert sorted(rows) == list(range(split.lines.height))
    for row, value in zip(parsed.parsed["_row"].to_list(), parsed.parsed["id"].to_list(), strict=True):
        decoded = orjson.loads(split.lines["raw"][row])
        assert isinstance(decoded, dict)
        assert decoded.get("id") == value


def test_null_lines_are_rejected_without_reaching_pyarrow() -> None:
    # pyarrow 26 segfaults on a leading `null` value and turns a later one into an all-null row
    split = split_lines(b'null\n{"id":"a"}\n  null  \nnull{}\n')
    parsed = parse_json_lines(split.lines["raw"], SCHEMA)
    assert parsed.parsed["id"].to_list() == ["a"]
    assert parsed.rejected["_row"].to_list() == [0, 2, 3]


_JSON = st.recursive(
    st.none() | st.integers(-(2**53), 2**53) | st.text(alphabet='[]{}"\\ab', max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet="[{k", max_size=3), inner, max_size=3)
    ),
    max_leaves=40,
)


@given(st.lists(_JSON, max_size=12))
@settings(max_examples=200, deadline=None)
def test_depths_measured_together_equal_each_measured_alone(values: list) -> None:
    texts = [orjson.dumps(v).decode() for v in values]
    assert json_depths(pl.Series(texts, dtype=pl.String)).tolist() == [json_depth(t.encode()) for t in texts]


def test_lines_nested_too_deeply_are_set_aside_and_the_others_parse() -> None:
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    shallow_but_busy = orjson.dumps({"id": "b", "x": [[1]] * MAX_JSON_DEPTH, "s": "[" * 300}).decode()
    raw = pl.Series([f'{{"id":"a","d":{deep}}}', shallow_but_busy, '{"id":"c","v":NaN}', '{"id":"NaN"}'])
    parsed = parse_json_lines(raw, SCHEMA)
    assert parsed.parsed["id"].to_list() == ["b", "NaN"]
    assert parsed.rejected["_row"].to_list() == [0, 2]
    assert parsed.rejected["error"].to_list() == [NESTED_TOO_DEEPLY, "NaN or Infinity is not a JSON number"]
