"""The closed outreach loop end to end on generated data: a pipeline run exports campaign lists with
randomized hold-outs; the outreach simulator answers (events, STOP replies, bounces, defects) and closes
gaps with a known true effect over the next 90 days; a second run as of 90 days later resolves the answers,
honours the opt-outs in its new lists, keeps the hold-out stable and measures the effect, whose 95 %
interval covers the truth (and zero for the campaign without effect)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from upath import UPath

from pipelines.config import Settings
from pipelines.generate.landing import generate_landing
from pipelines.generate.outreach_outcomes import simulate_outreach
from pipelines.lake import read_table
from pipelines.outreach.exports import campaign_runs

pytestmark = pytest.mark.slow
PEOPLE, SEED, BUCKETS = 1500, 5, 4
FIRST, SECOND = date(2026, 6, 30), date(2026, 9, 28)  # the second: the first plus the 90-day follow-up


@dataclass(frozen=True)
class Loop:
    root: Path
    lake: UPath
    exports: UPath
    truth: Path


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Loop:
    from pipelines.run import run_pipeline

    root = tmp_path_factory.mktemp("closed_loop")
    landing = root / "landing"
    generate_landing(landing, PEOPLE, seed=SEED, as_of=FIRST)
    lake, exports = UPath(root / "lake"), UPath(root / "exports")
    first = run_pipeline(Settings(UPath(landing), lake, exports, BUCKETS, FIRST))
    assert first.success, first.failed_checks
    simulate_outreach(landing, lake, exports, seed=SEED, defects=0.01, truth_out=root / "truth")
    second = run_pipeline(Settings(UPath(landing), lake, exports, BUCKETS, SECOND))
    assert second.success, second.failed_checks
    return Loop(root, lake, exports, root / "truth")


def _truth(loop: Loop) -> dict[tuple[str, str], dict]:
    body = json.loads((loop.truth / "outreach_effect.json").read_text())
    return {(c["campaign_id"], c["measure_id"]): c for c in body["campaigns"]}


def test_the_measured_effect_covers_the_true_effect_and_a_zero_effect_covers_zero(loop: Loop) -> None:
    effect = {
        (r["campaign_id"], r["measure_id"]): r
        for r in read_table(loop.lake, "gold", "campaign_effect").to_dicts()
    }
    truth = _truth(loop)
    col, bcs = effect[("colorectal_screening_outreach", "COL")], effect[("breast_screening_reminder", "BCS")]
    assert truth[("colorectal_screening_outreach", "COL")]["true_effect"] == pytest.approx(0.20)
    assert truth[("breast_screening_reminder", "BCS")]["true_effect"] == 0
    for row in (col, bcs):
        assert row["first_run_day"] == row["last_run_day"] == FIRST  # the second run's window is still open
        assert row["contacted"] > 0 and row["holdout"] > 0
        assert row["holdout_contacted"] == 0
    assert col["ci_low"] <= 0.20 <= col["ci_high"]
    assert col["excludes_zero"] and col["number_needed_to_contact"] > 1  # 0.2 is large enough to see here
    assert bcs["ci_low"] <= 0 <= bcs["ci_high"]
    # the arms are the ones the first run exported, counted once (the second run's are still pending)
    run = next(r for r in campaign_runs(loop.exports, "colorectal_screening_outreach") if r.as_of == FIRST)
    open_gap = pl.col("gap_ids").list.eval(pl.element().str.starts_with("COL-")).list.any()
    assert col["contacted"] == run.read_list().filter(open_gap).height
    assert col["holdout"] == run.read_holdout().filter(open_gap).height


def test_a_stop_reply_removes_the_channel_from_the_next_export(loop: Loop) -> None:
    stops = pl.read_csv(loop.truth / "outreach_opt_outs.csv", infer_schema=False)
    assert stops.height > 0
    opt_outs = read_table(loop.lake, "gold", "communication_opt_out")
    kept = opt_outs.select("person_id", "channel").rows()
    assert set(stops.select("person_id", "channel").rows()) <= set(kept)
    assert opt_outs["file"].null_count() == 0 and opt_outs["opted_out_at"].null_count() == 0
    later = []
    for folder in loop.exports.iterdir():
        for run in campaign_runs(loop.exports, folder.name) if folder.is_dir() else []:
            if run.as_of == SECOND:
                later.append(run.read_list().select("person_id", "channel"))
    listed = pl.concat(later)
    assert not set(listed.rows()) & set(kept)  # nobody reached again on a channel they stopped
    again = listed.join(opt_outs.select("person_id"), on="person_id", how="semi")
    assert again.height > 0  # ... though some of them are listed again, on another channel


def test_the_holdout_is_stable_across_runs(loop: Loop) -> None:
    for campaign in ("colorectal_screening_outreach", "breast_screening_reminder"):
        runs = {r.as_of: r for r in campaign_runs(loop.exports, campaign)}
        first_holdout = set(runs[FIRST].read_holdout()["person_id"])
        second_list = set(runs[SECOND].read_list()["person_id"])
        second_holdout = set(runs[SECOND].read_holdout()["person_id"])
        assert not first_holdout & second_list  # held out once, never contacted by the campaign later
        contacted_first = set(runs[FIRST].read_list()["person_id"])
        assert not contacted_first & second_holdout
        assert first_holdout & second_holdout or not first_holdout  # the same people stay held out


def test_answers_are_resolved_or_quarantined_and_bounces_steer_the_channel(loop: Loop) -> None:
    bronze = read_table(loop.lake, "bronze", "outreach_events")
    events = read_table(loop.lake, "gold", "outreach_events")
    rejected = read_table(loop.lake, "gold", "outreach_events_quarantine")
    assert events.height + rejected.height == bronze.height > 0
    expected = pl.read_csv(loop.truth / "outreach_defects.csv", infer_schema=False)
    gold_reasons = set(rejected["reason_code"].unique().to_list())
    for reason in expected["expected_reason"].unique().to_list():
        if reason in ("unknown_campaign", "unknown_person"):
            assert reason in gold_reasons
    invalid = read_table(loop.lake, "gold", "invalid_contact_point")
    assert invalid.height > 0
    later = pl.concat(
        [
            r.read_list().select("person_id", "channel", "contact")
            for f in loop.exports.iterdir()
            if f.is_dir()
            for r in campaign_runs(loop.exports, f.name)
            if r.as_of == SECOND
        ]
    )
    assert later.join(invalid, on=["person_id", "channel", "contact"], how="semi").is_empty()
    funnel = read_table(loop.lake, "gold", "campaign_funnel")
    overall = funnel.filter(
        (pl.col("campaign_id") == "colorectal_screening_outreach")
        & (pl.col("channel") == "all")
        & (pl.col("run_id") == FIRST.isoformat())
    )
    (row,) = overall.to_dicts()
    assert row["assigned"] == row["sent"] >= row["delivered"] > row["booked"] > 0
    assert 0 < row["bounce_rate"] < 0.2


@pytest.mark.parametrize("role", ["care_manager", "analyst"])
def test_the_outreach_page_shows_the_effect_and_the_funnel(
    loop: Loop, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.test_dashboard import APP, TIMEOUT_S, texts

    monkeypatch.setenv("PATIENT_INSIGHTS_LAKE", str(loop.lake))
    monkeypatch.setenv("PATIENT_INSIGHTS_EXPORTS", str(loop.exports))
    monkeypatch.setenv("PATIENT_INSIGHTS_DASHBOARD_ROLE", role)
    st.cache_data.clear()
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    app.run()
    app.switch_page("views/outreach.py")
    app.run()
    app.selectbox(key="campaign").select("colorectal_screening_outreach").run()
    app.selectbox(key="run").select(FIRST.isoformat()).run()
    assert not app.exception
    shown = texts(app)
    (row,) = read_table(loop.lake, "gold", "campaign_effect").filter(pl.col("measure_id") == "COL").to_dicts()
    assert "Outreach effect" in shown and f"{row['difference']:+.1%}" in shown
    assert f"{row['ci_low']:+.1%} to {row['ci_high']:+.1%}" in [m.delta for m in app.metric]
    assert f"**Funnel** of run {FIRST.isoformat()}" in shown and "Number needed to contact" in shown
    st.cache_data.clear()
