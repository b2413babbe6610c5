"""How a model's training rows per H3 cell are stored, as its evaluations: searches and
success rate per cell (the cell id as parameter), so the run report draws its map from the
store alone (:mod:`rudikit.reports.location_map`)."""

from __future__ import annotations

import pandas as pd

from rudikit.evaluation.metrics import MetricValue

PREFIX = "train_cell_"  # a map figure, not a metric to compare models by (the dashboard)
SEARCHES = PREFIX + "searches"
SUCCESS_RATE = PREFIX + "success_rate"


def cell_metrics(summary: pd.DataFrame) -> list[MetricValue]:
    """One pair of evaluations per cell of a :func:`rudikit.features.location.cell_summary`."""
    out = []
    for row in summary.itertuples():
        out += [MetricValue(SEARCHES, row.cell, float(row.searches), None, None,
                            int(row.searches)),
                MetricValue(SUCCESS_RATE, row.cell, float(row.success_rate), None, None,
                            int(row.outcomes))]
    return out
