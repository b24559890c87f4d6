"""Campaign exports: files, manifest, permissions, immutability, revisions and deltas, the contact history
read back from the exports, the audit chain, and a consumer that trusts nothing but the manifest."""

from __future__ import annotations

import hashlib
import stat
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import jsonschema
import orjson
import polars as pl
import pytest
from fhir.resources.R4B.group import Group
from upath import UPath

from pipelines.outreach import exports as exports_module
from pipelines.outreach.audit import append_audit_entry, read_audit_log, verify_audit_log
from pipelines.outreach.exports import (
    ExportError,
    campaign_runs,
    contact_history,
    export_run,
)
from pipelines.outreach.selection import HISTORY_SCHEMA, select_campaign
from pipelines.outreach.verify import check_list_rules, verify_export
from tests.test_outreach_selection import CAMPAIGN, person

MANIFEST_SCHEMA = Path(__file__).resolve().parents[1] / "data_contracts/schemas/outreach_manifest.schema.json"
DAY = date(2026, 6, 30)
DEFINITIONS = "0f" * 32  # a sha256
AT = datetime(2026, 6, 30, 6, 0, tzinfo=UTC)
PEOPLE = [person("a"), person("b", open_care_gaps=2), person("c", deceased=True), person("d", age=9)]


def select(people: list[dict], campaign=CAMPAIGN, history: pl.DataFrame | None = None, day: date = DAY):
    frame = pl.DataFrame(people)
    members = frame.select("person_id", pl.lit("open_gap_bcs").alias("segment_id"))
    return select_campaign(
        campaign, members, frame, history if history is not None else pl.DataFrame(schema=HISTORY_SCHEMA), day
    )


def export(root: Path, people: list[dict] = PEOPLE, day: date = DAY, campaign=CAMPAIGN, history=None):
    listed, suppressed = select(people, campaign, history, day)
    return export_run(UPath(root), campaign, listed, suppressed, day, DEFINITIONS, AT)


def test_a_run_writes_every_file_private_with_the_manifest_last(tmp_path: Path) -> None:
    result = export(tmp_path)
    folder = Path(str(result.run.folder))
    assert result.written and result.run.run_id == "2026-06-30"
    names = sorted(p.name for p in folder.iterdir())
    assert set(names) == {"list.csv", "list.parquet", "group.json", "suppressed.csv", "manifest.json"} | {
        "added.csv",
        "removed.csv",
        "changed.csv",
    }
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    assert result.counts["list.csv"] == 2 and result.counts["suppressed.csv"] == 2
    assert result.counts["added.csv"] == 2 and result.counts["removed.csv"] == 0
    assert verify_export(result.run) == []
    manifest = result.manifest
    assert manifest["runId"] == "2026-06-30" and manifest["previousRunId"] is None
    assert manifest["definitionsVersion"] == DEFINITIONS and manifest["transactionTime"].startswith(
        "2026-06-30"
    )
    # nothing but the chosen channel's contact point leaves: no birth date, no address columns
    header = (folder / "list.csv").read_text().splitlines()[0].split(",")
    assert "birth_date" not in header and "address_line" not in header and "contact" in header


def test_a_consumer_verifies_the_manifest_and_loads_the_group(tmp_path: Path) -> None:
    """What an outreach system does: trust the manifest only, check every file, parse the FHIR Group."""
    result = export(tmp_path)
    folder = Path(str(result.run.folder))
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    jsonschema.validate(manifest, orjson.loads(MANIFEST_SCHEMA.read_bytes()))
    for entry in manifest["output"]:
        data = (folder / entry["url"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["url"]
        assert len(data) == entry["bytes"]
        if entry["url"].endswith(".csv"):
            rows = len(data.decode().splitlines()) - 1 if data else 0
        elif entry["url"].endswith(".parquet"):
            rows = pl.read_parquet(data).height
        else:
            rows = len(orjson.loads(data)["member"])
        assert rows == entry["count"], entry["url"]
    group = Group.model_validate_json((folder / "group.json").read_bytes())
    assert group.type == "person" and group.actual is True and group.quantity == 2
    listed = pl.read_csv(folder / "list.csv")
    assert [m.entity.reference for m in group.member] == [f"Patient/{p}" for p in listed["person_id"]]


def test_an_unchanged_rerun_writes_nothing_and_keeps_the_hashes(tmp_path: Path) -> None:
    first = export(tmp_path)
    again = export(tmp_path)
    assert not again.written and again.run.run_id == first.run.run_id
    assert again.manifest == first.manifest
    assert [r.run_id for r in campaign_runs(UPath(tmp_path), CAMPAIGN.id)] == ["2026-06-30"]


def test_a_changed_rerun_the_same_day_is_a_revision_with_its_delta(tmp_path: Path) -> None:
    export(tmp_path)
    changed = [
        person("a", preferred_phone_use="home"),  # no mobile any more: e-mail instead of SMS
        person("c", deceased=True),
        person("e"),  # new
    ]  # b left the segment
    result = export(tmp_path, changed)
    assert result.written and result.run.run_id == "2026-06-30.2"
    assert result.manifest["previousRunId"] == "2026-06-30"
    folder = Path(str(result.run.folder))
    added = pl.read_csv(folder / "added.csv")
    removed = pl.read_csv(folder / "removed.csv")
    delta_changed = pl.read_csv(folder / "changed.csv")
    assert added["person_id"].to_list() == ["e"]
    assert removed.select("person_id", "why").rows() == [("b", "left_segments")]
    assert delta_changed.select("person_id", "channel", "changed_fields").rows() == [
        ("a", "email", "channel;contact")
    ]
    # the first run is untouched
    assert verify_export(campaign_runs(UPath(tmp_path), CAMPAIGN.id)[0]) == []


def test_the_same_list_the_next_day_has_equal_content_hashes_and_an_empty_delta(tmp_path: Path) -> None:
    daily = replace(CAMPAIGN, campaign_days=0, weekly_contacts=10)
    first = export(tmp_path, campaign=daily)
    history = contact_history(UPath(tmp_path), [daily], daily, date(2026, 7, 1))
    second = export(tmp_path, day=date(2026, 7, 1), campaign=daily, history=history)
    hashes = [{f["url"]: f["sha256"] for f in r.manifest["output"]} for r in (first, second)]
    assert hashes[0]["list.csv"] == hashes[1]["list.csv"]
    assert hashes[0]["list.parquet"] == hashes[1]["list.parquet"]
    assert second.counts["added.csv"] == second.counts["removed.csv"] == second.counts["changed.csv"] == 0


def test_a_killed_run_leaves_nothing_visible_and_the_next_run_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = exports_module._write_private
    calls = {"n": 0}

    def dies_on_the_third_file(path: str, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as if the process were stopped mid-run
        real(path, data)

    monkeypatch.setattr(exports_module, "_write_private", dies_on_the_third_file)
    with pytest.raises(KeyboardInterrupt):
        export(tmp_path)
    assert campaign_runs(UPath(tmp_path), CAMPAIGN.id) == []
    assert [p.name for p in (tmp_path / CAMPAIGN.id).iterdir() if not p.name.startswith(".lock")] == []
    monkeypatch.setattr(exports_module, "_write_private", real)
    assert export(tmp_path).written


def test_a_run_for_an_earlier_day_is_refused(tmp_path: Path) -> None:
    export(tmp_path)
    with pytest.raises(ExportError, match="already has a run for 2026-06-30"):
        export(tmp_path, day=date(2026, 6, 29))


def test_contact_history_counts_earlier_campaigns_of_the_day_only(tmp_path: Path) -> None:
    first = replace(CAMPAIGN, id="first", priority=1)
    second = replace(CAMPAIGN, id="second", priority=2)
    campaigns = [first, second]
    export(tmp_path, campaign=first)
    export(tmp_path, campaign=second)
    root = UPath(tmp_path)
    seen_by_second = contact_history(root, campaigns, second, DAY)
    seen_by_first = contact_history(root, campaigns, first, DAY)
    assert sorted(seen_by_second["person_id"]) == ["a", "b"]  # first went before it today
    assert seen_by_first.is_empty()  # its own run of today is being redone; second goes after it
    tomorrow = contact_history(root, campaigns, first, date(2026, 7, 1))
    assert tomorrow.group_by("campaign_id").len().sort("campaign_id").rows() == [("first", 2), ("second", 2)]


def test_the_frequency_cap_holds_across_runs(tmp_path: Path) -> None:
    export(tmp_path)
    nextweek = date(2026, 7, 7)
    history = contact_history(UPath(tmp_path), [CAMPAIGN], CAMPAIGN, nextweek)
    listed, suppressed = select(PEOPLE, history=history, day=nextweek)
    assert listed.is_empty()
    assert suppressed.filter(pl.col("reason") == "contacted_by_campaign_recently").height == 2


def test_list_rules_find_breaches_and_pass_a_good_list(tmp_path: Path) -> None:
    result = export(tmp_path)
    people = pl.DataFrame(PEOPLE).select(
        "person_id", "deceased", "consent_phone", "consent_sms", "consent_email"
    )
    people = people.with_columns(pl.lit(True).alias("consent_mail"))
    empty = pl.DataFrame(schema=HISTORY_SCHEMA)
    assert set(check_list_rules(result.run, CAMPAIGN, people, empty).values()) == {0}
    # the same list judged against later knowledge: a died, b opted out of SMS, both were contacted
    later = people.with_columns(
        (pl.col("person_id") == "a").alias("deceased"), (pl.col("person_id") != "b").alias("consent_sms")
    )
    history = pl.DataFrame(
        [("bcs", "a", date(2026, 6, 20)), ("x", "b", date(2026, 6, 28)), ("y", "b", date(2026, 6, 29))],
        schema=HISTORY_SCHEMA,
        orient="row",
    )
    found = check_list_rules(result.run, CAMPAIGN, later, history)
    assert found == {
        "holdout_listed": 0,
        "deceased_listed": 1,
        "unknown_person_listed": 0,
        "opted_out_channel_listed": 1,
        "campaign_frequency_breached": 1,
        "weekly_cap_breached": 1,
    }


def test_tampering_is_found_by_verify(tmp_path: Path) -> None:
    result = export(tmp_path)
    folder = Path(str(result.run.folder))
    (folder / "list.csv").chmod(0o600)
    (folder / "list.csv").write_text("person_id\nsomeone\n")
    (folder / "extra.csv").write_text("x\n")
    problems = verify_export(result.run)
    assert "list.csv: sha256 differs from the manifest" in problems
    assert "list.csv: 1 rows, the manifest says 2" in problems
    assert "extra.csv: not in the manifest" in problems


def test_the_audit_log_is_a_chain_without_person_data(tmp_path: Path) -> None:
    root = UPath(tmp_path)
    for run_id in ("2026-06-29", "2026-06-30"):
        append_audit_entry(root, {"campaign": "bcs", "run_id": run_id, "counts": {"list.csv": 2}, "by": "me"})
    entries = read_audit_log(root)
    assert [e["run_id"] for e in entries] == ["2026-06-29", "2026-06-30"]
    assert verify_audit_log(root) == []
    assert stat.S_IMODE((tmp_path / "audit.log").stat().st_mode) == 0o600
    with pytest.raises(RuntimeError, match="take no"):
        append_audit_entry(root, {"campaign": "bcs", "person_id": "a"})
    lines = (tmp_path / "audit.log").read_text().splitlines()
    (tmp_path / "audit.log").write_text(lines[1] + "\n")  # the first entry deleted
    assert verify_audit_log(root) == ["line 1: does not follow the line before it"]
