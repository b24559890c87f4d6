"""Who is the same person: deterministic links on shared identifiers, then Fellegi-Sunter probabilistic
matching with Splink (DuckDB) on names, birth date, sex, address, phone, e-mail and SSN.

Splink is the field's standard implementation of the Fellegi-Sunter model; it estimates the model's
u-probabilities by random sampling and its m-probabilities by expectation maximisation from the data
itself (no labels), compares only pairs that share a blocking key (so cost grows near-linearly), and
runs the same settings on Spark when the data outgrows one machine.

The same records must always get the same pairs and probabilities, to the last bit: `person_link` and
`clerical_review` store the probabilities, a pair near a threshold must not link in one run and not in
the next, and an incremental run must leave the lake as a full run does. EM sums match probabilities
over every blocked pair, and a multi-threaded DuckDB adds those floats in an order that depends on thread
scheduling (its documented non-determinism, like the seeded sample for the u-probabilities): on 130,000
records, three runs on two threads gave three sets of m-probabilities (1e-15 apart) and each time
hundreds of pairs a different probability; 10,000 people's two full runs stored 1.0 for a pair in one
and 0.9999999999999998 in the other. So the model runs on one DuckDB thread, over records in
`unique_id` order (`_duckdb`, `probabilistic_pairs`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import yaml

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "data_contracts" / "identity" / "matching.yaml"

PAIR_SCHEMA: dict[str, pl.DataType] = {
    "unique_id_l": pl.String(),
    "unique_id_r": pl.String(),
    "match_rule": pl.String(),  # identifier:<system> | probabilistic
    "match_probability": pl.Float64(),
}
U_SAMPLE_PAIRS = 1_000_000
"""Random record pairs the u-probabilities are estimated from (Splink's default). On one thread they were
most of identity's time, whatever the population: 10,000 generated people with 2,000,000 pairs took 6.9 s
and with 1,000,000 3.9 s, with the same persons, the same 3,028 linked pairs (precision 1.000, recall
0.999) and the same clerical review; match probabilities moved by at most 0.001."""
EVIDENCE_FIELDS = (
    "given",
    "family",
    "birth_date",
    "gender",
    "postal_code",
    "address_line",
    "phones",
    "email",
    "ssn",
    "suffix",
)


@dataclass(frozen=True)
class MatchingSettings:
    """Thresholds and rules from data_contracts/identity/matching.yaml."""

    auto_link: float
    review: float
    identifier_systems: tuple[str, ...]
    source_rank: tuple[str, ...]


@cache
def matching_settings(path: Path = SETTINGS_FILE) -> MatchingSettings:
    """The matching settings."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return MatchingSettings(
        float(document["thresholds"]["auto_link"]),
        float(document["thresholds"]["review"]),
        tuple(document["deterministic"]["identifier_systems"]),
        tuple(document["survivorship"]["source_rank"]),
    )


def deterministic_pairs(records: pl.DataFrame) -> pl.DataFrame:
    """Pairs sharing an SSN, confirmed by birth date (exact or day/month swapped) or a family name."""
    with_ssn = records.filter(pl.col("ssn").is_not_null()).select(
        "unique_id", "ssn", "birth_date", "family_names"
    )
    pairs = with_ssn.join(with_ssn, on="ssn", suffix="_r").filter(pl.col("unique_id") < pl.col("unique_id_r"))
    swapped = pl.concat_str(
        pl.col("birth_date_r").str.slice(0, 5),
        pl.col("birth_date_r").str.slice(8, 2),
        pl.lit("-"),
        pl.col("birth_date_r").str.slice(5, 2),
    )
    confirmed = (
        (pl.col("birth_date") == pl.col("birth_date_r"))
        | (pl.col("birth_date") == swapped)
        | (pl.col("family_names").list.set_intersection("family_names_r").list.len() > 0)
    )
    return pairs.filter(confirmed).select(
        pl.col("unique_id").alias("unique_id_l"),
        "unique_id_r",
        pl.lit("identifier:ssn").alias("match_rule"),
        pl.lit(1.0).alias("match_probability"),
    )


MAX_BIRTH_DAYS_APART = 366
"""Birth dates further apart than this are two people unless an identifier says otherwise: a father and his
namesake son share a name and an address but not a birth year."""


_DAYS_APART = 'abs("birth_days_l" - "birth_days_r")'
"""SQL: days between two birth dates (`records.birth_days`: integers, far cheaper than date arithmetic on the
million random pairs the model is estimated from)."""


def _comparisons() -> list[object]:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    def null(column: str) -> object:
        return cll.CustomLevel(f'"{column}_l" IS NULL OR "{column}_r" IS NULL').configure(is_null_level=True)

    return [
        cl.CustomComparison(
            output_column_name="given",
            comparison_levels=[
                null("given"),
                cll.ExactMatchLevel("given"),
                cll.CustomLevel(
                    'list_contains("given_forms_l", "given_r") OR list_contains("given_forms_r", "given_l")',
                    "a short form of the same name",
                ),
                cll.CustomLevel(
                    '(length("given_l") = 1 OR length("given_r") = 1) AND '
                    'substr("given_l", 1, 1) = substr("given_r", 1, 1)',
                    "one is the other's initial",
                ),
                cll.JaroWinklerLevel("given", 0.92),  # a typo (one of a short form: `rules`)
                cll.JaroWinklerLevel("given", 0.80),
                cll.ElseLevel(),
            ],
        ),
        cl.CustomComparison(
            output_column_name="family",
            comparison_levels=[
                null("family"),
                cll.ExactMatchLevel("family"),
                cll.CustomLevel(
                    'list_has_any("family_names_l", "family_names_r")', "another name of the record"
                ),
                cll.CustomLevel(
                    '"family_first_word_l" = "family_first_word_r"', "first word of a compound name"
                ),
                cll.JaroWinklerLevel("family", 0.92),
                cll.JaroWinklerLevel("family", 0.80),
                cll.ElseLevel(),
            ],
        ),
        cl.CustomComparison(
            output_column_name="birth_date",
            comparison_levels=[
                null("birth_date"),
                cll.ExactMatchLevel("birth_date"),
                cll.CustomLevel(
                    'substr("birth_date_l", 1, 4) = substr("birth_date_r", 1, 4) AND '
                    'substr("birth_date_l", 6, 2) = substr("birth_date_r", 9, 2) AND '
                    'substr("birth_date_l", 9, 2) = substr("birth_date_r", 6, 2)',
                    "day and month swapped",
                ),
                cll.CustomLevel(
                    f"{_DAYS_APART} = 1 OR ({_DAYS_APART} <= {MAX_BIRTH_DAYS_APART} AND "
                    'damerau_levenshtein("birth_date_l", "birth_date_r") = 1)',
                    "one day or one digit apart (within a year)",
                ),
                cll.CustomLevel(
                    'substr("birth_date_l", 6, 5) = substr("birth_date_r", 6, 5) AND '
                    'abs(TRY_CAST(substr("birth_date_l", 1, 4) AS INTEGER) - '
                    'TRY_CAST(substr("birth_date_r", 1, 4) AS INTEGER)) = 1',
                    "year off by one",
                ),
                cll.CustomLevel('substr("birth_date_l", 1, 7) = substr("birth_date_r", 1, 7)', "same month"),
                cll.CustomLevel(
                    f"{_DAYS_APART} > {MAX_BIRTH_DAYS_APART}",
                    "more than a year apart",
                ),
                cll.ElseLevel(),
            ],
        ),
        cl.ExactMatch("gender"),
        cl.ExactMatch("suffix"),
        cl.ExactMatch("postal_code"),
        cl.CustomComparison(
            output_column_name="address_line",
            comparison_levels=[
                null("address_line"),
                cll.ExactMatchLevel("address_line"),
                cll.JaroWinklerLevel("address_line", 0.90),
                cll.ElseLevel(),
            ],
        ),
        cl.CustomComparison(
            output_column_name="phones",
            comparison_levels=[
                cll.CustomLevel('len("phones_l") = 0 OR len("phones_r") = 0').configure(is_null_level=True),
                cll.CustomLevel('list_has_any("phones_l", "phones_r")', "a phone in common"),
                cll.ElseLevel(),
            ],
        ),
        cl.ExactMatch("email"),
        cl.CustomComparison(
            output_column_name="ssn",
            comparison_levels=[
                null("ssn"),
                cll.ExactMatchLevel("ssn"),
                cll.DamerauLevenshteinLevel("ssn", 1),
                cll.ElseLevel(),
            ],
        ),
    ]


CANDIDATE_PROBABILITY = 0.0001
"""Pairs the model scores at least this likely come out of it; the rules (`pipelines/identity/rules.py`)
reject those below the review threshold unless they carry the pattern of a name change, whose disagreement
on family name, address and phone the model weighs as strongly as a stranger's."""
MAX_BLOCK_RECORDS = 1_000
"""The most records one blocking key may gather. A key shared by more (a placeholder birth date, a default
e-mail, or a hostile source repeating one person thousands of times) carries no evidence of identity and
would make its pairs grow with the square of its records: Splink's DuckDB then spills without end and
fills the disk. Records whose key is that common are left out of that rule only (the other rules still
pair them); generated populations stay far below it (largest key at 13,000 records: 20, a postal code)."""
_BLOCK_KEYS: dict[str, tuple[str, ...]] = {
    "birth_date": ("birth_date",),
    "name": ("family", "given_canonical"),
    "ssn": ("ssn",),
    "email": ("email",),
    "phone": ("phone_first",),
    "postal_given": ("postal_code", "given_canonical"),
    "postal_year": ("postal_code", "birth_year"),
    "postal": ("postal_code",),
    "name_birth": ("given", "family", "birth_date"),
}


def _block(name: str) -> str:
    """A blocking rule on the key `name` (`_BLOCK_KEYS`), as Splink SQL, that skips keys too common to
    block on (`MAX_BLOCK_RECORDS`): the comparisons of its columns are still known to Splink (EM)."""
    same = " AND ".join(f'l."{column}" = r."{column}"' for column in _BLOCK_KEYS[name])
    return f'{same} AND NOT l."common_{name}"'


def _with_block_flags(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with `birth_year` and a `common_<key>` flag per blocking key: true where the record's key
    is shared by more than MAX_BLOCK_RECORDS records."""
    frame = frame.with_columns(pl.col("birth_date").str.slice(0, 4).alias("birth_year"))
    return frame.with_columns(
        (pl.len().over(list(columns)) > MAX_BLOCK_RECORDS).alias(f"common_{name}")
        for name, columns in _BLOCK_KEYS.items()
    )


def _blocking_rules() -> list[str]:
    return [_block(k) for k in ("birth_date", "name", "ssn", "email", "phone", "postal_given", "postal_year")]


def probabilistic_pairs(records: pl.DataFrame, seed: int = 42) -> pl.DataFrame:
    """Every blocked pair with its match probability and per-field comparison level (`gamma_<field>`).

    The model is estimated on `records` themselves each run: random-sample u-probabilities, EM for the
    m-probabilities on three blocking passes, each leaving different fields free to be learned.
    """
    from splink import Linker, SettingsCreator
    from splink.internals.exceptions import EMTrainingException

    # one input order whatever order the caller read the records (buckets) in: the order of the blocked
    # pairs, and so of EM's float sums, follows it
    frame = _with_block_flags(
        records.sort("unique_id").with_columns(pl.col("phones").list.first().alias("phone_first"))
    ).to_pandas()
    settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=_comparisons(),
        blocking_rules_to_generate_predictions=_blocking_rules(),
        retain_intermediate_calculation_columns=True,  # gamma_<field>: the rules and the review read them
        retain_matching_columns=True,  # with the above, Splink writes gamma_<field>
    )
    with _duckdb() as db_api:
        # no basic logging: Splink's training chatter would reach the root logger and the Dagster console
        linker = Linker(frame, settings, db_api=db_api, set_up_basic_logging=False)
        logging.getLogger("splink").setLevel(logging.ERROR)
        linker.training.estimate_probability_two_random_records_match(
            [_block("ssn"), _block("name_birth")], recall=0.8
        )
        linker.training.estimate_u_using_random_sampling(max_pairs=U_SAMPLE_PAIRS, seed=seed)
        trained = 0
        for rule in (_block("birth_date"), _block("name"), _block("postal")):
            try:
                linker.training.estimate_parameters_using_expectation_maximisation(
                    rule, fix_u_probabilities=True
                )
                trained += 1
            except EMTrainingException:  # no pairs share this key (a small or very diverse population)
                continue
        if trained == 0:  # never link on an untrained model: identifiers alone decide
            return pl.DataFrame(schema=PAIR_SCHEMA)
        # below the review threshold too: a name change is a candidate the rules may still send to review
        predictions = linker.inference.predict(threshold_match_probability=CANDIDATE_PROBABILITY)
        pairs = pl.from_pandas(predictions.as_pandas_dataframe())
    return pairs.select(
        pl.col("unique_id_l").cast(pl.String),
        pl.col("unique_id_r").cast(pl.String),
        pl.lit("probabilistic").alias("match_rule"),
        pl.col("match_probability").cast(pl.Float64),
        *[pl.col(f"gamma_{f}").cast(pl.Int64) for f in EVIDENCE_FIELDS if f"gamma_{f}" in pairs.columns],
    ).sort("unique_id_l", "unique_id_r")


@contextmanager
def _duckdb() -> Iterator[Any]:
    """Splink's DuckDB, on one thread and with a memory cap.

    One thread: DuckDB guarantees neither a seeded sample (the u-probabilities) nor the last bits of a
    float sum (every EM iteration) on more threads, and identity must give the same probabilities every
    run (module docstring). It costs no measurable time on two cores: DuckDB ran the costliest step, the
    u-probabilities' random pairs, on one core anyway, and EM is many small queries (identity
    at 13,000 records took 8.0 s single-threaded against 8.2 s, Splink at 130,000 records 27.5 s
    against 28.2 s, CPU time the same).

    Memory cap (`PATIENT_INSIGHTS_IDENTITY_MEMORY`, default 1GB): DuckDB's own default is 80 % of the
    machine, and its buffer pool made identity the pipeline's memory peak (1.5 GiB at 13,000 records,
    1.2 GiB capped); past the cap it spills to a temporary folder, removed after."""
    import duckdb
    from splink import DuckDBAPI

    limit = os.environ.get("PATIENT_INSIGHTS_IDENTITY_MEMORY", "1GB")
    with tempfile.TemporaryDirectory(prefix="identity-duckdb-") as spill:
        connection = duckdb.connect(
            config={
                "memory_limit": limit,
                "temp_directory": spill,
                "threads": 1,
            }
        )
        connection.execute("SET enable_progress_bar = false")  # its bar would reach every run's console
        try:
            yield DuckDBAPI(connection=connection)
        finally:
            connection.close()
