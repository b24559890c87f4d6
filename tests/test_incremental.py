"""Incremental runs: only the partitions a delivery reaches are rebuilt, and the lake and the exports
are the same as a full rebuild's."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import polars as pl
import pytest
from upath import UPath

from pipelines import incremental as inc
from pipelines.bronze.ingest import ingest_landing
from pipelines.config import Settings
from pipelines.generate.increment import write_increment
from pipelines.generate.landing import generate_landing
from pipelines.identity.decisions import record_decision
from pipelines.silver.build import build_partition, partition_keys

PEOPLE, SEED, BUCKETS = 240, 5, 4
FIRST_EXPORT = date(2026, 6, 30)
AS_OF = date(2026, 7, 4)  # fixed, after every delivery: the gold tables' windows do not move between runs
COMPARED_LAYERS = ("silver", "identity", "gold")


def test_partitions_to_run_follows_the_partition_mappings() -> None:
    buckets: list[str | None] = ["00", "01", "02", "shared"]
    bronze = inc.Upstream(("bronze", "fhir_resources"), same_partition=False)
    same = inc.Upstream(("silver", "observation"), same_partition=True)
    every = inc.Upstream(("silver", "device"), same_partition=False)
    assert inc.partitions_to_run([bronze], {("bronze", "fhir_resources"): {"01"}}, buckets) == ["01"]
    assert inc.partitions_to_run([bronze], {("bronze", "fhir_resources"): {"shared"}}, buckets) == buckets
    assert inc.partitions_to_run([bronze, same], {("silver", "observation"): {"02"}}, buckets) == ["02"]
    assert inc.partitions_to_run([same, every], {("silver", "device"): {"02"}}, buckets) == buckets
    assert inc.partitions_to_run([same, every], {("silver", "patient"): {"02"}}, buckets) == []
    assert inc.partitions_to_run([every], {("silver", "device"): set()}, buckets) == []
    assert inc.partitions_to_run([every], {("silver", "device"): {"00"}}, [None]) == [None]


def test_state_round_trip_and_unreadable_state(tmp_path: Path) -> None:
    lake = UPath(tmp_path)
    assert inc.read_state(lake) is None
    state = inc.LakeState(
        frozenset({"b", "a"}), "2026-07-03", 4, {"risk": "risk-1", "sentiment": None}, {"silver/patient": "x"}
    )
    inc.write_state(lake, state)
    assert inc.read_state(lake) == state
    assert orjson.loads(inc.state_path(lake).read_bytes())["ingest_keys"] == ["a", "b"]
    inc.state_path(lake).write_bytes(b'{"ingest_keys": [')  # a damaged file means: run in full
    assert inc.read_state(lake) is None


def test_fingerprints_see_content_not_rebuilds(tmp_path: Path) -> None:
    lake = UPath(tmp_path)
    folder = tmp_path / "silver" / "patient" / "bucket=00"
    folder.mkdir(parents=True)
    frame = pl.DataFrame({"id": ["a", "b"]})
    frame.write_parquet(folder / "data.parquet")
    prints = inc.Fingerprints(lake)
    partitions = [(("silver", "patient"), "00"), (("silver", "patient"), "01")]
    recorded = prints.snapshot(partitions)
    assert recorded["silver/patient/bucket=01"] == ""  # no files yet
    frame.write_parquet(folder / "data.parquet")  # rebuilt to the same content
    assert inc.differing(partitions, prints.snapshot(partitions), recorded) == set()
    frame.with_columns(pl.lit("x").alias("id")).write_parquet(folder / "data.parquet")
    assert inc.differing(partitions, prints.snapshot(partitions), recorded) == {(("silver", "patient"), "00")}


def test_the_increment_generator_is_deterministic_and_complete(tmp_path: Path) -> None:
    generate_landing(tmp_path / "a", 60, seed=SEED, as_of=FIRST_EXPORT)
    generate_landing(tmp_path / "b", 60, seed=SEED, as_of=FIRST_EXPORT)
    one = write_increment(tmp_path / "a", date(2026, 7, 1), share=0.05, seed=1)
    two = write_increment(tmp_path / "b", date(2026, 7, 1), share=0.05, seed=1)
    assert one.actions == two.actions and min(one.actions.values()) > 0
    assert one.manifest.read_bytes() == two.manifest.read_bytes()
    manifest = orjson.loads(one.manifest.read_bytes())
    assert manifest["transactionTime"] == "2026-07-01T23:00:00Z"
    listed = sum(item["count"] for item in manifest["output"] + manifest["deleted"])
    assert listed == one.resources
    for item in manifest["output"]:
        lines = (tmp_path / "a" / "ehr_a" / item["url"]).read_bytes().splitlines()
        assert len(lines) == item["count"]
        assert all(orjson.loads(line)["meta"]["lastUpdated"].startswith("2026-07-01") for line in lines)
    with pytest.raises(ValueError, match="must follow"):
        write_increment(tmp_path / "a", FIRST_EXPORT)


def _tables(lake: Path) -> dict[str, pl.DataFrame]:
    """Every Parquet file of the compared layers by its path in the lake."""
    return {
        # when an identity event was recorded is the wall clock of the run that saw it, not data
        str(path.relative_to(lake)): pl.read_parquet(path, hive_partitioning=False).drop(
            "recorded_at", strict=False
        )
        for layer in COMPARED_LAYERS
        for path in sorted((lake / layer).rglob("*.parquet"))
        if not any(part.startswith((".", "_")) for part in path.relative_to(lake).parts)
    }


def _exports(exports: Path) -> dict[str, bytes]:
    """The outreach lists and suppressions of every campaign run (the manifests carry run times)."""
    return {
        str(path.relative_to(exports)): path.read_bytes()
        for name in ("list.csv", "suppressed.csv", "added.csv", "removed.csv", "changed.csv")
        for path in sorted(exports.rglob(name))
    }


def _assert_same(full: Path, incremental: Path) -> None:
    full_tables, incremental_tables = _tables(full / "lake"), _tables(incremental / "lake")
    assert sorted(full_tables) == sorted(incremental_tables)
    for path, frame in full_tables.items():
        other = incremental_tables[path]
        assert frame.schema == other.schema, path
        assert frame.equals(other), f"{path}: {frame.height} rows in full, {other.height} incremental"
    assert _exports(full / "exports") == _exports(incremental / "exports")


def _settings(root: Path, landing: Path) -> Settings:
    return Settings(UPath(landing), UPath(root / "lake"), UPath(root / "exports"), BUCKETS, AS_OF)


def test_incremental_runs_equal_full_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.run import run_pipeline

    landing = tmp_path / "landing"
    generate_landing(landing, PEOPLE, seed=SEED, as_of=FIRST_EXPORT)
    monkeypatch.setenv(
        "PATIENT_INSIGHTS_SENTIMENT_LABELS", str(tmp_path / "ground_truth" / "conversation_turns.csv")
    )
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    base = tmp_path / "base"
    first = run_pipeline(_settings(base, landing))
    assert first.success and first.mode == "full"
    full, incremental = tmp_path / "full", tmp_path / "incremental"
    for copy in (full, incremental):
        shutil.copytree(base, copy)

    # nothing new: the incremental run rebuilds nothing and changes nothing
    idle = run_pipeline(_settings(incremental, landing), incremental=True)
    assert idle.success and idle.mode == "incremental"
    assert all(stage["buckets_rebuilt"] == 0 for stage in idle.stages), idle.stages
    assert idle.assets["identity/person_link"]["changed"] is False
    _assert_same(base, incremental)

    # damaged files (a truncated gold bucket, a silver file of random bytes) are found and rebuilt
    gold_file = next((incremental / "lake" / "gold" / "patient_360").rglob("*.parquet"))
    gold_file.write_bytes(gold_file.read_bytes()[:100])
    silver_file = next((incremental / "lake" / "silver" / "encounter").rglob("*.parquet"))
    silver_file.write_bytes(b"PAR1" + bytes(range(256)) * 8 + b"PAR1")
    repaired = run_pipeline(_settings(incremental, landing), incremental=True)
    assert repaired.success and repaired.mode == "incremental"
    rebuilt_by_step = {stage["job"]: stage["buckets_rebuilt"] for stage in repaired.stages}
    assert rebuilt_by_step["silver_tables"] == 1 and rebuilt_by_step["person_tables"] >= 1, rebuilt_by_step
    _assert_same(base, incremental)

    # a local change (three resources): only the buckets they sit in are rebuilt
    write_increment(landing, date(2026, 7, 1), seed=2, share=0.02, limit=3)
    rebuilt = run_pipeline(_settings(full, landing))
    local = run_pipeline(_settings(incremental, landing), incremental=True)
    assert rebuilt.success and local.success and local.mode == "incremental"
    silver = next(stage for stage in local.stages if stage["job"] == "silver_tables")
    assert 1 <= silver["buckets_rebuilt"] <= 3, silver  # of 5 (4 buckets and shared)
    assert local.assets["models/sentiment"]["status"] == "deployed version kept"
    _assert_same(full, incremental)

    # a run killed after rewriting silver, before identity and gold followed: the next incremental run
    # finds silver no longer as the last successful run left it and brings its readers up to date
    write_increment(landing, date(2026, 7, 2), seed=4, share=0.02, limit=5)
    ingest_landing(UPath(landing), UPath(incremental / "lake"), BUCKETS)
    for partition in partition_keys(BUCKETS):
        build_partition(UPath(incremental / "lake"), partition)
    rebuilt = run_pipeline(_settings(full, landing))
    resumed = run_pipeline(_settings(incremental, landing), incremental=True)
    assert rebuilt.success and resumed.success
    assert next(s for s in resumed.stages if s["job"] == "identity_tables")["status"] == "SUCCESS"
    assert resumed.assets["identity/person_link"]["changed"] is not None
    _assert_same(full, incremental)

    # the next day: 1 % of the resources changed, new or deleted
    summary = write_increment(landing, date(2026, 7, 3), seed=3, share=0.01)
    assert summary.actions["deleted"] > 0 and summary.actions["new"] > 0
    rebuilt = run_pipeline(_settings(full, landing))
    daily = run_pipeline(_settings(incremental, landing), incremental=True)
    assert rebuilt.success and daily.success and daily.mode == "incremental"
    _assert_same(full, incremental)
    before, after = _tables(base / "lake"), _tables(incremental / "lake")
    changed = [path for path, frame in after.items() if path not in before or not frame.equals(before[path])]
    assert any(p.startswith("silver/observation/") for p in changed)
    assert any(p.startswith("gold/patient_360/") for p in changed)
    deleted = orjson.loads(summary.manifest.read_bytes())["deleted"]
    assert deleted and inc.read_state(UPath(incremental / "lake")) == inc.read_state(UPath(full / "lake"))

    # a reviewer decides two linked records are two people: nothing new arrived, yet the next incremental
    # run rebuilds identity (and what follows from it) as a full run does
    links = pl.read_parquet(incremental / "lake" / "identity" / "person_link" / "data.parquet")
    pair = (
        links.with_columns(pl.format("{}|{}", "source", "source_patient_id").alias("record"))
        .group_by("person_id")
        .agg(pl.col("record").sort())
        .filter(pl.col("record").list.len() == 2)
        .sort("person_id")["record"][0]
        .to_list()
    )
    for copy in (full, incremental):
        record_decision(
            UPath(copy / "lake"), *pair, "never_link", "a reviewer", now=datetime(2026, 7, 4, tzinfo=UTC)
        )
    decided = run_pipeline(_settings(incremental, landing), incremental=True)
    assert decided.success and decided.assets["identity/person_link"]["changed"] is True
    assert run_pipeline(_settings(full, landing)).success
    _assert_same(full, incremental)
    split = pl.read_parquet(incremental / "lake" / "identity" / "person_link" / "data.parquet").with_columns(
        pl.format("{}|{}", "source", "source_patient_id").alias("record")
    )
    assert split.filter(pl.col("record").is_in(pair))["person_id"].n_unique() == 2
