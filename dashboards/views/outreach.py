"""Outreach: every campaign, its latest run with a list preview and the suppressions by reason, the export
history with manifests, and the export files to download."""

import orjson
import polars as pl
import streamlit as st

from dashboards import charts, ui
from pipelines.outreach.exports import campaign_runs
from pipelines.outreach.run import shipped_campaigns

who = ui.viewer()
ui.page_header("Outreach", who)

campaigns = {c.id: c for c in shipped_campaigns()}
history = ui.campaign_history()
ids = sorted(set(campaigns) | set(history["campaign"].to_list()))
campaign_id = st.selectbox(
    "Campaign", ids, key="campaign", format_func=lambda i: campaigns[i].title if i in campaigns else i
)
campaign = campaigns.get(campaign_id)
if campaign is not None:
    st.caption(
        f"Segments {', '.join(campaign.segments)} · channels {' → '.join(campaign.channels)} · template "
        f"{campaign.template} · not again within {campaign.campaign_days} days · at most "
        f"{campaign.weekly_contacts} contacts a week · up to {campaign.max_list_size:,} · {campaign.start} → "
        f"{campaign.end}"
    )

runs = campaign_runs(ui.locations().exports, campaign_id)
if not runs:
    ui.empty_state("runs of this campaign")
    st.stop()

labels = [r.run_id for r in reversed(runs)]
run_id = st.selectbox("Run", labels, key="run")
run = next(r for r in runs if r.run_id == run_id)
manifest = run.manifest()
counts = {f["url"]: f["count"] for f in manifest["output"]}
figures = st.columns(5)
FIGURES = (
    ("Listed", "list.csv"),
    ("Suppressed", "suppressed.csv"),
    ("Added", "added.csv"),
    ("Removed", "removed.csv"),
    ("Changed", "changed.csv"),
)
for column, (label, name) in zip(figures, FIGURES, strict=True):
    column.metric(label, f"{counts.get(name, 0):,}")

listed = run.read_list()
suppressed = pl.read_csv((run.folder / "suppressed.csv").read_bytes(), infer_schema=False)
left, right = st.columns([3, 2])
with left:
    st.subheader("List preview")
    channels = sorted(listed["channel"].unique().to_list()) if listed.height else []
    picked = st.multiselect("Channels", channels, default=channels, key="channels")
    ui.show(listed.filter(pl.col("channel").is_in(picked)).head(500), who, key="list", height=360)
with right:
    st.subheader("Suppressed, by reason")
    if suppressed.is_empty():
        st.write("Nobody suppressed.")
    else:
        reasons = suppressed.group_by("reason").len("persons").sort("persons", descending=True)
        charts.bars(reasons, "reason", "persons", title="persons")

st.subheader("Export history")
ui.show(history.filter(pl.col("campaign") == campaign_id), who, key="history")
with st.expander("manifest.json of this run"):
    st.json(manifest)

if who.identifiable:
    st.subheader("Download")
    files = st.columns(4)
    for index, entry in enumerate(manifest["output"]):
        files[index % 4].download_button(
            f"{entry['url']} ({entry['count']:,})",
            (run.folder / entry["url"]).read_bytes(),
            file_name=f"{campaign_id}_{run_id}_{entry['url']}",
            key=f"download_{entry['url']}",
        )
    files[len(manifest["output"]) % 4].download_button(
        "manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2), file_name="manifest.json"
    )
else:
    st.caption("Export files hold identifiable data: downloads are for care managers.")
