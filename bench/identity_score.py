"""Identity scored per case kind against the hard identity set's ground truth (a pure function, no lake).

Pairs are record pairs ("these two records are the same person"). A true pair belongs to the case kind of its
person. A predicted pair (two records under one person_id) is counted under the kind of each true person its
records belong to: a correct pair under its person's kind, a false one under both persons' kinds (once if they
are of the same kind), so each kind's precision says how often a link that touches such a person is right.
For the kinds that relate two persons (twins, namesakes, strangers with the same name), any predicted pair
with a record of each is a false link between relatives: the target is none. The clerical-review load is the
share of true persons with at least one record in a pending review pair.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from pipelines.generate.identity_cases import CASE_KINDS, RELATED_KINDS


def _record_pairs(frame: pl.DataFrame, by: str) -> pl.DataFrame:
    """Every pair of records (unique_id_l < unique_id_r) sharing `by`."""
    return (
        frame.select("unique_id", by)
        .join(frame.select("unique_id", by), on=by, suffix="_r")
        .filter(pl.col("unique_id") < pl.col("unique_id_r"))
        .select(pl.col("unique_id").alias("unique_id_l"), "unique_id_r")
    )


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def score_identity_cases(
    truth: pl.DataFrame, cases: pl.DataFrame, links: pl.DataFrame, pending: pl.DataFrame
) -> dict[str, Any]:
    """Per-kind and overall pairwise precision and recall, false links between relatives and the review load.

    `truth`: unique_id ('<source>|<patient id>'), person_index; `cases`: person_index, case_kind,
    related_person_index (null unless the kind relates two persons); `links`: unique_id, person_id (what
    identity decided); `pending`: unique_id_l, unique_id_r (clerical-review pairs nobody has decided).
    Returns {"kinds": [one dict per kind present], "overall": {...}} with plain numbers (None for a ratio
    over nothing)."""
    truth = truth.select("unique_id", pl.col("person_index").cast(pl.Int64))
    cases = cases.select(
        pl.col("person_index").cast(pl.Int64),
        pl.col("case_kind").cast(pl.String),
        pl.col("related_person_index").cast(pl.Int64),
    )
    kind_of = cases.select("person_index", "case_kind")
    records = truth.join(kind_of, on="person_index", how="left").with_columns(
        pl.col("case_kind").fill_null("ordinary")
    )
    # unique_id_l, person_index_l, case_kind_l (and _r): to annotate both records of a pair
    side = {s: records.rename({c: f"{c}_{s}" for c in records.columns}) for s in ("l", "r")}

    true_pairs = _record_pairs(records, "person_index").join(side["l"], on="unique_id_l")
    predicted = (
        _record_pairs(links.select("unique_id", "person_id"), "person_id")
        .join(side["l"], on="unique_id_l")
        .join(side["r"], on="unique_id_r")
        .with_columns((pl.col("person_index_l") == pl.col("person_index_r")).alias("correct"))
    )
    by_kind = (
        predicted.with_columns(pl.concat_list("case_kind_l", "case_kind_r").list.unique().alias("case_kind"))
        .explode("case_kind")
        .group_by("case_kind")
        .agg(pl.len().alias("predicted_pairs"), pl.col("correct").sum().alias("correct_pairs"))
    )
    relations = (
        cases.drop_nulls("related_person_index")
        .select(
            pl.min_horizontal("person_index", "related_person_index").alias("a"),
            pl.max_horizontal("person_index", "related_person_index").alias("b"),
            "case_kind",
        )
        .unique()
    )
    false_between = (
        predicted.filter(~pl.col("correct"))
        .select(
            pl.min_horizontal("person_index_l", "person_index_r").alias("a"),
            pl.max_horizontal("person_index_l", "person_index_r").alias("b"),
        )
        .join(relations, on=["a", "b"])
        .group_by("case_kind")
        .agg(pl.len().alias("false_links_between_relatives"), pl.struct("a", "b").n_unique().alias("merged"))
    )
    person_of = records.select("unique_id", "person_index")
    in_review = (
        pl.concat(
            [
                pending.select(pl.col(column).alias("unique_id")).join(person_of, on="unique_id")
                for column in ("unique_id_l", "unique_id_r")
            ]
        )
        .select("person_index")
        .unique()
    )
    review_by_kind = (
        in_review.join(kind_of, on="person_index", how="left")
        .with_columns(pl.col("case_kind").fill_null("ordinary"))
        .group_by("case_kind")
        .agg(pl.len().alias("persons_in_review"))
    )
    persons = records.select("person_index", "case_kind").unique()
    table = (
        persons.group_by("case_kind")
        .agg(pl.len().alias("persons"))
        .join(
            true_pairs.group_by(pl.col("case_kind_l").alias("case_kind")).agg(pl.len().alias("true_pairs")),
            on="case_kind",
            how="left",
        )
        .join(by_kind, on="case_kind", how="left")
        .join(false_between, on="case_kind", how="left")
        .join(review_by_kind, on="case_kind", how="left")
        .fill_null(0)
    )
    order = {kind: i for i, kind in enumerate(CASE_KINDS)}
    kinds = []
    rows = sorted(table.to_dicts(), key=lambda r: (order.get(r["case_kind"], len(order)), r["case_kind"]))
    for row in rows:
        related = row["case_kind"] in RELATED_KINDS
        kinds.append(
            {
                "case_kind": row["case_kind"],
                "persons": row["persons"],
                "true_pairs": row["true_pairs"],
                "predicted_pairs": row["predicted_pairs"],
                "correct_pairs": row["correct_pairs"],
                "precision": _ratio(row["correct_pairs"], row["predicted_pairs"]),
                "recall": _ratio(row["correct_pairs"], row["true_pairs"]),
                "false_links_between_relatives": row["false_links_between_relatives"] if related else None,
                "relatives_merged": row["merged"] if related else None,
                "persons_in_review": row["persons_in_review"],
            }
        )
    correct = int(predicted["correct"].sum())
    review_pairs = pending.join(side["l"], on="unique_id_l").join(side["r"], on="unique_id_r")
    overall = {
        "records": records.height,
        "persons": persons.height,
        "true_pairs": true_pairs.height,
        "predicted_pairs": predicted.height,
        "correct_pairs": correct,
        "precision": _ratio(correct, predicted.height),
        "recall": _ratio(correct, true_pairs.height),
        "review_pairs": pending.height,
        "review_pairs_of_one_person": int(
            (review_pairs["person_index_l"] == review_pairs["person_index_r"]).sum()
        ),
        "persons_in_review": in_review.height,
        "review_load": _ratio(in_review.height, persons.height),
    }
    return {"kinds": kinds, "overall": overall}
