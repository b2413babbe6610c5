"""A temporal project's test lists judged one as-of date at a time.

Why its own module: the run (:mod:`rudikit.run.temporal`) and the retraining of a deployed list
(:mod:`rudikit.monitoring.list_retrain`) must judge a list the same way, so both call this.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from rudikit.config import TemporalExperiment
from rudikit.evaluation.metrics import MetricValue, evaluate_scores


def evaluate_lists(test: pd.DataFrame, label: str, score: np.ndarray,
                   experiment: TemporalExperiment) -> tuple[list[MetricValue], pd.DataFrame]:
    """Evaluations to store, and one row per test as-of date (precision in the top k with its
    interval, ROC AUC, rows and positives)."""
    rows = []
    stored: list[MetricValue] = []
    dates = sorted(test["as_of_date"].unique())
    per_date = {}
    for when in dates:
        mask = (test["as_of_date"] == when).to_numpy()
        y = test.loc[mask, label].to_numpy()
        metrics = evaluate_scores(y, score[mask], thresholds=[], top_k=[experiment.top_k],
                                  top_pct=experiment.top_pct, bootstrap=experiment.bootstrap,
                                  confidence=experiment.confidence, seed=experiment.seed)
        per_date[pd.Timestamp(when)] = metrics
        by_key = {(m.metric, m.parameter): m for m in metrics}
        p = by_key[("precision_at_k", f"{experiment.top_k}_abs")]
        rows.append({"as_of_date": pd.Timestamp(when), "value": p.value, "lower": p.lower,
                     "upper": p.upper, "n": int(mask.sum()), "positives": int(y.sum()),
                     "roc_auc": by_key[("roc_auc", "")].value})
    if len(dates) == 1:
        stored = per_date[pd.Timestamp(dates[0])]
    else:
        for when, metrics in per_date.items():
            stored += [dataclasses.replace(m, parameter=f"{m.parameter}@{when:%Y-%m-%d}")
                       for m in metrics]
        first = per_date[pd.Timestamp(dates[0])]
        for m in first:
            values = [next(x.value for x in per_date[d] if (x.metric, x.parameter)
                           == (m.metric, m.parameter)) for d in per_date]
            stored.append(MetricValue(m.metric, m.parameter, float(np.nanmean(values)), None,
                                      None, len(test)))
    return stored, pd.DataFrame(rows)
