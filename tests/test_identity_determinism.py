"""Probabilistic matching gives the same pairs and probabilities, to the last bit, whatever the order the
records arrive in and however many threads DuckDB could use: an incremental run must leave identity as a
full run does (tests/test_incremental.py), and a probability near a threshold must not link in one run
and not in the next."""

from __future__ import annotations

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal

from pipelines.identity.golden import choose_fields
from pipelines.identity.matching import _duckdb, probabilistic_pairs
from pipelines.identity.records import RECORD_SCHEMA

PEOPLE = 700
GIVEN = [
    "anna",
    "maria",
    "james",
    "john",
    "robert",
    "linda",
    "mary",
    "david",
    "susan",
    "carlos",
    "jose",
    "lucia",
]
FAMILY = ["smith", "garcia", "johnson", "lopez", "brown", "miller", "davis", "martinez", "wilson", "moore"]
STREETS = ["main st", "oak ave", "pine rd", "elm st", "maple ave", "cedar ln", "park blvd", "lake dr"]


def _records(people: int, seed: int) -> pl.DataFrame:
    """Identity records of `people` people in source `a`, 40 % of them again in source `b` with the
    noise real exports have (a typo in a name, another phone, no SSN, a moved address)."""
    rng = np.random.default_rng(seed)
    n = people
    person = pl.DataFrame(
        {
            "person": np.arange(n),
            "given": rng.choice(GIVEN, n),
            "family": rng.choice(FAMILY, n) + np.char.mod("%d", rng.integers(0, 40, n)).astype(object),
            "birth_date": (np.datetime64("1940-01-01") + rng.integers(0, 25_000, n)).astype(str),
            "gender": rng.choice(["female", "male"], n),
            "postal_code": np.char.mod("%05d", rng.integers(10_000, 10_600, n)),
            "address_line": np.char.mod("%d ", rng.integers(1, 300, n)).astype(object)
            + rng.choice(STREETS, n),
            "phone": np.char.mod("555%07d", rng.integers(0, 10_000_000, n)),
            "ssn": np.char.mod("%09d", rng.integers(100_000_000, 999_999_999, n)),
        }
    )
    again = person.filter(pl.Series(rng.random(n) < 0.4))
    m = again.height

    def sometimes(share: float) -> pl.Series:
        return pl.Series(rng.random(m) < share)

    typo = pl.col("given").str.slice(0, 1) + pl.col("given").str.slice(2) + pl.col("given").str.slice(1, 1)
    second = again.with_columns(
        pl.when(sometimes(0.1)).then(typo).otherwise("given").alias("given"),
        pl.when(sometimes(0.1)).then(pl.lit("x") + pl.col("family")).otherwise("family").alias("family"),
        pl.when(sometimes(0.3))
        .then(pl.lit("555") + pl.Series(np.char.mod("%07d", rng.integers(0, 10**7, m))))
        .otherwise("phone")
        .alias("phone"),
        pl.when(sometimes(0.5)).then(None).otherwise("ssn").alias("ssn"),
        pl.when(sometimes(0.2)).then(pl.lit("1 new st")).otherwise("address_line").alias("address_line"),
        pl.when(sometimes(0.3)).then(pl.lit("10999")).otherwise("postal_code").alias("postal_code"),
        pl.when(sometimes(0.15))
        .then(pl.col("birth_date").str.slice(0, 8) + pl.lit("01"))
        .otherwise("birth_date")
        .alias("birth_date"),
        pl.when(sometimes(0.2)).then(None).otherwise("gender").alias("gender"),
    )
    both = pl.concat([person.with_columns(source=pl.lit("a")), second.with_columns(source=pl.lit("b"))])
    return both.select(
        pl.format("{}|p{}", "source", "person").alias("unique_id"),
        "source",
        pl.format("p{}", "person").alias("patient_id"),
        "given",
        pl.col("given").alias("given_canonical"),
        pl.concat_list("given").alias("given_forms"),
        pl.lit(None, pl.String).alias("middle_initial"),
        "family",
        pl.col("family").alias("family_first_word"),
        pl.concat_list("family").alias("family_names"),
        "birth_date",
        "gender",
        "postal_code",
        "address_line",
        pl.concat_list("phone").alias("phones"),
        pl.when(pl.col("person") % 3 == 0)
        .then(pl.format("{}.{}@example.org", "given", "person"))
        .alias("email"),
        "ssn",
        pl.col("birth_date").str.to_date(strict=False).cast(pl.Int32).alias("birth_days"),
        pl.lit(None, pl.String).alias("suffix"),
        pl.lit(False).alias("multiple_birth"),
        pl.lit(None, pl.Int64).alias("birth_order"),
        pl.lit("2026-01-01T00:00:00Z").alias("last_updated"),
    ).select([pl.col(c).cast(t) for c, t in RECORD_SCHEMA.items()])


def test_records_in_another_order_give_the_same_pairs_to_the_last_bit() -> None:
    """Buckets are read in no fixed order, and the order of the blocked pairs decides the order of EM's
    float sums: without a fixed input order the probabilities (and the rows' order) differed."""
    records = _records(PEOPLE, seed=7)
    pairs = probabilistic_pairs(records)
    assert pairs.height > 100 and pairs["match_probability"].is_between(0.5, 1.0).all()
    shuffled = probabilistic_pairs(records.sample(fraction=1.0, shuffle=True, seed=2))
    assert_frame_equal(shuffled, pairs, check_exact=True)


def test_matching_runs_on_one_duckdb_thread() -> None:
    """DuckDB guarantees neither a seeded sample nor the last bits of a float sum on more threads: at
    130,000 records, two runs on the same records gave hundreds of pairs a different probability."""
    with _duckdb() as db_api:
        threads = db_api._con.execute("SELECT current_setting('threads')").fetchone()[0]
    assert threads == 1


def test_golden_contact_ties_are_broken_by_value() -> None:
    """Two phones of equal rank and use: the golden phone does not depend on the order rows were read."""
    patients = pl.DataFrame(
        {"source": ["ehr_a"], "id": ["a1"], "last_updated": ["2026-01-01T00:00:00Z"]}
        | {c: [None] for c in ("given", "family", "birth_date", "gender", "deceased_date_time", "language")}
        | {c: [None] for c in ("marital_status", "address_line", "address_city", "address_state")}
        | {"address_postal_code": [None], "deceased_boolean": [None]},
        schema_overrides={"deceased_boolean": pl.Boolean} | {c: pl.String for c in ("given", "family")},
    )
    telecom = pl.DataFrame(
        {
            "source": ["ehr_a"] * 2,
            "patient_id": ["a1"] * 2,
            "system": ["phone"] * 2,
            "value": ["555-0102", "555-0101"],
            "use": ["home"] * 2,
            "rank": [None, None],
        },
        schema_overrides={"rank": pl.Int64},
    )
    links = pl.DataFrame({"source": ["ehr_a"], "source_patient_id": ["a1"], "person_id": ["P"]})
    phones = {
        choose_fields(patients, rows, links, ("ehr_a",))["phone"].item()
        for rows in (telecom, telecom.reverse())
    }
    assert phones == {"555-0101"}


def test_a_key_shared_by_too_many_records_blocks_nothing_and_the_rest_still_match() -> None:
    """A hostile source repeating one person (same name, birth date and postal code) past the cap: the
    pairs among its copies would grow with their square (Splink's DuckDB spilled until the disk was full,
    and every copy linked to every other); its keys block nothing."""
    from pipelines.identity.matching import MAX_BLOCK_RECORDS

    records = _records(PEOPLE, seed=7)
    copies = MAX_BLOCK_RECORDS + 200
    first = records.row(0, named=True)
    flood = (
        pl.DataFrame(
            [
                {**first, "unique_id": f"flood|c{n}", "source": "flood", "patient_id": f"c{n}"}
                for n in range(copies)
            ],
            schema=records.schema,
        )
        .with_columns(pl.lit(None, pl.String).alias(c) for c in ("ssn", "email"))
        .with_columns(pl.lit(None, pl.List(pl.String)).alias("phones"))
    )
    pairs = probabilistic_pairs(pl.concat([records, flood]))
    # every key the copies share is too common to block on, so none of them is paired at all, while the
    # population around them still is (its probabilities move: the model is estimated on all records)
    touching = pl.col("unique_id_l").str.starts_with("flood|") | pl.col("unique_id_r").str.starts_with(
        "flood|"
    )
    assert pairs.filter(touching).is_empty()
    assert pairs.filter(~touching).height > 100
