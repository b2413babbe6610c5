"""The data card's plots, drawn from the column profiles stored with each data snapshot
(:mod:`rudikit.data.profile`): each used column's distribution (a histogram of a number or
date, the most frequent values of a category) and each column's share missing in every
snapshot of the source, as the RUDI guide attaches a data profile to each table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rudikit.reports.page import PALETTE

#: Panels per row of the distribution chart.
COLUMNS = 3
#: Category labels are cut to this many characters (the full one is in the hover).
LABEL = 18
#: At most this many columns are drawn per chart: a wide source (1,000 bag-of-words columns)
#: would otherwise make a page of thousands of subplots, slow to build and to open. The
#: Variables table still lists every column.
MAX_PANELS = 60


def _first(columns: list[str]) -> tuple[list[str], str]:
    """The first :data:`MAX_PANELS` columns, and a title note when some are left out."""
    if len(columns) <= MAX_PANELS:
        return columns, ""
    return columns[:MAX_PANELS], f" - the first {MAX_PANELS} of {len(columns)} columns"


def _short(text: str) -> str:
    return text if len(text) <= LABEL else text[:LABEL - 1] + "…"


def _panel(fig: go.Figure, profile: pd.Series, row: int, col: int) -> None:
    summary = profile["summary"] or {}
    if "edges" in summary and summary["counts"]:
        edges = np.asarray(summary["edges"], dtype=float)
        counts = np.asarray(summary["counts"])
        centre, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        if "unit" in summary:  # days since 1970: drawn as dates
            x = pd.to_datetime(centre, unit="D")
            width = width * 86_400_000  # a date axis counts milliseconds
        else:
            x = centre
        fig.add_trace(go.Bar(x=x, y=counts, width=width, marker_color=PALETTE[0],
                             showlegend=False, hovertemplate="%{x}: %{y:,}<extra></extra>"),
                      row=row, col=col)
        return
    values = list(summary.get("values", []))
    counts = list(summary.get("counts", []))
    if summary.get("other"):
        values.append(f"other ({profile['distinct_values'] - len(summary['values'])})")
        counts.append(summary["other"])
    fig.add_trace(go.Bar(y=[_short(v) for v in values][::-1], x=counts[::-1], orientation="h",
                         customdata=values[::-1], marker_color=PALETTE[0], showlegend=False,
                         hovertemplate="%{customdata}: %{x:,}<extra></extra>"),
                  row=row, col=col)


def distribution_figure(profiles: pd.DataFrame, columns: list[str]) -> go.Figure | None:
    """One small panel per column (in ``columns`` order): its histogram or top values, titled
    with its share missing. An identifier (a text column whose every value is distinct) has
    no distribution to show and is left out."""
    rows = profiles.set_index("column_name")
    identifier = (rows["kind"] == "text") & (rows["distinct_values"]
                                             >= rows["rows"] - rows["missing"])
    shown = [c for c in columns if c in rows.index and not identifier.get(c, False)]
    if not shown:
        return None
    shown, note = _first(shown)
    n_rows = math.ceil(len(shown) / COLUMNS)
    titles = [f"{_short(c)} ({rows.loc[c, 'missing'] / max(rows.loc[c, 'rows'], 1):.0%} "
              "missing)" for c in shown]
    fig = make_subplots(rows=n_rows, cols=COLUMNS, subplot_titles=titles,
                        horizontal_spacing=0.12, vertical_spacing=0.5 / max(n_rows, 1))
    for i, column in enumerate(shown):
        _panel(fig, rows.loc[column], i // COLUMNS + 1, i % COLUMNS + 1)
    fig.update_annotations(font={"size": 12})
    fig.update_yaxes(automargin=True, tickfont={"size": 10})
    fig.update_xaxes(tickfont={"size": 10}, nticks=5)
    fig.update_layout(title="Distribution of each column the project uses (rows; top values "
                            "of a category, the rest as \"other\")" + note,
                      height=120 + 230 * n_rows, bargap=0.05)
    return fig


def missing_figure(profiles: pd.DataFrame, columns: list[str],
                   snapshots: dict[int, str]) -> go.Figure | None:
    """Share of rows missing per column (``columns`` with a missing value in any snapshot),
    one bar per snapshot of the source (``snapshots``: id -> label, oldest first)."""
    rows = profiles[profiles["column_name"].isin(columns)
                    & profiles["snapshot_id"].isin(list(snapshots))]
    if not len(rows):
        return None
    rows = rows.assign(share=rows["missing"] / rows["rows"].clip(lower=1))
    missing = rows.groupby("column_name")["share"].max()
    ordered = [c for c in columns if missing.get(c, 0) > 0]
    if not ordered:
        return None
    if len(ordered) > MAX_PANELS:  # the most missing ones, in the columns' order
        most = set(missing[ordered].nlargest(MAX_PANELS).index)
        ordered, note = [c for c in ordered if c in most], (
            f" - the {MAX_PANELS} most missing of {len(ordered)} columns")
    else:
        note = ""
    fig = go.Figure()
    for i, (snapshot_id, label) in enumerate(snapshots.items()):
        part = rows[rows["snapshot_id"] == snapshot_id].set_index("column_name")
        part = part.reindex([c for c in ordered if c in part.index])
        if not len(part):
            continue
        fig.add_trace(go.Bar(y=part.index[::-1], x=part["share"][::-1], orientation="h",
                             name=label, marker_color=PALETTE[i % len(PALETTE)],
                             customdata=np.c_[part["missing"][::-1], part["rows"][::-1]],
                             hovertemplate="%{y}: %{x:.1%} (%{customdata[0]:,} of "
                                           "%{customdata[1]:,})<extra></extra>"))
    fig.update_layout(title="Share of rows missing, per column and snapshot of this source"
                            + note,
                      barmode="group", showlegend=True,  # names the snapshot, even one
                      xaxis={"tickformat": ".0%", "rangemode": "tozero"},
                      yaxis={"automargin": True},
                      height=140 + 18 * len(ordered) * max(len(fig.data), 1))
    return fig
