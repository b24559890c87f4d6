"""The outreach outcome simulation: vendor event files, closing FHIR resources with a known true effect and
their ground truth, on a tiny lake and exports made with the real writers (no pipeline run)."""

from __future__ import annotations

import hashlib
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest
from fhir.resources.R4B import get_fhir_model_class
from typer.testing import CliRunner
from upath import UPath

from pipelines.bronze.outreach_reader import EVENTS, read_outreach_events_csv, read_outreach_events_ndjson
from pipelines.cli import app
from pipelines.fhir.times import fhir_timestamp
from pipelines.generate.outreach_outcomes import (
    CLOSURE_RATES,
    EVENT_COLUMNS,
    GENERATOR,
    STOP_TEXTS,
    UNKNOWN_CAMPAIGN,
    VENDOR_SOURCE,
    _read_holdout,
    simulate_outreach,
)
from pipelines.identity.build import PERSON_LINK_SCHEMA
from pipelines.lake import write_parquet_atomic
from pipelines.measures.definitions import load_measures, value_sets
from pipelines.measures.engine import EVENT_SCHEMA, evaluate_measure
from pipelines.outreach.assignment import campaign_assignments
from pipelines.outreach.exports import RunFolder, campaign_runs, export_run
from pipelines.outreach.holdout import split_holdout
from pipelines.outreach.responses import resolve_events
from pipelines.outreach.run import shipped_campaigns
from pipelines.outreach.selection import LIST_SCHEMA, SUPPRESSION_SCHEMA
from pipelines.sof import run_view

BCS, COL = "breast_screening_reminder", "colorectal_screening_outreach"
BCS_DAY, COL_DAY, COL_DAY_2 = date(2026, 6, 30), date(2026, 7, 7), date(2026, 8, 6)
EVAL_DAY = COL_DAY_2 + timedelta(days=90)
PERSONS = 2000
MRN = "http://hospital-a.example.org/fhir/sid/mrn"
VIEWS = Path(__file__).resolve().parents[1] / "data_contracts" / "views"
CHANNELS = ("sms", "email", "mail", "phone")


def _pid(i: int) -> str:
    return f"p{i:05d}"


def _listed(campaign_id: str, indexes: range, gaps: dict[int, list[str]]) -> pl.DataFrame:
    rows = [
        {
            "campaign_id": campaign_id,
            "person_id": _pid(i),
            "rank": rank,
            "priority": 10.0,
            "channel": CHANNELS[i % 4],
            "recipient": "patient",
            "recipient_name": f"Person {i}",
            "contact": f"contact-{i}",
            "contact_verified": True,
            "language": "en",
            "template": "t",
            "given": "Ann",
            "family": f"Lee{i}",
            "source_identifiers": [f"{MRN}|{i:08d}"],
            "segments": ["open_gap"],
            "reasons": [],
            "gap_ids": gaps[i],
            "due_dates": [],
        }
        for rank, i in enumerate(indexes, start=1)
    ]
    return pl.DataFrame(rows, schema=LIST_SCHEMA)


def _export(exports: Path, campaign_id: str, day: date, listed: pl.DataFrame) -> None:
    campaign = next(c for c in shipped_campaigns() if c.id == campaign_id)
    contacted, held = split_holdout(campaign, listed)
    at = datetime(day.year, day.month, day.day, 6, tzinfo=UTC)
    suppressed = pl.DataFrame(schema=SUPPRESSION_SCHEMA)
    export_run(UPath(exports), campaign, contacted, suppressed, day, "0f" * 32, at, held)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A lake with person_link, a landing folder with EHR A's Bulk manifest and an EHR B folder, and the
    exports of one BCS run and two COL runs (the second overlapping the first)."""
    root = tmp_path_factory.mktemp("simulation")
    lake, exports, landing = root / "lake", root / "exports", root / "landing"
    links = []
    for i in range(PERSONS + 200):
        if i % 8:
            links.append(("ehr_a", f"a-{i}", _pid(i), "single_record", None))
        if i % 8 == 0 or i % 5 == 0:  # one in eight has a Patient in EHR B only
            links.append(("ehr_b", f"b-{i}", _pid(i), "single_record", None))
    write_parquet_atomic(
        pl.DataFrame(links, schema=PERSON_LINK_SCHEMA, orient="row"),
        UPath(lake) / "identity" / "person_link" / "data.parquet",
    )
    (landing / "ehr_a").mkdir(parents=True)
    (landing / "ehr_b").mkdir()
    manifest = {
        "transactionTime": "2026-06-30T23:00:00Z",
        "request": "https://ehr-a.example.org/fhir/$export",
        "requiresAccessToken": False,
        "output": [{"type": "Patient", "url": "Patient.000.ndjson", "count": 0}],
        "deleted": [],
        "error": [],
    }
    (landing / "ehr_a" / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    (landing / "ehr_a" / "Patient.000.ndjson").write_bytes(b"")
    bcs_gaps = {i: ["BCS-2026"] if i % 10 else [] for i in range(PERSONS)}  # a tenth has no open gap
    col_gaps = {i: ["COL-2026"] for i in range(PERSONS + 200)}
    _export(exports, BCS, BCS_DAY, _listed(BCS, range(PERSONS), bcs_gaps))
    _export(exports, COL, COL_DAY, _listed(COL, range(PERSONS), col_gaps))
    _export(exports, COL, COL_DAY_2, _listed(COL, range(PERSONS - 200, PERSONS + 200), col_gaps))
    return {"root": root, "lake": lake, "exports": exports, "landing": landing}


@pytest.fixture(scope="module")
def simulated(world: dict[str, Path]):
    truth = world["root"] / "truth"
    result = simulate_outreach(
        world["landing"], UPath(world["lake"]), UPath(world["exports"]), seed=0, defects=0.02, truth_out=truth
    )
    return result, truth


def _runs(world: dict[str, Path], campaign_id: str) -> list[RunFolder]:
    return campaign_runs(UPath(world["exports"]), campaign_id)


def _events(world: dict[str, Path], genuine_only: bool = True) -> pl.DataFrame:
    """Every event row of the vendor folder (strings), with its file and 1-based line."""
    frames = []
    for path in sorted((world["landing"] / "outreach_vendor").glob("events_*")):
        if path.suffix == ".csv":
            frame = pl.read_csv(path, infer_schema=False).with_columns(
                (pl.int_range(pl.len()) + 2).alias("line")
            )
        else:
            rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
            frame = pl.DataFrame(rows, schema=dict.fromkeys(EVENT_COLUMNS, pl.String)).with_columns(
                (pl.int_range(pl.len()) + 1).alias("line")
            )
        frames.append(frame.with_columns(pl.lit(f"outreach_vendor/{path.name}").alias("file")))
    events = pl.concat(frames, how="diagonal_relaxed")
    if genuine_only:
        defects = pl.read_csv(world["root"] / "truth" / "outreach_defects.csv")
        events = events.join(defects.select("file", "line"), on=["file", "line"], how="anti")
    identifiers = pl.DataFrame(
        {
            "source_identifier": [f"{MRN}|{i:08d}" for i in range(PERSONS + 200)],
            "_owner": [_pid(i) for i in range(PERSONS + 200)],
        }
    )
    return events.join(identifiers, on="source_identifier", how="left").with_columns(
        pl.coalesce(pl.col("person_id").replace("", None), "_owner").alias("_person")
    )


def _truth(simulated) -> dict:
    return orjson.loads((simulated[1] / "outreach_effect.json").read_bytes())


def _closure_files(world: dict[str, Path]) -> list[Path]:
    day = EVAL_DAY.isoformat()
    return sorted((world["landing"] / "ehr_a" / day).glob("*.ndjson"))


def _closure_resources(world: dict[str, Path]) -> list[dict]:
    resources = [orjson.loads(line) for p in _closure_files(world) for line in p.read_bytes().splitlines()]
    bundle = world["landing"] / "ehr_b" / "sim-outreach" / f"{EVAL_DAY.isoformat()}.json"
    return resources + [entry["resource"] for entry in orjson.loads(bundle.read_bytes())["entry"]]


def test_event_files_have_the_vendor_formats_and_columns(world, simulated) -> None:
    result, _ = simulated
    vendor = world["landing"] / "outreach_vendor"
    assert (vendor / "source.yaml").read_text().splitlines()[-1] == "format: outreach_events"
    names = sorted(p.name for p in vendor.glob("events_*"))
    assert names == sorted(
        f"events_{c}_{d.isoformat()}.{s}"
        for c, d in ((BCS, BCS_DAY), (COL, COL_DAY), (COL, COL_DAY_2))
        for s in ("csv", "ndjson")
    )
    for path in vendor.glob("events_*.csv"):
        assert path.read_text().splitlines()[0] == ",".join(EVENT_COLUMNS)
    for path in vendor.glob("events_*.ndjson"):
        assert all(list(orjson.loads(line)) == list(EVENT_COLUMNS) for line in path.read_bytes().splitlines())
    events = _events(world)
    by_format = events.with_columns(pl.col("file").str.ends_with(".ndjson").alias("_json"))
    assert by_format.filter(pl.col("_json"))["channel"].unique().to_list() == ["email"]
    assert set(by_format.filter(~pl.col("_json"))["channel"].unique()) == {"sms", "mail", "phone"}
    assert events["occurred_at"].str.contains(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$").all()
    assert events["event_id"].str.starts_with("sim-").all() and events["event_id"].n_unique() == events.height
    assert set(events["event"]) <= set(EVENTS)
    # every event after its run day; the email bounces carry an SMTP code
    run_day = events["file"].str.extract(r"_(\d{4}-\d{2}-\d{2})\.").str.to_date()
    assert (events["occurred_at"].str.slice(0, 10).str.to_date() > run_day).all()
    bounces = events.filter((pl.col("event") == "bounced") & (pl.col("channel") == "email"))
    assert bounces.height and bounces["detail"].str.contains(r"^5\d\d ").all()
    assert result.counts[(COL, "contacted", "sent")] == sum(r.read_list().height for r in _runs(world, COL))
    assert result.files and all(p.exists() for p in result.files)


def test_every_listed_person_is_sent_and_no_holdout_person_gets_an_event(world, simulated) -> None:
    events = _events(world)
    for campaign_id in (BCS, COL):
        for run in _runs(world, campaign_id):
            mine = events.filter(pl.col("file").str.contains(f"events_{campaign_id}_{run.run_id}."))
            listed = set(run.read_list()["person_id"])
            held = set(run.read_holdout()["person_id"])
            assert held and not held & set(mine["_person"])
            assert set(mine.filter(pl.col("event") == "sent")["_person"]) == listed
            assert mine["_person"].null_count() == 0
    by_identifier = events.filter(pl.col("person_id").is_null() | (pl.col("person_id") == ""))
    assert by_identifier["source_identifier"].is_not_null().all()
    share = by_identifier.select("file", "_person").n_unique() / events.select("file", "_person").n_unique()
    assert 0.17 < share < 0.23  # a person is named the same way in all events of a run


def test_funnel_rates_are_roughly_the_configured_ones(world, simulated) -> None:
    events = _events(world)
    sent = events.filter(pl.col("event") == "sent").group_by("channel").len()
    counts = dict(
        events.group_by("channel", "event").len().select(pl.concat_str("channel", "event"), "len").rows()
    )
    per = dict(sent.rows())
    assert abs(counts["emailbounced"] / per["email"] - 0.08) < 0.03
    assert abs(counts["phonecalled-no-answer"] / per["phone"] - 0.30) < 0.05
    assert abs(counts["emailopened"] / counts["emaildelivered"] - 0.45) < 0.05
    assert abs(counts["smsclicked"] / counts["smsdelivered"] - 0.10) < 0.04


def test_stop_replies_and_opt_outs_are_in_the_ground_truth(world, simulated) -> None:
    events = _events(world)
    stops = events.filter(
        (pl.col("event") == "opted-out")
        | ((pl.col("event") == "replied") & pl.col("reply_text").is_in(list(STOP_TEXTS)))
    )
    truth = pl.read_csv(simulated[1] / "outreach_opt_outs.csv", infer_schema=False)
    assert stops.height > 0 and set(stops["event_id"]) == set(truth["event_id"])
    joined = stops.join(truth, on="event_id")
    assert (joined["_person"] == joined["person_id_right"]).all()
    assert (joined["occurred_at"] == joined["occurred_at_right"]).all()
    assert {"sms", "email"} == set(truth["channel"])
    others = events.filter((pl.col("event") == "replied") & ~pl.col("reply_text").is_in(list(STOP_TEXTS)))
    assert others.height > 0
    assert simulated[0].opt_outs == truth.height


def test_closures_follow_the_true_probabilities(world, simulated) -> None:
    truth = _truth(simulated)
    entries = {e["campaign_id"]: e for e in truth["campaigns"]}
    assert set(entries) == {BCS, COL}
    col, bcs = entries[COL], entries[BCS]
    assert (col["p_holdout"], col["p_contacted"], col["true_effect"]) == (0.10, 0.30, 0.20)
    assert (bcs["p_holdout"], bcs["p_contacted"], bcs["true_effect"]) == (0.15, 0.15, 0.0)
    assert col["run_ids"] == [COL_DAY.isoformat(), COL_DAY_2.isoformat()] and col["follow_up_days"] == 90
    # each person once per campaign, in the arm of the first run; BCS: only persons with the gap open
    assert sum(col["assigned_with_open_gap"].values()) == PERSONS + 200
    assert sum(bcs["assigned_with_open_gap"].values()) == PERSONS - PERSONS // 10
    for entry in (col, bcs):
        rates = CLOSURE_RATES[entry["campaign_id"]]
        for arm in ("contacted", "holdout"):
            n, k = entry["assigned_with_open_gap"][arm], entry["closures_drawn"][arm]
            assert n > 300 and abs(k / n - rates[arm]) < 0.05, (entry["campaign_id"], arm, k, n)
            assert entry["closures_written"][arm] == k  # every person has a Patient somewhere
    closures = pl.read_csv(simulated[1] / "outreach_closures.csv")
    assert closures.height == sum(sum(e["closures_written"].values()) for e in (col, bcs))
    assert closures.group_by("campaign_id", "person_id").len()["len"].max() == 1
    assert len(_closure_resources(world)) == closures.height
    result = simulated[0]
    assert result.counts[(COL, "holdout", "COL closed")] == col["closures_written"]["holdout"]


def test_booked_events_come_before_closures_of_contacted_persons(world, simulated) -> None:
    events = _events(world)
    closures = pl.read_csv(simulated[1] / "outreach_closures.csv", infer_schema=False)
    contacted = closures.filter(pl.col("arm") == "contacted")
    booked = events.filter(pl.col("event") == "booked").with_columns(
        pl.col("file").str.extract(r"events_(.+)_\d{4}-").alias("campaign_id")
    )
    pairs = booked.join(contacted, left_on=["campaign_id", "_person"], right_on=["campaign_id", "person_id"])
    assert pairs.height == booked.height  # only persons whose gap closes book
    assert (pairs["occurred_at"].str.slice(0, 10) <= pairs["date"]).all()
    assert abs(booked.height / contacted.height - 0.70) < 0.05


def test_closing_resources_validate_close_the_gap_and_use_project_codes(world, simulated) -> None:
    resources = _closure_resources(world)
    codes = value_sets()
    kinds = {r["resourceType"] for r in resources}
    assert kinds == {"Observation", "Procedure"}
    for resource in resources[:: max(1, len(resources) // 60)] + resources[-5:]:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert all(r["id"].startswith("sim-") and r["meta"]["lastUpdated"].endswith("Z") for r in resources)
    assert len({r["id"] for r in resources}) == len(resources)
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    procedures = [r for r in resources if r["resourceType"] == "Procedure"]
    assert all(r["status"] == "final" for r in observations)
    assert all(r["status"] == "completed" and "performedDateTime" in r for r in procedures)
    fobt = codes.filter(pl.col("value_set") == "fecal_occult_blood")
    mammography = codes.filter(pl.col("value_set") == "mammography")
    for group, allowed, system in ((observations, fobt, "http://loinc.org"), (procedures, mammography, None)):
        used = {(c["system"], c["code"]) for r in group for c in r["code"]["coding"]}
        assert used <= set(allowed.select("system", "code").iter_rows())
        assert system is None or {s for s, _ in used} == {system}
    # the views read them and the measure engine closes the gap as of the evaluation day
    links = pl.read_parquet(world["lake"] / "identity" / "person_link" / "data.parquet")
    events = []
    for view_name, date_column in (
        ("observation", "effective_date_time"),
        ("procedure", "performed_date_time"),
    ):
        view = orjson.loads((VIEWS / f"{view_name}.json").read_bytes())
        rows = pl.DataFrame(run_view(view, resources))
        events.append(
            rows.join(links, left_on="patient_id", right_on="source_patient_id").select(
                "person_id",
                pl.col("code_system").alias("system"),
                "code",
                fhir_timestamp(pl.col(date_column)).dt.date().alias("date"),
                pl.lit(None, pl.Float64).alias("value"),
                pl.format("{}/{}", pl.lit(view_name), "id").alias("record"),
                pl.lit(None, pl.Boolean).alias("active"),
            )
        )
    event_frame = pl.concat(events).cast(EVENT_SCHEMA)  # type: ignore[arg-type]
    closures = pl.read_csv(simulated[1] / "outreach_closures.csv", infer_schema=False).with_columns(
        pl.col("date").str.to_date(), pl.col("run_id").str.slice(0, 10).str.to_date().alias("run_day")
    )
    measures = {m.id: m for m in load_measures()}
    for measure_id in ("COL", "BCS"):
        mine = closures.filter(pl.col("measure_id") == measure_id)
        persons = mine.select(
            "person_id",
            pl.lit("female").alias("sex"),
            pl.lit("1962-05-01").alias("birth_date"),
            pl.lit(False).alias("deceased"),
            pl.lit(None, pl.String).alias("pcp_practitioner_id"),
        )
        gaps = evaluate_measure(measures[measure_id], persons, event_frame, EVAL_DAY)
        assert gaps["status"].is_in(["closed-gap", "prospective-gap"]).all(), measure_id
        dated = gaps.join(mine, on="person_id")
        assert (dated["evidence_date"] == dated["date"]).all()
        run_day = dated["run_day"]
        assert (
            (dated["evidence_date"] > run_day) & (dated["evidence_date"] < run_day + timedelta(days=90))
        ).all()


def test_the_since_manifest_lists_exactly_the_files_written(world, simulated) -> None:
    folder = world["landing"] / "ehr_a"
    manifest = orjson.loads((folder / f"manifest.{EVAL_DAY.isoformat()}.json").read_bytes())
    assert manifest["transactionTime"] == f"{EVAL_DAY.isoformat()}T23:00:00Z"
    assert manifest["request"] == "https://ehr-a.example.org/fhir/$export?_since=2026-06-30T23:00:00Z"
    assert manifest["extension"]["generatedBy"] == GENERATOR and manifest["deleted"] == []
    on_disk = {
        p.relative_to(folder).as_posix() for p in (folder / EVAL_DAY.isoformat()).rglob("*") if p.is_file()
    }
    assert {o["url"] for o in manifest["output"]} == on_disk
    for output in manifest["output"]:
        lines = (folder / output["url"]).read_bytes().splitlines()
        assert len(lines) == output["count"] and all(
            orjson.loads(x)["resourceType"] == output["type"] for x in lines
        )
        stamps = [orjson.loads(x)["meta"]["lastUpdated"] for x in lines]
        assert max(stamps) <= manifest["transactionTime"]
    assert simulated[0].transaction_time == manifest["transactionTime"]
    # persons with a Patient in EHR B only: in a transaction Bundle there
    bundle = orjson.loads(
        (world["landing"] / "ehr_b" / "sim-outreach" / f"{EVAL_DAY.isoformat()}.json").read_bytes()
    )
    assert bundle["type"] == "transaction" and bundle["entry"]
    get_fhir_model_class("Bundle").model_validate(bundle)
    assert all(e["resource"]["subject"]["reference"].startswith("Patient/b-") for e in bundle["entry"])


def test_defective_rows_are_listed_with_their_expected_reason(world, simulated) -> None:
    defects = pl.read_csv(simulated[1] / "outreach_defects.csv")
    assert set(defects["expected_reason"]) == {
        "unknown_campaign",
        "unknown_person",
        "invalid_timestamp",
        "unknown_event",
    }
    assert simulated[0].defects == dict(sorted(defects.group_by("expected_reason").len().rows()))
    rows = _events(world, genuine_only=False).join(defects, on=["file", "line"])
    assert rows.height == defects.height and (rows["event_id"] == rows["event_id_right"]).all()
    known_persons = {_pid(i) for i in range(PERSONS + 200)}
    for reason, row in zip(rows["expected_reason"], rows.iter_rows(named=True), strict=True):
        if reason == "unknown_campaign":
            assert row["campaign_id"] == UNKNOWN_CAMPAIGN
        elif reason == "unknown_person":
            assert row["person_id"] not in known_persons and not row["source_identifier"]
        elif reason == "invalid_timestamp":
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", row["occurred_at"])
        else:
            assert row["event"] not in EVENTS
    # bronze quarantines the malformed rows on exactly those lines; gold rejects the others with their
    # reason and resolves every genuine event (none for a held-out person)
    bronze, quarantined = [], []
    for path in sorted((world["landing"] / "outreach_vendor").glob("events_*")):
        rel = f"outreach_vendor/{path.name}"
        reader = read_outreach_events_csv if path.suffix == ".csv" else read_outreach_events_ndjson
        read = reader(path.read_bytes())
        bronze.append(
            read.bronze.with_columns(pl.lit(VENDOR_SOURCE).alias("source"), pl.lit(rel).alias("file"))
        )
        quarantined.append(read.quarantine.select(pl.lit(rel).alias("file"), "line", "reason_code"))
    in_bronze = pl.concat(quarantined).sort("file", "line")
    expected = defects.filter(pl.col("expected_reason").is_in(["invalid_timestamp", "unknown_event"]))
    assert in_bronze.rows() == expected.select("file", "line", "expected_reason").sort("file", "line").rows()
    persons = pl.Series([_pid(i) for i in range(PERSONS + 200)])
    identifiers = pl.DataFrame(
        {"identifier": [f"{MRN}|{i:08d}" for i in range(PERSONS + 200)], "person_id": persons}
    )
    assignments = campaign_assignments(UPath(world["exports"]), [BCS, COL])
    resolved, rejected = resolve_events(
        pl.concat(bronze), [BCS, COL], assignments, persons, identifiers, as_of=EVAL_DAY
    )
    gold = defects.filter(pl.col("expected_reason").is_in(["unknown_campaign", "unknown_person"]))
    assert rejected.select("file", "line", "reason_code").sort("file", "line").rows() == (
        gold.select("file", "line", "expected_reason").sort("file", "line").rows()
    )
    assert resolved.height == _events(world).height


def test_a_legacy_holdout_without_gap_ids_counts_every_gap_as_open(tmp_path: Path) -> None:
    folder = tmp_path / COL / "2026-01-05"
    folder.mkdir(parents=True)
    (folder / "holdout.csv").write_text(f"campaign_id,person_id,draw\n{COL},p1,0.1\n{COL},p2,0.05\n")
    held = _read_holdout(RunFolder(COL, "2026-01-05", UPath(folder)))
    assert held["person_id"].to_list() == ["p1", "p2"] and held["_all"].all()


def _digests(paths: list[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(paths)}


def test_same_seed_same_bytes_other_seed_other_bytes(world, simulated, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(world["landing"], landing)
    base_manifest = (landing / "ehr_a" / "manifest.json").read_bytes()
    kwargs = {"truth_out": tmp_path / "truth", "defects": 0.02}
    first = simulate_outreach(landing, UPath(world["lake"]), UPath(world["exports"]), seed=0, **kwargs)
    original = {
        p.relative_to(world["landing"]) for p in simulated[0].files if p.is_relative_to(world["landing"])
    }
    assert original == {p.relative_to(landing) for p in first.files if p.is_relative_to(landing)}
    before = _digests(list(first.files))
    other = simulate_outreach(landing, UPath(world["lake"]), UPath(world["exports"]), seed=1, **kwargs)
    changed = _digests([p for p in other.files if p.exists()])
    assert changed != before
    again = simulate_outreach(landing, UPath(world["lake"]), UPath(world["exports"]), seed=0, **kwargs)
    assert _digests(list(again.files)) == before
    # a re-run leaves nothing of the other seed behind and never touches the source's own files
    assert (landing / "ehr_a" / "manifest.json").read_bytes() == base_manifest
    written = {p for p in landing.rglob("*") if p.is_file()}
    assert written == {p for p in again.files if p.is_relative_to(landing)} | {
        landing / "ehr_a" / "manifest.json",
        landing / "ehr_a" / "Patient.000.ndjson",
    }


def test_a_foreign_manifest_of_the_same_day_is_refused_before_anything_changes(
    world, simulated, tmp_path
) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(world["landing"], landing)
    foreign = landing / "ehr_a" / f"manifest.{EVAL_DAY.isoformat()}.json"
    # named for the evaluation day but made earlier: the simulation's own export would take its name
    foreign.write_bytes(b'{"transactionTime": "2026-07-01T23:00:00Z", "output": []}')
    before = _digests([p for p in landing.rglob("*") if p.is_file()])
    with pytest.raises(ValueError, match="not written by"):
        simulate_outreach(
            landing, UPath(world["lake"]), UPath(world["exports"]), truth_out=tmp_path / "truth"
        )
    assert _digests([p for p in landing.rglob("*") if p.is_file()]) == before


def test_campaigns_inside_the_history_are_answered_after_the_last_export(world, simulated, tmp_path) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(world["landing"], landing)
    base = landing / "ehr_a" / "manifest.json"
    later = EVAL_DAY + timedelta(days=30)  # the history goes on past the follow-up (the make run demo)
    body = orjson.loads(base.read_bytes())
    base.write_bytes(orjson.dumps({**body, "transactionTime": f"{later.isoformat()}T23:00:00Z"}))
    outcome = simulate_outreach(
        landing, UPath(world["lake"]), UPath(world["exports"]), truth_out=tmp_path / "t"
    )
    delivered = later + timedelta(days=1)
    assert outcome.transaction_time == f"{delivered.isoformat()}T23:00:00Z"
    assert (landing / "ehr_a" / f"manifest.{delivered.isoformat()}.json").exists()
    assert not (landing / "ehr_a" / f"manifest.{EVAL_DAY.isoformat()}.json").exists()


def test_the_cli_prints_counts_only(world, simulated, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(world["landing"], landing)
    outcome = CliRunner().invoke(
        app,
        [
            "simulate-outreach",
            "--landing",
            str(landing),
            "--lake",
            str(world["lake"]),
            "--exports",
            str(world["exports"]),
            "--seed",
            "3",
            "--truth",
            str(tmp_path / "truth"),
        ],
        env={"COLUMNS": "200"},
    )
    assert outcome.exit_code == 0, outcome.output
    assert COL in outcome.output and "COL closed" in outcome.output and "sent" in outcome.output
    assert "contact-" not in outcome.output and MRN not in outcome.output and "p0" not in outcome.output
    assert (tmp_path / "truth" / "outreach_effect.json").exists()
