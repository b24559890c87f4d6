"""Sampled FHIR validation of bronze: the bulk path checks only key fields, so a sample of whole resources
is validated with fhir.resources (R4B models) to see type drift and profile problems early.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import orjson
import polars as pl
from upath import UPath

from pipelines.bronze.diagnostics import fhir_validation_problem
from pipelines.bronze.tables import BRONZE, FHIR_RESOURCES
from pipelines.lake import parquet_files, read_parquet, table_path

DEFAULT_SAMPLE_SIZE = 400
DEFAULT_SAMPLE_FILES = 6


@dataclass
class ValidationSample:
    """Outcome of validating a sample of bronze FHIR resources (counts and element paths only)."""

    checked: int = 0
    invalid: int = 0
    invalid_by_type: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)  # "<Type>: <first failing element: message>"

    @property
    def invalid_share(self) -> float:
        """Share of sampled resources that failed validation."""
        return self.invalid / self.checked if self.checked else 0.0


def validate_sample(
    lake: UPath, size: int = DEFAULT_SAMPLE_SIZE, files: int = DEFAULT_SAMPLE_FILES, seed: int = 0
) -> ValidationSample:
    """Validate up to `size` resources from up to `files` bronze part files (deterministic for a seed)."""
    outcome = ValidationSample()
    parts = parquet_files(table_path(lake, BRONZE, FHIR_RESOURCES))
    if not parts:
        return outcome
    chosen = random.Random(seed).sample(parts, min(files, len(parts)))
    frame = pl.concat(
        [
            read_parquet(p, columns=["resource_type", "operation", "raw"]).filter(
                pl.col("operation") == "upsert"
            )
            for p in chosen
        ]
    )
    if frame.is_empty():
        return outcome
    sample = frame.sample(min(size, frame.height), seed=seed)
    for resource_type, raw in sample.select("resource_type", "raw").iter_rows():  # a sample, not the bulk
        outcome.checked += 1
        problem = fhir_validation_problem(orjson.loads(raw))
        if problem:
            outcome.invalid += 1
            outcome.invalid_by_type[resource_type] += 1
            first = problem.removeprefix("FHIR validation failed: ").split(";")[0]
            outcome.problems[f"{resource_type}: {first}"] += 1
    return outcome
