"""The closed loop's arithmetic: hold-out draws, event resolution with quarantine reasons, opt-outs and
bounced contact points, the effect with its interval (known effects recovered), and the funnel."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from pipelines.bronze.outreach_reader import read_outreach_events_csv
from pipelines.outreach.assignment import ASSIGNMENT_SCHEMA
from pipelines.outreach.campaigns import Campaign, Holdout
from pipelines.outreach.effect import (
    campaign_effect,
    campaign_funnel,
    newcombe_interval,
    wilson_interval,
)
from pipelines.outreach.holdout import holdout_draws, split_holdout
from pipelines.outreach.responses import (
    REJECT_SCHEMA,
    current_opt_outs,
    invalid_contact_points,
    resolve_events,
)
from pipelines.outreach.selection import LIST_SCHEMA
from tests.corpus.cases import CORPUS

RUN_DAY = date(2026, 3, 31)
AS_OF = date(2026, 6, 30)
CAMPAIGN = Campaign(
    id="col",
    title="COL",
    segments=("open_gap_col",),
    channels=("mail", "sms"),
    template="t",
    languages=("en",),
    default_language="en",
    campaign_days=30,
    weekly_contacts=2,
    start=date(2026, 1, 1),
    end=date(2026, 12, 31),
    max_list_size=10_000,
    priority=1,
    source="col.yaml",
    measures=("COL",),
    holdout=Holdout(share=0.2, follow_up_days=90, key="col"),
)


def test_newcombe_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, table II, example (a): 56/70 vs 48/80, method 10
    low, high = newcombe_interval(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_the_interval_covers_a_known_difference_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(2000):
        k_c, k_h = rng.binomial(300, 0.30), rng.binomial(75, 0.10)
        low, high = newcombe_interval(int(k_c), 300, int(k_h), 75)
        hits += low <= 0.20 <= high
    assert 0.93 <= hits / 2000 <= 0.975


def _list(persons: list[str]) -> pl.DataFrame:
    return (
        pl.DataFrame(
            {
                "campaign_id": ["col"] * len(persons),
                "person_id": persons,
                "rank": list(range(1, len(persons) + 1)),
                "channel": ["mail"] * len(persons),
                "gap_ids": [["COL-2026"]] * len(persons),
            }
        )
        .with_columns(
            pl.lit(None, dtype).alias(name)
            for name, dtype in LIST_SCHEMA.items()
            if name not in ("campaign_id", "person_id", "rank", "channel", "gap_ids")
        )
        .select(list(LIST_SCHEMA))
    )


def test_the_holdout_is_stable_order_independent_and_near_its_share() -> None:
    persons = [f"p{i:05d}" for i in range(5000)]
    listed = _list(persons)
    contacted, held = split_holdout(CAMPAIGN, listed)
    assert contacted.height + held.height == 5000
    assert 0.18 < held.height / 5000 < 0.22
    assert contacted["rank"].to_list() == list(range(1, contacted.height + 1))  # renumbered, order kept
    assert contacted["person_id"].to_list() == [p for p in persons if p not in set(held["person_id"])]
    shuffled = listed.sample(fraction=1.0, shuffle=True, seed=3).with_columns(
        pl.int_range(1, pl.len() + 1).alias("rank")
    )
    _, again = split_holdout(CAMPAIGN, shuffled)
    assert again["person_id"].to_list() == held["person_id"].to_list()  # the same persons, whatever the order
    _, later = split_holdout(CAMPAIGN, listed.head(1000))  # a later run with fewer people
    assert set(later["person_id"]) == set(held["person_id"]) & set(persons[:1000])
    other_key = dataclasses.replace(CAMPAIGN, holdout=Holdout(0.2, 90, "col-2027"))
    _, redrawn = split_holdout(other_key, listed)
    assert set(redrawn["person_id"]) != set(held["person_id"])
    draws = holdout_draws("col", pl.Series(["a", "b", "a"]))
    assert draws[0] == draws[2] != draws[1] and draws.min() >= 0 and draws.max() < 1


def _assignments(
    arms: dict[str, str], run_day: date = RUN_DAY, gaps: list[str] | None = None
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "campaign_id": "col",
            "run_id": run_day.isoformat(),
            "run_day": run_day,
            "latest_revision": True,
            "person_id": list(arms),
            "arm": list(arms.values()),
            "channel": [("mail" if a == "contacted" else None) for a in arms.values()],
            "contact": [("1 Main St" if a == "contacted" else None) for a in arms.values()],
            "gap_ids": [gaps or ["COL-2026"]] * len(arms),
            "first_assignment": True,
        },
        schema=ASSIGNMENT_SCHEMA,
    )


def _gaps(closed_on: dict[str, date | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "person_id": list(closed_on),
            "measure_id": "COL",
            "status": ["closed-gap" if d else "open-gap" for d in closed_on.values()],
            "evidence_date": list(closed_on.values()),
        },
        schema={
            "person_id": pl.String,
            "measure_id": pl.String,
            "status": pl.String,
            "evidence_date": pl.Date,
        },
    )


def _experiment(rate_contacted: float, rate_holdout: float, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    arms = {f"p{i:05d}": ("holdout" if i % 5 == 0 else "contacted") for i in range(3000)}
    closed = {}
    for person, arm in arms.items():
        rate = rate_holdout if arm == "holdout" else rate_contacted
        closed[person] = RUN_DAY + timedelta(days=int(rng.integers(1, 90))) if rng.random() < rate else None
    return _assignments(arms), _gaps(closed)


@pytest.mark.parametrize(("contacted", "holdout"), [(0.30, 0.10), (0.15, 0.15)])
def test_the_measured_effect_covers_the_true_one(contacted: float, holdout: float) -> None:
    assignments, gaps = _experiment(contacted, holdout, seed=11)
    rejected = pl.DataFrame(schema=REJECT_SCHEMA)
    (row,) = campaign_effect(assignments, gaps, rejected, [CAMPAIGN], date(2026, 7, 1)).to_dicts()
    assert (row["contacted"], row["holdout"]) == (2400, 600) and row["pending_follow_up"] == 0
    assert row["ci_low"] <= contacted - holdout <= row["ci_high"]
    assert row["excludes_zero"] is (contacted != holdout)  # enough persons to see a 20-point effect
    if contacted > holdout:
        assert row["number_needed_to_contact"] == pytest.approx(1 / row["difference"])
        assert row["nnc_ci_low"] <= row["number_needed_to_contact"] <= row["nnc_ci_high"]
    else:
        assert row["nnc_ci_low"] is None


def test_only_closures_inside_the_window_after_the_run_count_and_unfinished_windows_wait() -> None:
    arms = {"a": "contacted", "b": "contacted", "c": "contacted", "d": "holdout", "e": "holdout"}
    gaps = _gaps(
        {
            "a": RUN_DAY + timedelta(days=90),  # the last day of the window: counts
            "b": RUN_DAY + timedelta(days=91),  # too late
            "c": RUN_DAY,  # on the run day: was already closed, not by outreach
            "d": RUN_DAY + timedelta(days=10),
            "e": None,
        }
    )
    rejected = pl.DataFrame(schema=REJECT_SCHEMA)
    (row,) = campaign_effect(_assignments(arms), gaps, rejected, [CAMPAIGN], date(2026, 7, 1)).to_dicts()
    assert (row["contacted"], row["contacted_closed"], row["holdout"], row["holdout_closed"]) == (3, 1, 2, 1)
    assert row["enough_persons"] is False
    (early,) = campaign_effect(_assignments(arms), gaps, rejected, [CAMPAIGN], date(2026, 6, 28)).to_dicts()
    assert early["pending_follow_up"] == 5 and early["contacted"] == 0 and early["difference"] is None
    other_gap = _assignments(arms, gaps=["BCS-2026"])  # the COL gap was not open at the run
    (none,) = campaign_effect(other_gap, gaps, rejected, [CAMPAIGN], date(2026, 7, 1)).to_dicts()
    assert none["contacted"] == none["holdout"] == 0


def _bronze(rows: list[dict]) -> pl.DataFrame:
    base = {
        "event_id": None,
        "campaign_id": "col",
        "run_id": RUN_DAY.isoformat(),
        "person_id": None,
        "source_identifier": None,
        "channel": "sms",
        "event": "sent",
        "occurred_at": datetime(2026, 4, 1, tzinfo=UTC),
        "reply_keyword": None,
        "source": "vendor",
        "file": "vendor/events.csv",
    }
    records = [{**base, **row, "line": index + 2} for index, row in enumerate(rows)]
    for index, record in enumerate(records):
        record["event_id"] = record["event_id"] or f"e{index}"
    return pl.DataFrame(records).with_columns(
        pl.col("occurred_at").cast(pl.Datetime("us", "UTC")),
        pl.col("source_identifier", "person_id", "reply_keyword").cast(pl.String),
    )


def test_events_resolve_or_are_quarantined_with_a_reason() -> None:
    arms = {"p1": "contacted", "p2": "contacted", "p3": "holdout"}
    assignments = _assignments(arms).with_columns(
        pl.lit("sms").alias("channel"), pl.lit("+15550001").alias("contact")
    )
    identifiers = pl.DataFrame(
        {"identifier": ["mrn|1", "mrn|2", "mrn|9", "mrn|9"], "person_id": ["p1", "p2", "p1", "p2"]}
    )
    bronze = _bronze(
        [
            {"person_id": "p1", "event_id": "x"},
            {
                "person_id": "p1",
                "event_id": "x",
                "occurred_at": datetime(2026, 4, 2, tzinfo=UTC),
            },  # duplicate
            {"source_identifier": "mrn|2"},  # resolved through the MRN
            {"person_id": "p1", "campaign_id": "nope"},
            {"person_id": "p1", "run_id": "2025-01-01"},
            {"person_id": "p1", "source_identifier": "mrn|2"},
            {"source_identifier": "mrn|9"},
            {"person_id": "ghost"},
            {"person_id": "p3"},
            {"person_id": "p4"},
            {"person_id": "p2", "occurred_at": datetime(2030, 1, 1, tzinfo=UTC)},  # from the future
        ]
    )
    persons = pl.Series(["p1", "p2", "p3", "p4"])
    events, rejects = resolve_events(bronze, ["col"], assignments, persons, identifiers, as_of=AS_OF)
    assert events.height + rejects.height == bronze.height
    assert events.select("person_id", "contact").rows() == [("p1", "+15550001"), ("p2", "+15550001")]
    assert dict(zip(rejects["line"], rejects["reason_code"], strict=True)) == {
        3: "duplicate_event",
        5: "unknown_campaign",
        6: "unknown_run",
        7: "person_mismatch",
        8: "ambiguous_person",
        9: "unknown_person",
        10: "holdout_person",
        11: "not_in_run",
        12: "future_date",
    }
    assert rejects["reason"].null_count() == 0
    assert rejects.filter(pl.col("line") == 12)["reason"].item() == (
        "dated more than 1 day after the as-of day 2026-06-30"
    )


def test_stop_opts_out_of_the_channel_start_opts_back_in_and_bounces_mark_contact_points() -> None:
    at = datetime(2026, 4, 1, tzinfo=UTC)
    events = pl.DataFrame(
        [
            ("e1", "p1", "sms", "replied", at, "STOP", "+1555"),
            ("e2", "p2", "sms", "replied", at, "STOP", "+1556"),
            ("e3", "p2", "sms", "replied", at + timedelta(days=2), "START", "+1556"),
            ("e4", "p3", "email", "opted-out", at, None, "a@x.org"),
            ("e5", "p4", "sms", "replied", at, "HELP", "+1557"),
            ("e6", "p5", "email", "bounced", at, None, "old@x.org"),
            ("e7", "p6", "email", "bounced", at, None, "b@x.org"),
            ("e8", "p6", "email", "delivered", at + timedelta(days=1), None, "b@x.org"),  # a soft bounce
        ],
        schema=["event_id", "person_id", "channel", "event", "occurred_at", "reply_keyword", "contact"],
        orient="row",
    ).with_columns(
        pl.lit("col").alias("campaign_id"),
        pl.lit("2026-03-31").alias("run_id"),
        pl.lit("vendor").alias("source"),
        pl.lit("vendor/events.csv").alias("file"),
        pl.int_range(2, 10).alias("line"),
        pl.col("occurred_at").cast(pl.Datetime("us", "UTC")),
    )
    opt_outs = current_opt_outs(events)
    assert opt_outs.select("person_id", "channel", "how").rows() == [
        ("p1", "sms", "reply STOP"),
        ("p3", "email", "opted-out event"),
    ]
    assert opt_outs.select("file", "line").rows() == [("vendor/events.csv", 2), ("vendor/events.csv", 5)]
    invalid = invalid_contact_points(events)
    assert invalid.select("person_id", "channel", "contact").rows() == [("p5", "email", "old@x.org")]


def test_a_start_from_the_future_does_not_cancel_a_real_stop_and_one_within_the_tolerance_does() -> None:
    """Issue 25: a START reply dated 2030 cancelled a real, earlier STOP; a future delivery cleared a
    bounce."""
    assignments = _assignments({"p1": "contacted", "p2": "contacted"}).with_columns(
        pl.lit("sms").alias("channel"), pl.lit("+15550001").alias("contact")
    )
    stop = {"event": "replied", "reply_keyword": "STOP", "occurred_at": datetime(2026, 4, 2, tzinfo=UTC)}
    start = {"event": "replied", "reply_keyword": "START"}
    bounce = {"person_id": "p2", "event": "bounced", "occurred_at": datetime(2026, 4, 2, tzinfo=UTC)}
    bronze = _bronze(
        [
            {"person_id": "p1", **stop},
            {"person_id": "p1", **start, "occurred_at": datetime(2030, 1, 1, 9, tzinfo=UTC)},
            bounce,
            {"person_id": "p2", "event": "delivered", "occurred_at": datetime(2031, 5, 1, tzinfo=UTC)},
        ]
    )
    persons, identifiers = (
        pl.Series(["p1", "p2"]),
        pl.DataFrame(schema={"identifier": pl.String, "person_id": pl.String}),
    )
    events, rejects = resolve_events(bronze, ["col"], assignments, persons, identifiers, as_of=AS_OF)
    assert rejects.select("line", "reason_code").rows() == [(3, "future_date"), (5, "future_date")]
    assert events.height + rejects.height == bronze.height  # left out, not lost
    assert current_opt_outs(events).select("person_id", "channel", "how").rows() == [
        ("p1", "sms", "reply STOP")
    ]
    assert invalid_contact_points(events)["person_id"].to_list() == ["p2"]
    # a START late on the day after the as-of day is within the tolerance (time zones): it counts
    within = bronze.with_columns(
        pl.when(pl.col("line") == 3)
        .then(pl.lit(datetime(2026, 7, 1, 23, 30, tzinfo=UTC)))
        .otherwise(pl.col("occurred_at"))
        .alias("occurred_at")
    )
    events, rejects = resolve_events(within, ["col"], assignments, persons, identifiers, as_of=AS_OF)
    assert rejects["line"].to_list() == [5] and current_opt_outs(events).is_empty()


def test_the_corpus_file_of_future_replies_keeps_the_real_stop() -> None:
    """tests/corpus/outreach_events/future_start.csv through the bronze reader and gold: P1's STOP stands
    against a START dated 2030; P2's START the evening after the as-of day (UTC-2) counts."""
    read = read_outreach_events_csv((CORPUS / "outreach_events" / "future_start.csv").read_bytes())
    bronze = read.bronze.with_columns(
        pl.lit("vendor").alias("source"), pl.lit("future_start.csv").alias("file")
    )
    assert bronze.height == 5 and read.quarantine.is_empty()  # bronze keeps what was delivered
    assignments = _assignments({"P1": "contacted", "P2": "contacted"})
    persons, identifiers = (
        pl.Series(["P1", "P2"]),
        pl.DataFrame(schema={"identifier": pl.String, "person_id": pl.String}),
    )
    events, rejects = resolve_events(bronze, ["col"], assignments, persons, identifiers, as_of=AS_OF)
    assert rejects.select("event_id", "reason_code").rows() == [
        ("ev-2", "future_date"),
        ("ev-5", "future_date"),
    ]
    assert current_opt_outs(events)["person_id"].to_list() == ["P1"]


def test_the_funnel_counts_each_stage_and_the_bounce_rate() -> None:
    arms = {"p1": "contacted", "p2": "contacted", "p3": "holdout"}
    assignments = _assignments(arms)
    at = datetime(2026, 4, 1, tzinfo=UTC)
    events = pl.DataFrame(
        [
            ("p1", "sent"),
            ("p1", "delivered"),
            ("p1", "booked"),
            ("p2", "sent"),
            ("p2", "bounced"),
        ],
        schema=["person_id", "event"],
        orient="row",
    ).with_columns(
        pl.lit("col").alias("campaign_id"), pl.lit("2026-03-31").alias("run_id"), pl.lit(at).alias("t")
    )
    gaps = _gaps({"p1": RUN_DAY + timedelta(days=20), "p2": None, "p3": RUN_DAY + timedelta(days=5)})
    funnel = campaign_funnel(assignments, events, gaps, [CAMPAIGN])
    assert set(funnel["run_id"]) == {"2026-03-31"}
    rows = {(r["arm"], r["channel"]): r for r in funnel.to_dicts()}
    mail = rows[("contacted", "mail")]
    assert (mail["assigned"], mail["sent"], mail["delivered"], mail["bounced"], mail["booked"]) == (
        2,
        2,
        1,
        1,
        1,
    )
    assert mail["gap_closed"] == 1 and mail["bounce_rate"] == 0.5
    assert rows[("contacted", "all")]["assigned"] == 2
    assert (rows[("holdout", None)]["assigned"], rows[("holdout", None)]["gap_closed"]) == (1, 1)
