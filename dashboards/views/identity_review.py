"""Identity review: the pairs of records the matching model could not settle on its own. A care manager sees
the two records side by side, how each field compares, and decides - the same person (link them), two
people (never link them), or not now; every later identity build honours the decision. An analyst sees the
review in numbers only."""

import os

import polars as pl
import streamlit as st

from dashboards import ui
from dashboards.data import DECISION_WORDS, comparison_levels, pair_evidence
from pipelines.identity.decisions import LINK, NEVER_LINK

# (no bare strings below the docstring: Streamlit would show them on the page)
USER_ENV = "PATIENT_INSIGHTS_DASHBOARD_USER"  # prefills "Decided by" (else the signed-in user's name)
ACTIONS = {LINK: "Same person — link them", NEVER_LINK: "Different people — never link"}
EVERY_REASON = "every reason"
NOTICE = "identity_review_notice"
LISTED = 500  # pairs in the list at once: the most probable (a large queue is worked from the top)

who = ui.viewer()
ui.page_header("Identity review", who)

if not ui.identity_built():
    ui.empty_state("identity build to review")
    st.stop()

notice = st.session_state.pop(NOTICE, None)
if notice:
    (st.success if notice[0] == "success" else st.error)(notice[1])

counts = ui.review_counts()
top = st.columns(3)
top[0].metric("Pairs waiting for review", f"{counts.pending:,}")
top[1].metric("Persons involved", f"{counts.persons:,}")
top[2].metric("Pairs decided", f"{counts.decided:,}")

if not who.identifiable:
    st.caption("Care managers see the two records of each pair and decide; this view counts the review only.")
    left, right = st.columns(2)
    with left:
        st.subheader("Decisions in force")
        if counts.by_decision.is_empty():
            st.write("No decisions yet.")
        else:
            decided = counts.by_decision.with_columns(pl.col("decision").replace(DECISION_WORDS))
            ui.show(decided, who, key="by_decision", labels={"decision": "Decision", "pairs": "Pairs"})
    with right:
        st.subheader("Pairs waiting, by reason")
        if counts.by_reason.is_empty():
            st.write("No pair is waiting." if not counts.pending else "No reasons recorded.")
        else:
            labels = {"review_reason": "Why", "pairs": "Pairs"}
            ui.show(counts.by_reason, who, key="by_reason", labels=labels)
    st.stop()


def _pair_words(row: dict) -> str:
    return f"{row['name_l']} ({row['source_l']}) and {row['name_r']} ({row['source_r']})"


def _decide(left: str, right: str, decision: str, pair_words: str, note_key: str) -> None:
    """Button callback: record the decision (or say why not) before the page is drawn again."""
    by = str(st.session_state.get("decided_by") or "").strip()
    if not by:
        message = 'Not recorded: enter your name in "Decided by" first; every decision records who took it.'
        st.session_state[NOTICE] = ("error", message)
        return
    try:
        ui.decide(left, right, decision, by, str(st.session_state.get(note_key) or "").strip() or None)
    except ValueError as error:
        st.session_state[NOTICE] = ("error", f"Not recorded: {error}.")
        return
    st.session_state[note_key] = ""
    st.session_state[NOTICE] = (
        "success",
        f"Recorded: {pair_words}, {DECISION_WORDS[decision]}. It takes effect at the next pipeline run.",
    )


def _skip(index: int, pairs: int) -> None:
    st.session_state["review_pair"] = (index + 1) % pairs


queue, recent = ui.review_queue(), ui.recent_decisions()
if queue.height or recent.height:
    st.text_input(
        "Decided by",
        value=os.environ.get(USER_ENV, "") or who.name or "",
        key="decided_by",
        help="Your name or role: every decision records who took it.",
    )

st.subheader("Pairs waiting for review")
if queue.is_empty():
    st.success("No pairs are waiting for review: every pair the matching was unsure about has been decided.")
else:
    if "review_reason" in queue.columns:
        reasons = queue["review_reason"].drop_nulls().value_counts(sort=True, name="pairs")
        options = [EVERY_REASON, *reasons["review_reason"].to_list()]
        reason = st.selectbox("Why in review", options, key="reason_filter")
        if reason != EVERY_REASON:
            queue = queue.filter(pl.col("review_reason") == reason)
    pairs = queue.head(LISTED).to_dicts()
    if st.session_state.get("review_pair", 0) >= len(pairs):
        st.session_state["review_pair"] = 0
    shown = (
        f"{len(pairs):,}" if len(pairs) == queue.height else f"the first {len(pairs):,} of {queue.height:,}"
    )
    index = st.selectbox(
        f"{shown} pair(s), most probable first",
        range(len(pairs)),
        format_func=lambda i: f"{i + 1}. {_pair_words(pairs[i])} · {pairs[i]['match_probability']:.0%}",
        key="review_pair",
    )
    pair = pairs[index]
    with st.container(border=True):
        st.markdown(f"**{_pair_words(pair)}**")
        chance, why = st.columns([1, 3])
        chance.metric("Match probability", f"{pair['match_probability']:.1%}")
        if pair.get("review_reason"):
            why.write(f"Why in review: {pair['review_reason']}")
        ui.show(
            pair_evidence(pair, comparison_levels()),
            who,
            key="evidence",
            labels={
                "field": "Field",
                "record_l": f"Record 1 · {pair['source_l']}",
                "record_r": f"Record 2 · {pair['source_r']}",
                "comparison": "How they compare",
            },
        )
        st.text_input("Note (optional)", key="review_note")
        buttons = st.columns(3)
        for column, decision in zip(buttons, (LINK, NEVER_LINK), strict=False):
            column.button(
                ACTIONS[decision],
                key=f"decide_{decision}",
                on_click=_decide,
                args=(pair["unique_id_l"], pair["unique_id_r"], decision, _pair_words(pair), "review_note"),
            )
        buttons[2].button("Skip for now", key="skip", on_click=_skip, args=(index, len(pairs)))
        st.caption("A decision takes effect at the next pipeline run; it can be changed below.")

st.subheader("Recent decisions")
if recent.is_empty():
    st.write("No decisions yet.")
else:
    ui.show(
        recent.select(
            pl.format("{} ({})", "name_l", "source_l").alias("name_l"),
            pl.format("{} ({})", "name_r", "source_r").alias("name_r"),
            pl.col("decision").replace(DECISION_WORDS),
            "decided_by",
            "decided_at",
            "review_note",
        ),
        who,
        key="recent",
        labels={
            "name_l": "Record 1",
            "name_r": "Record 2",
            "decision": "Decision",
            "decided_by": "By",
            "decided_at": "When (UTC)",
            "review_note": "Note",
        },
    )
    rows = recent.to_dicts()
    pick = st.selectbox(
        "Change a decision",
        range(len(rows)),
        format_func=lambda i: f"{i + 1}. {_pair_words(rows[i])}: {DECISION_WORDS[rows[i]['decision']]}",
        key="change_pair",
    )
    row = rows[pick]
    opposite = NEVER_LINK if row["decision"] == LINK else LINK
    st.text_input("Why the change (optional)", key="change_note")
    st.button(
        f"Change to: {ACTIONS[opposite]}",
        key="change_decision",
        on_click=_decide,
        args=(row["unique_id_l"], row["unique_id_r"], opposite, _pair_words(row), "change_note"),
    )
