"""Clusters and stable person ids: re-runs keep ids, new records attach, merges and splits are recorded."""

from __future__ import annotations

import polars as pl

from pipelines.identity.persons import assign_person_ids, connected_components


def edges(*pairs: tuple[str, str]) -> pl.DataFrame:
    return pl.DataFrame(pairs, schema={"unique_id_l": pl.String, "unique_id_r": pl.String}, orient="row")


def test_components_follow_chains_and_keep_singletons() -> None:
    ids = pl.Series(["e", "d", "c", "b", "a", "z"])
    clusters = connected_components(ids, edges(("e", "d"), ("d", "c"), ("a", "b")))
    assert dict(clusters.iter_rows()) == {"a": "a", "b": "a", "c": "c", "d": "c", "e": "c", "z": "z"}


def test_a_long_chain_converges() -> None:
    ids = pl.Series([f"r{i:03d}" for i in range(200)])
    chain = edges(*[(f"r{i:03d}", f"r{i + 1:03d}") for i in range(199)])
    assert connected_components(ids, chain)["cluster"].unique().to_list() == ["r000"]


NO_PREVIOUS = pl.DataFrame(schema={"unique_id": pl.String, "person_id": pl.String})


def test_the_same_data_gets_the_same_ids_and_a_rerun_changes_nothing() -> None:
    clusters = connected_components(pl.Series(["a", "b", "c"]), edges(("a", "b")))
    first, history = assign_person_ids(clusters, NO_PREVIOUS)
    again, _ = assign_person_ids(clusters, NO_PREVIOUS)
    assert first.equals(again)
    assert history["event"].to_list() == ["created", "created"]
    rerun, rerun_history = assign_person_ids(clusters, first.select("unique_id", "person_id"))
    assert rerun.equals(first) and rerun_history.is_empty()


def test_a_new_record_attaches_to_its_person_and_an_unknown_one_creates_a_person() -> None:
    before, _ = assign_person_ids(connected_components(pl.Series(["a", "b"]), edges()), NO_PREVIOUS)
    # a new export: "c" matches "a", "d" is someone new; "a" now sorts after a new smaller key "0"
    clusters = connected_components(pl.Series(["0", "a", "b", "c", "d"]), edges(("0", "a"), ("a", "c")))
    after, history = assign_person_ids(clusters, before.select("unique_id", "person_id"))
    ids = dict(after.select("unique_id", "person_id").iter_rows())
    old = dict(before.select("unique_id", "person_id").iter_rows())
    assert ids["a"] == ids["c"] == ids["0"] == old["a"] and ids["b"] == old["b"]
    assert ids["d"] not in old.values()
    assert history.filter(pl.col("event") == "created")["person_id"].to_list() == [ids["d"]]


def test_merges_and_splits_are_recorded() -> None:
    previous = pl.DataFrame(
        {"unique_id": ["a", "b", "c", "x", "y", "z"], "person_id": ["P1", "P2", "P2", "P3", "P3", "P3"]}
    )
    # a, b and c are now one person (P1 and P2 merge); x+y and z fall apart (P3 splits)
    clusters = connected_components(
        pl.Series(previous["unique_id"]), edges(("a", "b"), ("b", "c"), ("x", "y"))
    )
    after, history = assign_person_ids(clusters, previous)
    ids = dict(after.select("unique_id", "person_id").iter_rows())
    assert ids["a"] == ids["b"] == ids["c"] == "P2"  # P2 held two of the three records
    assert ids["x"] == ids["y"] == "P3" and ids["z"] not in {"P1", "P2", "P3"}
    events = set(history.select("event", "person_id", "related_person_id").iter_rows())
    assert ("merged", "P1", "P2") in events
    assert ("split", "P3", ids["z"]) in events
