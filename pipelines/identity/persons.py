"""From match edges to persons: clusters (connected components) and stable person ids.

A person_id, once given, stays with its records: re-running on the same data, or adding a new export,
keeps every existing id. A new record joins the person of its cluster; a cluster with no known record
gets a new id derived from its smallest record key. When a cluster brings together records of two
existing persons they merge (the person with more of the cluster's records keeps its id); when an
existing person's records end up in different clusters it splits (the largest part keeps the id).
Every creation, merge and split is written to `person_id_history`.
"""

from __future__ import annotations

import hashlib

import polars as pl

MAX_ITERATIONS = 100

HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "event": pl.String(),  # created | merged | split
    "person_id": pl.String(),  # the person the event is about (created; the retired id of a merge)
    "related_person_id": pl.String(),  # merged: the id that absorbed it; split: the id of the split-off part
    "records": pl.Int64(),  # records involved
}


def connected_components(unique_ids: pl.Series, edges: pl.DataFrame) -> pl.DataFrame:
    """`unique_id` → `cluster` (the smallest unique_id of its component) over undirected `edges`
    (`unique_id_l`, `unique_id_r`). Label propagation with pointer jumping, all vectorized."""
    labels = pl.DataFrame({"unique_id": unique_ids.unique().sort()}).with_columns(
        pl.col("unique_id").alias("cluster")
    )
    if edges.is_empty():
        return labels
    both = pl.concat(
        [
            edges.select(pl.col("unique_id_l").alias("a"), pl.col("unique_id_r").alias("b")),
            edges.select(pl.col("unique_id_r").alias("a"), pl.col("unique_id_l").alias("b")),
        ]
    ).unique()
    for _ in range(MAX_ITERATIONS):
        neighbour_min = (
            both.join(labels, left_on="b", right_on="unique_id")
            .group_by("a")
            .agg(pl.col("cluster").min().alias("_n"))
        )
        updated = (
            labels.join(neighbour_min, left_on="unique_id", right_on="a", how="left")
            .with_columns(pl.min_horizontal("cluster", "_n").alias("cluster"))
            .drop("_n")
        )
        # pointer jumping: take the label of your label
        updated = (
            updated.join(
                updated.select(pl.col("unique_id").alias("_c"), pl.col("cluster").alias("_cc")),
                left_on="cluster",
                right_on="_c",
                how="left",
            )
            .with_columns(pl.min_horizontal("cluster", "_cc").alias("cluster"))
            .drop("_cc")
        )
        if updated.sort("unique_id").equals(labels.sort("unique_id")):
            return updated.sort("unique_id")
        labels = updated
    raise RuntimeError("identity clusters did not converge")  # cannot happen for a finite graph


def keep_apart(clusters: pl.DataFrame, edges: pl.DataFrame, apart: pl.DataFrame) -> pl.DataFrame:
    """`clusters` (`unique_id`, `cluster`) with every pair of `apart` (`unique_id_l`, `unique_id_r`: a
    "never link" decision or two records a rule knows to be two people) in different clusters.

    Connected components join whatever a chain of links joins: twin A linked to a record that is also
    linked to twin B makes one person of both. Only the clusters holding such a pair are rebuilt (a handful
    in a population, so a loop over their edges costs nothing): their links are taken strongest first
    (`edges` in that order) and a link is left out when it would bring an apart pair together."""
    if apart.is_empty():
        return clusters
    cluster_of = clusters.select("unique_id", "cluster")
    conflicts = (
        apart.join(cluster_of.rename({"unique_id": "unique_id_l", "cluster": "_cl"}), on="unique_id_l")
        .join(cluster_of.rename({"unique_id": "unique_id_r", "cluster": "_cr"}), on="unique_id_r")
        .filter(pl.col("_cl") == pl.col("_cr"))
    )
    if conflicts.is_empty():
        return clusters
    torn = set(conflicts["_cl"].to_list())
    members = cluster_of.filter(pl.col("cluster").is_in(list(torn)))
    inside = set(members["unique_id"].to_list())
    parent = {uid: uid for uid in inside}

    def root(uid: str) -> str:
        while parent[uid] != uid:
            parent[uid] = parent[parent[uid]]
            uid = parent[uid]
        return uid

    kept_apart = {(a, b) for a, b in conflicts.select("unique_id_l", "unique_id_r").iter_rows()}
    groups = {uid: {uid} for uid in inside}
    for left, right in (
        edges.filter(pl.col("unique_id_l").is_in(list(inside)))
        .select("unique_id_l", "unique_id_r")
        .iter_rows()
    ):
        a, b = root(left), root(right)
        if a == b:
            continue
        if any((x, y) in kept_apart or (y, x) in kept_apart for x in groups[a] for y in groups[b]):
            continue
        parent[b] = a
        groups[a] |= groups.pop(b)
    rebuilt = pl.DataFrame(
        {"unique_id": list(inside), "_root": [root(uid) for uid in inside]},
        schema={"unique_id": pl.String, "_root": pl.String},
    ).with_columns(pl.col("unique_id").min().over("_root").alias("cluster"))
    return pl.concat(
        [clusters.filter(~pl.col("cluster").is_in(list(torn))), rebuilt.select("unique_id", "cluster")]
    ).sort("unique_id")


def assign_person_ids(clusters: pl.DataFrame, previous: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Person ids for `clusters` (`unique_id`, `cluster`) that keep the ids of `previous` (`unique_id`,
    `person_id`, may be empty), and the history events of this assignment."""
    joined = clusters.join(
        previous.select("unique_id", pl.col("person_id").alias("old_id")), on="unique_id", how="left"
    )
    votes = joined.drop_nulls("old_id").group_by("cluster", "old_id").agg(pl.len().alias("n"))
    # each old id goes to the cluster holding most of its records, each cluster keeps its best old id
    best_cluster = votes.sort(["n", "cluster"], descending=[True, False]).unique(
        subset="old_id", keep="first"
    )
    kept = (
        best_cluster.sort(["n", "old_id"], descending=[True, False])
        .unique(subset="cluster", keep="first")
        .select("cluster", pl.col("old_id").alias("person_id"))
    )
    unnamed = clusters.select("cluster").unique().join(kept, on="cluster", how="anti").sort("cluster")
    taken = set(previous["person_id"].to_list()) | set(kept["person_id"].to_list())
    fresh = [_new_person_id(cluster, taken) for cluster in unnamed["cluster"].to_list()]
    named = pl.concat(
        [kept, unnamed.with_columns(pl.Series("person_id", fresh, dtype=pl.String))], how="vertical_relaxed"
    )
    assigned = joined.join(named, on="cluster", how="left")
    history = _history(assigned, set(previous["person_id"].to_list()))
    return assigned.select("unique_id", "cluster", "person_id").sort("unique_id"), history


def _new_person_id(cluster: str, taken: set[str]) -> str:
    """A new id from the cluster's smallest record key: the same data always gets the same ids."""
    salt = 0
    while True:
        digest = hashlib.sha256(f"{cluster}#{salt}".encode()).hexdigest()[:20]
        candidate = f"psn-{digest}"
        if candidate not in taken:
            taken.add(candidate)
            return candidate
        salt += 1


def _history(assigned: pl.DataFrame, known: set[str]) -> pl.DataFrame:
    sizes = assigned.group_by("person_id").agg(pl.len().cast(pl.Int64).alias("records"))
    created = sizes.filter(~pl.col("person_id").is_in(list(known))).select(
        pl.lit("created").alias("event"),
        "person_id",
        pl.lit(None, pl.String).alias("related_person_id"),
        "records",
    )
    moved = (
        assigned.drop_nulls("old_id")
        .filter(pl.col("old_id") != pl.col("person_id"))
        .group_by("old_id", "person_id")
        .agg(pl.len().cast(pl.Int64).alias("records"))
    )
    still_used = set(assigned["person_id"].to_list())
    events = moved.with_columns(
        pl.when(pl.col("old_id").is_in(list(still_used)))
        .then(pl.lit("split"))
        .otherwise(pl.lit("merged"))
        .alias("event")
    ).select(
        "event",
        pl.col("old_id").alias("person_id"),
        pl.col("person_id").alias("related_person_id"),
        "records",
    )
    return (
        pl.concat([created, events], how="vertical_relaxed")
        .select([pl.col(n).cast(t) for n, t in HISTORY_SCHEMA.items()])
        .sort("event", "person_id", "related_person_id", nulls_last=True)
    )
