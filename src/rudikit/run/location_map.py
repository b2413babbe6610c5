"""The training rows' searches and success rate per H3 cell of the chosen model, stored as its
evaluations (``train_cell_searches`` / ``train_cell_success_rate``, the cell id as parameter) so
the run report draws its map from the store alone (:mod:`rudikit.reports.location_map`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from rudikit.config import Features
from rudikit.evaluation.metrics import MetricValue
from rudikit.features.location import cell_summary, coordinates
from rudikit.store import results

SEARCHES = "train_cell_searches"
SUCCESS_RATE = "train_cell_success_rate"


def cell_metrics(summary: pd.DataFrame) -> list[MetricValue]:
    """One pair of evaluations per cell of a :func:`cell_summary`."""
    out = []
    for row in summary.itertuples():
        out += [MetricValue(SEARCHES, row.cell, float(row.searches), None, None,
                            int(row.searches)),
                MetricValue(SUCCESS_RATE, row.cell, float(row.success_rate), None, None,
                            int(row.outcomes))]
    return out


def record_training_cells(engine: Engine, model_id: int, features: Features, X: pd.DataFrame,
                          y: np.ndarray) -> bool:
    """Store the map figures of ``model_id``'s training rows ``X``/``y``; False (nothing
    stored) when the features have no H3 cell."""
    location = features.location
    if location is None or location.h3_resolution is None:
        return False
    latitude, longitude = coordinates(X, location.latitude, location.longitude)
    summary = cell_summary(latitude, longitude, y, location.h3_resolution)
    results.record_evaluations(engine, model_id, cell_metrics(summary))
    return True
