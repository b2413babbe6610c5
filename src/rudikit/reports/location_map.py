"""The hexagon map of searches and success rates per H3 cell, on plain longitude/latitude axes
(no tile server, so the report works offline): one hexagon marker per cell at its centre, its
size growing with the searches and its colour the success rate. Drawn from the stored figures:
the chosen model's training rows (run report) or the production window (monitor report)."""

from __future__ import annotations

import math

import h3
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from rudikit.evaluation.location_cells import SEARCHES, SUCCESS_RATE


def training_cells(evals: pd.DataFrame, model_id: int) -> pd.DataFrame:
    """``cell``, ``searches``, ``success_rate`` of a model's training rows, from its stored
    evaluations (:mod:`rudikit.evaluation.location_cells`); empty when none were stored."""
    rows = evals[(evals["model_id"] == model_id)
                 & evals["metric"].isin([SEARCHES, SUCCESS_RATE])] if len(evals) else evals
    if not len(rows):
        return pd.DataFrame(columns=["cell", "searches", "success_rate"])
    wide = rows.pivot_table(index="parameter", columns="metric", values="value",
                            aggfunc="first")
    wide = wide.rename(columns={SEARCHES: "searches", SUCCESS_RATE: "success_rate"})
    return wide.rename_axis("cell").reset_index()[["cell", "searches", "success_rate"]]


def cell_map_figure(cells: pd.DataFrame, title: str) -> go.Figure | None:
    """The map of ``cells`` (``cell``, ``searches``, ``success_rate``), None when empty."""
    if not len(cells):
        return None
    centres = np.array([h3.cell_to_latlng(c) for c in cells["cell"]])
    searches = cells["searches"].to_numpy(dtype=float)
    size = 6 + 24 * np.sqrt(searches / searches.max())
    fig = go.Figure(go.Scatter(
        x=centres[:, 1], y=centres[:, 0], mode="markers",
        marker={"symbol": "hexagon", "size": size, "color": cells["success_rate"],
                "colorscale": "Viridis", "colorbar": {"title": "success rate"},
                "line": {"width": 0.5, "color": "white"}},
        customdata=np.column_stack([cells["cell"], searches, cells["success_rate"]]),
        hovertemplate="cell %{customdata[0]}<br>%{customdata[1]:,} searches<br>"
                      "success rate %{customdata[2]:.1%}<extra></extra>",
        name="H3 cells"))
    # a degree of longitude is cos(latitude) of a degree of latitude: keep the map's shape
    middle = float(np.median(centres[:, 0]))
    fig.update_yaxes(title="latitude", scaleanchor="x",
                     scaleratio=1 / max(math.cos(math.radians(middle)), 0.1))
    fig.update_xaxes(title="longitude")
    fig.update_layout(title=f"{title}: {int(searches.sum()):,} searches in {len(cells):,} "
                            f"cells (size: searches, colour: success rate)", height=640)
    return fig
