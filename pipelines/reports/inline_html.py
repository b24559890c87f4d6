"""Charts as self-contained HTML (nothing fetched when the page is opened), without paying for the
JavaScript bundle on every run.

Altair inlines Vega, Vega-Lite and vega-embed by asking vl-convert to bundle them, which takes about 1.2 s
the first time in each process, whatever the chart: a fixed cost every pipeline run paid for its one weekly
report. The bundle depends only on the vl-convert and Vega-Lite versions, so it is kept in the user's cache
folder (`$XDG_CACHE_HOME/patient-insights`, else `~/.cache/patient-insights`) under a name holding both, and
read from there afterwards (milliseconds). Where that folder cannot be written, the bundle is simply built.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import altair as alt

CACHE_ENV = "XDG_CACHE_HOME"


def inline_html(chart: alt.TopLevelMixin) -> str:
    """The chart as a full HTML page with its JavaScript inlined (as `chart.to_html(inline=True)`)."""
    return chart.to_html(template=_InlineTemplate(_bundle()))


class _InlineTemplate:
    """Altair's inline page template with the bundle already in hand (altair accepts any object with a
    `render` method as the template)."""

    def __init__(self, script: str) -> None:
        self.script = script

    def render(self, **fields: Any) -> str:
        from altair.utils.html import TEMPLATES

        return TEMPLATES["inline"].render(vegaembed_script=self.script, **fields)


@cache
def _bundle() -> str:
    import vl_convert
    from altair.utils._importers import vl_version_for_vl_convert

    vl_version = vl_version_for_vl_convert()
    folder = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache") / "patient-insights"
    path = folder / f"vega-embed-bundle-{vl_convert.__version__}-{vl_version}.js"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    script = vl_convert.javascript_bundle(vl_version=vl_version)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(script, encoding="utf-8")
        os.replace(temporary, path)  # whole or absent: a reader never sees half a bundle
    except OSError:
        pass  # a read-only home: build it next time too
    return script
