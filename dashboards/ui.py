"""The pieces every page uses: the viewer of the session, cached reads keyed on the lake's version, masked
tables, empty states, and the dashboard's one write (`decide`: a clerical-review decision). Pages call these
and never read or write the lake or show a frame directly."""

from __future__ import annotations

import logging

import polars as pl
import streamlit as st
from upath import UPath

from dashboards import data
from dashboards.access import ANALYST, TEXT_DERIVED, Viewer, local_role, mask, role_for, shareable_terms
from pipelines.identity.decisions import record_decision

APP_NAME = "patient-insights"
logging.getLogger("streamlit").setLevel(logging.WARNING)  # request logs could carry query strings


def viewer() -> Viewer:
    """The session's viewer: signed in through the OIDC provider when `[auth]` is configured in
    secrets.toml (the page stops with a login button until then), else local mode with the configured
    role."""
    if _auth_configured():
        if not st.user.is_logged_in:
            st.title(APP_NAME)
            st.write("Sign in with your organization account to see patient data.")
            if st.button("Sign in"):
                st.login()
            st.stop()
        roles = dict(st.secrets.get("roles", {}))
        email = str(st.user.get("email") or "")
        return Viewer(role_for(email, roles), str(st.user.get("name") or email) or None, False)
    return Viewer(local_role(), None, True)


def _auth_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets.toml at all
        return False
    except Exception:  # a malformed secrets.toml: fail closed into local mode's configured role
        return False


def page_header(title: str, who: Viewer) -> None:
    """Tab title, the page's one h1, and the banner of local mode or of the de-identified view."""
    st.title(title)
    if who.local_mode:
        st.warning(
            f"Local mode: no sign-in is configured; the role **{who.role}** comes from "
            "PATIENT_INSIGHTS_DASHBOARD_ROLE. Configure `[auth]` in .streamlit/secrets.toml for real users.",
            icon=":material/lock_open:",
        )
    if who.role == ANALYST:
        st.info(
            "De-identified view: names, contacts, identifiers, record ids and free text hidden, dates shown "
            "by month, file names that could name a person replaced by pseudonyms.",
            icon=":material/visibility_off:",
        )


def locations() -> data.Locations:
    """Where this session reads (from the environment)."""
    return data.Locations.from_env()


def version() -> str:
    """The lake's version: every cached read is keyed on it (its `at_version` argument: Streamlit leaves an
    argument whose name starts with `_` out of the key), so a new run or decision shows at once."""
    where = locations()
    return data.lake_version(where.lake, where.exports)


@st.cache_data(show_spinner=False, max_entries=64)
def _table(
    lake: str, at_version: str, layer: str, name: str, columns: tuple[str, ...] | None
) -> pl.DataFrame:
    return data.read(UPath(lake), layer, name, list(columns) if columns else None)


def read(name: str, columns: tuple[str, ...] | None = None, layer: str = data.GOLD) -> pl.DataFrame:
    """A lake table (selected columns), cached per lake version."""
    return _table(str(locations().lake), version(), layer, name, columns)


@st.cache_data(show_spinner=False, max_entries=4)
def _search_index(lake: str, at_version: str) -> pl.DataFrame:
    return data.search_index(UPath(lake))


def search_index() -> pl.DataFrame:
    """Everyone with the fields a care manager searches by, cached per lake version."""
    return _search_index(str(locations().lake), version())


@st.cache_data(show_spinner=False, max_entries=4)
def _outreach_index(exports: str, at_version: str) -> pl.DataFrame:
    return data.outreach_index(UPath(exports))


@st.cache_data(show_spinner=False, max_entries=256)
def _person(lake: str, exports: str, at_version: str, what: str, person_id: str) -> pl.DataFrame:
    if what == "results":
        return data.person_results(UPath(lake), person_id)
    if what == "device_days":
        return data.person_device_days(UPath(lake), person_id)
    if what == "outreach":
        index = _outreach_index(exports, at_version)
        return index.filter(pl.col("person_id") == person_id).drop("person_id").sort("run_id", "campaign")
    return data.person_rows(UPath(lake), what, person_id)


def person(what: str, person_id: str) -> pl.DataFrame:
    """One person's rows: a gold person table's name, or `results`, `device_days`, `outreach`."""
    where = locations()
    return _person(str(where.lake), str(where.exports), version(), what, person_id)


@st.cache_data(show_spinner=False, max_entries=64)
def _counts(lake: str, at_version: str, layer: str, name: str, by: tuple[str, ...]) -> pl.DataFrame:
    return data.counts(UPath(lake), layer, name, list(by))


def counts(name: str, by: tuple[str, ...], layer: str = data.GOLD) -> pl.DataFrame:
    """Rows of a table per value of `by` (a streaming count, cached per lake version)."""
    return _counts(str(locations().lake), version(), layer, name, by)


@st.cache_data(show_spinner=False, max_entries=8)
def _risk_sources(lake: str, at_version: str, table: str) -> list[data.RiskSource]:
    return [data.risk_source(UPath(lake), v) for v in data.risk_versions(UPath(lake), table)]


def risk_sources(table: str = "risk_scores") -> list[data.RiskSource]:
    """What scored the lake's persons (`risk_scores`) or recent discharges (`discharge_risk`): the model, or
    the clinical baseline, most rows first (cached)."""
    return _risk_sources(str(locations().lake), version(), table)


@st.cache_data(show_spinner=False, max_entries=16)
def _risk_source(lake: str, at_version: str, model_version: str) -> data.RiskSource:
    return data.risk_source(UPath(lake), model_version)


def risk_source(model_version: str) -> data.RiskSource:
    """What one score's `model_version` is, in words (cached)."""
    return _risk_source(str(locations().lake), version(), model_version)


@st.cache_data(show_spinner=False, max_entries=64)
def _care_gap_patients(lake: str, at_version: str, measure: str, status: str) -> pl.DataFrame:
    return data.care_gap_patients(UPath(lake), measure, status)


def care_gap_patients(measure: str, status: str) -> pl.DataFrame:
    """The persons with `measure` in `status`, most overdue first (cached)."""
    return _care_gap_patients(str(locations().lake), version(), measure, status)


@st.cache_data(show_spinner=False, max_entries=64)
def _turns(lake: str, at_version: str, conversation_id: str) -> pl.DataFrame:
    return data.conversation_turns(UPath(lake), conversation_id)


def conversation_turns(conversation_id: str) -> pl.DataFrame:
    """One conversation's turns (cached)."""
    return _turns(str(locations().lake), version(), conversation_id)


@st.cache_data(show_spinner=False, max_entries=8)
def _campaign_history(exports: str, at_version: str) -> pl.DataFrame:
    return data.campaign_history(UPath(exports))


def campaign_history() -> pl.DataFrame:
    """Every campaign run with its manifest counts, newest first."""
    return _campaign_history(str(locations().exports), version())


@st.cache_data(show_spinner=False, max_entries=8)
def _pipeline_runs(lake: str, at_version: str) -> list[dict]:
    return data.pipeline_runs(UPath(lake))


def pipeline_runs() -> list[dict]:
    """Recorded pipeline runs, newest first."""
    return _pipeline_runs(str(locations().lake), version())


@st.cache_data(show_spinner=False, max_entries=16)
def _shareable_terms(lake: str, at_version: str, terms: tuple[str, ...]) -> frozenset[str]:
    where = UPath(lake)
    return shareable_terms(data.term_persons(where, list(terms)), data.name_words(where))


def visible(frame: pl.DataFrame, who: Viewer) -> pl.DataFrame:
    """`frame` as `who` may see it (`access.mask`), with the terms taken from patients' texts vetted against
    the lake: every table and chart goes through here."""
    columns = [c for c in frame.columns if c in TEXT_DERIVED]
    if who.identifiable or not columns or frame.is_empty():
        return mask(frame, who)
    terms = set()
    for column in columns:
        values = frame[column]
        values = values.explode() if isinstance(values.dtype, pl.List) else values
        terms |= set(values.drop_nulls().cast(pl.String).to_list())
    return mask(frame, who, _shareable_terms(str(locations().lake), version(), tuple(sorted(terms))))


def show(
    frame: pl.DataFrame,
    who: Viewer,
    *,
    height: int | None = None,
    key: str | None = None,
    labels: dict[str, str] | None = None,
) -> None:
    """A sortable, filterable table of what `who` may see; `labels` gives columns headings in plain words
    (masking goes by the column names, so a page names its columns by their kind and labels them here)."""
    shown = visible(frame, who)
    config = {c: st.column_config.Column(label) for c, label in (labels or {}).items() if c in shown.columns}
    st.dataframe(
        shown, hide_index=True, width="stretch", height=height or "auto", key=key, column_config=config
    )


def identity_built() -> bool:
    """Has an identity build written its clerical-review table yet (the Identity review page's data)?"""
    return data.has_clerical_review(locations().lake)


@st.cache_data(show_spinner=False, max_entries=4)
def _review_queue(lake: str, at_version: str) -> pl.DataFrame:
    return data.review_queue(UPath(lake))


def review_queue() -> pl.DataFrame:
    """The clerical-review pairs nobody has decided yet, most probable first (cached; a decision changes
    the lake's version, so the queue refreshes at once)."""
    return _review_queue(str(locations().lake), version())


@st.cache_data(show_spinner=False, max_entries=4)
def _recent_decisions(lake: str, at_version: str) -> pl.DataFrame:
    return data.recent_decisions(UPath(lake))


def recent_decisions() -> pl.DataFrame:
    """The identity decisions in force, newest first, with the records' names (cached)."""
    return _recent_decisions(str(locations().lake), version())


@st.cache_data(show_spinner=False, max_entries=4)
def _review_counts(lake: str, at_version: str) -> data.ReviewCounts:
    return data.review_counts(UPath(lake))


def review_counts() -> data.ReviewCounts:
    """The clerical review in numbers (cached)."""
    return _review_counts(str(locations().lake), version())


def decide(unique_id_l: str, unique_id_r: str, decision: str, decided_by: str, note: str | None) -> None:
    """Record a person's decision on a pair of records: the dashboard's one write, and only through
    `record_decision` (the identity build honours it from its next run). Raises ValueError as it does."""
    record_decision(locations().lake, unique_id_l, unique_id_r, decision, decided_by, note)


def empty_state(what: str) -> None:
    """The friendly message of a page or section with no data yet."""
    st.info(f"No {what} yet. Run the pipeline (`make run`) and reload.", icon=":material/inbox:")
