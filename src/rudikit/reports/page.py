"""The machinery every HTML page of rudikit shares: the templates, the colours and plotly
figures inlined so a page works with no internet access."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
from jinja2 import Environment, FileSystemLoader, select_autoescape

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


def figure_html(fig: go.Figure, first: bool, div_id: str | None = None) -> str:
    """Plotly's JS is inlined once per page (before the first figure), so the report works
    with no internet access; every other figure refers to it. ``div_id`` (plotly draws a
    random one) makes a page the same byte for byte each time it is built."""
    if fig.layout.legend.y is None:  # a figure may place its own (a tall one, nearer)
        fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0})
    fig.update_layout(margin={"t": 50})
    lean_template(fig)
    return fig.to_html(full_html=False, include_plotlyjs=bool(first), div_id=div_id,
                       config={"displaylogo": False})


class PlotlyPage:
    """The figures of one HTML page, in page order: plotly's JS goes in with the first only."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, fig: go.Figure) -> Figure:
        html = figure_html(fig, self.count == 0, f"figure-{self.count + 1}")
        self.count += 1
        return Figure(fig.layout.title.text or "", html)
