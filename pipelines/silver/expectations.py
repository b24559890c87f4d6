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


def check_table(table: str, frame: pl.DataFrame, suite: dict[str, Any]) -> ContractOutcome:
    """Validate a table (one partition) against its suite."""
    import great_expectations as gx

    outcome = ContractOutcome(table)
    if frame.is_empty():
        return outcome
    batch = _batch_definition(table).get_batch(batch_parameters={"dataframe": frame.to_pandas()})
    result = batch.validate(gx.ExpectationSuite(**suite))
    for item in result.results:
        outcome.evaluated += 1
        if item.success:
            continue
        config = item.expectation_config
        columns = config.kwargs.get("column") or ",".join(config.kwargs.get("column_list") or [])
        unexpected = item.result.get("unexpected_count", "?")
        outcome.failures.append(f"{config.type}({columns}): {unexpected} unexpected")
    outcome.success = not outcome.failures
    return outcome


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
