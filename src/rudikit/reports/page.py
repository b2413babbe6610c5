"""The machinery every HTML page of rudikit shares: the templates, the colours and plotly
figures inlined so a page works with no internet access."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import plotly.express as px
import plotly.graph_objects as go
from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"


PALETTE = px.colors.qualitative.Plotly


def environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES),
                       autoescape=select_autoescape(["html", "j2"]))


@dataclass
class Figure:
    title: str
    html: str


def figure_html(fig: go.Figure, first: bool) -> str:
    """Plotly's JS is inlined once per page, so the report works with no internet access."""
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
                      margin={"t": 50})
    return fig.to_html(full_html=False, include_plotlyjs=bool(first),
                       config={"displaylogo": False})


class PlotlyPage:
    """The figures of one HTML page, in page order: plotly's JS goes in with the first only."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, fig: go.Figure) -> Figure:
        html = figure_html(fig, self.count == 0)
        self.count += 1
        return Figure(fig.layout.title.text or "", html)
