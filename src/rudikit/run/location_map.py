"""The chosen model's training rows per H3 cell, stored with it for the run report's map
(:mod:`rudikit.evaluation.location_cells`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from rudikit.config import Features
from rudikit.evaluation.location_cells import cell_metrics
from rudikit.features.location import cell_summary, coordinates
from rudikit.store import results


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
