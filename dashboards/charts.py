"""Altair charts the pages share (hover tooltips, zoom and pan where time is on the x axis). A chart's data
travels to the browser whole (tooltips), so every chart masks its frame for the viewer first, as tables do."""

from __future__ import annotations

import altair as alt
import polars as pl
import streamlit as st

from dashboards.access import Viewer
from dashboards.ui import visible


def draw(chart: alt.TopLevelMixin) -> None:
    """Render a chart across the page width."""
    st.altair_chart(chart, width="stretch")


TIER_COLORS = alt.Scale(domain=["high", "medium", "low"], range=["#d62728", "#ff9f1c", "#4c78a8"])


def bars(
    frame: pl.DataFrame,
    x: str,
    y: str,
    *,
    who: Viewer,
    title: str,
    color: str | None = None,
    fmt: str = "",
    scale: alt.Scale | None = None,
) -> None:
    """A bar chart of `y` by `x` with tooltips."""
    frame = visible(frame, who)
    encoding = {
        "x": alt.X(x, sort=None, title=None),
        "y": alt.Y(y, title=title, axis=alt.Axis(format=fmt) if fmt else alt.Axis()),
        "tooltip": [c for c in frame.columns],
    }
    if color:
        encoding["color"] = alt.Color(color, title=None, scale=scale or alt.Undefined)
    draw(alt.Chart(frame).mark_bar().encode(**encoding).properties(height=260))


def lines(
    frame: pl.DataFrame,
    x: str,
    y: str,
    *,
    who: Viewer,
    color: str,
    title: str,
    band: tuple[str, str] | None = None,
    fmt: str = "",
) -> None:
    """Lines of `y` over `x` per `color`, with an optional interval band; zoom and pan on x."""
    frame = visible(frame, who)
    base = alt.Chart(frame).encode(x=alt.X(x, title=None), color=alt.Color(color, title=None))
    layers = [
        base.mark_line(point=True).encode(
            y=alt.Y(y, title=title, axis=alt.Axis(format=fmt) if fmt else alt.Axis()),
            tooltip=[c for c in frame.columns],
        )
    ]
    if band:
        layers.insert(0, base.mark_area(opacity=0.15).encode(y=band[0], y2=band[1]))
    draw(alt.layer(*layers).properties(height=300).interactive(bind_y=False))


def estimates(
    frame: pl.DataFrame, label: str, value: str, low: str, high: str, *, who: Viewer, title: str
) -> None:
    """Point estimates with their intervals, one row per `label`, and a rule at zero (no effect)."""
    frame = visible(frame, who)
    base = alt.Chart(frame).encode(y=alt.Y(label, title=None, sort=None))
    tooltip = [c for c in frame.columns]
    layers = [
        alt.Chart(pl.DataFrame({"zero": [0.0]})).mark_rule(strokeDash=[4, 4], color="gray").encode(x="zero"),
        base.mark_rule(strokeWidth=2).encode(
            x=alt.X(low, title=title, axis=alt.Axis(format="+.0%")), x2=high, tooltip=tooltip
        ),
        base.mark_point(filled=True, size=90).encode(x=value, tooltip=tooltip),
    ]
    draw(alt.layer(*layers).properties(height=max(90, 60 * frame.height)))
