"""Run a ViewDefinition over resources: iteration (forEach, forEachOrNull, repeat) re-keys items as new
contexts, columns are FHIRPath collections per context, nested selects join per context (a cross
product, as the specification defines), unionAll concatenates the rows of its branches.
"""

from __future__ import annotations

from typing import Any

import orjson
import polars as pl

from pipelines.sof.collections import CID, ORD, V, empty, renumber, singleton
from pipelines.sof.compiled import compile_singleton
from pipelines.sof.errors import ViewDefinitionError
from pipelines.sof.evaluate import Env, evaluate
from pipelines.sof.fhirpath import Node
from pipelines.sof.frames import contexts_from_json
from pipelines.sof.view import Select, View, parse_view

MAX_REPEAT_DEPTH = 64
_NODE, _PARENT, _KEY = "_node", "_parent", "_key"


def run_view(view: dict[str, Any], resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of `view` over `resources` (dicts of FHIR JSON), as dicts in column order.

    Resources take the same decoding path as the silver layer's raw JSON, so the conformance suite
    exercises the production path.
    """
    parsed = parse_view(view)
    selected = [r for r in resources if isinstance(r, dict) and r.get("resourceType") == parsed.resource]
    raw = pl.Series("raw", [orjson.dumps(r).decode() for r in selected], dtype=pl.String)
    contexts = contexts_from_json(raw).contexts
    return view_rows(parsed, contexts).to_dicts()


def view_rows(view: View, contexts: pl.DataFrame, keep_context: bool = False) -> pl.DataFrame:
    """Apply `where`, then build the rows of the view's selects; columns in the view's order.

    With `keep_context`, the first column is `_cid`: the context (resource) each row came from.
    """
    env = Env(view.constants, None)
    for condition in view.where:
        verdict = singleton(evaluate(condition, contexts, contexts[CID], env))
        if verdict.schema[V] not in (pl.Boolean, pl.Null):
            raise ViewDefinitionError("a `where` path must evaluate to a boolean")
        keep = verdict.filter(pl.col(V) == True)  # noqa: E712
        contexts = contexts.join(keep.select(CID), on=CID, how="semi")
    rows = select_rows(view.select, contexts, env)
    return rows.select(*([CID] if keep_context else []), *view.select.column_names())


def select_rows(node: Select, contexts: pl.DataFrame, env: Env) -> pl.DataFrame:
    """Rows of one select node, keyed by the `_cid` of the context they came from."""
    iteration = node.for_each or node.for_each_or_null
    if iteration is None and not node.repeat:
        return _body(node, contexts, env)
    focus = contexts.filter(pl.col(V).is_not_null())
    items = (
        _repeat(node.repeat, focus, env) if node.repeat else evaluate(iteration, focus, contexts[CID], env)
    )
    items = items.with_row_index(_NODE).with_columns(pl.col(_NODE).cast(pl.Int64))
    if node.for_each_or_null is not None:
        missing = contexts.join(items.select(CID), on=CID, how="anti").select(CID)
        nulls = (
            missing.with_columns(pl.lit(0, pl.Int64).alias(ORD), pl.lit(None, items.schema[V]).alias(V))
            .with_row_index(_NODE, offset=items.height)
            .with_columns(pl.col(_NODE).cast(pl.Int64))
        )
        items = pl.concat([items, nulls.select(items.columns)], how="vertical_relaxed")
    children = items.select(pl.col(_NODE).alias(CID), pl.lit(0, pl.Int64).alias(ORD), V)
    child_env = Env(env.constants, items.select(pl.col(_NODE).alias(CID), pl.col(ORD).alias(V)))
    rows = _body(node, children, child_env)
    parents = items.select(pl.col(_NODE).alias(CID), pl.col(CID).alias(_PARENT))
    rows = rows.join(parents, on=CID, maintain_order="left").drop(CID).rename({_PARENT: CID})
    return rows.select(CID, *node.column_names())


def _body(node: Select, contexts: pl.DataFrame, env: Env) -> pl.DataFrame:
    ids = contexts[CID]
    focus = contexts.filter(pl.col(V).is_not_null())
    compiled = {
        column.name: compile_singleton(column.expression, contexts.schema[V])
        for column in node.columns
        if not column.collection
    }
    # contexts hold one item each, so single-valued columns are computed in place, without joins
    rows = contexts.select(CID, *(expr.alias(name) for name, expr in compiled.items() if expr is not None))
    for column in node.columns:
        if compiled.get(column.name) is not None:
            continue
        values = evaluate(column.expression, focus, ids, env)
        if column.collection:
            grouped = values.group_by(CID, maintain_order=True).agg(pl.col(V).alias(column.name))
            rows = rows.join(grouped, on=CID, how="left", maintain_order="left").with_columns(
                pl.col(column.name).fill_null(pl.lit([], dtype=grouped.schema[column.name]))
            )
            continue
        if values.height and values[ORD].max() > 0:  # type: ignore[operator]
            raise ViewDefinitionError(
                f"column {column.name} yields several values for one row (set collection: true)"
            )
        rows = rows.join(
            values.select(CID, pl.col(V).alias(column.name)), on=CID, how="left", maintain_order="left"
        )
    for child in node.selects:
        rows = rows.join(select_rows(child, contexts, env), on=CID, how="inner", maintain_order="left_right")
    if node.union_all:
        branches = [select_rows(branch, contexts, env) for branch in node.union_all]
        rows = rows.join(
            pl.concat(branches, how="vertical_relaxed"), on=CID, how="inner", maintain_order="left_right"
        )
    return rows.select(CID, *node.column_names())


def _repeat(paths: tuple[Node, ...], focus: pl.DataFrame, env: Env) -> pl.DataFrame:
    """Every item reachable by applying `paths` again and again, in depth-first order per context."""
    frontier = focus.select(pl.col(CID).alias(_NODE), pl.col(CID).alias("_root"), pl.lit("").alias(_KEY), V)
    found: list[pl.DataFrame] = []
    next_id = int(focus[CID].max() or 0) + 1 if focus.height else 0
    for _ in range(MAX_REPEAT_DEPTH):
        if frontier.is_empty():
            break
        level_focus = frontier.select(pl.col(_NODE).alias(CID), pl.lit(0, pl.Int64).alias(ORD), V)
        level: list[pl.DataFrame] = []
        for index, path in enumerate(paths):
            items = evaluate(path, level_focus, level_focus[CID], env)
            level.append(
                items.join(
                    frontier.select(pl.col(_NODE).alias(CID), "_root", _KEY), on=CID, maintain_order="left"
                ).select(
                    "_root",
                    pl.concat_str(
                        pl.col(_KEY),
                        pl.lit(f"{index:04d}."),
                        pl.col(ORD).cast(pl.String).str.zfill(9),
                        pl.lit("/"),
                    ).alias(_KEY),
                    V,
                )
            )
        frontier = pl.concat(level, how="vertical_relaxed")
        frontier = frontier.with_row_index(_NODE, offset=next_id).with_columns(pl.col(_NODE).cast(pl.Int64))
        next_id += frontier.height
        found.append(frontier)
    else:
        raise ViewDefinitionError(f"repeat went deeper than {MAX_REPEAT_DEPTH} levels")
    if not found:
        return empty()
    every = pl.concat(found, how="vertical_relaxed").sort("_root", _KEY)
    return renumber(every.select(pl.col("_root").alias(CID), pl.lit(0, pl.Int64).alias(ORD), V))
