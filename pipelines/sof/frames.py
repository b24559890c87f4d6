"""Resources as engine contexts, straight from raw JSON text (the bronze `raw` column).

pyarrow infers one schema over the whole batch (a single block, so no block disagrees with another).
It reads ISO date-like strings as timestamps, which would change the text of FHIR dates, so every
inferred timestamp or date becomes a string and the batch is read again with that explicit schema.
When the data holds incompatible types for one element (a string here, a number there), Polars'
decoder, which widens to a common type, takes over.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json

from pipelines.sof.collections import CID, ORD, V, empty

SAMPLE_LINES = 1024


def contexts_from_json(raw: pl.Series) -> tuple[pl.DataFrame, str]:
    """One context per JSON object in `raw`, in order; also which decoder was used."""
    if raw.len() == 0:
        return empty(pl.Struct({"resourceType": pl.String})), "none"
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
        values, decoder = raw.str.json_decode(infer_schema_length=None).alias(V), "polars"
    if values.len() != raw.len():
        raise ValueError("decoded a different number of resources than were given")
    contexts = pl.DataFrame({CID: pl.int_range(values.len(), dtype=pl.Int64, eager=True), V: values})
    return contexts.with_columns(pl.lit(0, pl.Int64).alias(ORD)).select(CID, ORD, V), decoder


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
