"""Data quality: accounting per ingest (in = bronze + quarantine, by reason), the files not read and why,
the last run's contract (asset check) results, type conflicts in silver, device readings not linked to a
patient."""

import polars as pl
import streamlit as st

from dashboards import charts, ui

who = ui.viewer()
ui.page_header("Data quality", who)

log = ui.read(
    "ingest_log",
    ("source", "file", "target_table", "status", "records_in", "records_bronze", "records_quarantined",
     "detail", "finished_at", "ingest_run_id"),
    layer="bronze",
)  # fmt: skip
if log.is_empty():
    ui.empty_state("ingests")
    st.stop()

st.subheader("Accounting per source (every record in bronze or quarantine)")
read = log.filter(pl.col("status").is_in(["ingested", "released"]))
accounting = (
    read.group_by("source")
    .agg(
        (pl.col("status") == "ingested").sum().alias("files"),
        pl.col("records_in").sum(),
        pl.col("records_bronze").sum(),
        pl.col("records_quarantined").sum(),
        # records set aside for want of their Patient and moved into bronze when it arrived (a released row
        # counts them in bronze and out of quarantine)
        (-pl.col("records_quarantined").filter(pl.col("status") == "released")).sum().alias("released"),
        pl.col("finished_at").max().alias("last_ingest"),
    )
    .with_columns(
        (pl.col("records_in") == pl.col("records_bronze") + pl.col("records_quarantined")).alias("balanced")
    )
    .sort("source")
)
ui.show(accounting, who, key="accounting")
with st.expander("Per file"):
    ui.show(read.drop("detail").sort("finished_at", descending=True), who, key="files", height=320)

not_read = log.filter(pl.col("status").is_in(["skipped", "refused"]))
if not not_read.is_empty():
    refused = int((not_read["status"] == "refused").sum())
    st.subheader("Files not read")
    st.caption(
        f"{not_read.height:,} paths in the landing folder were not read: {refused:,} refused (links leading "
        "out of the landing folder or nowhere, special files, sources with an unusable source.yaml), "
        f"{not_read.height - refused:,} skipped (documentation, hidden files, files a manifest leaves out)."
    )
    ui.show(
        not_read.select("source", "file", "status", pl.col("detail").alias("reason"), "finished_at").sort(
            "status", "source", "file"
        ),
        who,
        key="not_read",
        height=240,
    )

quarantine = ui.read("quarantine", ("source", "target_table", "reason_code"), layer="bronze")
st.subheader("Quarantine by reason")
if quarantine.is_empty():
    st.success("Nothing quarantined.")
else:
    reasons = (
        quarantine.group_by("target_table", "reason_code").len("records").sort("records", descending=True)
    )
    charts.bars(reasons, "reason_code", "records", who=who, title="records", color="target_table")
    released = int(accounting["released"].sum())
    if released:
        st.caption(
            f"{released:,} records quarantined because their Patient had not arrived were released into "
            "bronze when it did; they stay in the quarantine above as its history."
        )

st.subheader("Contracts (asset checks) of the last run")
runs = ui.pipeline_runs()
if not runs:
    st.write("No recorded pipeline run yet (runs of `patient-insights ingest` / `make run` are recorded).")
else:
    checks = pl.DataFrame(runs[0]["checks"]) if runs[0]["checks"] else pl.DataFrame()
    if checks.is_empty():
        st.write("The last run evaluated no checks.")
    else:
        outcome = st.radio("Show", ["failed and warnings", "all"], horizontal=True, key="check_filter")
        summary = checks.group_by("asset", "check", "severity").agg(
            pl.len().alias("evaluations"), (~pl.col("passed")).sum().alias("failed")
        )
        if outcome != "all":
            summary = summary.filter(pl.col("failed") > 0)
        failed = int((~checks["passed"]).sum())
        st.caption(f"{checks.height:,} evaluations in run {runs[0]['run_id']}; {failed} failed")
        ui.show(summary.sort("failed", "asset", descending=[True, False]), who, key="checks")

left, right = st.columns(2)
with left:
    st.subheader("Type conflicts in silver")
    conflicts = ui.read("type_conflicts", layer="silver")
    if conflicts.is_empty():
        st.success("Every value fitted its declared type.")
    else:
        by = [c for c in ("table", "column", "reason_code") if c in conflicts.columns]
        counts = [pl.col(c).sum() for c in ("values_nulled", "values_kept") if c in conflicts.columns]
        ui.show(
            conflicts.group_by(by).agg(counts).sort("values_nulled", descending=True),
            who,
            key="conflicts",
        )
with right:
    st.subheader("Device readings by patient link")
    readings = ui.read("device_reading", ("link_method", "metric"), layer="silver")
    if readings.is_empty():
        st.write("No device readings.")
    else:
        links = readings.group_by("link_method").len("readings").sort("readings", descending=True)
        unlinked = readings.filter(
            pl.col("link_method").is_null() | (pl.col("link_method") == "unlinked")
        ).height
        st.metric("Unlinked readings", f"{unlinked:,}")
        ui.show(links, who, key="links")
