"""Role masking on every dashboard page (issue 25): each page of the registry is rendered in the analyst role
and in the care-manager role, in every state a few clicks reach (each keyed text input filled, the first
options of every selectbox and radio, every multiselect with all its options, every toggle flipped), and
everything it sends to the browser - text, labels, table cells, chart data, JSON, downloads - is searched
for the identifying values of the demo lake: person and source patient ids, identifiers (MRN, SSN, …),
names, phones, e-mails, address lines, full birth dates, vendor user ids (the landing's device folders),
device ids, conversation and message ids, and marker words planted in patients' own texts
(dashboards/testing.py). The analyst must see none of them; the care manager must still see each kind
(masking is not "show nothing")."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboards.access import pseudonym_of
from dashboards.testing import (
    PERSONAL_MARKERS,
    captured_downloads,
    identifying_values,
    page_output,
    shown_values,
)
from tests.test_dashboard import SCRIPTS, open_page

OPTIONS_PER_WIDGET = 3
"""States per selectbox or radio: the one a page opens with and the next ones (every option of every widget
would multiply the runtime for the same columns)."""
SHOWN_TO_CARE_MANAGERS = (
    "person id",
    "identifier",
    "name",
    "contact",
    "birth date",
    "vendor user id",
    "record id",
    "free text",
)
"""Kinds the care manager's pages show somewhere (device ids appear on no page for anyone)."""


@pytest.fixture
def as_role(dashboard_lake: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable]:
    """Point the app at the demo lake with a role (and a fixed pseudonym key); the cache is cleared before
    and after."""

    def use(role: str) -> None:
        lake, exports = dashboard_lake
        monkeypatch.setenv("PATIENT_INSIGHTS_LAKE", str(lake))
        monkeypatch.setenv("PATIENT_INSIGHTS_EXPORTS", str(exports))
        monkeypatch.setenv("PATIENT_INSIGHTS_DASHBOARD_ROLE", role)
        monkeypatch.setenv("PATIENT_INSIGHTS_DASHBOARD_PSEUDONYM_KEY", "test-key")

    st.cache_data.clear()
    yield use
    st.cache_data.clear()


@pytest.fixture(scope="module")
def needles(dashboard_lake: tuple[Path, Path]) -> dict[str, set[str]]:
    lake, _ = dashboard_lake
    return identifying_values(lake, lake.parent / "landing")


@pytest.fixture(scope="module")
def writer(dashboard_lake: tuple[Path, Path]) -> str:
    """The person id of a patient who signed their texts with a marker: the Patient 360 page shows them."""
    lake, _ = dashboard_lake
    messages = pl.read_parquet(lake / "gold" / "sentiment_message" / "**" / "*.parquet")
    return messages.filter(pl.col("text").str.contains(PERSONAL_MARKERS[0]))["person_id"].sort()[0]


def explore(app: AppTest, inputs: dict[str, str]) -> list[tuple[str, str]]:
    """(state, output) of the page as opened and after each interaction (see the module's docstring)."""
    outputs: list[tuple[str, str]] = []
    with captured_downloads() as downloads:

        def record(state: str) -> None:
            assert not app.exception, (state, [e.value for e in app.exception])
            outputs.append((state, page_output(app, downloads)))
            downloads.clear()

        record("as opened")
        for box in list(app.text_input):
            if box.key in inputs:
                box.input(inputs[box.key]).run()
                record(f"text input {box.key} filled")
        for kind in ("selectbox", "radio"):
            for index in range(len(getattr(app, kind))):
                for option in range(1, OPTIONS_PER_WIDGET):
                    widgets = getattr(app, kind)
                    if index >= len(widgets) or option >= len(widgets[index].options):
                        break
                    widget = widgets[index]
                    if kind == "selectbox":
                        widget.select_index(option).run()
                    else:
                        widget.set_value(widget.options[option]).run()
                    record(f"{kind} {widget.label!r} option {option}")
        for index in range(len(app.multiselect)):
            widget = app.multiselect[index]
            most = widget.proto.max_selections or len(widget.options)
            widget.set_value(list(widget.options)[:most]).run()
            record(f"multiselect {widget.label!r} all")
        for index in range(len(app.toggle)):
            widget = app.toggle[index]
            widget.set_value(not widget.value).run()
            record(f"toggle {widget.label!r} flipped")
    return outputs


def render_every_state(script: str, inputs: dict[str, str]) -> list[tuple[str, str]]:
    return explore(open_page(script), inputs)


@pytest.mark.parametrize(("script", "title"), SCRIPTS)
def test_the_analyst_sees_no_identifying_value(
    script: str, title: str, as_role: Callable, needles: dict[str, set[str]], writer: str
) -> None:
    as_role("analyst")
    states = render_every_state(script, {"search": pseudonym_of(writer)})
    for state, output in states:
        assert "De-identified view" in output
        leaked = shown_values(output, needles)
        assert not leaked, (title, state, {kind: sorted(values)[:3] for kind, values in leaked.items()})
    if script == "views/patient.py":  # the search by pseudonym reached the person's page and its tabs
        assert any(pseudonym_of(writer) in output and "Timeline" in output for _, output in states)


def test_the_care_manager_still_sees_every_kind(
    as_role: Callable, needles: dict[str, set[str]], writer: str
) -> None:
    as_role("care_manager")
    seen: set[str] = set()
    for script, _ in SCRIPTS:
        for _, output in render_every_state(script, {"search": writer}):
            seen |= set(shown_values(output, needles))
    assert set(SHOWN_TO_CARE_MANAGERS) <= seen, sorted(set(SHOWN_TO_CARE_MANAGERS) - seen)


def test_the_analyst_cannot_search_by_name(dashboard_lake: tuple[Path, Path], as_role: Callable) -> None:
    lake, _ = dashboard_lake
    as_role("analyst")
    view = pl.read_parquet(lake / "gold" / "patient_360" / "**" / "*.parquet")
    family = view.drop_nulls("family").sort("person_id")["family"][0]
    app = open_page("views/patient.py")
    app.text_input(key="search").input(family).run()
    assert not app.exception and not app.selectbox
