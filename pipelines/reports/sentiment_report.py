"""The weekly sentiment report: one self-contained HTML file (charts and their JavaScript inlined, nothing
fetched when it is opened) under `<exports>/sentiment_reports/<week>/report.html`.

It shows department and agent trends with their intervals and volumes, survey NPS, the week's worst
conversations by id (department, agent, trajectory: no text), and the themes of negative feedback with
their short snippets, which are the only patient words in it.
"""

from __future__ import annotations

import html
from datetime import date, timedelta

import altair as alt
import polars as pl
from upath import UPath

from pipelines.gold.sentiment import (
    CONVERSATION_SUMMARY,
    GOLD,
    REPORT_FILE,
    SENTIMENT_AGENT_WEEKLY,
    SENTIMENT_CONVERSATION,
    SENTIMENT_DEPARTMENT_WEEKLY,
    SENTIMENT_THEMES,
    SURVEY_SCORES,
)
from pipelines.lake import parquet_files, read_parquet, read_table, table_path, write_bytes_atomic
from pipelines.reports.inline_html import inline_html

REPORTS = "sentiment_reports"
TREND_WEEKS = 12
WORST_CONVERSATIONS = 10
THEME_COLUMNS = ["theme", "terms", "messages", "snippets"]
STYLE = (
    "<style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;margin-bottom:1.5em} "
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style>"
)


def _summary(lake: UPath, table: str) -> pl.DataFrame:
    path = table_path(lake, GOLD, table) / REPORT_FILE
    return read_parquet(path) if path.exists() else pl.DataFrame()


def _trend(weekly: pl.DataFrame, by: str, title: str) -> alt.Chart:
    """Mean score per week with its 95 % interval band; weeks below the minimum volume are faded."""
    data = weekly.with_columns(pl.col("week").cast(pl.String))
    base = alt.Chart(data).encode(x=alt.X("week:T", title="week"), color=alt.Color(f"{by}:N", title=by))
    band = base.mark_area(opacity=0.15).encode(
        y=alt.Y("mean_score_low:Q", title="mean score"), y2="mean_score_high:Q"
    )
    line = base.mark_line(point=True).encode(
        y="mean_score:Q",
        opacity=alt.condition("datum.enough_volume", alt.value(1.0), alt.value(0.35)),
        tooltip=[
            "week:T",
            f"{by}:N",
            "volume:Q",
            alt.Tooltip("mean_score:Q", format=".2f"),
            alt.Tooltip("negative_share:Q", format=".0%"),
        ],
    )
    volume = base.mark_bar(opacity=0.6).encode(y=alt.Y("volume:Q", title="scored messages"))
    return alt.vconcat(
        (band + line).properties(title=title, width=720, height=220), volume.properties(width=720, height=90)
    )


def _nps(scores: pl.DataFrame) -> alt.Chart:
    data = scores.with_columns(pl.col("week").cast(pl.String))
    return (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(x=alt.X("week:T"), y=alt.Y("nps:Q", title="NPS"), tooltip=["week:T", "responses:Q", "nps:Q"])
        .properties(title="Survey NPS per week", width=720, height=160)
    )


def _table(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in frame.iter_rows()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list):
        return " · ".join(str(v) for v in value)
    return str(value)


def render_sentiment_report(lake: UPath, exports: UPath, week: date | None = None) -> UPath:
    """Write the report of `week` (a Monday; default: the latest week with data) and return its path."""
    departments = _summary(lake, SENTIMENT_DEPARTMENT_WEEKLY)
    agents = _summary(lake, SENTIMENT_AGENT_WEEKLY)
    surveys = _summary(lake, SURVEY_SCORES)
    themes = _summary(lake, SENTIMENT_THEMES)
    if departments.is_empty():
        raise ValueError("no sentiment figures in the lake yet: run the pipeline first")
    week = week or departments["week"].max()
    since = week - timedelta(weeks=TREND_WEEKS - 1)
    recent = pl.col("week").is_between(since, week)
    conversations = (
        read_table(lake, GOLD, SENTIMENT_CONVERSATION)
        if parquet_files(table_path(lake, GOLD, SENTIMENT_CONVERSATION))
        else pl.DataFrame(schema={"week": pl.Date, "mean_score": pl.Float64})
    )
    worst = (
        conversations.filter((pl.col("week") == week) & pl.col("mean_score").is_not_null())
        .sort("mean_score")
        .head(WORST_CONVERSATIONS)
        .select(CONVERSATION_SUMMARY)
    )
    chart = alt.vconcat(
        _trend(departments.filter(recent), "department", "Patient sentiment by department (95 % interval)"),
        _trend(agents.filter(recent & pl.col("enough_volume")), "agent_id", "Agents with enough volume"),
        _nps(surveys.filter(recent)),
    )
    page = inline_html(chart)
    this_week = departments.filter(pl.col("week") == week).select(
        "department", "volume", "mean_score", "negative_share", "enough_volume"
    )
    sections = (
        f"<h1>Patient sentiment, week of {week.isoformat()}</h1>"
        f"<p>Patients' own words scored by the deployed sentiment model; weeks with fewer than the minimum "
        f"volume are faded and should not be ranked. Generated from the gold tables.</p>"
        f"<h2>This week by department</h2>{_table(this_week)}"
        f"<h2>Worst conversations this week (by id)</h2>{_table(worst)}"
        f"<h2>Themes of negative feedback</h2>{_table(themes.select(THEME_COLUMNS))}"
        "<h2>Trends</h2>"
    )
    page = page.replace("<body>", f"<body>{STYLE}{sections}", 1)
    path = exports / REPORTS / week.isoformat() / "report.html"
    write_bytes_atomic(page.encode("utf-8"), path)
    return path
