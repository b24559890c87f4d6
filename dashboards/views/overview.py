"""Overview: population KPIs, care-gap rates and their trend, risk tiers, the readmission risk of recent
discharges, data freshness, the last run."""

import polars as pl
import streamlit as st

from dashboards import charts, ui, words

who = ui.viewer()
ui.page_header("Overview", who)

people = ui.read("patient_360", ("person_id", "deceased", "age", "open_care_gaps", "risk_tier", "as_of"))
if people.is_empty():
    ui.empty_state("patients")
    st.stop()

living = people.filter(~pl.col("deceased").cast(pl.Boolean).fill_null(False))
as_of = people["as_of"].max()
runs = ui.pipeline_runs()
decided = (runs[0].get("as_of") or {}) if runs else {}  # which as-of day the last run used, and why
columns = st.columns(5)
columns[0].metric("Persons", f"{people.height:,}", help="One person per identity across sources")
columns[1].metric("Living", f"{living.height:,}")
columns[2].metric("Open care gaps", f"{int(living['open_care_gaps'].cast(pl.Int64).fill_null(0).sum()):,}")
columns[3].metric(
    "High risk",
    f"{living.filter(pl.col('risk_tier') == 'high').height:,}",
    help=" ".join(f"{source.words}. Tiers — {source.tiers}." for source in ui.risk_sources()) or None,
)
columns[4].metric(
    "As of",
    str(as_of),
    help=f"Figures are measured as of this day: {decided['why']}." if decided.get("why") else None,
)
if decided.get("notice"):
    st.warning(decided["notice"])

left, right = st.columns(2)
with left:
    st.subheader("Care-gap rates (HEDIS-aligned; not NCQA-certified)")
    rates = ui.read("care_gap_rates")
    if rates.is_empty():
        ui.empty_state("care-gap rates")
    else:
        charts.bars(
            rates.drop_nulls("rate").select(
                words.measure_words().alias("measure"), "rate", "numerator", "denominator", "open_gaps"
            ),
            "measure",
            "rate",
            who=who,
            title="rate",
            fmt="%",
        )
    history = ui.read("care_gap_rate_history")
    if history.height and history["as_of"].n_unique() > 1:
        st.caption("Trend across runs")
        charts.lines(
            history.drop_nulls("rate").select("as_of", words.measure_words().alias("measure"), "rate"),
            "as_of",
            "rate",
            color="measure",
            who=who,
            title="rate",
            fmt="%",
        )
    elif history.height:
        st.caption("The trend appears after runs on more than one as-of day.")
with right:
    st.subheader("Risk tiers (180-day ED visit or unplanned admission)")
    tiers = living.drop_nulls("risk_tier").group_by("risk_tier").len("persons")
    if tiers.is_empty():
        ui.empty_state("risk scores")
    else:
        for source in ui.risk_sources():  # which score the tiers come from: the model or the baseline
            st.caption(f"**{source.title}**: {source.why}. Tiers — {source.tiers}.")
        order = {"high": 0, "medium": 1, "low": 2}
        tiers = tiers.sort(pl.col("risk_tier").replace_strict(order, default=3))
        charts.bars(
            tiers,
            "risk_tier",
            "persons",
            who=who,
            title="persons",
            color="risk_tier",
            scale=charts.TIER_COLORS,
        )
    discharges = ui.read("discharge_risk", ("tier", "returned_on"))
    if discharges.height:
        st.subheader("Readmission risk after recent hospital stays")
        by_tier = dict(discharges.group_by("tier").len().iter_rows())
        stays, back = discharges.height, discharges["returned_on"].is_not_null().sum()
        st.write(
            f"**{stays:,}** hospital stay{'' if stays == 1 else 's'} ended in the last 30 days: "
            + " · ".join(f"{tier} {by_tier.get(tier, 0):,}" for tier in ("high", "medium", "low"))
            + f"; {back:,} of the patients already came back to hospital."
        )
        for source in ui.risk_sources("discharge_risk"):  # the readmission model, or the LACE index
            st.caption(f"**{source.title}**: {source.why}. Tiers — {source.tiers}.")

st.subheader("Data freshness and the last run")
ingests = ui.read("ingest_log", ("source", "finished_at", "records_in"), layer="bronze")
fresh = st.columns(3)
if ingests.height:
    latest = ingests.group_by("source").agg(
        pl.col("finished_at").max().alias("last_ingest"), pl.col("records_in").sum().alias("records")
    )
    fresh[0].metric("Last ingest", str(ingests["finished_at"].max())[:19])
    with st.expander("Per source"):
        ui.show(latest.sort("source"), who)
if runs:
    last = runs[0]
    status = "succeeded" if last["success"] else "failed"
    fresh[1].metric("Last pipeline run", status, help=f"run {last['run_id']} started {last['started_at']}")
    fresh[2].metric("Run time", f"{last['seconds']:.0f} s")
    if last["failed_checks"]:
        st.error("Failed checks: " + ", ".join(last["failed_checks"]))
    if last["warnings"]:
        st.warning("Check warnings: " + ", ".join(last["warnings"]))
else:
    fresh[1].metric("Last pipeline run", "not recorded")
