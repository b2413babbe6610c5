"""How much a list moved since the one before it, judged against how much lists usually move.

DSaPP's EIS monitoring (seed 001) flags a list whose top-k Jaccard or Spearman rank correlation
with the previous list is unusual on *either* side: too much churn and a department loses
confidence in the list; too little and an input may have stopped updating. "Unusual" comes
from the history of these pairs: below the low ``quantiles`` of the earlier pairs less
``tolerance``, or above the high quantile plus ``tolerance`` (``monitoring.stability``).
Fixed minimums (``jaccard_min``, ``spearman_min``) replace the learnt lower bound when set.
Both the case monitor and the list monitor call :func:`churn_alerts`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from rudikit.config.monitoring import StabilityBounds
from rudikit.evaluation.stability import consecutive_stability
from rudikit.monitoring.alerts import Alert

METRICS = ("jaccard", "spearman")


def stability_pairs(lists: Mapping[pd.Timestamp, pd.Series], k: int) -> pd.DataFrame:
    """Each list against the one before it (:func:`consecutive_stability`) with a ``pair``
    label ("2016-01-01/2016-02-01") for the store and the report."""
    pairs = consecutive_stability(lists, k)
    pairs["pair"] = [f"{a:%Y-%m-%d}/{b:%Y-%m-%d}" for a, b in
                     zip(pairs["previous_date"], pairs["as_of_date"], strict=True)]
    return pairs


def learnt_bounds(cfg: StabilityBounds, history: np.ndarray, metric: str
                  ) -> tuple[float | None, float | None]:
    """(low, high) for one metric from the earlier pairs' values; None where no bound exists
    yet (fewer than ``min_history`` earlier pairs and no fixed minimum)."""
    history = history[np.isfinite(history)]
    fixed = cfg.jaccard_min if metric == "jaccard" else cfg.spearman_min
    learnt = len(history) >= cfg.min_history
    low = fixed if fixed is not None else (
        float(np.percentile(history, cfg.quantiles[0])) - cfg.tolerance if learnt else None)
    high = float(np.percentile(history, cfg.quantiles[1])) + cfg.tolerance if learnt else None
    return low, high


def churn_alerts(cfg: StabilityBounds, pairs: pd.DataFrame, index: int, *,
                 both_sides: bool = True) -> list[Alert]:
    """Alerts for pair ``index`` against the bounds learnt from the pairs before it: too much
    churn (below the low bound) and, with ``both_sides``, too little (above the high one)."""
    row = pairs.iloc[index]
    found = []
    for metric in METRICS:
        value = float(row[metric])
        if not np.isfinite(value):
            continue
        low, high = learnt_bounds(cfg, pairs[metric].iloc[:index].to_numpy(dtype=float), metric)
        if low is not None and value < low:
            found.append(Alert("stability", f"top-{cfg.k} list", metric, value, low, "warning",
                               row["pair"], f"the top-{cfg.k} list churned: {metric} "
                               f"{value:.2f} between {row['pair']}, below the usual {low:.2f}"))
        elif both_sides and high is not None and high < 1 and value > high:
            found.append(Alert("stability", f"top-{cfg.k} list", metric, value, high, "warning",
                               row["pair"], f"the top-{cfg.k} list barely moved: {metric} "
                               f"{value:.2f} between {row['pair']}, above the usual {high:.2f}"
                               " (have the inputs stopped updating?)"))
    return found
