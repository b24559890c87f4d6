"""The outreach asset on generated data: one partition per campaign, exports checked by the blocking asset
checks, lists that keep every rule, a re-run that changes nothing, metadata without person data."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import jsonschema
import orjson
import polars as pl
import pytest
from upath import UPath

from assets.outreach.assets import (
    EXPORT_VERIFIED_CHECK,
    LIST_RULES_CHECK,
    campaign_order,
    outreach_list,
)
from assets.resources import LakeResource, OutreachDatabaseResource
from pipelines.fhir.times import fhir_timestamp
from pipelines.gold.build import build_person_bucket
from pipelines.lake import read_table
from pipelines.outreach.audit import read_audit_log, verify_audit_log
from pipelines.outreach.exports import campaign_runs
from tests.test_identity import identity  # noqa: F401  (the module fixture: 800 people through identity)
from tests.test_outreach_exports import MANIFEST_SCHEMA

AS_OF = date(2026, 6, 30)
BUCKETS = 4


@pytest.fixture(scope="module")
def gold(identity):  # noqa: F811
    """The identity lake with its gold person tables (every bucket) and an exports folder."""
    root, lake = identity
    for bucket in ("00", "01", "02", "03"):
        build_person_bucket(lake, bucket, BUCKETS, AS_OF)
    resource = LakeResource(
        landing=str(root / "landing"),
        lake=str(lake),
        exports=str(root / "exports"),
        buckets=BUCKETS,
        as_of=AS_OF.isoformat(),
    )
    return root, lake, resource


def materialize_all(resource: LakeResource, database: str = "") -> dg.ExecuteInProcessResult:
    """Every campaign, in priority order, in one run, as a day's run goes."""
    return dg.materialize(
        [outreach_list],
        resources={"lake": resource, "outreach_database": OutreachDatabaseResource(dsn=database)},
        instance=dg.DagsterInstance.ephemeral(),
    )


@pytest.fixture(scope="module")
def first_runs(gold):
    _, _, resource = gold
    return materialize_all(resource)


def test_every_campaign_materializes_and_passes_its_checks(gold, first_runs) -> None:
    root, _, _ = gold
    assert campaign_order()[0] == "post_discharge_follow_up"  # priority 1 goes first
    assert first_runs.success
    checks = {c.check_name: c for c in first_runs.get_asset_check_evaluations()}
    assert set(checks) == {EXPORT_VERIFIED_CHECK, LIST_RULES_CHECK}  # once per run, over every campaign
    assert all(c.passed for c in checks.values()), {k: c.metadata for k, c in checks.items()}
    for key in campaign_order():
        runs = campaign_runs(UPath(root / "exports"), key)
        assert [r.run_id for r in runs] == ["2026-06-30"]
        jsonschema.validate(runs[0].manifest(), orjson.loads(MANIFEST_SCHEMA.read_bytes()))
    flu = campaign_runs(UPath(root / "exports"), "flu_vaccine_reminder")[0].read_list()
    assert flu.height > 50


def test_the_lists_keep_the_rules_against_the_gold_tables(gold, first_runs) -> None:
    root, lake, _ = gold
    view = read_table(lake, "gold", "patient_360")
    for key in campaign_order():
        run = campaign_runs(UPath(root / "exports"), key)[0]
        listed = run.read_list().join(view, on="person_id", how="left", suffix="_360")
        assert not listed["deceased"].any()
        assert (listed["coverage_active"]).all()
        minors = listed.filter(pl.col("age") < 18)
        assert (minors["recipient"] == "guardian").all() and (listed["recipient"] == "guardian").sum() == (
            minors.height
        )
        suppressed = pl.read_csv(Path(str(run.folder)) / "suppressed.csv")
        members = read_table(lake, "gold", "segment_membership").filter(pl.col("exited").is_null())
        segment_ids = {
            "flu_vaccine_reminder": ["open_gap_flu"],
            "breast_screening_reminder": ["open_gap_bcs"],
        }
        if key in segment_ids:  # every current member is listed, held out or suppressed, nobody twice
            expected = members.filter(pl.col("segment_id").is_in(segment_ids[key]))["person_id"].n_unique()
            accounted = pl.concat(
                [run.read_list()["person_id"], run.read_holdout()["person_id"], suppressed["person_id"]]
            )
            assert accounted.n_unique() == accounted.len() == expected
    flu_run = campaign_runs(UPath(root / "exports"), "flu_vaccine_reminder")[0]
    flu = flu_run.read_list()
    pending = pl.read_csv(Path(str(flu_run.folder)) / "suppressed.csv").filter(
        pl.col("reason") == "appointment_booked"
    )
    # pending means a visit of the campaign's closing types is booked within 30 days (checked by hand)
    links = read_table(lake, "identity", "person_link")
    visits = (
        read_table(lake, "silver", "appointment")
        .join(links, left_on=["source", "patient_id"], right_on=["source", "source_patient_id"])
        .filter(
            (pl.col("status") == "booked")
            & fhir_timestamp(pl.col("start_time")).dt.date().is_between(date(2026, 7, 1), date(2026, 7, 30))
            & pl.col("appointment_type_code").is_in(["CHECKUP", "ROUTINE", "FOLLOWUP"])
        )
    )
    assert 0 < pending.height < flu.height + pending.height
    assert set(pending["person_id"]) <= set(visits["person_id"])
    assert not set(flu["person_id"]) & set(visits["person_id"])
    assert flu["gap_ids"].list.len().min() >= 1 and flu["source_identifiers"].list.len().min() >= 1
    assert flu["rank"].to_list() == list(range(1, flu.height + 1))


def test_metadata_and_audit_carry_no_person_data(gold, first_runs) -> None:
    root, lake, _ = gold
    view = read_table(lake, "gold", "patient_360")
    secrets = {v for c in ("given", "family", "phone", "email") for v in view[c].drop_nulls().to_list()}
    secrets |= set(view["person_id"].to_list())
    for event in first_runs.get_asset_materialization_events():
        text = str(event.materialization.metadata)
        assert not any(s in text for s in secrets if len(s) > 3)
    audit = (root / "exports" / "audit.log").read_text()
    assert not any(s in audit for s in secrets if len(s) > 3)
    assert verify_audit_log(UPath(root / "exports")) == []


def test_a_rerun_on_unchanged_data_writes_nothing_new(gold, first_runs) -> None:
    root, _, resource = gold
    exports = UPath(root / "exports")
    before = {key: campaign_runs(exports, key)[0].manifest() for key in campaign_order()}
    again = materialize_all(resource)
    assert again.success
    metadata = again.get_asset_materialization_events()[0].materialization.metadata
    for key in before:
        runs = campaign_runs(exports, key)
        assert [r.run_id for r in runs] == ["2026-06-30"]
        assert runs[0].manifest() == before[key]
        assert metadata[f"{key}_written"].value is False
    outcomes = [e["outcome"] for e in read_audit_log(exports)]
    assert outcomes == ["written"] * len(before) + ["unchanged"] * len(before)


def test_with_a_database_the_list_is_loaded_and_a_rerun_keeps_it(gold, first_runs, dsn: str) -> None:
    """The sink on the real server: each campaign's current table rows are its latest export's list."""
    from pipelines.outreach.database import current_list

    root, _, resource = gold
    materialize_all(resource, database=dsn)  # unchanged data: no new export, the same run loaded
    materialize_all(resource, database=dsn)
    exports = UPath(root / "exports")
    for key in campaign_order():
        run = campaign_runs(exports, key)[-1]
        stored = current_list(dsn, key)
        assert stored["run_id"].unique().to_list() in ([run.run_id], [])
        assert stored["person_id"].to_list() == run.read_list()["person_id"].to_list()
    entries = [e for e in read_audit_log(exports) if e.get("database")]
    assert entries and all(set(e["database"]) == {"inserted", "superseded"} for e in entries)
