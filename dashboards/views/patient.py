"""Patient 360: find a patient in seconds (name, MRN or other identifier, birth date), then everything about
them - header card, timeline, results and device trends, open gaps with evidence, risk with its reasons and
the readmission risk after a recent hospital stay, sentiment, segments and outreach."""

import polars as pl
import streamlit as st

from dashboards import charts, ui, words
from dashboards.access import mask, pseudonym_of
from dashboards.data import discharge_words, search

_GAP_LABELS = {
    "due_date": "due",
    "days_overdue": "days overdue",
    "evidence_date": "last evidence",
    "evidence_code": "evidence code",
    "exclusion_reason": "excluded because",
    "evidence_modality": "how measured",
}

who = ui.viewer()
ui.page_header("Patient 360", who)

index = ui.search_index()
if index.is_empty():
    st.text_input("Search", disabled=True, key="search")
    ui.empty_state("patients")
    st.stop()

if who.identifiable:
    query = st.text_input(
        "Search by name, MRN / identifier or birth date (YYYY-MM-DD or M/D/YYYY)",
        key="search",
        placeholder="e.g. garcia maria · 00012345 · 1956-03-14",
    )
    found = search(index, query) if query else index.head(0)
else:  # no search by identifying fields in the de-identified view: by pseudonym only
    query = st.text_input("Search by pseudonym (anon-…)", key="search").strip()
    pseudonyms = index.select("person_id").with_columns(
        pl.col("person_id").map_elements(pseudonym_of, return_dtype=pl.String).alias("pseudonym")
    )
    hits = pseudonyms.filter(pl.col("pseudonym") == query)["person_id"] if query else []
    found = index.filter(pl.col("person_id").is_in(list(hits)))

if query and found.is_empty():
    st.warning("Nobody matches. Try fewer letters of the name, the full MRN, or the birth date.")
if found.is_empty():
    st.caption(f"{index.height:,} persons in the lake.")
    st.stop()


def _label(row: dict) -> str:
    if not who.identifiable:
        return pseudonym_of(row["person_id"])
    name = f"{row['family'] or '?'}, {row['given'] or '?'}"
    return f"{name} · born {row['birth_date'] or '?'} · {row['identifiers'] or row['person_id']}"


rows = found.to_dicts()
choice = st.selectbox(f"{len(rows)} match(es)", range(len(rows)), format_func=lambda i: _label(rows[i]))
person_id = rows[choice]["person_id"]

view = ui.person("patient_360", person_id)
if view.is_empty():
    st.error("This person has no patient_360 row in this lake version; reload after the next run.")
    st.stop()
person = view.row(0, named=True)
visible = mask(view, who).row(0, named=True)

with st.container(border=True):
    title = (
        f"{person['given'] or ''} {person['family'] or ''}" if who.identifiable else pseudonym_of(person_id)
    )
    st.subheader(title + ("  ✝" if person["deceased"] else ""))
    card = st.columns(6)
    card[0].metric("Age", person["age"] if person["age"] is not None else "?")
    card[1].metric("Sex", person["sex"] or "?")
    card[2].metric("Language", person["language"] or "?")
    card[3].metric("Open care gaps", person["open_care_gaps"] or 0)
    card[4].metric(
        "Risk tier",
        person["risk_tier"] or "not scored",
        help="From the clinical baseline (Charlson comorbidity index): no risk model yet"
        if person["risk_tier"] and person["risk_score"] is None
        else None,
    )
    card[5].metric(
        "Latest sentiment",
        f"{person['latest_sentiment']:+.2f}" if person["latest_sentiment"] is not None else "none",
    )
    details = {
        "born": visible.get("birth_date"),
        "coverage": "active" if person["coverage_active"] else "none active",
        "PCP": person["pcp_practitioner_id"],
        "next appointment": visible.get("next_appointment_at"),
        "ED visits (12 m)": person["ed_visits_12m"],
        "admissions (12 m)": person["inpatient_admissions_12m"],
    }
    if who.identifiable:
        details |= {
            "phone": person["preferred_phone"] or person["phone"],
            "e-mail": person["email"],
            "address": ", ".join(
                str(person[c])
                for c in ("address_line", "address_city", "address_state", "address_postal_code")
                if person[c]
            ),
        }
        if person.get("guardian_given"):
            details["guardian"] = (
                f"{person['guardian_given']} {person['guardian_family']} ({person['guardian_relationship']})"
            )
    st.write(" · ".join(f"**{k}**: {v}" for k, v in details.items() if v not in (None, "")))
    problems = person["active_problems"] or []
    if problems:
        st.caption("Problems: " + "; ".join(problems[:12]) + (" …" if len(problems) > 12 else ""))

tabs = st.tabs(["Timeline", "Results & devices", "Care gaps", "Risk", "Sentiment", "Segments & outreach"])

with tabs[0]:
    timeline = ui.person("timeline", person_id)
    if timeline.is_empty():
        ui.empty_state("timeline events for this person")
    else:
        kinds = sorted(timeline["kind"].unique().to_list())
        chosen = st.multiselect("Kinds", kinds, default=kinds, key="timeline_kinds")
        shown = timeline.filter(pl.col("kind").is_in(chosen)).sort("time", descending=True)
        ui.show(shown.select("time", "kind", "display", "code", "source"), who, height=380)

with tabs[1]:
    results = ui.person("results", person_id)
    if results.is_empty():
        ui.empty_state("lab or vital results for this person")
    else:
        names = sorted(results["result"].unique().to_list())
        picked = st.multiselect("Results", names, default=names[:3], key="results_picked")
        trend = results.filter(pl.col("result").is_in(picked))
        charts.lines(trend, "at", "value", who=who, color="result", title="value")
    devices = ui.person("device_days", person_id)
    if devices.height:
        st.caption("Home devices: daily mean")
        charts.lines(devices, "day", "mean", who=who, color="metric", title="daily mean")

with tabs[2]:
    gaps = ui.person("care_gaps", person_id)
    if gaps.is_empty():
        ui.empty_state("care-gap results for this person")
    else:
        open_gaps = gaps.filter(pl.col("status") == "open-gap")
        eligible = gaps.filter(pl.col("status") != "not-applicable").height
        st.write(f"**{open_gaps.height}** open of {eligible} eligible")
        columns = [
            words.measure_words().alias("measure"),
            words.gap_status_words(),
            "due_date",
            "days_overdue",
            "evidence_date",
            "evidence_code",
        ]
        ui.show(open_gaps.select(columns), who, key="open_gaps", labels=_GAP_LABELS)
        with st.expander("Every measure"):
            ui.show(
                gaps.select([*columns, "exclusion_reason", "evidence_modality"]),
                who,
                key="all_gaps",
                labels=_GAP_LABELS,
            )

with tabs[3]:
    risk = ui.person("risk_scores", person_id)
    if risk.is_empty():
        ui.empty_state("a risk score for this person")
    else:
        score = risk.row(0, named=True)
        source = ui.risk_source(score["model_version"])
        if source.baseline:  # points and a tier, no probability
            st.metric(
                "Charlson comorbidity index (risk of an ED visit or unplanned admission)",
                f"{score['points']} point{'' if score['points'] == 1 else 's'} · {score['tier']} tier",
            )
            why = score["reasons"] or ["no condition the Charlson index counts"]
            against = "a person with none of these conditions"
        else:
            st.metric(
                "180-day risk of an ED visit or unplanned admission",
                f"{score['score']:.1%} · {score['tier']} tier",
            )
            why = score["reasons"] or ["no factor stands out from a typical person"]
            against = "a typical person of those the model learnt from"
        st.caption(f"**{source.title}**: {source.why}. Tiers — {source.tiers}.")
        st.write(f"Why, compared with {against}: " + "; ".join(why))
    discharges = ui.person("discharge_risk", person_id)
    if discharges.height:  # stays whose 30-day readmission window is still open, the latest first
        for discharge in mask(discharges.sort("discharged_on", descending=True), who).iter_rows(named=True):
            source = ui.risk_source(discharge["model_version"])
            st.write("\n\n".join(discharge_words(discharge, source)))
            st.caption(f"**{source.title}**: {source.why}. Tiers — {source.tiers}.")

with tabs[4]:
    conversations = ui.person("sentiment_conversation", person_id)
    if conversations.is_empty():
        ui.empty_state("conversations with this person")
    else:
        ui.show(
            conversations.sort("started_at", descending=True).select(
                "started_at",
                "department",
                "channel",
                "label",
                "mean_score",
                "trajectory",
                "escalated",
                "resolved",
            ),
            who,
            key="conversations",
        )
    messages = ui.person("sentiment_message", person_id)
    if messages.height and who.identifiable:
        with st.expander("Latest messages and comments"):
            ui.show(
                messages.filter(pl.col("speaker").is_null() | (pl.col("speaker") == "patient"))
                .sort("at", descending=True)
                .head(20)
                .select("at", "kind", "label", "score", "text"),
                who,
                key="messages",
            )

with tabs[5]:
    membership = ui.person("segment_membership", person_id)
    if membership.is_empty():
        ui.empty_state("segment memberships for this person")
    else:
        ui.show(
            membership.sort("entered", descending=True)
            .drop("person_id")
            .with_columns(words.segment_words())
            .rename({"segment_id": "segment"}),
            who,
            key="segments",
        )
    outreach = ui.person("outreach", person_id)
    st.caption("Outreach history")
    if outreach.is_empty():
        st.write("Never listed or suppressed by a campaign run.")
    else:
        ui.show(outreach, who, key="outreach")
