"""Outreach: every campaign, its latest run with a list preview and the suppressions by reason, the
campaign's measured effect on care gaps (contacted against its randomized hold-out, with the 95 % interval)
and its funnel per channel, the export history with manifests, and the export files to download."""

import orjson
import polars as pl
import streamlit as st

from dashboards import charts, ui
from pipelines.outreach.campaigns import Campaign
from pipelines.outreach.exports import campaign_runs
from pipelines.outreach.run import shipped_campaigns

STAGES = (
    ("assigned", "assigned"),
    ("sent", "sent"),
    ("delivered", "delivered"),
    ("opened", "opened"),
    ("booked", "booked"),
    ("gap_closed", "gap closed"),
)


def outreach_effect(campaign_id: str, campaign: Campaign | None, run_id: str) -> None:
    """Did the campaign close care gaps? Its randomized effect with the interval (over every run whose
    follow-up has ended), and the chosen run's funnel and figures per channel (counts and rates only)."""
    st.subheader("Outreach effect")
    effect = ui.read("campaign_effect").filter(pl.col("campaign_id") == campaign_id)
    funnel = ui.read("campaign_funnel").filter(
        (pl.col("campaign_id") == campaign_id) & (pl.col("run_id") == run_id)
    )
    if campaign is not None and campaign.holdout is None:
        st.caption("This campaign has no hold-out group, so its effect cannot be measured (only the funnel).")
    for row in effect.to_dicts():
        days = row["follow_up_days"]
        st.markdown(
            f"**{row['measure_id']}**: gaps closed within {days} days of the run (as of {row['as_of']})"
        )
        left, middle, right, last = st.columns(4)
        left.metric("Contacted", _share(row["contacted_closed"], row["contacted"]))
        middle.metric("Hold-out", _share(row["holdout_closed"], row["holdout"]))
        if row["difference"] is None:
            right.metric("Difference", "–")
            st.caption(f"No follow-up window has ended yet ({row['pending_follow_up']:,} persons pending).")
            continue
        right.metric(
            "Difference (95 % interval)",
            f"{row['difference']:+.1%}",
            f"{row['ci_low']:+.1%} to {row['ci_high']:+.1%}",
            delta_color="off",
        )
        nnc = row["number_needed_to_contact"]
        last.metric("Number needed to contact", f"{nnc:,.1f}" if nnc else "–")
        notes = []
        if not row["enough_persons"]:
            notes.append("an arm has fewer than 10 persons: read the interval, not the point")
        if not row["excludes_zero"]:
            notes.append("the interval includes zero: no effect can be told from chance")
        if row["pending_follow_up"]:
            notes.append(f"{row['pending_follow_up']:,} persons still in their follow-up window")
        if row["holdout_contacted"]:
            notes.append(f"{row['holdout_contacted']:,} outreach events named held-out persons")
        if notes:
            st.caption("; ".join(notes).capitalize() + ".")
    measured = effect.filter(pl.col("difference").is_not_null())
    if measured.height:
        charts.estimates(
            measured.select("measure_id", "difference", "ci_low", "ci_high", "contacted", "holdout"),
            "measure_id",
            "difference",
            "ci_low",
            "ci_high",
            who=who,
            title="difference in gap closure, contacted minus hold-out",
        )
    contacted = funnel.filter((pl.col("arm") == "contacted") & (pl.col("channel") == "all"))
    if contacted.is_empty():
        ui.empty_state("outreach results of this run")
        return
    left, right = st.columns([3, 2])
    with left:
        st.markdown(f"**Funnel** of run {run_id} (contacted persons)")
        stages = pl.DataFrame(
            {"stage": [label for _, label in STAGES], "persons": [contacted[c][0] for c, _ in STAGES]}
        )
        charts.bars(stages, "stage", "persons", who=who, title="persons")
    with right:
        st.markdown("**Per channel**")
        per_channel = funnel.filter(pl.col("channel") != "all").select(
            "arm",
            "channel",
            "assigned",
            "sent",
            "delivered",
            "bounced",
            pl.col("bounce_rate").round(3),
            "opened",
            "opted_out",
            "booked",
            "gap_closed",
        )
        ui.show(per_channel, who, key="per_channel")


def _share(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,} ({part / whole:.0%})" if whole else "–"


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
        charts.bars(reasons, "reason", "persons", who=who, title="persons")

outreach_effect(campaign_id, campaign, run_id)

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
