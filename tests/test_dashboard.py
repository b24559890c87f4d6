"""The dashboard with Streamlit's AppTest: every page on a generated lake and on an empty one, search and
filters. The analyst's de-identified view is tested on every page in tests/test_dashboard_masking.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboards.pages import PAGES

APP = Path(__file__).resolve().parents[1] / "dashboards" / "app.py"
SCRIPTS = [(f"views/{script}", title) for script, title, _, _ in PAGES]
TIMEOUT_S = 120


@pytest.fixture
def use_lake(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Point the app at a lake with a role; the cache is cleared before and after."""

    def use(lake: Path, exports: Path, role: str = "care_manager") -> None:
        monkeypatch.setenv("PATIENT_INSIGHTS_LAKE", str(lake))
        monkeypatch.setenv("PATIENT_INSIGHTS_EXPORTS", str(exports))
        monkeypatch.setenv("PATIENT_INSIGHTS_DASHBOARD_ROLE", role)

    st.cache_data.clear()
    yield use
    st.cache_data.clear()


def open_page(script: str) -> AppTest:
    """The app, switched to the page `script` and run."""
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    app.run()
    if script != SCRIPTS[0][0]:
        app.switch_page(script)
        app.run()
    return app


def texts(app: AppTest) -> str:
    """Every text the page shows: headings, markdown, metrics, alerts, options and table cells."""
    parts: list[str] = []
    for kind in ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success", "text"):
        parts += [str(e.value) for e in getattr(app, kind)]
    parts += [f"{m.label} {m.value}" for m in app.metric]
    for widget in (*app.selectbox, *app.multiselect, *app.radio):
        parts += [str(o) for o in widget.options]
    for frame in app.dataframe:
        parts.append(frame.value.to_csv(index=False))
    parts += [str(j.value) for j in app.json]
    return "\n".join(parts)


@pytest.mark.parametrize(("script", "title"), SCRIPTS)
def test_every_page_renders_on_a_generated_lake(script: str, title: str, dashboard_lake, use_lake) -> None:
    use_lake(*dashboard_lake)
    app = open_page(script)
    assert not app.exception, [e.value for e in app.exception]
    assert [t.value for t in app.title] == [title]
    assert any("Local mode" in w.value for w in app.warning)  # the local-mode banner


@pytest.mark.parametrize(("script", "title"), SCRIPTS)
def test_every_page_has_a_friendly_empty_state(script: str, title: str, tmp_path: Path, use_lake) -> None:
    use_lake(tmp_path / "lake", tmp_path / "exports")
    app = open_page(script)
    assert not app.exception, [e.value for e in app.exception]
    assert [t.value for t in app.title] == [title]
    assert any("No " in i.value and "make run" in i.value for i in app.info), texts(app)


def _someone(lake: Path) -> dict:
    view = pl.read_parquet(lake / "gold" / "patient_360" / "**" / "*.parquet")
    return view.drop_nulls(["given", "family", "birth_date"]).sort("person_id").row(0, named=True)


def test_search_finds_a_known_patient_by_name_birth_date_and_mrn(dashboard_lake, use_lake) -> None:
    lake, exports = dashboard_lake
    use_lake(lake, exports)
    person = _someone(lake)
    mrns = pl.read_parquet(lake / "silver" / "patient_identifier" / "**" / "*.parquet").filter(
        pl.col("type_code") == "MR"
    )
    links = pl.read_parquet(lake / "identity" / "person_link" / "**" / "*.parquet")
    mrn = (
        mrns.join(links, left_on=["source", "patient_id"], right_on=["source", "source_patient_id"])
        .filter(pl.col("person_id") == person["person_id"])["value"]
        .item(0)
    )
    app = open_page("views/patient.py")
    for query in (f"{person['family'][:4]} {person['given'].split()[0]}", person["birth_date"], mrn):
        app.text_input(key="search").input(query).run()
        assert not app.exception, [e.value for e in app.exception]
        options = [str(o) for o in app.selectbox[0].options]
        assert any(person["family"] in o and person["birth_date"] in o for o in options), (query, options[:3])
    # the first match is shown with its header card and tabs
    assert any(person["family"] in s.value for s in app.subheader)
    app.text_input(key="search").input("zzzz-nobody").run()
    assert any("Nobody matches" in w.value for w in app.warning)


def test_filters_change_the_tables(dashboard_lake, use_lake) -> None:
    use_lake(*dashboard_lake)
    app = open_page("views/care_gaps.py")
    drill = {}
    for status in ("open-gap", "closed-gap"):
        app.selectbox(key="measure").select("FLU").run()
        app.selectbox(key="status").select(status).run()
        drill[status] = len(app.dataframe[1].value)
    assert drill["open-gap"] != drill["closed-gap"] and max(drill.values()) > 0
    outreach = open_page("views/outreach.py")
    outreach.selectbox(key="campaign").select("flu_vaccine_reminder").run()
    everyone = len(outreach.dataframe[0].value)
    outreach.multiselect(key="channels").select("email").unselect("sms").unselect("mail").run()
    emails = len(outreach.dataframe[0].value)
    assert 0 < emails < everyone


def test_tables_offer_no_csv_download_that_would_bypass_formula_neutralization() -> None:
    """Streamlit's table toolbar writes its own CSV, with formula-leading cells as they are (issue 25)."""
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml").read_text())
    assert config["client"]["disableDataExport"] is True


def test_every_cached_read_is_keyed_on_the_lake_version() -> None:
    """Streamlit leaves arguments named `_…` out of a cached function's key: a version passed as one would
    never refresh anything (every read kept its first answer until the server restarted)."""
    import inspect

    from dashboards import ui

    cached = [f for f in vars(ui).values() if callable(f) and hasattr(f, "clear")]  # st.cache_data's
    assert len(cached) >= 10
    for function in cached:
        parameters = inspect.signature(function).parameters
        assert "at_version" in parameters, function
        assert not [p for p in parameters if p.startswith("_")], function


@pytest.mark.parametrize("script", ["views/overview.py", "views/care_gaps.py"])
def test_measures_segments_and_statuses_are_shown_in_words(script: str, dashboard_lake, use_lake) -> None:
    """A care manager reads 'Adult influenza vaccination' and 'open', never FLU, open-gap or open_gap_flu:
    in headings, options, table cells and chart data alike (everything the page sends to the browser)."""
    import re

    from dashboards.testing import page_output
    from pipelines.measures.definitions import measure_titles
    from pipelines.segments.engine import segment_titles

    lake, exports = dashboard_lake
    use_lake(lake, exports)
    app = open_page(script)
    assert not app.exception, [e.value for e in app.exception]
    output = page_output(app)
    rates = pl.read_parquet(lake / "gold" / "care_gap_rates" / "**" / "*.parquet")
    shown = rates.drop_nulls("rate")["measure_id"].to_list()  # a measure with no denominator has no bar
    titles = measure_titles()
    assert shown and [m for m in shown if titles[m] not in output] == []
    assert not [m for m in shown if re.search(rf"\b{m}\b", output)]
    assert not re.search(r"\b(?:open|closed|prospective)-gap\b|not-applicable", output)
    if script.endswith("care_gaps.py"):
        segments = segment_titles()
        assert any(title in output for title in segments.values())
        assert not [s for s in segments if re.search(rf"\b{s}\b", output)]


@pytest.mark.parametrize("role", ["care_manager", "analyst"])
def test_the_patient_page_says_the_readmission_risk_after_a_recent_stay(
    role: str, dashboard_lake, use_lake, monkeypatch
) -> None:
    """The Risk tab of a patient discharged in the last 30 days says in words how likely a return is, what
    scored it and, when they came back already, when; the overview counts the recent stays by tier and
    names the scorer. The care manager reads the days, the analyst their months; no one sees the stay's
    id."""
    from dashboards.access import pseudonym_of

    lake, exports = dashboard_lake
    use_lake(lake, exports, role)
    monkeypatch.setenv("PATIENT_INSIGHTS_DASHBOARD_PSEUDONYM_KEY", "test-key")
    discharges = pl.read_parquet(lake / "gold" / "discharge_risk" / "**" / "*.parquet")
    assert set(discharges["model_version"]) == {"baseline:lace"}  # no readmission model in the demo lake
    stay = discharges.sort("returned_on", "person_id", nulls_last=True).row(0, named=True)
    assert stay["returned_on"] is not None  # the demo lake has a patient who came back
    app = open_page("views/patient.py")
    person = stay["person_id"] if role == "care_manager" else pseudonym_of(stay["person_id"])
    app.text_input(key="search").input(person).run()
    assert not app.exception, [e.value for e in app.exception]
    shown = texts(app)
    ended, back = stay["discharged_on"], stay["returned_on"]
    if role == "care_manager":
        ended_words, back_words = f"{ended.day} {ended:%b %Y}", f"on {back.day} {back:%b %Y}"
    else:
        ended_words, back_words = f"in {ended:%b %Y}", f"in {back:%b %Y}"
        assert f"{ended.day} {ended:%b %Y}" not in shown
    assert (
        f"Readmission risk after the hospital stay that ended {ended_words}: **{stay['tier']}** "
        f"({stay['points']} LACE point{'' if stay['points'] == 1 else 's'}) — scored by the LACE index"
        in shown
    )
    assert f"Came back to hospital {back_words}." in shown
    assert stay["reasons"][0] in shown and "Clinical baseline (LACE index)" in shown
    assert stay["encounter_id"] not in shown
    overview = open_page("views/overview.py")
    summary = texts(overview)
    assert f"**{discharges.height}** hospital stays ended in the last 30 days" in summary
    assert "Clinical baseline (LACE index)" in summary
