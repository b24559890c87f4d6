"""Build the identity tables from silver: `person_link`, `person`, `clerical_review`, `person_id_history`.

Identity is one global step (a person's records sit in different buckets): every current source Patient
is compared, linked deterministically or probabilistically, clustered, and given a stable person_id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl
from upath import UPath

from pipelines.identity.decisions import LINK as LINK_DECISION
from pipelines.identity.decisions import current_decisions, decisions_digest, mark_applied
from pipelines.identity.golden import golden_records
from pipelines.identity.matching import (
    EVIDENCE_FIELDS,
    PAIR_SCHEMA,
    deterministic_pairs,
    matching_settings,
    probabilistic_pairs,
)
from pipelines.identity.persons import HISTORY_SCHEMA, assign_person_ids, connected_components, keep_apart
from pipelines.identity.records import identity_records
from pipelines.identity.rules import LINK, REJECT, REVIEW, judge
from pipelines.lake import read_parquet, table_path, write_parquet_atomic

IDENTITY = "identity"
PERSON_LINK = "person_link"
PERSON = "person"
CLERICAL_REVIEW = "clerical_review"
PERSON_ID_HISTORY = "person_id_history"
TABLE_FILE = "data.parquet"
CLERICAL = "clerical"
MIN_RECORDS_FOR_MODEL = 50
"""Below this many records the probabilistic model cannot be estimated; only identifiers link."""

PERSON_LINK_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "source_patient_id": pl.String(),
    "person_id": pl.String(),
    "match_rule": pl.String(),  # identifier:ssn | clerical | probabilistic | single_record
    "match_probability": pl.Float64(),  # of the strongest link to another record of the person
}


@dataclass
class IdentityReport:
    """Counts of one identity build (no values)."""

    records: int = 0
    persons: int = 0
    links_by_rule: dict[str, int] = field(default_factory=dict)
    clerical_review: int = 0
    events: dict[str, int] = field(default_factory=dict)
    kept_apart: int = 0  # pairs a rule or a decision keeps in two persons
    decisions: dict[str, int] = field(default_factory=dict)  # clerical decisions applied, by verdict


def build_identity(lake: UPath, now: datetime | None = None) -> IdentityReport:
    """Rebuild the identity tables from silver, keeping the person_ids of the previous build and honouring
    every clerical decision recorded so far."""
    settings = matching_settings()
    digest = decisions_digest(lake)  # before reading them: a decision recorded meanwhile waits for the next
    records = identity_records(lake)
    model = (
        probabilistic_pairs(records)
        if records.height >= MIN_RECORDS_FOR_MODEL
        else pl.DataFrame(schema=PAIR_SCHEMA)
    )
    judged = judge(model, records, settings.auto_link, settings.review)
    identifier = deterministic_pairs(records).with_columns(
        pl.lit(LINK).alias("verdict"), pl.lit(None, pl.String).alias("review_reason")
    )
    decisions = current_decisions(lake)
    pairs = _with_decisions(pl.concat([identifier, judged], how="diagonal_relaxed"), decisions, records)
    linked = pairs.filter(pl.col("verdict") == LINK).sort(
        pl.col("match_rule") == "probabilistic",
        "match_probability",
        "unique_id_l",
        "unique_id_r",
        descending=[False, True, False, False],
    )  # strongest first: a decision, an identifier, then the most probable (`keep_apart`)
    apart = pairs.filter((pl.col("verdict") == REJECT) & pl.col("review_reason").is_not_null())
    clusters = keep_apart(connected_components(records["unique_id"], linked), linked, apart)
    previous = _read(lake, PERSON_LINK)
    previous_ids = (
        previous.select(pl.format("{}|{}", "source", "source_patient_id").alias("unique_id"), "person_id")
        if previous.height
        else pl.DataFrame(schema={"unique_id": pl.String, "person_id": pl.String})
    )
    assigned, events = assign_person_ids(clusters, previous_ids)
    person_link = _person_links(records, assigned, linked)
    review = _clerical_review(pairs, assigned, records)
    history = _history(lake, events, now or datetime.now(UTC))
    persons = golden_records(lake, person_link, settings.source_rank)
    # person_link last: the next build starts from it, so a build that fails part-way (a full disk) is
    # redone whole, and the history it may already have written is not doubled (`_history`)
    for table, frame in (
        (PERSON_ID_HISTORY, history),
        (PERSON, persons),
        (CLERICAL_REVIEW, review),
        (PERSON_LINK, person_link),
    ):
        write_parquet_atomic(frame, table_path(lake, IDENTITY, table) / TABLE_FILE)
    mark_applied(lake, digest)
    return IdentityReport(
        records=records.height,
        persons=persons.height,
        links_by_rule=dict(person_link.group_by("match_rule").len().sort("match_rule").iter_rows()),
        clerical_review=review.height,
        events=dict(events.group_by("event").len().sort("event").iter_rows()),
        kept_apart=apart.height,
        decisions=dict(
            pairs.filter(pl.col("match_rule") == CLERICAL)
            .group_by("verdict")
            .len()
            .sort("verdict")
            .iter_rows()
        ),
    )


def _with_decisions(pairs: pl.DataFrame, decisions: pl.DataFrame, records: pl.DataFrame) -> pl.DataFrame:
    """`pairs` with every clerical decision in force: a decided pair is linked (`link`) or kept apart
    (`never_link`) whatever the model or an identifier said, with `match_rule` "clerical". Decisions on
    records no longer in silver are left out."""
    known = records.select("unique_id")
    decided = (
        decisions.join(known, left_on="unique_id_l", right_on="unique_id", how="semi")
        .join(known, left_on="unique_id_r", right_on="unique_id", how="semi")
        .select(
            "unique_id_l",
            "unique_id_r",
            pl.lit(CLERICAL).alias("match_rule"),
            pl.when(pl.col("decision") == LINK_DECISION).then(1.0).otherwise(0.0).alias("match_probability"),
            pl.when(pl.col("decision") == LINK_DECISION)
            .then(pl.lit(LINK))
            .otherwise(pl.lit(REJECT))
            .alias("verdict"),
            pl.when(pl.col("decision") == LINK_DECISION)
            .then(pl.lit(None, pl.String))
            .otherwise(pl.lit("decided: never link"))
            .alias("review_reason"),
        )
    )
    undecided = pairs.join(decided, on=["unique_id_l", "unique_id_r"], how="anti")
    return pl.concat([undecided, decided], how="diagonal_relaxed")


def _person_links(records: pl.DataFrame, assigned: pl.DataFrame, linked: pl.DataFrame) -> pl.DataFrame:
    """One row per record: its person and the strongest rule that put it there."""
    ends = pl.concat(
        [
            linked.select(pl.col("unique_id_l").alias("unique_id"), "match_rule", "match_probability"),
            linked.select(pl.col("unique_id_r").alias("unique_id"), "match_rule", "match_probability"),
        ]
    )
    best = (
        ends.with_columns(pl.col("match_rule").str.starts_with("identifier").alias("_identifier"))
        .sort(["_identifier", "match_probability", "match_rule"], descending=[True, True, False])
        .unique(subset="unique_id", keep="first")
        .drop("_identifier")
    )
    return (
        records.select("unique_id", "source", pl.col("patient_id").alias("source_patient_id"))
        .join(assigned.select("unique_id", "person_id"), on="unique_id")
        .join(best, on="unique_id", how="left")
        .with_columns(pl.col("match_rule").fill_null("single_record"))
        .select([pl.col(n).cast(t) for n, t in PERSON_LINK_SCHEMA.items()])
        .sort("person_id", "source", "source_patient_id")
    )


def _clerical_review(pairs: pl.DataFrame, assigned: pl.DataFrame, records: pl.DataFrame) -> pl.DataFrame:
    """Pairs awaiting a person's decision (verdict `review`, no decision yet, not already in one person),
    with why they are in review, both records' values and the comparison level per field (`gamma_<field>`:
    higher is closer, -1 is a missing value)."""
    person = assigned.select("unique_id", "person_id")
    grey = (
        pairs.filter(pl.col("verdict") == REVIEW)
        .drop("verdict")
        .join(person.rename({"unique_id": "unique_id_l", "person_id": "person_id_l"}), on="unique_id_l")
        .join(person.rename({"unique_id": "unique_id_r", "person_id": "person_id_r"}), on="unique_id_r")
        .filter(pl.col("person_id_l") != pl.col("person_id_r"))
    )
    values = records.select("unique_id", *EVIDENCE_FIELDS, "multiple_birth", "birth_order")
    left = values.rename({c: f"{c}_l" for c in values.columns})
    right = values.rename({c: f"{c}_r" for c in values.columns})
    return (
        grey.join(left, on="unique_id_l")
        .join(right, on="unique_id_r")
        .sort("match_probability", "unique_id_l", "unique_id_r", descending=[True, False, False])
    )


def _history(lake: UPath, events: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """Earlier history plus this build's events not recorded yet (a re-run on unchanged data adds none)."""
    stamped = events.with_columns(pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("recorded_at"))
    earlier = _read(lake, PERSON_ID_HISTORY)
    schema = {**HISTORY_SCHEMA, "recorded_at": pl.Datetime("us", "UTC")}
    frames = [
        f.select([pl.col(n).cast(t) for n, t in schema.items()]) for f in (earlier, stamped) if f.height
    ]
    if not frames:
        return pl.DataFrame(schema=schema)
    # an event already recorded (by a build that failed before person_link was written) is kept once,
    # with the time it was first recorded
    return pl.concat(frames).unique(
        ["event", "person_id", "related_person_id"], keep="first", maintain_order=True
    )


def _read(lake: UPath, table: str) -> pl.DataFrame:
    path = table_path(lake, IDENTITY, table) / TABLE_FILE
    return read_parquet(path) if path.exists() else pl.DataFrame()
