"""Counts of the identity tables for the command-line summary."""

from __future__ import annotations

import polars as pl
from upath import UPath

from pipelines.identity.build import CLERICAL_REVIEW, IDENTITY, PERSON, PERSON_LINK, TABLE_FILE
from pipelines.lake import read_parquet, table_path


def identity_summary(lake: UPath) -> pl.DataFrame | None:
    """Rows: source records per link rule, then persons and pairs awaiting clerical review; None when
    identity was not built."""
    links_path = table_path(lake, IDENTITY, PERSON_LINK) / TABLE_FILE
    if not links_path.exists():
        return None
    links = read_parquet(links_path)
    by_rule = links.group_by("match_rule").agg(pl.len().cast(pl.Int64).alias("count")).sort("match_rule")
    persons = read_parquet(table_path(lake, IDENTITY, PERSON) / TABLE_FILE).height
    review = read_parquet(table_path(lake, IDENTITY, CLERICAL_REVIEW) / TABLE_FILE).height
    totals = pl.DataFrame(
        {"match_rule": ["persons", "clerical review pairs"], "count": [persons, review]},
        schema={"match_rule": pl.String, "count": pl.Int64},
    )
    return pl.concat([by_rule, totals]).rename({"match_rule": "what"})
