"""Device feeds end to end on generated data, through the Dagster assets: readings for enrolled patients,
every bronze device record accounted for, contracts green, alerts and adherence, identical re-runs."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from upath import UPath

from assets.bronze.assets import bronze_ingest
from assets.devices.assets import device_gold, device_readings
from assets.resources import LakeResource
from assets.silver.assets import silver_tables
from pipelines.generate import generate_landing
from pipelines.lake import read_table

BUCKETS = 3


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, UPath, list[dg.ExecuteInProcessResult]]:
    """250 generated people through bronze, silver, device readings and the derived device tables."""
    root = tmp_path_factory.mktemp("devices")
    generate_landing(root / "landing", 250, seed=7)
    resource = LakeResource(
        landing=str(root / "landing"), lake=str(root / "lake"), buckets=BUCKETS, as_of="2026-06-30"
    )
    instance = dg.DagsterInstance.ephemeral()
    everything = [bronze_ingest, silver_tables, device_readings, device_gold]
    results = [dg.materialize([bronze_ingest], resources={"lake": resource}, instance=instance)]
    for group in ("silver", "devices", "device_gold"):  # every bucket of a step in one run
        results.append(
            dg.materialize(
                everything,
                selection=dg.AssetSelection.groups(group),
                resources={"lake": resource},
                instance=instance,
            )
        )
    return root, UPath(root / "lake"), results


def test_assets_materialize_and_contracts_pass(built) -> None:
    _, _, results = built
    assert all(r.success for r in results)
    device_checks = [
        e
        for r in results
        for e in r.get_asset_check_evaluations()
        if e.asset_key.path[-1] in {"device_reading", "device_daily", "device_adherence", "device_alerts"}
    ]
    assert len(device_checks) == 4  # one per table per run, whatever the bucket count
    assert all(e.passed for e in device_checks), [e.metadata for e in device_checks if not e.passed]


def test_every_bronze_device_record_is_a_reading_or_a_reject(built) -> None:
    _, lake, _ = built
    bronze = read_table(lake, "bronze", "device_records").filter(
        pl.col("record_format") != "device_enrolment"
    )
    refs = bronze.select(
        pl.when(pl.col("line").is_not_null())
        .then(pl.format("{}:{}", "file", "line"))
        .otherwise(pl.format("{}#{}", "file", "entry"))
        .alias("raw_ref")
    )
    readings = read_table(lake, "silver", "device_reading")
    rejects = read_table(lake, "silver", "device_reading_rejects")
    covered = pl.concat([readings.select("raw_ref"), rejects.select("raw_ref")]).unique()
    missing = refs.join(covered, on="raw_ref", how="anti")
    assert missing.is_empty(), f"{missing.height} device records neither read nor rejected"
    assert (readings["uploads"] == 1).all()  # the generator sends each reading once


def test_readings_are_linked_as_the_ground_truth_says(built) -> None:
    root, lake, _ = built
    truth = json.loads((root / "ground_truth" / "summary.json").read_text())
    readings = read_table(lake, "silver", "device_reading")
    unlinked_records = readings.filter(pl.col("link_method") == "unlinked")["raw_ref"].n_unique()
    assert unlinked_records == truth["orphan_device_readings"]
    assert set(readings["unit"].unique()) <= {"mm[Hg]", "/min", "kg", "mg/dL", "{steps}"}
    assert readings.filter(~pl.col("plausible")).height > 0
    identity = pl.read_csv(root / "ground_truth" / "identity.csv", infer_schema_length=0)
    known = identity.select(
        pl.col("source").alias("patient_source"), pl.col("source_patient_id").alias("patient_id")
    )
    linked = (
        readings.filter(pl.col("patient_id").is_not_null()).select("patient_source", "patient_id").unique()
    )
    assert linked.join(known, on=["patient_source", "patient_id"], how="anti").is_empty()


def test_alerts_and_adherence_are_derived(built) -> None:
    _, lake, _ = built
    alerts = read_table(lake, "gold", "device_alerts")
    adherence = read_table(lake, "gold", "device_adherence")
    daily = read_table(lake, "gold", "device_daily")
    assert alerts.height > 0 and adherence.height > 0 and daily.height > 0
    readings = read_table(lake, "silver", "device_reading").filter(pl.col("plausible"))
    fired = alerts.explode("reading_ids").select(pl.col("reading_ids").alias("reading_id")).unique()
    assert fired.join(readings, on="reading_id", how="anti").is_empty()  # only plausible readings fire


def test_rebuilding_a_partition_writes_identical_tables(built) -> None:
    _, lake, _ = built
    from pipelines.devices.build import build_device_partition

    path = Path(str(lake)) / "silver" / "device_reading" / "bucket=00" / "data.parquet"
    before = pl.read_parquet(path)
    build_device_partition(lake, "00", BUCKETS)
    assert pl.read_parquet(path).equals(before)
