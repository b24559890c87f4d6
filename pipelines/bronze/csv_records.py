"""CSV files split into records as RFC 4180 says, at Arrow speed, with the line each record starts on.

Every CSV reader of bronze (device CSV exports, the device enrolment file, outreach outcome events) splits
its file here. A record ends at a line break outside quotes: a quoted field may hold line breaks (an SMS
reply `"STOP` / `please"` is one record, not two broken ones), CRLF and LF both end a record, and a doubled
quote inside a quoted field is a quote. Like most readers (and pyarrow, which parses the fields), a quote
that does not start a field is an ordinary character (`8"1` is the text 8"1).

How: the file's quote and line-break bytes are found with numpy. In a well-formed file every quote opens or
closes a quoted field (a doubled quote closes and reopens it), so a line break lies inside quotes exactly
when an odd number of quotes come before it: a cumulative count over the quote positions, no loop. A quote
that this count takes for an opening one but that does not start a field (nor follows a closing quote) is
an ordinary character; it is set aside and the count redone, once per such stray quote (a loop over the
file's quote positions takes over when a file holds many of them).

A quote that is never closed (a truncated file, a stray quote at the start of a field) would otherwise
swallow the rest of the file into one record. Here the record it opens is quarantined by its first line
(`unclosed_quote`) and reading resumes on the next line, so the rows after it are read as they were written;
every byte is accounted for once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.bronze.lines import UTF8_BOM, _blank_undecodable_lines, _valid_utf8

QUOTE, NEWLINE, COMMA, CR = 0x22, 0x0A, 0x2C, 0x0D
MAX_STRAY_QUOTE_PASSES = 16
"""Stray quotes resolved by recounting; past this many, one loop over the file's quotes resolves them all."""
MAX_UNCLOSED_RESTARTS = 100
"""Records set aside for a quote never closed before the rest of the file is set aside as one record."""
UNCLOSED_QUOTE = "unclosed_quote"
UNCLOSED_REASON = (
    "a quoted field opened in this record is never closed before the end of the file: "
    "its first line is set aside and reading resumes on the next line"
)
UNCLOSED_REST_REASON = "quoted fields are never closed in the rest of the file: set aside whole"


@dataclass(frozen=True)
class CsvRecords:
    """The non-blank records of a CSV file, each with the 1-based physical line it starts on."""

    records: pl.DataFrame
    """`line` (Int64) and `raw` (String: the record without its line terminator; quoted line breaks kept)."""
    fields: np.ndarray
    """Per record of `records`: how many fields it has (separators outside quotes, plus one)."""
    invalid_utf8: pl.DataFrame
    """`line` and `raw` (Binary) of records holding bytes that are not UTF-8."""
    unclosed: pl.DataFrame
    """`line`, `raw` (Binary) and `reason` of records set aside for a quote never closed."""
    blank_lines: int
    body: memoryview | None = None
    """The file from its second record on, when it holds nothing but those records, their terminators and
    empty lines (no record set aside, no whitespace-only line): a parser may read it as it is."""


def split_csv_records(data: bytes) -> CsvRecords:
    """Split CSV file bytes into records (see the module docstring); a BOM is dropped."""
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == NEWLINE)
    starts_parts: list[np.ndarray] = []
    ends_parts: list[np.ndarray] = []
    quote_parts: list[np.ndarray] = []
    unclosed: list[tuple[int, int, str]] = []  # byte span, reason
    position = 0
    while position < len(data):
        starts, ends, quotes, open_from = _records_from(buf, newlines, position)
        starts_parts.append(starts)
        ends_parts.append(ends)
        if open_from is None:
            quote_parts.append(quotes)
            break
        quote_parts.append(quotes[quotes < open_from])  # the quotes before it all close
        if len(unclosed) == MAX_UNCLOSED_RESTARTS:
            unclosed.append((open_from, len(data), UNCLOSED_REST_REASON))
            break
        # the unclosed record's first line is set aside; the next line starts afresh
        following = int(np.searchsorted(newlines, open_from))
        line_end = int(newlines[following]) if following < len(newlines) else len(data)
        unclosed.append((open_from, line_end, UNCLOSED_REASON))
        position = line_end + 1
    starts = np.concatenate(starts_parts) if starts_parts else np.zeros(0, dtype=np.int64)
    ends = np.concatenate(ends_parts) if ends_parts else np.zeros(0, dtype=np.int64)
    # a CR before the LF ends the record too (CRLF files); a CR inside quotes stays in the field
    if starts.size:
        ends = np.where((ends > starts) & (buf[np.maximum(ends - 1, 0)] == CR), ends - 1, ends)
    lines = np.searchsorted(newlines, starts).astype(np.int64) + 1
    bad = _records_with_invalid_utf8(data, starts)
    frame = pl.DataFrame(
        {"line": lines, "raw": _strings(data, starts, np.where(bad, starts, ends))},
        schema={"line": pl.Int64, "raw": pl.String},
    )
    if UTF8_BOM in data:  # files concatenated with their BOMs: a BOM starts a record (as in `split_lines`)
        frame = frame.with_columns(pl.col("raw").str.strip_prefix("\ufeff"))
    blank = _blank(frame["raw"], buf, starts, ends) & ~bad
    keep = ~blank & ~bad
    quotes = np.concatenate(quote_parts) if quote_parts else np.zeros(0, dtype=np.int64)
    kept = frame if keep.all() else frame.filter(pl.Series(keep))  # the common case copies nothing
    first_two = np.flatnonzero(keep)[:2]
    whole = not bad.any() and not unclosed and not (ends[blank] > starts[blank]).any()
    return CsvRecords(
        records=kept,
        fields=_field_counts(kept["raw"], buf, quotes, starts[keep], ends[keep]).astype(np.int64),
        body=memoryview(data)[int(starts[first_two[1]]) :] if whole and len(first_two) == 2 else None,
        invalid_utf8=pl.DataFrame(
            {"line": lines[bad], "raw": [data[s:e] for s, e in zip(starts[bad], ends[bad], strict=True)]},
            schema={"line": pl.Int64, "raw": pl.Binary},
        ),
        unclosed=pl.DataFrame(
            {
                "line": [int(np.searchsorted(newlines, s)) + 1 for s, _, _ in unclosed],
                "raw": [data[s:e].removesuffix(b"\r") for s, e, _ in unclosed],
                "reason": [reason for _, _, reason in unclosed],
            },
            schema={"line": pl.Int64, "raw": pl.Binary, "reason": pl.String},
        ),
        blank_lines=int(blank.sum()),
    )


def _records_from(
    buf: np.ndarray, newlines: np.ndarray, position: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None]:
    """Record spans (start, end: the terminating LF or the end of the file) from byte `position` on, the
    structural quotes, and where the record whose quote is never closed starts (None when all close)."""
    size = len(buf)
    quotes = _structural_quotes(buf, position)
    breaks = newlines[newlines >= position]
    if quotes.size:
        breaks = breaks[np.searchsorted(quotes, breaks) % 2 == 0]  # line breaks outside quotes
    starts = np.concatenate(([position], breaks + 1)).astype(np.int64)
    ends = np.concatenate((breaks, [size])).astype(np.int64)
    if starts[-1] >= size:  # the file ends with a line break: no record after it
        starts, ends = starts[:-1], ends[:-1]
    if quotes.size % 2 == 1:  # the last record's quote never closes
        return starts[:-1], ends[:-1], quotes, int(starts[-1])
    return starts, ends, quotes, None


def _structural_quotes(buf: np.ndarray, position: int) -> np.ndarray:
    """Positions (from `position` on) of the quotes that open or close quoted fields, in order."""
    quotes = np.flatnonzero(buf[position:] == QUOTE) + position
    if not quotes.size:
        return quotes.astype(np.int64)
    before = np.where(quotes > position, buf[np.maximum(quotes - 1, 0)], NEWLINE)
    starts_field = (before == COMMA) | (before == NEWLINE)
    after_quote = before == QUOTE
    structural = np.ones(quotes.size, dtype=bool)
    for _ in range(MAX_STRAY_QUOTE_PASSES):
        stray = _first_stray(structural, starts_field, after_quote)
        if stray is None:
            return quotes[structural].astype(np.int64)
        structural[stray] = False
    _resolve_by_walking(structural, starts_field, after_quote)
    return quotes[structural].astype(np.int64)


def _first_stray(structural: np.ndarray, starts_field: np.ndarray, after_quote: np.ndarray) -> int | None:
    """The first quote the count takes for an opening one that cannot open a field, or None."""
    counted = np.cumsum(structural) - structural  # structural quotes before each quote
    opening = structural & (counted % 2 == 0)
    # a doubled quote: the quote right after a closing one reopens the field
    previous_closes = np.concatenate(([False], structural[:-1]))
    stray = np.flatnonzero(opening & ~starts_field & ~(after_quote & previous_closes))
    return int(stray[0]) if stray.size else None


def _resolve_by_walking(structural: np.ndarray, starts_field: np.ndarray, after_quote: np.ndarray) -> None:
    """The recount's decision made quote by quote (for files with many stray quotes)."""
    inside = closed_just_before = False
    for index, (field_start, adjacent) in enumerate(
        zip(starts_field.tolist(), after_quote.tolist(), strict=True)
    ):
        if inside:  # any quote inside a quoted field closes it (a doubled one reopens it next)
            inside, closed_just_before = False, True
            structural[index] = True
        elif field_start or (adjacent and closed_just_before):
            inside, closed_just_before = True, False
            structural[index] = True
        else:  # an ordinary character
            closed_just_before = False
            structural[index] = False


_WHITESPACE = np.array([0x20, 0x09, 0x0B, 0x0C, 0x0D], dtype=np.uint8)


def _blank(raw: pl.Series, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per record: whether it is empty or only whitespace. Only records that are empty or start with a
    whitespace or non-ASCII byte are searched with the (Unicode) pattern."""
    blank = ends <= starts
    first = buf[np.minimum(starts, max(len(buf) - 1, 0))] if len(buf) else np.zeros(0, dtype=np.uint8)
    candidates = np.flatnonzero(~blank & (np.isin(first, _WHITESPACE) | (first >= 0x80)))
    if candidates.size:
        blank[candidates] = raw.gather(candidates).str.contains(r"^\s*$").fill_null(False).to_numpy()
    return blank


def _records_with_invalid_utf8(data: bytes, starts: np.ndarray) -> np.ndarray:
    """Per record: whether it holds bytes that are not UTF-8 (found line by line, mapped to records)."""
    bad = np.zeros(len(starts), dtype=bool)
    if not starts.size or _valid_utf8(data):
        return bad
    _, spans = _blank_undecodable_lines(data)
    offsets = np.array([start for start, _ in spans], dtype=np.int64)
    # a bad line may lie inside a record (after a quoted line break): the record holding its first byte
    records = np.searchsorted(starts, offsets, side="right") - 1
    bad[records[records >= 0]] = True
    return bad


def _strings(data: bytes, starts: np.ndarray, ends: np.ndarray) -> pl.Series:
    """Each record as a string, taken out of one Arrow array over the file's buffer whose entries are the
    records and the bytes between them (terminators, lines set aside), without a copy per record."""
    if not starts.size:
        return pl.Series("raw", [], dtype=pl.String)
    bounds = np.empty(2 * len(starts), dtype=np.int64)
    bounds[0::2] = starts
    bounds[1::2] = ends
    array = pa.LargeStringArray.from_buffers(len(bounds) - 1, pa.py_buffer(bounds), pa.py_buffer(data))
    series = pl.from_arrow(array.take(pa.array(np.arange(0, len(bounds) - 1, 2, dtype=np.int64))))
    assert isinstance(series, pl.Series)
    return series.alias("raw")


def _field_counts(
    records: pl.Series, buf: np.ndarray, quotes: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """Per record: its separators outside quotes, plus one (`quotes`: the structural quotes)."""
    if not quotes.size or not starts.size:
        return records.str.count_matches(",", literal=True).fill_null(0).to_numpy().astype(np.int64) + 1
    # a comma separates fields when an even number of structural quotes precede it (the quotes of lines
    # set aside are not structural: the count is even across them)
    commas = np.flatnonzero(buf == COMMA)
    separators = commas[np.searchsorted(quotes, commas) % 2 == 0]
    return np.searchsorted(separators, ends) - np.searchsorted(separators, starts) + 1
