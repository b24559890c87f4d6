"""Evaluate a FHIRPath AST over collection tables (see `collections`), vectorized across contexts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from pipelines.sof.boundaries import high_boundary, low_boundary
from pipelines.sof.collections import (
    CID,
    ORD,
    V,
    empty,
    fields,
    literal,
    per_context,
    renumber,
    singleton,
)
from pipelines.sof.errors import ViewDefinitionError
from pipelines.sof.fhirpath import Binary, Call, Constant, Index, Literal, Member, Node, Path, This, Unary

PRIMITIVE_DTYPES: dict[str, tuple[type[pl.DataType], ...]] = {
    "string": (pl.String,),
    "code": (pl.String,),
    "id": (pl.String,),
    "uri": (pl.String,),
    "url": (pl.String,),
    "canonical": (pl.String,),
    "oid": (pl.String,),
    "uuid": (pl.String,),
    "markdown": (pl.String,),
    "base64Binary": (pl.String,),
    "date": (pl.String,),
    "dateTime": (pl.String,),
    "instant": (pl.String,),
    "time": (pl.String,),
    "boolean": (pl.Boolean,),
    "integer": (pl.Int64, pl.Int32, pl.Int16, pl.Int8, pl.UInt64, pl.UInt32),
    "positiveInt": (pl.Int64, pl.Int32),
    "unsignedInt": (pl.Int64, pl.Int32),
    "integer64": (pl.Int64,),
    "decimal": (pl.Float64, pl.Float32, pl.Int64),
}
REFERENCE_PATTERN = r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-\.]{1,64})(?:/_history/[^/]+)?$"
"""A literal reference: type and id groups (a version suffix ignored)."""


@dataclass
class Env:
    """What an expression may refer to besides its focus: view constants and %rowIndex."""

    constants: dict[str, tuple[Any, str]] = field(default_factory=dict)
    row_index: pl.DataFrame | None = None  # `_cid`, `v`: the index of each context in its iteration


def evaluate(node: Node, focus: pl.DataFrame, ids: pl.Series, env: Env) -> pl.DataFrame:
    """The collection `node` yields in each context (`ids`), given each context's focus collection."""
    if isinstance(node, Path):
        return _path(node, focus, ids, env)
    if isinstance(node, Member):
        return member(focus, node.name)
    if isinstance(node, Call):
        return _call(node.name, node.args, focus, ids, env)
    if isinstance(node, Literal):
        return _literal(node, ids)
    if isinstance(node, This):
        return focus
    if isinstance(node, Constant):
        return _constant(node.name, ids, env)
    if isinstance(node, Index):
        target = evaluate(node.index, focus, ids, env)
        items = evaluate(node.target, focus, ids, env)
        wanted = singleton(target).rename({V: "_at"})
        return renumber(items.join(wanted, on=CID).filter(pl.col(ORD) == pl.col("_at")).drop("_at"))
    if isinstance(node, Binary):
        return _binary(node, focus, ids, env)
    if isinstance(node, Unary):
        operand = evaluate(node.operand, focus, ids, env)
        return operand.with_columns(-pl.col(V)) if node.op == "-" else operand
    raise ViewDefinitionError(f"FHIRPath: unsupported expression {node!r}")


def member(focus: pl.DataFrame, name: str) -> pl.DataFrame:
    """`focus.name`: the element of every object item, flattened; a type name filters resources.

    The common case, one item per context (a resource, a forEach item), needs no renumbering: a
    single element keeps position 0 and a list's positions are its indexes.
    """
    elements = fields(focus)
    if name not in elements:
        if name[:1].isupper() and "resourceType" in elements:
            return renumber(focus.filter(pl.col(V).struct.field("resourceType") == name))
        return empty()
    out = focus.select(CID, ORD, pl.col(V).struct.field(name).alias(V))
    singletons = focus.is_empty() or focus[ORD].max() == 0
    if not isinstance(elements[name], pl.List):
        return out.filter(pl.col(V).is_not_null()) if singletons else renumber(out)
    if (
        not singletons
        or out.select(pl.col(V).list.eval(pl.element().is_null().sum()).list.first().sum()).item()
    ):
        return renumber(out.explode(V))
    positions = pl.int_ranges(0, pl.col(V).list.len(), dtype=pl.Int64).alias(ORD)
    present = out.filter(pl.col(V).list.len() > 0)
    return present.with_columns(positions).explode([V, ORD]).filter(pl.col(V).is_not_null())


def _path(node: Path, focus: pl.DataFrame, ids: pl.Series, env: Env) -> pl.DataFrame:
    right = node.right
    if isinstance(right, Call) and right.name == "ofType" and len(right.args) == 1:
        choice = _choice_element(node.left, type_name(right.args[0]), focus, ids, env)
        if choice is not None:
            return choice
    left = evaluate(node.left, focus, ids, env)
    if isinstance(right, Call) and right.name in ("lowBoundary", "highBoundary"):
        return _boundaries(right.name, left, _type_hint(node.left))
    if isinstance(right, Member):
        return member(left, right.name)
    if isinstance(right, Call):
        # a function's own arguments are evaluated against the contexts, its focus is `left`
        return _call(right.name, right.args, left, ids, env)
    raise ViewDefinitionError(f"FHIRPath: cannot invoke {right!r}")


def _choice_element(
    left: Node, wanted: str, focus: pl.DataFrame, ids: pl.Series, env: Env
) -> pl.DataFrame | None:
    """`value.ofType(Quantity)` is the JSON element `valueQuantity` (FHIR's choice-type naming)."""
    if isinstance(left, Member):
        base, name = focus, left.name
    elif isinstance(left, Path) and isinstance(left.right, Member):
        base, name = evaluate(left.left, focus, ids, env), left.right.name
    else:
        return None
    if name in fields(base):
        return None  # a real element of that name: filter it by type instead
    return member(base, name + wanted[:1].upper() + wanted[1:])


def type_name(node: Node) -> str:
    """The type named in `ofType(T)` / `getReferenceKey(T)`, without a `FHIR.`/`System.` prefix."""
    if isinstance(node, Member):
        return node.name.removeprefix("FHIR.").removeprefix("System.")
    if isinstance(node, Path) and isinstance(node.right, Member):
        return node.right.name
    raise ViewDefinitionError("FHIRPath: ofType() needs a type name")


def _literal(node: Literal, ids: pl.Series) -> pl.DataFrame:
    if node.type == "empty":
        return empty()
    if node.type == "decimal":
        return literal(ids, float(node.value), pl.Float64)  # type: ignore[arg-type]
    if node.type == "integer":
        return literal(ids, node.value, pl.Int64)
    if node.type == "boolean":
        return literal(ids, node.value, pl.Boolean)
    return literal(ids, node.value, pl.String)


def _constant(name: str, ids: pl.Series, env: Env) -> pl.DataFrame:
    if name == "rowIndex":
        if env.row_index is None:
            return literal(ids, 0, pl.Int64)
        return per_context(ids, env.row_index)
    if name not in env.constants:
        raise ViewDefinitionError(f"FHIRPath: %{name} is not a constant of this view")
    value, type_name = env.constants[name]
    return _literal(Literal(value, type_name), ids)


def _call(name: str, args: tuple[Node, ...], focus: pl.DataFrame, ids: pl.Series, env: Env) -> pl.DataFrame:
    if name == "where":
        _arity(name, args, 1)
        return _where(focus, args[0], env)
    if name == "exists":
        items = _where(focus, args[0], env) if args else focus
        return _per_id(ids, items.group_by(CID).agg(pl.len().alias("n")), pl.col("n").fill_null(0) > 0)
    if name == "empty":
        _arity(name, args, 0)
        return _per_id(ids, focus.group_by(CID).agg(pl.len().alias("n")), pl.col("n").fill_null(0) == 0)
    if name == "count":
        _arity(name, args, 0)
        return _per_id(
            ids, focus.group_by(CID).agg(pl.len().alias("n")), pl.col("n").fill_null(0).cast(pl.Int64)
        )
    if name == "first":
        _arity(name, args, 0)
        return focus.filter(pl.col(ORD) == 0)
    if name == "last":
        _arity(name, args, 0)
        return renumber(focus.filter(pl.col(ORD) == pl.col(ORD).max().over(CID)))
    if name == "not":
        _arity(name, args, 0)
        values = singleton(focus)
        if values.schema[V] != pl.Boolean:
            return empty()
        return per_context(ids, values.with_columns(~pl.col(V)))
    if name == "join":
        separator = _string_argument(name, args, ids, env, default="")
        joined = focus.group_by(CID, maintain_order=True).agg(pl.col(V).cast(pl.String).str.join(separator))
        everyone = pl.DataFrame({CID: ids}).join(joined, on=CID, how="left")
        return everyone.select(CID, pl.lit(0, pl.Int64).alias(ORD), pl.col(V).fill_null(""))  # join of {} is
    if name == "extension":
        _arity(name, args, 1)
        url = _string_argument(name, args, ids, env)
        extensions = member(focus, "extension")
        if extensions.is_empty() or "url" not in fields(extensions):
            return empty()
        return renumber(extensions.filter(pl.col(V).struct.field("url") == url))
    if name == "ofType":
        _arity(name, args, 1)
        return _of_type(focus, type_name(args[0]))
    if name == "getResourceKey":
        _arity(name, args, 0)
        return member(focus, "id")
    if name == "getReferenceKey":
        wanted = type_name(args[0]) if args else None
        references = member(focus, "reference")
        if references.is_empty():
            return empty(pl.String)
        parts = pl.col(V).str.extract_groups(REFERENCE_PATTERN)
        keyed = references.with_columns(
            parts.struct.field("1").alias("_type"), parts.struct.field("2").alias("_id")
        )
        if wanted:
            keyed = keyed.filter(pl.col("_type") == wanted)
        return renumber(keyed.select(CID, ORD, pl.col("_id").alias(V)))
    if name in ("lowBoundary", "highBoundary"):
        return _boundaries(name, focus, None)
    raise ViewDefinitionError(f"FHIRPath: function {name}() is not supported")


def _boundaries(name: str, focus: pl.DataFrame, kind: str | None) -> pl.DataFrame:
    """lowBoundary()/highBoundary() of each item: numbers for decimals, text for dates and times."""
    if focus.is_empty():
        return focus
    function = low_boundary if name == "lowBoundary" else high_boundary
    numeric = focus.schema[V].is_numeric()
    values = focus.with_columns(
        pl.col(V).map_elements(lambda v: function(v, kind), return_dtype=pl.String, skip_nulls=True).alias(V)
    )
    values = renumber(values)
    return values.with_columns(pl.col(V).cast(pl.Float64)) if numeric else values


def _type_hint(node: Node) -> str | None:
    """The FHIR type of the items a node yields, where the expression shows it (ofType, or element name)."""
    if isinstance(node, Path) and isinstance(node.right, Call) and node.right.name == "ofType":
        return type_name(node.right.args[0])
    name = (
        node.name
        if isinstance(node, Member)
        else node.right.name
        if isinstance(node, Path) and isinstance(node.right, Member)
        else ""
    )
    for suffix, kind in (
        ("DateTime", "dateTime"),
        ("Instant", "instant"),
        ("Date", "date"),
        ("Time", "time"),
    ):
        if name.endswith(suffix) or name == kind:
            return kind
    return None


def _arity(name: str, args: tuple[Node, ...], count: int) -> None:
    if len(args) != count:
        raise ViewDefinitionError(f"FHIRPath: {name}() takes {count} argument(s), got {len(args)}")


def _string_argument(
    name: str, args: tuple[Node, ...], ids: pl.Series, env: Env, default: str | None = None
) -> str:
    if not args:
        if default is None:
            raise ViewDefinitionError(f"FHIRPath: {name}() needs an argument")
        return default
    node = args[0]
    if isinstance(node, Literal) and node.type == "string":
        return str(node.value)
    if isinstance(node, Constant) and node.name in env.constants:
        return str(env.constants[node.name][0])
    raise ViewDefinitionError(f"FHIRPath: {name}() needs a string literal argument")


def _where(focus: pl.DataFrame, criterion: Node, env: Env) -> pl.DataFrame:
    """Items for which `criterion`, evaluated with the item as its focus, is true."""
    items = focus.with_row_index("_iid").with_columns(pl.col("_iid").cast(pl.Int64))
    item_focus = items.select(pl.col("_iid").alias(CID), pl.lit(0, pl.Int64).alias(ORD), V)
    item_env = Env(env.constants, None)
    verdict = singleton(evaluate(criterion, item_focus, items["_iid"], item_env))
    if verdict.schema[V] != pl.Boolean:
        verdict = verdict.filter(pl.lit(False))
    keep = verdict.filter(pl.col(V)).select(pl.col(CID).alias("_iid"))
    return renumber(items.join(keep, on="_iid", how="semi").drop("_iid"), sort=True)


def _per_id(ids: pl.Series, counts: pl.DataFrame, value: pl.Expr) -> pl.DataFrame:
    frame = pl.DataFrame({CID: ids}).join(counts, on=CID, how="left")
    return frame.select(CID, pl.lit(0, pl.Int64).alias(ORD), value.alias(V))


def _of_type(focus: pl.DataFrame, type_name: str) -> pl.DataFrame:
    if focus.is_empty():
        return focus
    if "resourceType" in fields(focus):
        return renumber(focus.filter(pl.col(V).struct.field("resourceType") == type_name))
    accepted = PRIMITIVE_DTYPES.get(type_name)
    dtype = focus.schema[V]
    if accepted is None:
        return focus if isinstance(dtype, pl.Struct) else empty()
    return focus if isinstance(dtype, accepted) else empty()


_COMPARISON = {"<": "lt", ">": "gt", "<=": "le", ">=": "ge"}
_ARITHMETIC = {"+", "-", "*", "/", "div", "mod"}


def _binary(node: Binary, focus: pl.DataFrame, ids: pl.Series, env: Env) -> pl.DataFrame:
    left = evaluate(node.left, focus, ids, env)
    right = evaluate(node.right, focus, ids, env)
    op = node.op
    if op in ("and", "or", "xor", "implies"):
        return _logic(op, left, right, ids)
    if op == "|":
        both = pl.concat(_aligned(left, right), how="vertical")
        return renumber(both.unique(subset=[CID, V], keep="first", maintain_order=True), sort=True)
    if op in ("=", "!=", "~", "!~"):
        return _equality(op, left, right)
    if op in ("in", "contains"):
        items, collection = (left, right) if op == "in" else (right, left)
        items, collection = _aligned(singleton(items), collection)
        hits = collection.select(CID, V).unique().with_columns(pl.lit(True).alias("_hit"))
        found = items.join(hits, on=[CID, V], how="left")
        return found.select(CID, pl.lit(0, pl.Int64).alias(ORD), pl.col("_hit").fill_null(False).alias(V))
    a, b = _aligned(singleton(left), singleton(right))
    pair = a.join(b, on=CID, suffix="_r")
    lhs, rhs = pl.col(V), pl.col(f"{V}_r")
    if op in _COMPARISON:
        result = getattr(lhs, _COMPARISON[op])(rhs)
    elif op == "&":
        pair = pl.DataFrame({CID: ids}).join(a, on=CID, how="left").join(b, on=CID, how="left", suffix="_r")
        result = pl.concat_str(lhs.cast(pl.String).fill_null(""), rhs.cast(pl.String).fill_null(""))
    elif op in _ARITHMETIC:
        result = _arithmetic(op, lhs, rhs, pair.schema[V])
    else:
        raise ViewDefinitionError(f"FHIRPath: operator {op} is not supported")
    return renumber(pair.select(CID, pl.lit(0, pl.Int64).alias(ORD), result.alias(V)))


def _arithmetic(op: str, lhs: pl.Expr, rhs: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if op == "+" and dtype == pl.String:
        return pl.concat_str(lhs, rhs)
    if op == "+":
        return lhs + rhs
    if op == "-":
        return lhs - rhs
    if op == "*":
        return lhs * rhs
    if op == "/":
        return pl.when(rhs != 0).then(lhs.cast(pl.Float64) / rhs.cast(pl.Float64))
    if op == "div":
        return pl.when(rhs != 0).then((lhs / rhs).floor().cast(pl.Int64))
    return pl.when(rhs != 0).then(lhs % rhs)


def _equality(op: str, left: pl.DataFrame, right: pl.DataFrame) -> pl.DataFrame:
    """Collection equality: both sides non-empty, same items in the same order."""
    a, b = _aligned(left, right)
    if op in ("~", "!~") and a.schema[V] == pl.String:
        a, b = (f.with_columns(pl.col(V).str.to_lowercase().str.strip_chars()) for f in (a, b))
    lists = [
        f.group_by(CID, maintain_order=True).agg(pl.col(V).alias(name)) for f, name in ((a, "_l"), (b, "_r"))
    ]
    pair = lists[0].join(lists[1], on=CID)
    same = pl.col("_l") == pl.col("_r")
    result = same if op in ("=", "~") else ~same
    return pair.select(CID, pl.lit(0, pl.Int64).alias(ORD), result.alias(V))


def _logic(op: str, left: pl.DataFrame, right: pl.DataFrame, ids: pl.Series) -> pl.DataFrame:
    """Three-valued logic; an empty operand is unknown (Polars' Kleene semantics match FHIRPath's)."""
    frame = pl.DataFrame({CID: ids})
    for name, side in (("_l", left), ("_r", right)):
        values = singleton(side)
        if values.schema[V] != pl.Boolean:
            values = values.with_columns(pl.lit(None, pl.Boolean).alias(V))
        frame = frame.join(values.rename({V: name}), on=CID, how="left")
    lhs, rhs = pl.col("_l"), pl.col("_r")
    if op == "and":
        result = lhs & rhs
    elif op == "or":
        result = lhs | rhs
    elif op == "xor":
        result = lhs ^ rhs
    else:
        result = pl.when(lhs == False).then(True).otherwise(pl.when(lhs).then(rhs))  # noqa: E712
        result = pl.when(lhs.is_null() & (rhs == True)).then(True).otherwise(result)  # noqa: E712
    return renumber(frame.select(CID, pl.lit(0, pl.Int64).alias(ORD), result.alias(V)))


def _aligned(left: pl.DataFrame, right: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bring two collections to one item type (numbers to Float64, otherwise text) so they compare."""
    lt, rt = left.schema[V], right.schema[V]
    if lt == rt:
        return left, right
    if lt == pl.Null:
        return left.with_columns(pl.col(V).cast(rt)), right
    if rt == pl.Null:
        return left, right.with_columns(pl.col(V).cast(lt))
    if lt.is_numeric() and rt.is_numeric():
        target: pl.DataType = pl.Float64()
    else:
        target = pl.String()
    try:
        return left.with_columns(pl.col(V).cast(target)), right.with_columns(pl.col(V).cast(target))
    except pl.exceptions.PolarsError:
        return left.with_columns(pl.col(V).cast(pl.String)), right.with_columns(pl.col(V).cast(pl.String))
