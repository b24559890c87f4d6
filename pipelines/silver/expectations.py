"""The silver tables' data contracts: Great Expectations suites in data_contracts/expectations.

GE 1.x has no Polars support and dagster-ge needs GE < 1, so a partition's table goes through pandas
into an ephemeral GE context here, called from the silver asset. GE is imported lazily (seconds to
import). Outcomes carry expectation types, columns and counts only: GE's own results also list sample
values, which may be patient data and are dropped here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import orjson
import polars as pl

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "data_contracts" / "expectations"


@dataclass
class ContractOutcome:
    """Result of one table's suite on one partition."""

    table: str
    success: bool = True
    evaluated: int = 0
    failures: list[str] = field(default_factory=list)  # "<expectation>(<column>): <n> unexpected"


@lru_cache(maxsize=4)
def load_suites(folder: Path = EXPECTATIONS_DIR) -> dict[str, dict[str, Any]]:
    """Every suite in the folder by table name."""
    return {path.stem: orjson.loads(path.read_bytes()) for path in sorted(folder.glob("*.json"))}


# GE's pandas engine checks a column pair against its allowed set row by row in Python (14 s for 300,000
# device readings, nearly all of a device partition's check). The answer only depends on which distinct
# pairs occur, so these run on the distinct pairs and count their failures as distinct pairs.
_ON_DISTINCT_PAIRS = "expect_column_pair_values_to_be_in_set"


def check_table(table: str, frame: pl.DataFrame, suite: dict[str, Any]) -> ContractOutcome:
    """Validate a table (one partition) against its suite."""
    outcome = ContractOutcome(table)
    if frame.is_empty():
        return outcome
    per_row, on_pairs = [], []
    for expectation in suite["expectations"]:
        distinct = expectation["type"] == _ON_DISTINCT_PAIRS and "mostly" not in expectation["kwargs"]
        (on_pairs if distinct else per_row).append(expectation)
    batches = [(per_row, frame, "unexpected")]
    batches += [
        (
            [pair],
            frame.select(pair["kwargs"]["column_A"], pair["kwargs"]["column_B"]).unique(),
            "unexpected pairs",
        )
        for pair in on_pairs
        if {pair["kwargs"]["column_A"], pair["kwargs"]["column_B"]} <= set(frame.columns)
    ]
    # A pair expectation on a missing column goes through GE with the full frame, which reports it failed.
    batches[0][0].extend(
        pair
        for pair in on_pairs
        if not {pair["kwargs"]["column_A"], pair["kwargs"]["column_B"]} <= set(frame.columns)
    )
    for expectations, rows, unit in batches:
        if expectations:
            _validate(table, rows, {**suite, "expectations": expectations}, unit, outcome)
    outcome.success = not outcome.failures
    return outcome


def _validate(
    table: str, frame: pl.DataFrame, suite: dict[str, Any], unit: str, outcome: ContractOutcome
) -> None:
    import great_expectations as gx

    # Every expectation here is column-scoped, so only the columns a suite names cross into pandas.
    checked = frame.select(column for column in suite_columns(suite) if column in frame.columns)
    batch = _batch_definition(table).get_batch(batch_parameters={"dataframe": checked.to_pandas()})
    result = batch.validate(gx.ExpectationSuite(**suite))
    for item in result.results:
        outcome.evaluated += 1
        if item.success:
            continue
        config = item.expectation_config
        columns = ",".join(suite_columns({"expectations": [{"kwargs": config.kwargs}]}))
        unexpected = item.result.get("unexpected_count", "?")
        outcome.failures.append(f"{config.type}({columns}): {unexpected} {unit}")


def suite_columns(suite: dict[str, Any]) -> list[str]:
    """The columns a suite's expectations name, in first-use order."""
    named: dict[str, None] = {}
    for expectation in suite["expectations"]:
        kwargs = expectation["kwargs"]
        for key in ("column", "column_A", "column_B"):
            if key in kwargs:
                named[kwargs[key]] = None
        named.update(dict.fromkeys(kwargs.get("column_list") or []))
    return list(named)


@cache
def _batch_definition(table: str) -> Any:
    source = _context().data_sources.get("silver")
    asset = source.add_dataframe_asset(name=table)
    return asset.add_batch_definition_whole_dataframe(f"{table}_partition")


@lru_cache(maxsize=1)
def _context() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.data_sources.add_pandas("silver")
    return context
