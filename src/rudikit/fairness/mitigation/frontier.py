"""Fairness-versus-performance frontier of per-group thresholds, and its figure."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from rudikit.fairness.mitigation.optimizer import GroupThresholdOptimizer

DEFAULT_TOLERANCES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 1.0)


def frontier(
    scores: Any,
    y: Any,
    groups: Any,
    objective: str = "accuracy",
    constraint: str = "demographic_parity",
    tolerances: Iterable[float] = DEFAULT_TOLERANCES,
    *,
    gap: str = "max_pairwise",
    top_k: int | None = None,
    top_pct: float | None = None,
    min_group_size: int = 30,
    grid_size: int = 500,
    n_targets: int = 200,
) -> pd.DataFrame:
    """Fairness-versus-performance frontier: one fit per tolerance plus the unmitigated point.

    Columns: kind ("unmitigated" for the group-blind threshold, else "mitigated"), tolerance,
    achieved_gap (on the training data), objective_value, constraint_satisfied, thresholds.
    Sorting and candidate grids are computed once and shared by all tolerances.
    """
    tolerances = [float(t) for t in tolerances]
    if not tolerances:
        raise ValueError("tolerances: give at least one tolerance")
    est = GroupThresholdOptimizer(
        objective=objective,
        constraint=constraint,
        tolerance=tolerances[0],
        gap=gap,
        top_k=top_k,
        top_pct=top_pct,
        min_group_size=min_group_size,
        grid_size=grid_size,
        n_targets=n_targets,
    )
    prep, names = est._prepare_inputs(scores, y, groups, est._validated())
    rows: list[dict[str, Any]] = []
    for tol in tolerances:
        est.set_params(tolerance=tol)
        params = est._validated()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            est._fit_prepared(prep, params)
        if not rows:
            rows.append(
                {
                    "kind": "unmitigated",
                    "tolerance": np.nan,
                    "achieved_gap": est.baseline_["achieved_gap"],
                    "objective_value": est.baseline_["objective_value"],
                    "constraint_satisfied": np.nan,
                    "thresholds": dict.fromkeys(names, est.baseline_["threshold"]),
                }
            )
        rows.append(
            {
                "kind": "mitigated",
                "tolerance": tol,
                "achieved_gap": est.achieved_gap_,
                "objective_value": est.objective_value_,
                "constraint_satisfied": est.constraint_satisfied_,
                "thresholds": dict(est.thresholds_),
            }
        )
    frame = pd.DataFrame(rows)
    frame.attrs.update(
        {"objective": params["objective"], "constraint": params["constraint"], "gap": gap}
    )
    return frame


def frontier_figure(frame: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Plot a :func:`frontier` frame: x = achieved gap, y = objective, unmitigated marked."""
    for col in ("kind", "tolerance", "achieved_gap", "objective_value"):
        if col not in frame.columns:
            raise ValueError(f"frame: missing column {col!r}; pass the output of frontier()")
    objective = frame.attrs.get("objective", "objective")
    constraint = frame.attrs.get("constraint", "constraint")
    gap = frame.attrs.get("gap", "max_pairwise")
    mitigated = frame[frame["kind"] == "mitigated"].sort_values("achieved_gap")
    base = frame[frame["kind"] == "unmitigated"]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=mitigated["achieved_gap"],
            y=mitigated["objective_value"],
            mode="lines+markers",
            name="per-group thresholds",
            text=[f"tolerance {t:g}" for t in mitigated["tolerance"]],
            hovertemplate="%{text}<br>gap %{x:.4f}<br>" + objective + " %{y:.4f}<extra></extra>",
        )
    )
    if not base.empty:
        fig.add_trace(
            go.Scatter(
                x=base["achieved_gap"],
                y=base["objective_value"],
                mode="markers+text",
                name="unmitigated (one threshold)",
                marker={"symbol": "star", "size": 14, "color": "crimson"},
                text=["unmitigated"],
                textposition="top center",
                hovertemplate="unmitigated<br>gap %{x:.4f}<br>"
                + objective
                + " %{y:.4f}<extra></extra>",
            )
        )
    label = "largest pairwise gap" if gap == "max_pairwise" else "largest gap to overall"
    fig.update_layout(
        title=title or f"Fairness-performance frontier ({constraint})",
        xaxis_title=f"achieved {label} ({constraint.replace('_', ' ')})",
        yaxis_title=objective.replace("_", " "),
        template="plotly_white",
    )
    return fig
