"""Sentiment: department and agent weekly trends with volume and 95 % intervals, the worst conversations
with their turns, the themes of negative feedback, survey scores (NPS)."""

import polars as pl
import streamlit as st

from dashboards import charts, ui
from dashboards.access import MIN_PERSONS_PER_TERM
from pipelines.gold.sentiment import CONVERSATION_SUMMARY

who = ui.viewer()
ui.page_header("Sentiment", who)

departments = ui.read("sentiment_department_weekly")
if departments.is_empty():
    ui.empty_state("sentiment figures")
    st.stop()

enough = st.toggle("Only weeks with enough volume", value=True, key="enough")
if enough and not departments["enough_volume"].any():
    st.info("No week reaches the minimum volume yet: showing every week (wide intervals).")
    enough = False
if enough:
    departments = departments.filter(pl.col("enough_volume"))
st.subheader("Departments: mean sentiment per week (95 % interval)")
charts.lines(
    departments.select("week", "department", "mean_score", "mean_score_low", "mean_score_high", "volume"),
    "week",
    "mean_score",
    color="department",
    who=who,
    title="mean score (-1 … 1)",
    band=("mean_score_low", "mean_score_high"),
)

agents = ui.read("sentiment_agent_weekly")
st.subheader("Agents")
if agents.height:
    chosen = st.multiselect(
        "Agents", sorted(agents["agent_id"].unique().to_list()), max_selections=8, key="agents"
    )
    shown = agents.filter(pl.col("agent_id").is_in(chosen)) if chosen else agents
    if enough:
        shown = shown.filter(pl.col("enough_volume"))
    summary = (
        shown.group_by("agent_id")
        .agg(
            pl.col("conversations").sum(),
            pl.col("volume").sum(),
            (pl.col("negative").sum() / pl.col("volume").sum()).alias("negative_share"),
        )
        .sort("negative_share", descending=True)
    )
    ui.show(summary, who, key="agent_summary")
    if chosen:
        charts.lines(
            shown.select("week", "agent_id", "negative_share", "negative_share_low", "negative_share_high"),
            "week",
            "negative_share",
            color="agent_id",
            who=who,
            title="negative share",
            band=("negative_share_low", "negative_share_high"),
            fmt="%",
        )

st.subheader("Worst conversations")
conversations = ui.read("sentiment_conversation")
worst = conversations.drop_nulls("mean_score").sort("mean_score").head(25)
ui.show(worst.select("started_at", *CONVERSATION_SUMMARY), who, key="worst")
if who.identifiable and worst.height:
    picked = st.selectbox("Turns of", worst["conversation_id"].to_list(), key="conversation")
    ui.show(ui.conversation_turns(picked), who, key="turns")

left, right = st.columns(2)
with left:
    st.subheader("Themes of negative feedback")
    themes = ui.read("sentiment_themes")
    if themes.is_empty():
        st.write("Too little negative feedback to find themes.")
    else:
        if not who.identifiable:
            st.caption(
                f"De-identified view: only terms that at least {MIN_PERSONS_PER_TERM} persons wrote, without "
                "digits or names, and no snippets."
            )
        ui.show(themes.sort("messages", descending=True), who, key="themes")
with right:
    st.subheader("Follow-up surveys: NPS per week")
    surveys = ui.read("survey_scores")
    if surveys.is_empty():
        st.write("No survey answers yet.")
    else:
        charts.bars(
            surveys.select("week", "nps", "responses", "mean_rating"), "week", "nps", who=who, title="NPS"
        )
