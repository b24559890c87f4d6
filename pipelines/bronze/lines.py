"""Newline-delimited JSON at Arrow speed, with exact line numbers for the lines that break.

The bulk path hands a whole file to pyarrow's JSON reader with an explicit schema holding only the
fields the bronze layer needs (see STACK-NOTES: ~10x faster than inferring the schema). A file that
parses cleanly costs one pass. When pyarrow rejects the file (invalid JSON, a value of the wrong type,
two values on one line), the lines are split into chunks and failing chunks are bisected until every
bad line is isolated; only those single lines go to the slower, per-record diagnosis.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json

UTF8_BOM = b"\xef\xbb\xbf"
NEWLINE = 0x0A
FIRST_SPLIT_LINES = 2048
"""Chunk size (lines) used once a whole-file parse fails, before bisecting failing chunks."""
MAX_JSON_DEPTH = 128
"""Records whose arrays and objects nest deeper are refused. No FHIR resource or device payload nests
near this deep, while the tools downstream give up or crash on such records: orjson writes at most 254
levels and reads 1,024, and silver's pyarrow → Polars decoding recurses once per level (a RecursionError
near 1,000 levels, a crash of the process further on)."""
NESTED_TOO_DEEPLY = f"arrays and objects are nested more than {MAX_JSON_DEPTH} levels deep"
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


@dataclass(frozen=True)
class SplitLines:
    """The non-blank lines of a file, with their 1-based physical line numbers."""

    lines: pl.DataFrame
    """`line` (Int64) and `raw` (String, without the line terminator)."""
    invalid_utf8: pl.DataFrame
    """`line` and `raw` (Binary) of lines that are not valid UTF-8."""
    blank_lines: int
    payload: bytes = b""
    """The file as valid UTF-8 (BOM dropped, undecodable lines emptied): the fast path parses it whole."""


@dataclass(frozen=True)
class ParsedLines:
    """Rows of `lines` that pyarrow parsed, and the rows it rejected."""

    parsed: pl.DataFrame
    """`_row` (position in the input series) plus one column per top-level schema field."""
    rejected: pl.DataFrame
    """`_row` and `error` (pyarrow's message, which carries no record content)."""


def split_lines(data: bytes) -> SplitLines:
    """Split file bytes into lines; strip a BOM and CR terminators; set aside undecodable lines.

    Lines are cut with numpy at the newline bytes and wrapped as an Arrow string array over the file's
    own buffer (no copy, no Python object per line).
    """
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    clean, bad_spans = _blank_undecodable_lines(data)
    invalid = pl.DataFrame(
        {
            "line": [data.count(b"\n", 0, start) + 1 for start, _ in bad_spans],
            "raw": [data[start:end].rstrip(b"\r") for start, end in bad_spans],
        },
        schema={"line": pl.Int64, "raw": pl.Binary},
    )
    newlines = np.flatnonzero(np.frombuffer(clean, dtype=np.uint8) == NEWLINE) + 1
    ends = newlines if clean.endswith(b"\n") else np.append(newlines, len(clean))
    offsets = np.concatenate(([0], ends)).astype(np.int64) if clean else np.zeros(1, dtype=np.int64)
    strings = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(clean))
    raw = pl.from_arrow(strings)
    assert isinstance(raw, pl.Series)
    raw = raw.str.strip_suffix("\n")
    if b"\r" in clean:
        raw = raw.str.strip_suffix("\r")
    if raw.str.starts_with("\ufeff").any():  # files concatenated with their BOMs: a BOM starts a line
        raw = raw.str.strip_prefix("\ufeff")
    all_lines = (
        raw.alias("raw")
        .to_frame()
        .with_row_index("line", offset=1)
        .with_columns(pl.col("line").cast(pl.Int64))
    )
    is_blank = pl.col("raw").str.contains(r"^\s*$")
    lines = all_lines.filter(~is_blank)
    # `clean` keeps every newline of the file, but a last line without one vanishes from it once emptied:
    # that line is counted from the file itself
    physical = len(newlines) + (1 if data and not data.endswith(b"\n") else 0)
    blank = physical - lines.height - invalid.height
    return SplitLines(lines=lines, invalid_utf8=invalid, blank_lines=blank, payload=clean)


def _blank_undecodable_lines(data: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    """Validate UTF-8; each line holding invalid bytes is emptied (its newline kept) and its span returned.

    Iterates once per *bad line* (not per record): each failed decode reports where the bad byte is.
    """
    if _valid_utf8(data):  # the rule: Arrow validates without holding Python's lock, 3x faster
        return data, []
    view = memoryview(data)
    spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        try:
            str(view[pos:], "utf-8")
            break
        except UnicodeDecodeError as err:
            bad = pos + err.start
            line_start = data.rfind(b"\n", 0, bad) + 1
            line_end = data.find(b"\n", bad)
            if line_end == -1:
                line_end = len(data)
            spans.append((line_start, line_end))
            pos = line_end
    if not spans:
        return data, spans
    kept, previous = [], 0
    for start, end in spans:
        kept.append(view[previous:start])
        previous = end
    kept.append(view[previous:])
    return b"".join(kept), spans


def _valid_utf8(data: bytes) -> bool:
    """Whether `data` is valid UTF-8 (an Arrow string over the bytes, validated; no copy)."""
    offsets = np.array([0, len(data)], dtype=np.int64)
    array = pa.LargeStringArray.from_buffers(1, pa.py_buffer(offsets), pa.py_buffer(data))
    try:
        array.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def parse_json_lines(
    raw: pl.Series, schema: pa.Schema, payload: bytes | None = None, check_duplicates: bool = False
) -> ParsedLines:
    """Parse each string of `raw` as one JSON object with `schema`; isolate the rows pyarrow rejects.

    `payload`, when given, is the same lines as one NDJSON document (blank lines allowed): parsing it
    directly saves joining the lines again in the common case of a clean file. With `check_duplicates`,
    rows holding an object with a repeated member anywhere are rejected too (`duplicate_members`);
    without it, only repeated key fields are (pyarrow refuses those).
    """
    # pyarrow 26 crashes (SIGSEGV) on a file whose first value is `null` and reads a later `null` line
    # as an all-null row: such lines never reach it. It also accepts NaN and Infinity, which are not
    # JSON: lines that may hold them bare are checked by a strict parser first.
    # Each unsafe line is set aside for one reason only, so that it is rejected (and counted) once.
    starts_null = raw.str.contains(r"^\s*null").fill_null(False)
    non_standard = _non_standard_numbers(raw) & ~starts_null
    too_deep = _too_deep(raw) & ~starts_null & ~non_standard
    unsafe = starts_null | non_standard | too_deep
    repeated = pl.Series([False] * raw.len(), dtype=pl.Boolean)
    proven: pa.Table | None = None
    if check_duplicates and payload is not None and not unsafe.any() and raw.len():
        # one parse of the whole record (key fields typed, the rest inferred): pyarrow refuses any
        # repeated member, so success both proves there is none and gives the key fields
        proven = _parse_proving_no_repeats(payload, schema, raw.len())
    if check_duplicates and proven is None and (~unsafe).any():
        repeated = duplicate_members(raw) & ~unsafe
        unsafe = unsafe | repeated
    positions = pl.Series("_row", range(raw.len()), dtype=pl.UInt32)
    safe_positions = positions.filter(~unsafe)
    safe = raw.filter(~unsafe)
    good: list[tuple[int, pa.Table]] = []
    bad_safe: list[tuple[int, str]] = []
    n = safe.len()
    if proven is not None:
        good.append((0, proven))
    elif n:
        whole = payload if payload is not None and n == raw.len() else None
        table, error = _try_parse(safe, 0, n, schema, whole)
        if table is not None:
            good.append((0, table))
        else:
            for start in range(0, n, FIRST_SPLIT_LINES):
                _bisect(safe, start, min(n, start + FIRST_SPLIT_LINES), schema, good, bad_safe, error)
    bad = [(int(safe_positions[r]), e) for r, e in bad_safe]
    bad += [(int(r), "the line holds null, not an object") for r in positions.filter(starts_null)]
    bad += [(int(r), "NaN or Infinity is not a JSON number") for r in positions.filter(non_standard)]
    bad += [(int(r), NESTED_TOO_DEEPLY) for r in positions.filter(too_deep)]
    bad += [(int(r), DUPLICATE_MEMBER) for r in positions.filter(repeated)]
    parsed = _assemble(good, schema)
    parsed = (
        parsed.with_columns(safe_positions.gather(parsed["_row"]).alias("_row")) if parsed.height else parsed
    )
    return ParsedLines(parsed=parsed, rejected=_rejections(bad))


DUPLICATE_MEMBER = "an object has the same member twice"
_JSON_TOKEN = r'"(?:[^"\\]|\\.)*"\s*:|"(?:[^"\\]|\\.)*"|[{}\[\]]'
"""A member name with its colon, a string value, or a bracket: strings are consumed whole, so brackets and
colons inside them never count."""


def _parse_proving_no_repeats(payload: bytes, schema: pa.Schema, rows: int) -> pa.Table | None:
    """The key fields of an NDJSON payload (known safe for pyarrow), parsed with every other member
    inferred; None when pyarrow refuses it (a repeated member, a member whose type changes between
    records, or a key field of the wrong type). On 1,000 generated people's NDJSON (56k resources, 43 MB):
    0.25 s, against 0.16 s for the key fields alone."""
    try:
        table = pa_json.read_json(
            io.BytesIO(payload),
            read_options=pa_json.ReadOptions(block_size=1 << 20, use_threads=True),
            parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"),
        )
    except pa.ArrowInvalid:
        return None
    return table.select(schema.names) if table.num_rows == rows else None


def duplicate_members(raw: pl.Series) -> pl.Series:
    """Whether each JSON text of `raw` holds an object with the same member twice, at any depth.

    orjson silently keeps the last value and pyarrow refuses only repeated fields of its schema, so such a
    record would otherwise be read as one of its two meanings. Every text is tokenized, vectorized: member
    names, string values and brackets; each name is tied to the object it sits in (the last `{` opened at
    its depth) and a name seen twice in one object marks the text. On 1,000 generated people's NDJSON
    (56k resources, 43 MB) 1.2 s: the fallback when one pyarrow parse cannot prove a file free of repeats
    (`_parse_proving_no_repeats`).
    """
    rows = raw.alias("raw").to_frame().with_row_index("_row")
    token = pl.col("t")
    tokens = (
        rows.select("_row", pl.col("raw").str.extract_all(_JSON_TOKEN).alias("t"))
        .explode("t")
        .filter(token.is_not_null() & ~token.str.ends_with('"'))  # string values do not matter
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"))
    )
    step = pl.when(token.is_in(["{", "["])).then(1).when(token.is_in(["}", "]"])).then(-1).otherwise(0)
    members = (
        tokens.with_columns(step.cum_sum().over("_row").alias("_depth"))
        .filter((token == "{") | token.str.ends_with(":"))
        .with_columns(pl.when(token == "{").then(pl.col("_i")).alias("_object"))
        .with_columns(pl.col("_object").forward_fill().over("_row", "_depth"))
        .filter(token != "{")
        .select("_row", "_object", token.str.replace(r"\s*:$", ""))
    )
    repeated = members.filter(pl.len().over("_row", "_object", "t") > 1)["_row"].unique()
    return rows.select(pl.col("_row").is_in(repeated.implode()))["_row"]


def _non_standard_numbers(raw: pl.Series) -> pl.Series:
    """Rows holding a bare NaN/Infinity token (confirmed by orjson, since a string may contain the word)."""
    # a literal search first: the regex over every line cost more than the rest of the check
    maybe = raw.str.contains("NaN", literal=True) | raw.str.contains("Infinity", literal=True)
    candidates = (maybe & raw.str.contains(r"(?:^|[\[:,])\s*-?(?:NaN|Infinity)")).fill_null(False)
    flags = candidates.to_numpy().copy()
    for index in np.flatnonzero(flags):  # rare rows only
        try:
            orjson.loads(raw[int(index)])
            flags[index] = False
        except orjson.JSONDecodeError:
            pass
    return pl.Series(flags)


def _too_deep(raw: pl.Series) -> pl.Series:
    """Rows nested deeper than MAX_JSON_DEPTH: a cheap bracket count picks the candidates, whose exact
    depth is then measured, all of them at once (a large resource holds hundreds of brackets, so in
    Bundles of real records candidates are common)."""
    brackets = raw.str.count_matches("[", literal=True) + raw.str.count_matches("{", literal=True)
    flags = (brackets.fill_null(0) > MAX_JSON_DEPTH).to_numpy().copy()
    candidates = np.flatnonzero(flags)
    if candidates.size:
        flags[candidates] = json_depths(raw.gather(candidates)) > MAX_JSON_DEPTH
    return pl.Series(flags)


def json_depths(texts: pl.Series) -> np.ndarray:
    """`json_depth` of each JSON text of `texts`, vectorized: strings removed, then only the brackets
    kept, and each row's depth is the highest running sum of its +1 (opening) and -1 (closing)."""
    shapes = texts.str.replace_all(_JSON_STRING.pattern.decode(), "").str.replace_all(r"[^\[\]{}]", "")
    lengths = shapes.str.len_bytes().fill_null(0).to_numpy().astype(np.int64)
    codes = np.frombuffer(shapes.fill_null("").str.join("").item().encode(), dtype=np.uint8)
    steps = np.isin(codes, _OPENING).astype(np.int64) - np.isin(codes, _CLOSING)
    depths = np.zeros(len(lengths), dtype=np.int64)
    if not codes.size:
        return depths
    running = steps.cumsum()
    ends = lengths.cumsum()
    starts = ends - lengths
    before = np.where(starts > 0, running[np.maximum(starts - 1, 0)], 0)  # the sum where each row starts
    filled = lengths > 0
    # each row's highest running sum, relative to where it started
    highest = np.maximum.reduceat(running, starts[filled])
    depths[filled] = np.maximum(highest - before[filled], 0)
    return depths


def json_depth(text: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings do not count)."""
    codes = np.frombuffer(_JSON_STRING.sub(b"", text), dtype=np.uint8)
    steps = np.isin(codes, _OPENING).astype(np.int64) - np.isin(codes, _CLOSING)
    return int(steps.cumsum().max(initial=0))


_OPENING = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSING = np.frombuffer(b"]}", dtype=np.uint8)


def _try_parse(
    raw: pl.Series, start: int, stop: int, schema: pa.Schema, payload: bytes | None = None
) -> tuple[pa.Table | None, str]:
    if payload is None:
        payload = raw.slice(start, stop - start).str.join("\n").item().encode()
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    try:
        table = pa_json.read_json(
            io.BytesIO(payload),
            read_options=pa_json.ReadOptions(block_size=1 << 20, use_threads=True),
            parse_options=options,
        )
    except pa.ArrowInvalid as err:
        return None, _clean_error(str(err))
    if table.num_rows != stop - start:
        return None, "more than one JSON value on a line"
    return table, ""


def _bisect(
    raw: pl.Series,
    start: int,
    stop: int,
    schema: pa.Schema,
    good: list[tuple[int, pa.Table]],
    bad: list[tuple[int, str]],
    error: str,
) -> None:
    pending = [(start, stop, error if stop - start == raw.len() else None)]
    while pending:
        lo, hi, known_error = pending.pop()
        if known_error is None:
            table, known_error = _try_parse(raw, lo, hi, schema)
            if table is not None:
                good.append((lo, table))
                continue
        if hi - lo == 1:
            bad.append((lo, known_error))
            continue
        mid = (lo + hi) // 2
        pending.append((mid, hi, None))
        pending.append((lo, mid, None))


def _clean_error(message: str) -> str:
    """pyarrow's message without the row number (meaningless once a chunk is isolated)."""
    message = message.replace("JSON parse error: ", "")
    head, _, _ = message.partition(" in row ")
    return head


def _assemble(good: list[tuple[int, pa.Table]], schema: pa.Schema) -> pl.DataFrame:
    if not good:
        empty = pl.from_arrow(schema.empty_table())
        assert isinstance(empty, pl.DataFrame)
        return empty.with_columns(pl.lit(None, dtype=pl.UInt32).alias("_row")).select("_row", *schema.names)
    good.sort(key=lambda item: item[0])
    rows = np.concatenate([np.arange(start, start + t.num_rows, dtype=np.uint32) for start, t in good])
    table = pa.concat_tables([t for _, t in good])
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.Series("_row", rows)).select("_row", *schema.names)


def _rejections(bad: list[tuple[int, str]]) -> pl.DataFrame:
    bad.sort()
    return pl.DataFrame(
        {"_row": [r for r, _ in bad], "error": [e for _, e in bad]},
        schema={"_row": pl.UInt32, "error": pl.String},
    )
