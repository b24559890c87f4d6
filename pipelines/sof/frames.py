"""Resources as engine contexts, straight from raw JSON text (the bronze `raw` column).

pyarrow infers one schema over the whole batch (a single block, so no block disagrees with another).
It reads ISO date-like strings as timestamps, which would change the text of FHIR dates, so every
inferred timestamp or date becomes a string and the batch is read again with that explicit schema.
When the data holds incompatible types for one element (a string here, a number there), Polars'
decoder, which widens to a common type, takes over.
"""

from __future__ import annotations

import io

import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json

from pipelines.sof.collections import CID, ORD, V, empty

SAMPLE_LINES = 4096


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


def _read(payload: bytes, schema: pa.Schema | None, unexpected: str = "error") -> pa.Table:
    options = (
        pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior=unexpected) if schema else None
    )
    return pa_json.read_json(
        io.BytesIO(payload),
        read_options=pa_json.ReadOptions(block_size=len(payload) + 1),
        parse_options=options,
    )


def _read_with_sampled_schema(raw: pl.Series) -> pa.Table | None:
    """One pass: the schema of a sample, elements the sample lacks inferred on the way. When such an
    element came out as a timestamp, the batch is read again with it as text (None: no sample gain)."""
    if raw.len() <= SAMPLE_LINES:
        return None
    sample = raw.head(SAMPLE_LINES).str.join("\n").item().encode()
    schema = _text_schema(_read(sample, None).schema)
    payload = raw.str.join("\n").item().encode()
    table = _read(payload, schema, unexpected="infer")
    if _text_schema(table.schema) != table.schema:
        table = _read(payload, _text_schema(table.schema))
    return table


def _read_with_full_schema(raw: pl.Series) -> pa.Table:
    payload = raw.str.join("\n").item().encode()
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
