"""Sentiment reports: conversation trajectories and resolution, weekly means with their intervals and the
minimum volume, NPS, negative themes with snippets."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from models.sentiment.aggregate import (
    MIN_VOLUME,
    SNIPPET_CHARACTERS,
    negative_themes,
    summarize_conversations,
    survey_scores,
    weekly_sentiment,
)

MONDAY = datetime(2026, 6, 1, 9, tzinfo=UTC)


def turns(
    conversation: str, *spoken: tuple[str, float | None], agent: str = "agent-1", escalated: bool = False
) -> list[dict]:
    """Turns of one conversation: (speaker, score) in order; patient turns get a label from the score."""
    rows = []
    for n, (speaker, score) in enumerate(spoken, start=1):
        label = (
            None
            if score is None
            else "negative"
            if score < -0.05
            else "positive"
            if score > 0.05
            else "neutral"
        )
        rows.append(
            {
                "kind": "conversation_turn",
                "person_id": "p1",
                "conversation_id": conversation,
                "conversation_started_at": MONDAY,
                "at": MONDAY + timedelta(minutes=n),
                "turn": n,
                "department": "billing",
                "agent_id": agent,
                "channel": "chat",
                "escalated": escalated,
                "speaker": speaker,
                "label": label if speaker == "patient" else None,
                "score": score if speaker == "patient" else None,
            }
        )
    return rows


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema_overrides={"score": pl.Float64, "label": pl.String})


def test_conversation_trajectory_and_resolution() -> None:
    rows = [
        *turns(
            "improved", ("agent", None), ("patient", -0.8), ("agent", None), ("patient", 0.6), ("agent", None)
        ),
        *turns("worsened", ("patient", 0.5), ("agent", None), ("patient", -0.7)),
        *turns("steady", ("patient", -0.1), ("patient", 0.1), ("agent", None)),
        *turns("single", ("patient", 0.9), ("agent", None), escalated=True),
        *turns("unscored", ("agent", None), ("bot", None)),
    ]
    summary = {r["conversation_id"]: r for r in summarize_conversations(frame(rows)).iter_rows(named=True)}
    assert {k: v["trajectory"] for k, v in summary.items()} == {
        "improved": "improved",
        "worsened": "worsened",
        "steady": "steady",
        "single": "single",
        "unscored": "unscored",
    }
    assert summary["improved"]["resolved"] and summary["steady"]["resolved"]
    assert not summary["worsened"]["resolved"]  # ended on the patient's angry turn
    assert summary["single"]["escalated"] and summary["improved"]["mean_score"] == pytest.approx(-0.1)
    assert summary["improved"]["label"] == "neutral" and summary["worsened"]["start_score"] == 0.5


def test_weekly_means_intervals_and_minimum_volume() -> None:
    scores = [-0.9, -0.5, 0.1, 0.4, 0.9] * 4  # 20 scored messages for agent-1
    rows = [r for i, s in enumerate(scores) for r in turns(f"a{i}", ("patient", s))]
    rows += [
        r
        for i, s in enumerate(scores[: MIN_VOLUME - 1])
        for r in turns(f"b{i}", ("patient", s), agent="agent-2")
    ]
    weekly = {r["agent_id"]: r for r in weekly_sentiment(frame(rows), "agent_id").iter_rows(named=True)}
    one = weekly["agent-1"]
    mean, sd, n = sum(scores) / 20, pl.Series(scores).std(), 20
    assert one["volume"] == 20 and one["conversations"] == 20 and one["enough_volume"]
    assert one["mean_score"] == pytest.approx(mean)
    assert one["mean_score_high"] - one["mean_score"] == pytest.approx(1.96 * sd / math.sqrt(n))
    p = 8 / 20  # the two negative scores of every five
    centre = (p + 1.96**2 / 40) / (1 + 1.96**2 / 20)
    spread = 1.96 * math.sqrt(p * (1 - p) / 20 + 1.96**2 / 1600) / (1 + 1.96**2 / 20)
    assert (one["negative_share"], one["negative_share_low"], one["negative_share_high"]) == pytest.approx(
        (p, centre - spread, centre + spread)
    )
    assert weekly["agent-2"]["volume"] == MIN_VOLUME - 1 and not weekly["agent-2"]["enough_volume"]
    assert one["week"] == MONDAY.date()


def test_agent_turns_do_not_count_as_patient_sentiment() -> None:
    rows = turns("c", ("agent", None), ("patient", -0.5), ("agent", None))
    weekly = weekly_sentiment(frame(rows), "department")
    assert weekly["volume"].to_list() == [1]


def test_nps_from_ratings() -> None:
    ratings = pl.DataFrame(
        {"rating": [10, 9, 8, 7, 6, 0, 10, None, 11], "at": [MONDAY] * 9},
        schema={"rating": pl.Int64, "at": pl.Datetime("us", "UTC")},
    )
    row = survey_scores(ratings).row(0, named=True)
    assert (row["responses"], row["promoters"], row["passives"], row["detractors"]) == (7, 3, 2, 2)
    assert row["nps"] == pytest.approx(100 * (3 - 2) / 7) and not row["enough_volume"]


def test_negative_themes_return_short_snippets() -> None:
    texts = [
        "I waited two hours on hold and nobody answered the phone line at the clinic today",
        "Waited on hold for an hour, the phone line kept dropping my call",
        "The bill is wrong, I was charged twice for the same visit and nobody fixed the bill",
        "My bill shows a charge I already paid, billing never fixed it",
    ] * 8
    texts = [f"{t}, and I am still waiting for an answer from somebody" for t in texts]  # over 80 chars
    themes = negative_themes(texts)
    assert 1 <= themes.height <= 5 and themes["messages"].sum() == len(texts)
    snippets = [s for row in themes["snippets"].to_list() for s in row]
    assert snippets and all(len(s) <= SNIPPET_CHARACTERS for s in snippets)
    assert all(s.endswith("…") for s in snippets)
    assert any("bill" in term for terms in themes["terms"].to_list() for term in terms)
    assert all(len(set(row)) == len(row) for row in themes["snippets"].to_list())  # distinct examples
    assert negative_themes(texts[:5]).is_empty()  # too few to tell themes apart
    assert negative_themes(["", "   "] * 10).is_empty()


def test_the_weekly_report_is_one_self_contained_html_file(tmp_path) -> None:
    from upath import UPath

    from pipelines.gold.sentiment import (
        SENTIMENT_AGENT_WEEKLY,
        SENTIMENT_CONVERSATION,
        SENTIMENT_DEPARTMENT_WEEKLY,
        SENTIMENT_THEMES,
        SURVEY_SCORES,
    )
    from pipelines.lake import table_path, write_parquet_atomic
    from pipelines.reports.sentiment_report import render_sentiment_report

    lake = UPath(tmp_path / "lake")
    secret = "My neighbour Alice Example saw my diagnosis letter and I am furious about the clinic privacy"
    rows = [
        r for i in range(25) for r in turns(f"c{i}", ("patient", -0.6 if i % 3 else 0.4), ("agent", None))
    ]
    messages = frame(rows)
    reasons = ["the phone line kept dropping", "the bill was wrong twice", "no refill", "rude staff"]
    texts = [f"{secret}, and {reason}" for reason in reasons] * 4
    tables = {
        SENTIMENT_DEPARTMENT_WEEKLY: weekly_sentiment(messages, "department"),
        SENTIMENT_AGENT_WEEKLY: weekly_sentiment(messages, "agent_id"),
        SURVEY_SCORES: survey_scores(pl.DataFrame({"rating": [3, 9, 10], "at": [MONDAY] * 3})),
        SENTIMENT_THEMES: negative_themes(texts),
    }
    for table, data in tables.items():
        write_parquet_atomic(data, table_path(lake, "gold", table) / "data.parquet")
    conversations = summarize_conversations(messages)
    write_parquet_atomic(
        conversations, table_path(lake, "gold", SENTIMENT_CONVERSATION) / "bucket=00" / "data.parquet"
    )
    path = render_sentiment_report(lake, UPath(tmp_path / "exports"))
    page = path.read_text(encoding="utf-8")
    assert path.name == "report.html" and path.parent.name == MONDAY.date().isoformat()
    assert "<script src=" not in page  # the charts' JavaScript is inlined
    assert "Patient sentiment, week of 2026-06-01" in page and "c1" in page
    assert secret not in page and secret[:40] in page  # only short snippets of patients' words
