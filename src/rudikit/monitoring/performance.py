"""Realised performance: how the deployed model did on the production cases whose true outcome
came back, overall, per segment (station, object of search) and per period."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rudikit.data import MISSING_GROUP
from rudikit.evaluation.metrics import evaluate_scores


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


def from_counts(n: int, pos: int, tp: int, fp: int, u_minus: int, ap_sum: float
                ) -> Realised:
    """:func:`realised` from the counts the database computes
    (:func:`rudikit.store.queries.monitor_counts.performance_counts`): the confusion matrix at
    the threshold, the Mann-Whitney ``2U = 2 * pos * neg - u_minus`` (exact in integers) and
    the average precision's sum. Undefined figures are NaN, as :func:`realised` gives them."""
    neg, pp = n - pos, tp + fp

    def share(num: float, den: float) -> float:
        return float(num) / den if den else float("nan")

    return Realised(n, pos, tp, fp, pos - tp, neg - fp, share(tp, pp), share(tp, pos),
                    share(2 * tp, pp + pos), share((2 * pos * neg - u_minus) / 2, pos * neg),
                    share(ap_sum, pos))


def segments_of(counts: pd.DataFrame) -> dict[str, Realised]:
    """:func:`from_counts` per segment of
    :func:`~rudikit.store.queries.monitor_counts.performance_counts`' rows, keyed by the
    segment's text (missing values form their own segment, :data:`MISSING_GROUP`), in key
    order."""
    keys = counts["key"].astype("string").fillna(MISSING_GROUP)
    figures = {str(key): from_counts(int(r.n), int(r.pos), int(r.tp), int(r.fp), int(r.u_minus),
                                     float(r.ap_sum))
               for key, r in zip(keys, counts.itertuples(), strict=True)}
    return dict(sorted(figures.items()))


def period_label(start: int, period: str) -> str:
    """The :func:`period_key` of a period the database numbered
    (:func:`~rudikit.store.queries.monitor_counts.period_counts`): its first day in epoch
    days, or the number ``yyyymm`` for a month."""
    if period == "month":
        return f"{start // 100:04d}-{start % 100:02d}"
    return (pd.Timestamp(0, unit="s") + pd.Timedelta(days=int(start))).strftime("%Y-%m-%d")


def precision_over_time(counts: pd.DataFrame, period: str, k: int) -> pd.DataFrame:
    """Per period of :func:`~rudikit.store.queries.monitor_counts.period_counts`: cases with
    outcomes, precision of the ``k`` highest scores (fewer if the period has fewer cases; ties
    count at their expected value) and the base rate."""
    rows = [{"period": period_label(int(r.key), period), "n": int(r.n),
             "k": min(k, int(r.n)), "precision_at_k": float(r.tp_at_k) / min(k, int(r.n)),
             "base_rate": float(r.pos) / int(r.n)} for r in counts.itertuples()]
    return pd.DataFrame(sorted(rows, key=lambda r: r["period"]),
                        columns=["period", "n", "k", "precision_at_k", "base_rate"])


def roc_of(points: pd.DataFrame) -> dict[str, list[float]]:
    """The stored ROC curve (at most 200 points, 5 decimals) from the corners the database
    chose (:func:`~rudikit.store.queries.monitor_counts.roc_curve_points`): scikit-learn's
    ``roc_curve`` thinned to 200 evenly spaced of its points, the first (0, 0) at threshold 1."""
    if points.empty or not points["pos"].iloc[0] or not points["neg"].iloc[0]:
        return {"fpr": [], "tpr": [], "threshold": []}
    fpr = np.r_[0, points["fps"].to_numpy()] / points["neg"].iloc[0]
    tpr = np.r_[0, points["tps"].to_numpy()] / points["pos"].iloc[0]
    thr = np.r_[1.0, points["score"].to_numpy(dtype=float)]
    return {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist(),
            "threshold": thr.round(5).tolist()}


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
