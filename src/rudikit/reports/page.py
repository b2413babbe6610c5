"""The machinery every HTML page of rudikit shares: the templates, the colours and plotly
figures inlined so a page works with no internet access."""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
from jinja2 import Environment, FileSystemLoader, select_autoescape
from plotly.offline import get_plotlyjs, get_plotlyjs_version

from rudikit.evaluation import display

TEMPLATES = Path(__file__).parent / "templates"


PALETTE = px.colors.qualitative.Plotly


def environment() -> Environment:
    """The templates, with :mod:`rudikit.evaluation.display`'s formats as filters (``num``,
    ``count``, ``threshold``, ``day``, ``when``, ``metric``), so pages format figures one way."""
    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(["html", "j2"]))
    env.filters.update(num=display.number, count=display.count, threshold=display.threshold,
                       day=display.day, when=display.when, metric=display.metric_name)
    return env


@dataclass
class Figure:
    title: str
    html: str


#: Template settings that style only maps, 3D scenes, polar and ternary charts.
NON_CARTESIAN = ("geo", "polar", "scene", "ternary")


def lean_template(fig: go.Figure) -> None:
    """Keep only the template's styles for what ``fig`` draws: plotly puts the whole template
    (7 kB, mostly defaults for some fifty trace types and for maps, 3D scenes, polar and
    ternary charts) into every figure, and styles of things not drawn change nothing."""
    template = fig.layout.template
    used = {trace.type for trace in fig.data}
    layout = template.layout.to_plotly_json()
    if all("xaxis" in trace for trace in fig.data):  # x-y charts only
        layout = {key: value for key, value in layout.items() if key not in NON_CARTESIAN}
    fig.layout.template = go.layout.Template(
        layout=layout,
        data={kind: styles for kind, styles in template.data.to_plotly_json().items()
              if kind in used})


def single_precision(fig: go.Figure) -> None:
    """Draw real numbers in single precision: seven significant digits are more than any chart
    or hover shows, and they halve what a page carries per point."""
    for trace in fig.data:
        for owner, key in [(trace, "x"), (trace, "y"), *[
                (trace[bar], key) for bar in ("error_x", "error_y") if bar in trace
                for key in ("array", "arrayminus")]]:
            value = owner[key]
            if isinstance(value, np.ndarray) and value.dtype == np.float64:
                owner[key] = value.astype(np.float32)


@cache
def plotly_loader() -> str:
    """plotly.js inlined gzipped (4.8 MB of JavaScript is 2.0 MB as gzip + base64) and inflated
    by the browser's own ``DecompressionStream`` (Chromium 80, Firefox 113, Safari 16.4 and
    later): plotly.js alone would use all but 0.2 MB of a report's 5 MB budget. Figures wait
    on ``rudiPlotly``. ``mtime=0`` keeps a rebuilt page the same byte for byte."""
    packed = base64.b64encode(gzip.compress(get_plotlyjs().encode(), 9, mtime=0)).decode()
    return (f"<!-- plotly.js v{get_plotlyjs_version()} (gzip + base64, "
            "inflated in the browser; works offline) -->\n<script>window.rudiPlotly = (async "
            "() => { const bytes = Uint8Array.from(atob(\"" + packed + "\"), c => "
            "c.charCodeAt(0)); const text = await new Response(new Blob([bytes]).stream()"
            ".pipeThrough(new DecompressionStream('gzip'))).text(); const script = "
            "document.createElement('script'); script.text = text; "
            "document.head.appendChild(script); return window.Plotly; })();</script>\n")


def figure_html(fig: go.Figure, first: bool, div_id: str) -> str:
    """A figure's ``<div>`` and the script that draws it once plotly.js is ready; the first
    figure of a page carries plotly.js itself (:func:`plotly_loader`), so the page works with no
    internet access. ``div_id`` (plotly draws a random one) makes a page the same byte for
    byte each time it is built."""
    if fig.layout.legend.y is None:  # a figure may place its own (a tall one, nearer)
        fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0})
    fig.update_layout(margin={"t": 50})
    lean_template(fig)
    spec = json.loads(fig.to_json())  # plotly's encoder: numpy arrays as base64 typed arrays

    def script_safe(value: object) -> str:  # "</script>" inside a label must not end the tag
        return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")

    config = {"displaylogo": False, "responsive": True}
    return ((plotly_loader() if first else "")
            + f'<div id="{div_id}" class="plotly-graph-div" style="height:100%; width:100%;">'
            f'</div>\n<script>rudiPlotly.then(() => Plotly.newPlot("{div_id}", '
            f'{script_safe(spec.get("data", []))}, {script_safe(spec.get("layout", {}))}, '
            f"{script_safe(config)}));</script>\n")


class PlotlyPage:
    """The figures of one HTML page, in page order: plotly's JS goes in with the first only."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, fig: go.Figure) -> Figure:
        html = figure_html(fig, self.count == 0, f"figure-{self.count + 1}")
        self.count += 1
        return Figure(fig.layout.title.text or "", html)
