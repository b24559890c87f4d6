"""Clerical decisions on identity pairs: a person's word on two records, honoured by every later build.

A pair in `identity/clerical_review` is decided by someone who looked at both records: `link` (the same
person) or `never_link` (two people). Decisions are the one identity table the build does not rebuild: it
is an input, kept as an append-only history in `identity/review_decision` (who decided what, when, and
why), and the latest decision per pair is the one in force. A `link` joins the two records whatever the
model says; a `never_link` keeps them in two persons even when the model, an identifier or a third record
would bring them together (`pipelines/identity/persons.py`).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

import polars as pl
from upath import UPath

from pipelines.lake import read_parquet, table_path, write_bytes_atomic, write_parquet_atomic
from pipelines.locks import exclusive

IDENTITY = "identity"
REVIEW_DECISION = "review_decision"
TABLE_FILE = "data.parquet"
APPLIED = ("meta", "identity_decisions_applied")
"""The digest of the decisions the last identity build applied: an incremental run that finds nothing new
in silver still rebuilds identity when someone has decided since."""
LINK, NEVER_LINK = "link", "never_link"
DECISIONS = (LINK, NEVER_LINK)
Decision = Literal["link", "never_link"]

DECISION_SCHEMA: dict[str, pl.DataType] = {
    "unique_id_l": pl.String(),  # '<source>|<patient id>', the smaller of the two
    "unique_id_r": pl.String(),
    "decision": pl.String(),  # link | never_link
    "decided_by": pl.String(),
    "decided_at": pl.Datetime("us", "UTC"),
    "note": pl.String(),
}


def decisions_path(lake: UPath) -> UPath:
    """Where the decision history is stored."""
    return table_path(lake, IDENTITY, REVIEW_DECISION) / TABLE_FILE


def decision_history(lake: UPath) -> pl.DataFrame:
    """Every decision ever recorded, oldest first."""
    path = decisions_path(lake)
    if not path.exists():
        return pl.DataFrame(schema=DECISION_SCHEMA)
    return read_parquet(path).select([pl.col(n).cast(t) for n, t in DECISION_SCHEMA.items()])


def record_decision(
    lake: UPath,
    unique_id_a: str,
    unique_id_b: str,
    decision: str,
    decided_by: str,
    note: str | None = None,
    now: datetime | None = None,
) -> None:
    """Add a decision on the pair (a, b) to the history; it is in force from the next identity build.

    Raises ValueError for an unknown decision, a pair of one record with itself, or no decider (a
    decision nobody owns cannot be audited)."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
    if unique_id_a == unique_id_b:
        raise ValueError("a decision needs two different records")
    if not decided_by.strip():
        raise ValueError("a decision needs the name or role of who made it")
    left, right = sorted((unique_id_a, unique_id_b))
    row = pl.DataFrame(
        [[left, right, decision, decided_by.strip(), now or datetime.now(UTC), note or None]],
        schema=DECISION_SCHEMA,
        orient="row",
    )
    # two reviewers deciding at once must both be kept: read, append and replace under one lock
    with exclusive(lake, "identity-decisions"):
        history = pl.concat([decision_history(lake), row], how="vertical_relaxed")
        write_parquet_atomic(history, decisions_path(lake))


def current_decisions(lake: UPath) -> pl.DataFrame:
    """The decision in force per pair: the latest one recorded (`unique_id_l`, `unique_id_r`, `decision`,
    `decided_by`, `decided_at`, `note`)."""
    history = decision_history(lake).with_row_index("_order")
    return (
        history.sort("decided_at", "_order")
        .unique(["unique_id_l", "unique_id_r"], keep="last", maintain_order=True)
        .drop("_order")
        .sort("unique_id_l", "unique_id_r")
    )


def decisions_digest(lake: UPath) -> str:
    """A digest of the decisions in force: an identity build that applied another digest is out of date."""
    current = current_decisions(lake).select("unique_id_l", "unique_id_r", "decision")
    text = "\n".join("\t".join(row) for row in current.iter_rows())
    return hashlib.sha256(text.encode()).hexdigest()


def mark_applied(lake: UPath, digest: str) -> None:
    """Record that an identity build applied the decisions with `digest` (`decisions_digest`)."""
    write_bytes_atomic(digest.encode(), lake.joinpath(*APPLIED))


def decided_since_last_build(lake: UPath) -> bool:
    """Whether the decisions in force differ from those the last identity build applied."""
    path = lake.joinpath(*APPLIED)
    applied = path.read_text().strip() if path.exists() else _EMPTY_DIGEST
    return applied != decisions_digest(lake)


_EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()


def pending_review(lake: UPath) -> pl.DataFrame:
    """The clerical-review pairs nobody has decided yet, most probable first."""
    path = table_path(lake, IDENTITY, "clerical_review") / TABLE_FILE
    if not path.exists():
        return pl.DataFrame(schema={"unique_id_l": pl.String(), "unique_id_r": pl.String()})
    review = read_parquet(path)
    decided = current_decisions(lake).select("unique_id_l", "unique_id_r")
    return review.join(decided, on=["unique_id_l", "unique_id_r"], how="anti", maintain_order="left")
