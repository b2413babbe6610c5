"""Realised performance: how the deployed model did on the production cases whose true outcome
came back, overall, per segment (station, object of search) and per period."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from rudikit.evaluation.metrics import evaluate_scores, precision_at_k


@dataclass(frozen=True)
class Realised:
    """Confusion matrix and metrics at the deployed threshold for one set of cases."""

    n: int
    positives: int
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float
    recall: float
    f1: float
    roc_auc: float
    average_precision: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}


def realised(y: np.ndarray, score: np.ndarray, threshold: float) -> Realised:
    """Metrics at ``score >= threshold`` (the decision the service gave)."""
    y = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    flagged = score >= threshold
    tp = int((flagged & (y == 1)).sum())
    fp = int((flagged & (y == 0)).sum())
    fn = int((~flagged & (y == 1)).sum())
    tn = int((~flagged & (y == 0)).sum())
    metrics = {(m.metric, m.parameter): m.value for m in evaluate_scores(
        y, score, thresholds=[threshold], bootstrap=0)} if len(y) else {}
    key = f"{threshold:g}"

    def get(metric: str, parameter: str = "") -> float:
        return float(metrics.get((metric, parameter), float("nan")))

    return Realised(len(y), int(y.sum()), tp, fp, fn, tn, get("precision", key),
                    get("recall", key), get("f1", key), get("roc_auc"),
                    get("average_precision"))


def roc_points(y: np.ndarray, score: np.ndarray, max_points: int = 200) -> dict[str, list[float]]:
    """The ROC curve, thinned to at most ``max_points`` points (for storage and plotting)."""
    if len(np.unique(y)) < 2:
        return {"fpr": [], "tpr": [], "threshold": []}
    fpr, tpr, thr = roc_curve(y, score, drop_intermediate=True)
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr, thr = fpr[keep], tpr[keep], thr[keep]
    thr = np.where(np.isfinite(thr), thr, 1.0)
    return {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist(),
            "threshold": thr.round(5).tolist()}


def by_segment(frame: pd.DataFrame, column: str, threshold: float, min_n: int = 1
               ) -> dict[str, Realised]:
    """:func:`realised` per value of ``column`` (missing values form their own segment)."""
    out = {}
    keys = frame[column].astype("string").fillna("(missing)")
    for value, rows in frame.groupby(keys, sort=True):
        if len(rows) >= min_n:
            out[str(value)] = realised(rows["outcome"].to_numpy(), rows["score"].to_numpy(),
                                       threshold)
    return out


def period_key(times: pd.Series, period: str) -> pd.Series:
    """Calendar period of each time: ``2020-02-03`` (day), ``2020-W06`` (ISO week, labelled by
    its Monday) or ``2020-02`` (month)."""
    t = pd.to_datetime(times, utc=True).dt.tz_convert(None)
    if period == "day":
        return t.dt.strftime("%Y-%m-%d")
    if period == "week":
        return (t.dt.normalize() - pd.to_timedelta(t.dt.day_of_week, unit="D")).dt.strftime(
            "%Y-%m-%d")
    return t.dt.strftime("%Y-%m")


def precision_at_k_over_time(frame: pd.DataFrame, period: str, k: int) -> pd.DataFrame:
    """Per period: cases with outcomes, precision of the ``k`` highest scores (fewer if the
    period has fewer cases; ties count at their expected value) and the base rate."""
    rows = []
    for key, part in frame.groupby(period_key(frame["event_time"], period), sort=True):
        size = min(k, len(part))
        rows.append({"period": str(key), "n": len(part), "k": size,
                     "precision_at_k": precision_at_k(part["outcome"].to_numpy(),
                                                      part["score"].to_numpy(), size),
                     "base_rate": float(part["outcome"].mean())})
    return pd.DataFrame(rows, columns=["period", "n", "k", "precision_at_k", "base_rate"])
