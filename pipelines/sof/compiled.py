"""Columns compiled to one Polars expression over the context struct: the fast path of `_body`.

Most silver columns are plain element paths (`status`, `code.coding.first().code`,
`subject.getReferenceKey(Patient)`) that yield at most one value per context. Such a path needs no
collection table and no join: it is a chain of struct-field and list operations evaluated in one
`select`. `compile_singleton` returns that expression when it can prove the result is a singleton
and every step has the same meaning as in `evaluate`; otherwise None, and the column takes the
general collection path. Both paths must agree; the conformance suite runs through both.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipelines.sof.collections import V
from pipelines.sof.evaluate import REFERENCE_PATTERN, type_name
from pipelines.sof.fhirpath import Binary, Call, Member, Node, Path


@dataclass(frozen=True)
class _Step:
    """An expression and what it yields: one item (`many` False, null = empty) or a list of items
    (`many` True, null items are empty and ignored)."""

    expr: pl.Expr
    dtype: pl.DataType
    many: bool


_EMPTY = _Step(pl.lit(None), pl.Null(), False)


def compile_singleton(node: Node, context_dtype: pl.DataType) -> pl.Expr | None:
    """The column as one expression over the contexts' `v` (one value or null per context), or None
    when the path needs the general evaluator (collections, operators, constants, where, ...)."""
    step = _compile(node, _Step(pl.col(V), context_dtype, False))
    if step is None or step.many:
        return None
    return step.expr


def _compile(node: Node, focus: _Step) -> _Step | None:
    if isinstance(node, Member):
        return _member(focus, node.name)
    if isinstance(node, Call):
        return _function(node, focus)
    if isinstance(node, Binary) and node.op == "|":
        return _union(node, focus)
    if not isinstance(node, Path):
        return None
    right = node.right
    if isinstance(right, Call) and right.name == "ofType" and len(right.args) == 1:
        return _choice(node.left, right.args[0], focus)
    left = _compile(node.left, focus)
    if left is None:
        return None
    if isinstance(right, Member):
        return _member(left, right.name)
    if isinstance(right, Call):
        return _function(right, left)
    return None


def _member(focus: _Step, name: str) -> _Step | None:
    if isinstance(focus.dtype, pl.Null):
        return _EMPTY
    if not isinstance(focus.dtype, pl.Struct):
        return None  # a primitive's member, or a type conflict: let the evaluator decide
    elements = {f.name: f.dtype for f in focus.dtype.fields}
    if name not in elements:
        return None if name[:1].isupper() else _EMPTY  # `Patient.x` filters by type: general path
    dtype = elements[name]
    is_list = isinstance(dtype, pl.List)
    item = dtype.inner if isinstance(dtype, pl.List) else dtype
    if not focus.many:
        return _Step(focus.expr.struct.field(name), item, is_list)
    field = pl.element().struct.field(name)
    if is_list:
        field = field.list.explode(keep_nulls=False, empty_as_null=False)
    return _Step(focus.expr.list.eval(field), item, True)


def _union(node: Binary, focus: _Step) -> _Step | None:
    """`a | b` as the items of a then b. Union also removes duplicates, which a list does not, so the
    result is `many` and only a following `first()` (unaffected by duplicates) makes it a column."""
    left, right = _compile(node.left, focus), _compile(node.right, focus)
    if left is None or right is None:
        return None
    dtype = right.dtype if isinstance(left.dtype, pl.Null) else left.dtype
    if not isinstance(right.dtype, pl.Null) and right.dtype != dtype:
        return None
    if isinstance(dtype, pl.Null):
        return _EMPTY
    return _Step(pl.concat_list([_as_list_part(left, dtype), _as_list_part(right, dtype)]), dtype, True)


def _as_list_part(step: _Step, dtype: pl.DataType) -> pl.Expr:
    """A side of a union ready for `concat_list`, which would make the whole result null when a list
    side is null (an absent element): absent lists become empty ones."""
    if isinstance(step.dtype, pl.Null):
        return pl.lit(None, dtype)
    if step.many:
        return step.expr.fill_null(pl.lit([], dtype=pl.List(dtype)))
    return step.expr


def _choice(left: Node, type_node: Node, focus: _Step) -> _Step | None:
    """`value.ofType(Quantity)` as the element `valueQuantity`, as `evaluate` reads it."""
    if isinstance(left, Member):
        base, name = focus, left.name
    elif isinstance(left, Path) and isinstance(left.right, Member):
        base, name = _compile(left.left, focus), left.right.name
    else:
        return None
    if base is None or not isinstance(base.dtype, pl.Struct | pl.Null):
        return None
    if isinstance(base.dtype, pl.Struct) and name in {f.name for f in base.dtype.fields}:
        return None  # a real element of that name: the evaluator filters it by type
    wanted = type_name(type_node)
    return _member(base, name + wanted[:1].upper() + wanted[1:])


def _function(call: Call, focus: _Step) -> _Step | None:
    if call.name == "first" and not call.args:
        if not focus.many:
            return focus
        # list.filter, not list.drop_nulls: the same result, far faster on lists of structs (Polars 2.1)
        present = focus.expr.list.filter(pl.element().is_not_null())
        return _Step(present.list.first(), focus.dtype, False)
    if call.name == "getResourceKey" and not call.args:
        return _member(focus, "id")
    if call.name == "getReferenceKey" and len(call.args) <= 1 and not focus.many:
        reference = _member(focus, "reference")
        if reference is None or reference.many:
            return None
        if isinstance(reference.dtype, pl.Null):
            return _Step(pl.lit(None, pl.String), pl.String(), False)
        if reference.dtype != pl.String:
            return None
        parts = reference.expr.str.extract_groups(REFERENCE_PATTERN)
        key = parts.struct.field("2")
        if call.args:
            key = pl.when(parts.struct.field("1") == type_name(call.args[0])).then(key)
        return _Step(key, pl.String(), False)
    return None
