"""FHIRPath collections as tables: one row per item, keyed by the context it belongs to.

A collection over many contexts (one per resource, or per forEach item) is a DataFrame with `_cid`
(context id), `_ord` (0-based position within that context's collection) and `v` (the item). Every
FHIRPath step is a vectorized operation over all contexts at once: member access is a struct field
plus an explode, `where` re-keys items as contexts of their own, `first()` keeps `_ord == 0`, and
operators join two collections on `_cid`. Empty values never appear as rows (FHIRPath has no nulls).
"""

from __future__ import annotations

from typing import Any

import polars as pl

CID, ORD, V = "_cid", "_ord", "v"


def empty(dtype: pl.DataType | type[pl.DataType] = pl.Null) -> pl.DataFrame:
    """A collection with no items in any context."""
    return pl.DataFrame(schema={CID: pl.Int64, ORD: pl.Int64, V: dtype})


def renumber(frame: pl.DataFrame, sort: bool = False) -> pl.DataFrame:
    """Drop empty items and number each context's items 0..n-1 in their current order."""
    frame = frame.filter(pl.col(V).is_not_null())
    if sort:
        frame = frame.sort(CID, ORD, maintain_order=True)
    return frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over(CID).alias(ORD))


def literal(ids: pl.Series, value: Any, dtype: pl.DataType | None = None) -> pl.DataFrame:
    """The same single value in every context."""
    if value is None:
        return empty()
    return pl.DataFrame({CID: ids}).with_columns(
        pl.lit(0, pl.Int64).alias(ORD), pl.lit(value, dtype=dtype).alias(V)
    )


def per_context(ids: pl.Series, values: pl.DataFrame, column: str = V) -> pl.DataFrame:
    """A per-context value (from `values`: `_cid` + `column`) as a singleton collection; missing → empty."""
    frame = pl.DataFrame({CID: ids}).join(values.select(CID, pl.col(column).alias(V)), on=CID, how="left")
    return renumber(frame.with_columns(pl.lit(0, pl.Int64).alias(ORD)).select(CID, ORD, V))


def singleton(collection: pl.DataFrame) -> pl.DataFrame:
    """The first item per context (`_cid`, `v`), used where FHIRPath expects a single value."""
    return collection.filter(pl.col(ORD) == 0).select(CID, V)


def fields(collection: pl.DataFrame) -> dict[str, pl.DataType]:
    """Element names and types of object items (empty for primitives)."""
    dtype = collection.schema[V]
    return {f.name: f.dtype for f in dtype.fields} if isinstance(dtype, pl.Struct) else {}
