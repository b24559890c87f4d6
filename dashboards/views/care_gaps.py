"""Care gaps & segments: per measure numerator, denominator and exclusions, drill-down to the patients of a
measure and status, segment sizes and who entered or left them."""

import polars as pl
import streamlit as st

from dashboards import charts, ui, words

who = ui.viewer()
ui.page_header("Care gaps & segments", who)

rates = ui.read("care_gap_rates")
if rates.is_empty():
    ui.empty_state("care-gap results")
    st.stop()

_RATE_LABELS = {
    "period_start": "period from",
    "period_end": "period to",
    "open_gaps": "open gaps",
    "inverse": "lower is better",
}
st.subheader("Measures (HEDIS-aligned; not NCQA-certified)")
ui.show(
    rates.select(
        words.measure_words().alias("measure"), "period_start", "period_end", "eligible", "exclusions",
        "denominator", "numerator", "rate", "open_gaps", "inverse",
    ),
    who,
    key="rates",
    labels=_RATE_LABELS,
)  # fmt: skip

st.subheader("Drill down")
left, right = st.columns(2)
measure = left.selectbox(
    "Measure", rates["measure_id"].to_list(), key="measure", format_func=words.measure_title
)
status = right.selectbox(
    "Status", list(words.GAP_STATUS_WORDS), key="status", format_func=words.GAP_STATUS_WORDS.__getitem__
)
chosen = ui.care_gap_patients(measure, status)
if "status" in chosen.columns:  # an empty answer has only the person column
    chosen = chosen.with_columns(words.gap_status_words())
st.caption(f"{chosen.height:,} persons: {words.measure_title(measure)}, {words.GAP_STATUS_WORDS[status]}")
ui.show(chosen, who, key="drill", height=360)
sources = ui.risk_sources()
if sources and "risk_tier" in chosen.columns:
    st.caption("Risk tier — " + "; ".join(source.words for source in sources) + ".")

st.subheader("Segments")
membership = ui.read("segment_membership", ("segment_id", "segment_type", "entered", "exited"))
if membership.is_empty():
    ui.empty_state("segment memberships")
    st.stop()
sizes = (
    membership.filter(pl.col("exited").is_null())
    .group_by("segment_id", "segment_type")
    .len("members")
    .sort("members", descending=True)
)
charts.bars(
    sizes.select(words.segment_words().alias("segment"), "segment_type", "members"),
    "segment",
    "members",
    who=who,
    title="current members",
    color="segment_type",
)
entered = membership.group_by("segment_id", pl.col("entered").alias("day")).len("entered")
exited = membership.drop_nulls("exited").group_by("segment_id", pl.col("exited").alias("day")).len("exited")
changes = (
    entered.join(exited, on=["segment_id", "day"], how="full", coalesce=True)
    .with_columns(pl.col("entered").fill_null(0), pl.col("exited").fill_null(0))
    .sort("day", "segment_id", descending=[True, False])
)
segment = st.selectbox(
    "Membership changes of",
    ["all", *sizes["segment_id"].to_list()],
    key="segment",
    format_func=lambda s: "every segment" if s == "all" else words.segment_title(s),
)
if segment != "all":
    changes = changes.filter(pl.col("segment_id") == segment)
ui.show(
    changes.select("day", words.segment_words().alias("segment"), "entered", "exited"), who, key="changes"
)
