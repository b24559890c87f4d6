"""Resources as engine contexts, straight from raw JSON text (the bronze `raw` column).

pyarrow infers one schema over the whole batch (a single block, so no block disagrees with another).
It reads ISO date-like strings as timestamps, which would change the text of FHIR dates, so every
inferred timestamp or date becomes a string and the batch is read again with that explicit schema.
When the data holds incompatible types for one element (a string here, a number there), Polars'
decoder, which widens to a common type, takes over. When neither can read the batch because resources
disagree on an element's JSON shape (an array here, an object there: `item` given as one object, as a
hostile or broken feed does), the element is set aside in each resource whose shape differs from the
first one seen, and counted: one such resource must not stop every other resource of its batch.
"""

from __future__ import annotations

import re
from collections import Counter
from contextlib import suppress
from typing import NamedTuple

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json

from pipelines.sof.collections import CID, ORD, V, empty

SAMPLE_LINES = 1024
MAX_SHAPE_REPAIRS = 1000
"""Elements set aside in one batch at most before giving up on it: each costs a parse of the batch."""
_SHAPE_CHANGE = re.compile(r"Column\((?P<path>/[^)]*)\) changed from \w+ to \w+ in row (?P<row>\d+)")


class Decoded(NamedTuple):
    """Resources decoded as engine contexts."""

    contexts: pl.DataFrame
    decoder: str  # pyarrow | polars | none
    set_aside: Counter[str]  # element path (`item[].answer`) -> resources whose element was set aside


def contexts_from_json(raw: pl.Series) -> Decoded:
    """One context per JSON object in `raw`, in order; also which decoder was used and which elements of
    which resources were set aside because their JSON shape contradicts the rest of the batch."""
    if raw.len() == 0:
        return Decoded(empty(pl.Struct({"resourceType": pl.String})), "none", Counter())
    set_aside: Counter[str] = Counter()
    try:
        table, decoder = _read_with_sampled_schema(raw), "pyarrow"
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        table = None
    if table is None:
        try:
            table, decoder = _read_with_full_schema(raw), "pyarrow"
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            table = None
    if table is not None:
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        values = frame.to_struct(V)
    else:
        decoded: pl.Series | None = None
        with suppress(pl.exceptions.ComputeError):  # its message quotes the record: never passed on
            decoded = raw.str.json_decode(infer_schema_length=None)
        if decoded is None:  # outside the handler, so that no later error chains the quoting one
            raw, set_aside = _shapes_agreeing(raw)
            decoded = raw.str.json_decode(infer_schema_length=None)
        values, decoder = decoded.alias(V), "polars"
    if values.len() != raw.len():
        raise ValueError("decoded a different number of resources than were given")
    contexts = pl.DataFrame({CID: pl.int_range(values.len(), dtype=pl.Int64, eager=True), V: values})
    contexts = contexts.with_columns(pl.lit(0, pl.Int64).alias(ORD)).select(CID, ORD, V)
    return Decoded(contexts, decoder, set_aside)


def _shapes_agreeing(raw: pl.Series) -> tuple[pl.Series, Counter[str]]:
    """`raw` made readable as one batch by Polars' widening decoder, and how many resources lost each
    element.

    An element that is an array or object in one resource and something else in another cannot be read
    as both. pyarrow names the first such element and the row where its shape changed; the shape most of
    an even sample of the batch gives it stands, and the element is removed from the resource(s) on the
    other side (that row, or the rows before it) and counted, then Polars tries again. A
    scalar whose type changes (a number here, text there) is removed the same way only when it hides a
    later conflict from pyarrow, which stops at the first one. Only the offending resources are parsed in
    Python; the batch is read again after each repair, so a batch needing more than MAX_SHAPE_REPAIRS is
    refused (ValueError, naming no content)."""
    set_aside: Counter[str] = Counter()
    texts = raw.clone()  # scatter writes in place: the caller's column stays as delivered
    for _ in range(MAX_SHAPE_REPAIRS):
        try:
            texts.str.json_decode(infer_schema_length=None)
            return texts, set_aside
        except pl.exceptions.ComputeError:  # its message quotes the record: never passed on
            pass
        try:
            _read(_payload(texts), None)
            raise ValueError("a resource of the batch cannot be decoded with the others")
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            found = _SHAPE_CHANGE.search(str(err))
        if found is None:
            raise ValueError("a resource of the batch cannot be decoded as JSON") from None
        row, parts = int(found["row"]), [p for p in found["path"].split("/") if p]
        within_one_array = parts[-1:] == ["[]"]
        while parts and parts[-1] == "[]":  # the items of one array disagree: that array goes
            parts = parts[:-1]
        if not parts:
            raise ValueError("a resource of the batch cannot be decoded with the others")
        # the rows before `row` agree with each other; whichever side most of the batch is on stands
        changed = _shapes_at(orjson.loads(texts[row]), parts)
        usual = not within_one_array and _usual(texts, parts, changed)
        offending = list(range(row)) if usual else [row]
        repaired_any = False
        for index in offending:
            resource = orjson.loads(texts[index])
            shapes = _shapes_at(resource, parts)
            if not shapes or (usual and shapes == changed):  # absent, or on the usual side
                continue
            _remove(resource, parts)
            texts = texts.scatter(index, orjson.dumps(resource).decode())
            set_aside[".".join(parts).replace(".[]", "[]")] += 1
            repaired_any = True
        if not repaired_any:  # nothing to remove: never loop on the same error
            raise ValueError("a resource of the batch cannot be decoded with the others")
    raise ValueError(f"over {MAX_SHAPE_REPAIRS} resources of the batch disagree on the shape of an element")


SHAPE_SAMPLE = 64
"""Resources looked at to tell which shape of an element is the batch's usual one."""


def _usual(texts: pl.Series, parts: list[str], shapes: set[str]) -> bool:
    """Whether most of an even sample of the batch's resources that hold the element give it `shapes`."""
    step = max(1, texts.len() // SHAPE_SAMPLE)
    seen = [_shapes_at(orjson.loads(texts[i]), parts) for i in range(0, texts.len(), step)]
    held = [s for s in seen if s]
    return sum(s == shapes for s in held) * 2 > len(held)


def _shapes_at(value: object, parts: list[str]) -> set[str]:
    """The JSON types (array, object, string, number, boolean, null) the element at `parts` has in `value`;
    empty if absent."""
    if not parts:
        return {_json_type(value)}
    head, rest = parts[0], parts[1:]
    if head == "[]":
        items = value if isinstance(value, list) else []
        return set().union(*(_shapes_at(item, rest) for item in items)) if items else set()
    if isinstance(value, dict) and head in value:
        return _shapes_at(value[head], rest)
    return set()


def _json_type(value: object) -> str:
    """The JSON type of a parsed value, as pyarrow's messages name them."""
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else "string"


def _remove(value: object, parts: list[str]) -> None:
    """Remove the element at `parts` (`[]` steps into every item of an array) wherever it occurs."""
    head, rest = parts[0], parts[1:]
    if head == "[]":
        for item in value if isinstance(value, list) else []:
            if rest:
                _remove(item, rest)
    elif isinstance(value, dict) and head in value:
        if rest:
            _remove(value[head], rest)
        else:
            del value[head]


def _payload(raw: pl.Series) -> pa.Buffer:
    """The JSON texts back to back, without a copy: the Arrow data buffer of the column. pyarrow's
    reader needs no separator between objects when the whole payload is a single block."""
    array = raw.to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.type != pa.large_string():
        array = array.cast(pa.large_string())
    if array.null_count:
        raise ValueError("a resource without JSON text")
    _, offsets, data = array.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    return data[int(bounds[0]) : int(bounds[-1])]


def _read(payload: pa.Buffer, schema: pa.Schema | None, unexpected: str = "error") -> pa.Table:
    options = (
        pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior=unexpected) if schema else None
    )
    return pa_json.read_json(
        pa.BufferReader(payload),
        read_options=pa_json.ReadOptions(block_size=len(payload) + 1),
        parse_options=options,
    )


def _read_with_sampled_schema(raw: pl.Series) -> pa.Table | None:
    """One pass: the schema of a sample, elements the sample lacks inferred on the way. When such an
    element came out as a timestamp, the batch is read again with it as text (None: no sample gain)."""
    if raw.len() <= SAMPLE_LINES:
        return None
    schema = _text_schema(_read(_payload(raw.head(SAMPLE_LINES)), None).schema)
    payload = _payload(raw)
    table = _read(payload, schema, unexpected="infer")
    if _text_schema(table.schema) != table.schema:
        table = _read(payload, _text_schema(table.schema))
    return table


def _read_with_full_schema(raw: pl.Series) -> pa.Table:
    payload = _payload(raw)
    return _read(payload, _text_schema(_read(payload, None).schema))


def _text_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, _text_for_time(f.type)) for f in schema])


def _text_for_time(dtype: pa.DataType) -> pa.DataType:
    """The same type with every timestamp/date/time replaced by string (FHIR keeps them as text)."""
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype) or pa.types.is_time(dtype):
        return pa.string()
    if pa.types.is_struct(dtype):
        return pa.struct([pa.field(f.name, _text_for_time(f.type)) for f in dtype])
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return pa.list_(_text_for_time(dtype.value_type))
    return dtype
