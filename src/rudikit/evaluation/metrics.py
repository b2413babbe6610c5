"""Classification and ranking metrics with bootstrap intervals.

Why hand-written: a 95% bootstrap interval needs every metric on hundreds of resamples of every
model's test set. Calling scikit-learn per resample costs seconds per model; here the scores are
sorted once and every resample is a row of a weight matrix, so all resamples of all metrics come
from one pass of cumulative sums. The point estimates equal scikit-learn's (tests check that).

Ties at the k-th score (``precision@k``/``recall@k``): the tied cases are included fractionally,
which is exactly the expected value of the metric over all random orderings of the tied cases.
It is deterministic and never rewards or punishes a model for the order it happened to output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rudikit.evaluation.bootstrap import percentile_interval, resample_weights


@dataclass(frozen=True)
class MetricValue:
    metric: str
    parameter: str  # "" for threshold-free metrics, "0.5" for thresholds, "100_abs", "10_pct"
    value: float
    lower: float | None
    upper: float | None
    n: int


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` is the better one (the Brier score, a loss);
    every other stored metric is better higher."""
    return metric == "brier"


def _check(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    score = np.asarray(score, dtype=float)
    if y.ndim != 1 or score.ndim != 1 or len(y) != len(score):
        raise ValueError(f"y and score must be 1-D and the same length (got {y.shape} and "
                         f"{score.shape})")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must contain only 0 and 1")
    if np.isnan(score).any():
        raise ValueError("score contains NaN")
    return y.astype(float), score


class _Ranking:
    """The scores' order and the ends of their tied runs, computed once per scored sample:
    every bootstrap block reuses it. (Sorting again per block cost ``blocks x n log n``; a
    block holds at most :data:`BLOCK_CELLS` weights, so the blocks grow with ``n`` and that
    cost with ``n**2``: at 1.7M test rows, 500 sorts of the same scores.)"""

    def __init__(self, y: np.ndarray, score: np.ndarray):
        self.order = np.argsort(-score, kind="stable")
        self.score = score[self.order]
        self.y = y[self.order]
        # the last position of each run of equal scores: thresholds sit between runs
        self.ends = np.flatnonzero(np.r_[self.score[1:] != self.score[:-1], True])
        self.squared_error = (score - y) ** 2  # in the rows' own order, as the weights


class _Sorted:
    """Cumulative counts at the end of each run of tied scores of a :class:`_Ranking`, for a
    matrix of case weights (one row per bootstrap resample; a single row of ones = the sample)."""

    def __init__(self, ranking: _Ranking, weights: np.ndarray):
        self.score = ranking.score
        self.ends = ranking.ends
        w = weights[:, ranking.order]
        self.tp = np.cumsum(w * ranking.y, axis=1)[:, self.ends]
        self.cw = np.cumsum(w, axis=1)[:, self.ends]
        self.fp = self.cw - self.tp
        self.pos = self.tp[:, -1]
        self.neg = self.fp[:, -1]
        self.total = self.cw[:, -1]

    def roc_auc(self) -> np.ndarray:
        tp = np.c_[np.zeros(len(self.tp)), self.tp]
        fp = np.c_[np.zeros(len(self.fp)), self.fp]
        area = np.sum(np.diff(fp, axis=1) * (tp[:, 1:] + tp[:, :-1]) / 2, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return area / (self.pos * self.neg)

    def average_precision(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = self.tp / self.cw
            recall = self.tp / self.pos[:, None]
        recall = np.c_[np.zeros(len(recall)), recall]
        return np.nansum(np.diff(recall, axis=1) * precision, axis=1) / np.where(
            self.pos > 0, 1, np.nan)

    def at_threshold(self, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """(true positives, predicted positives) when ``score >= threshold`` is positive."""
        runs = np.searchsorted(-self.score[self.ends], -threshold, side="right")
        if runs == 0:
            zero = np.zeros(len(self.tp))
            return zero, zero
        return self.tp[:, runs - 1], self.cw[:, runs - 1]

    def true_positives_at_k(self, k: np.ndarray) -> np.ndarray:
        """Expected true positives among the top ``k`` (per row), ties included fractionally."""
        rows = np.arange(len(self.cw))
        j = np.array([np.searchsorted(self.cw[r], k[r], side="left") for r in rows])
        j = np.minimum(j, self.cw.shape[1] - 1)
        prev_cw = np.where(j > 0, self.cw[rows, j - 1], 0.0)
        prev_tp = np.where(j > 0, self.tp[rows, j - 1], 0.0)
        run_w = self.cw[rows, j] - prev_cw
        run_tp = self.tp[rows, j] - prev_tp
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(run_w > 0, (k - prev_cw) / run_w, 0.0)
        return prev_tp + np.clip(share, 0, 1) * run_tp


def expected_selection(score: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """Each row's expected membership of the top ``k``, ties at the k-th score included
    fractionally (the rule of :meth:`_Sorted.true_positives_at_k`, per row): 1 above the k-th
    score, ``places left / tied rows`` for the rows tied at it, else 0. Also returns how many
    tied rows straddle the cut (0 when the cut falls between two scores)."""
    score = np.asarray(score, dtype=float)
    n = len(score)
    share = np.zeros(n)
    if k <= 0:
        return share, 0
    kth = np.partition(score, n - k)[n - k]
    above = score > kth
    tied = score == kth
    n_tied = int(tied.sum())
    places = k - int(above.sum())
    share[above] = 1.0
    share[tied] = places / n_tied
    return share, n_tied if places < n_tied else 0


def k_for_percent(n: int, pct: float) -> int:
    """List size for the top ``pct``% of ``n`` cases: ``floor(pct * n / 100)``, i.e. at most
    ``pct`` percent (aequitas's ``rank_pct <= p``). The one definition rudikit uses."""
    return int(math.floor(pct * n / 100 + 1e-9))


def _metric_rows(ranking: _Ranking, weights: np.ndarray, thresholds: list[float],
                 top_k: list[int], top_pct: list[float]) -> dict[tuple[str, str], np.ndarray]:
    s = _Sorted(ranking, weights)
    out: dict[tuple[str, str], np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        out[("roc_auc", "")] = s.roc_auc()
        out[("average_precision", "")] = s.average_precision()
        out[("brier", "")] = weights @ ranking.squared_error / weights.sum(axis=1)
        out[("prevalence", "")] = s.pos / s.total
        for t in thresholds:
            tp, pp = s.at_threshold(t)
            key = f"{t:g}"
            out[("precision", key)] = tp / pp
            out[("recall", key)] = tp / s.pos
            out[("f1", key)] = 2 * tp / (pp + s.pos)
            out[("accuracy", key)] = (tp + (s.neg - (pp - tp))) / s.total
        n = int(round(s.total[0]))
        sizes = [(k, f"{k}_abs") for k in top_k] + [
            (k_for_percent(n, p), f"{p:g}_pct") for p in top_pct]
        for k, key in sizes:
            if k < 1:  # an empty list has no precision
                out[("precision_at_k", key)] = out[("recall_at_k", key)] = np.full(
                    len(s.total), np.nan)
                continue
            kk = np.minimum(float(k), s.total)
            tp = s.true_positives_at_k(kk)
            out[("precision_at_k", key)] = tp / kk
            out[("recall_at_k", key)] = tp / s.pos
    return out


#: Resample weights held at once, in cells (resamples x rows): 2**21 float64 cells are 16 MB,
#: and the sorted cumulative sums of a block take a few times that, whatever the row count.
BLOCK_CELLS = 2**21


def bootstrap_block(n: int, resamples: int) -> int:
    """How many resamples of ``n`` rows one block holds: at most 64 (the block the intervals
    were first computed with) and at most :data:`BLOCK_CELLS` weights."""
    return max(1, min(64, BLOCK_CELLS // max(n, 1), resamples))


def _replicates(ranking: _Ranking, resamples: int, seed: int, thresholds: list[float],
                top_k: list[int], top_pct: list[float]) -> dict[tuple[str, str], np.ndarray]:
    """Every metric on ``resamples`` bootstrap resamples, streamed in blocks of
    :func:`bootstrap_block` resamples: only the metric values (``resamples`` per metric) are
    kept, never the ``resamples x n`` weight matrix. The generator draws row by row, so the
    replicates are the same whatever the block size (one seed, one set of intervals)."""
    n = len(ranking.order)
    rng = np.random.default_rng(seed)
    block = bootstrap_block(n, resamples)
    values: dict[tuple[str, str], list[np.ndarray]] = {}
    for start in range(0, resamples, block):
        weights = resample_weights(n, min(block, resamples - start), rng)
        for key, rows in _metric_rows(ranking, weights, thresholds, top_k, top_pct).items():
            values.setdefault(key, []).append(rows)
        del weights
    return {key: np.concatenate(parts) for key, parts in values.items()}


def evaluate_scores(y: np.ndarray, score: np.ndarray, *, thresholds: list[float] | None = None,
                    top_k: list[int] | None = None, top_pct: list[float] | None = None,
                    bootstrap: int = 500, confidence: float = 0.95,
                    seed: int = 0) -> list[MetricValue]:
    """Every metric rudikit stores, each with a percentile bootstrap interval.

    Threshold metrics (precision, recall, f1, accuracy) treat ``score >= threshold`` as
    positive. ``top_k`` lists are absolute sizes; ``top_pct`` sizes are :func:`k_for_percent`.
    Undefined values (e.g. precision with nothing predicted positive) are NaN, never 0.
    """
    y, score = _check(y, score)
    thresholds = thresholds if thresholds is not None else [0.5]
    top_k = top_k if top_k is not None else []
    top_pct = top_pct if top_pct is not None else []
    n = len(y)
    ranking = _Ranking(y, score)
    point = _metric_rows(ranking, np.ones((1, n)), thresholds, top_k, top_pct)
    bounds: dict[tuple[str, str], tuple[float | None, float | None]] = {}
    if bootstrap > 0 and n > 1:
        replicates = _replicates(ranking, bootstrap, seed, thresholds, top_k, top_pct)
        for key in point:
            values = replicates[key][~np.isnan(replicates[key])]
            if len(values) >= max(10, bootstrap // 2):
                lo, hi = percentile_interval(values, confidence)
                bounds[key] = (float(lo), float(hi))
    return [
        MetricValue(metric, parameter, float(values[0]),
                    *bounds.get((metric, parameter), (None, None)), n)
        for (metric, parameter), values in point.items()
    ]


def _single(y: np.ndarray, score: np.ndarray, metric: str, parameter: str, **lists) -> float:
    y, score = _check(y, score)
    rows = _metric_rows(_Ranking(y, score), np.ones((1, len(y))), lists.get("thresholds", []),
                        lists.get("top_k", []), lists.get("top_pct", []))
    return float(rows[(metric, parameter)][0])


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    return _single(y, score, "roc_auc", "")


def precision_at_k(y: np.ndarray, score: np.ndarray, k: int) -> float:
    """Share of positives among the ``k`` highest scores (ties: expected value)."""
    return _single(y, score, "precision_at_k", f"{k}_abs", top_k=[k])


def recall_at_k(y: np.ndarray, score: np.ndarray, k: int) -> float:
    return _single(y, score, "recall_at_k", f"{k}_abs", top_k=[k])


def precision_at_pct(y: np.ndarray, score: np.ndarray, pct: float) -> float:
    return _single(y, score, "precision_at_k", f"{pct:g}_pct", top_pct=[pct])
