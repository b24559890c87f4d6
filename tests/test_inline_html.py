"""The sentiment report's charts: the same self-contained page as altair's own inline HTML, the JavaScript
bundle built once and then read from the user's cache folder, and built anyway where that cannot be
written."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import polars as pl
import pytest

from pipelines.reports import inline_html as module


@pytest.fixture
def chart() -> alt.Chart:
    return (
        alt.Chart(pl.DataFrame({"week": [1, 2], "score": [0.2, -0.1]}))
        .mark_line()
        .encode(x="week", y="score")
    )


def test_the_page_equals_altairs_inline_page_and_the_bundle_is_cached(
    chart: alt.Chart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(module.CACHE_ENV, str(tmp_path))
    module._bundle.cache_clear()
    page = module.inline_html(chart)
    assert page == chart.to_html(inline=True)
    assert "cdn.jsdelivr" not in page.split("<body>")[-1].split("vegaEmbed")[0]  # nothing fetched
    cached = list((tmp_path / "patient-insights").glob("vega-embed-bundle-*.js"))
    assert len(cached) == 1 and cached[0].stat().st_size > 100_000
    cached[0].write_text("/* the cached bundle */", encoding="utf-8")  # read from there next time
    module._bundle.cache_clear()
    assert "/* the cached bundle */" in module.inline_html(chart)


def test_an_unwritable_cache_folder_only_costs_building_the_bundle(
    chart: alt.Chart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    monkeypatch.setenv(module.CACHE_ENV, str(blocked))
    module._bundle.cache_clear()
    assert module.inline_html(chart) == chart.to_html(inline=True)
    module._bundle.cache_clear()
