"""Timechop splits shown to a person: one row per split (``rudi splits``) and a figure of every
training and test as-of date with its label window. The splits themselves come from
:func:`rudikit.config.timechop.chop_time`, which the project file is validated with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from rudikit.config.timechop import Split, Timechop, stamp


def splits_table(splits: Sequence[Split]) -> pd.DataFrame:
    """One row per split: its boundary and the span and count of its train and test dates."""
    return pd.DataFrame([{
        "split": s.name, "split_time": s.split_time,
        "train_first": s.train.first_as_of_time, "train_last": s.train.last_as_of_time,
        "train_as_of_dates": len(s.train.as_of_dates),
        "train_label_timespan": s.train.label_timespan,
        "test_first": s.test.first_as_of_time, "test_last": s.test.last_as_of_time,
        "test_as_of_dates": len(s.test.as_of_dates),
        "test_label_end": s.test.matrix_info_end_time,
    } for s in splits])


def plot_splits(splits: Sequence[Split], chop: Timechop | None = None,
                title: str = "Temporal cross-validation splits") -> Any:
    """A plotly figure of the splits: one band per split, each training (blue) and test
    (orange) as-of date a dot with its label window drawn as a line after it, and the split
    time dashed; with ``chop``, the feature and label time limits too."""
    import plotly.graph_objects as go

    fig = go.Figure()
    styles = {"train": ("#1f77b4", 0.08, 0.42), "test": ("#ff7f0e", -0.42, -0.08)}
    for kind, (color, low, high) in styles.items():
        lx: list[Any] = []
        ly: list[Any] = []
        dx: list[Any] = []
        dy: list[Any] = []
        text: list[str] = []
        for row, split in enumerate(splits):
            matrices = [split.train] if kind == "train" else list(split.tests)
            for matrix in matrices:
                windows = matrix.label_windows()
                n = len(windows)
                for k, (begin, end) in enumerate(windows):
                    y = row + low + (high - low) * (k + 0.5) / n
                    lx += [begin, end, None]
                    ly += [y, y, None]
                    dx.append(begin)
                    dy.append(y)
                    text.append(f"{split.name}<br>{kind} as-of {begin:%Y-%m-%d}<br>"
                                f"label window to {end:%Y-%m-%d} ({matrix.label_timespan})")
        fig.add_trace(go.Scatter(x=lx, y=ly, mode="lines", name=f"{kind} label windows",
                                 line={"color": color, "width": 2}, opacity=0.5,
                                 hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=dx, y=dy, mode="markers", name=f"{kind} as-of dates",
                                 marker={"color": color, "size": 5}, text=text,
                                 hoverinfo="text"))
    for row, split in enumerate(splits):
        fig.add_shape(type="line", x0=split.split_time, x1=split.split_time, y0=row - 0.48,
                      y1=row + 0.48, line={"color": "black", "dash": "dash", "width": 1})
    if chop is not None:
        limits: dict[pd.Timestamp, list[str]] = {}
        for label, value in (("feature start", chop.feature_start_time),
                             ("feature end", chop.feature_end_time),
                             ("label start", chop.label_start_time),
                             ("label end", chop.label_end_time)):
            limits.setdefault(stamp(value), []).append(label)
        for when, labels in limits.items():
            fig.add_vline(x=when, line={"color": "grey", "dash": "dot", "width": 1},
                          annotation_text=" / ".join(labels), annotation_position="top")
    fig.update_layout(
        title=title, xaxis_title="date", height=max(300, 90 * len(splits) + 150),
        yaxis={"tickmode": "array", "tickvals": list(range(len(splits))),
               "ticktext": [f"{s.name}" for s in splits], "autorange": "reversed"},
        legend={"orientation": "h", "y": -0.15}, template="plotly_white",
    )
    return fig
