"""ROC AUC per group, for every grouping of one set of scores.

Exact Mann-Whitney statistic with ties counted one half, as ``roc_auc_score``. The scores are
indexed once (:class:`ScoreIndex`); each grouping then needs one histogram of (group, score
value, label) when scores repeat, or a radix sort of its group codes otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rudikit.fairness.counts import ratio
from rudikit.fairness.inputs import validate_fairness_inputs


def auc_from_histogram(table: np.ndarray) -> np.ndarray:
    """ROC AUC per group from counts per (group, score value in ascending order, label 0/1).

    ``U_g = sum_v pos[g, v] * (neg[g, < v] + neg[g, v] / 2)``: each positive beats the group's
    negatives with a lower score and ties with those with the same score (Mann-Whitney);
    ``AUC_g = U_g / (P_g N_g)``.
    """
    neg = table[:, :, 0]
    pos = table[:, :, 1]
    below = np.cumsum(neg, axis=1) - neg
    u = (pos * (2 * below + neg)).sum(axis=1) / 2
    return ratio(u, pos.sum(axis=1) * neg.sum(axis=1))


def _few_distinct(scores: np.ndarray) -> bool:
    """Whether scores repeat a lot (e.g. rounded or integer scores), judged on a sample."""
    sample = scores[:: max(1, len(scores) // 20_000)]
    return len(np.unique(sample)) <= len(sample) // 2


class ScoreIndex:
    """What the ROC AUC of every grouping needs from the scores, computed once.

    Scores with many repeats are numbered by rank of their distinct values (a hash
    factorization, O(n)); otherwise the rows are sorted by score once (lazily).
    """

    def __init__(self, y_true: np.ndarray, y_score: np.ndarray) -> None:
        self.y = y_true
        self.scores = y_score
        self.n_values = 0
        self.value: np.ndarray | None = None  # rank of each row's score among distinct values
        if len(y_score) and _few_distinct(y_score):
            codes, uniques = pd.factorize(y_score)
            rank = np.empty(len(uniques), dtype=np.int64)
            rank[np.argsort(uniques)] = np.arange(len(uniques))
            self.n_values = len(uniques)
            self.value = rank[codes]
        self._sorted: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None

    def auc(self, codes: np.ndarray, n_groups: int) -> np.ndarray:
        """ROC AUC per group code ``0..n_groups-1`` (NaN without positives or negatives)."""
        if len(self.y) == 0:
            return np.full(n_groups, np.nan)
        if self.value is not None and self.histogram_fits(n_groups):
            return self._auc_counts(codes, n_groups)
        return self._auc_sorted(codes, n_groups)

    def histogram_fits(self, n_groups: float) -> bool:
        """Whether a (group, score value, label) histogram is small enough to build."""
        cells = n_groups * self.n_values * 2
        return self.value is not None and cells <= max(4 * len(self.y), 1 << 22)

    def histogram(self, codes: np.ndarray, n_groups: int) -> np.ndarray:
        """Counts per (group, score value, label): array (n_groups, n_values, 2), one bincount."""
        assert self.value is not None
        m = self.n_values
        key = codes.astype(np.int64)
        key *= m
        key += self.value
        key *= 2
        key += self.y
        return np.bincount(key, minlength=n_groups * m * 2).reshape(n_groups, m, 2)

    def _auc_counts(self, codes: np.ndarray, n_groups: int) -> np.ndarray:
        return auc_from_histogram(self.histogram(codes, n_groups))

    def _auc_sorted(self, codes: np.ndarray, n_groups: int) -> np.ndarray:
        """Rank-sum form: ``AUC_g = (R_g - P_g (P_g + 1) / 2) / (P_g N_g)``.

        ``R_g`` sums the mid-ranks of the group's positives among the group's scores (ties get
        the average rank). Rows are sorted by score once; each grouping then needs only a
        stable radix sort of its small integer codes, which keeps score order within groups.
        """
        if self._sorted is None:
            order = np.argsort(self.scores)
            s = self.scores[order]
            same = s[1:] == s[:-1]
            block = None
            if same.any():  # tie block of every sorted row
                block = np.empty(len(s), dtype=np.int64)
                block[0] = 0
                np.cumsum(~same, out=block[1:])
            self._sorted = (order, self.y[order], block)
        order, y_sorted, block = self._sorted
        n = len(order)
        if n_groups <= 1 << 8:
            small = codes.astype(np.uint8)
        elif n_groups <= 1 << 16:
            small = codes.astype(np.uint16)
        else:
            small = codes
        c = small[order]
        perm = np.argsort(c, kind="stable")
        counts = np.bincount(c, minlength=n_groups)
        ends = np.cumsum(counts)
        starts = ends - counts
        y_p = y_sorted[perm]
        if block is None:
            # the k-th row in perm order has rank k - start + 1 within its group
            at = np.flatnonzero(y_p)
            split = np.searchsorted(at, ends)
            n_pos = np.diff(split, prepend=0).astype(np.float64)
            csum = np.concatenate(([0.0], np.cumsum(at, dtype=np.float64)))
            rank_sum = np.diff(csum[split], prepend=0.0) + n_pos * (1 - starts)
        else:
            b_p = block[perm]
            new_run = np.empty(n, dtype=bool)
            new_run[0] = True
            np.not_equal(b_p[1:], b_p[:-1], out=new_run[1:])
            new_run[starts[counts > 0]] = True
            run_first = np.flatnonzero(new_run)
            run_end = np.append(run_first[1:], n)
            cum_y = np.concatenate(([0], np.cumsum(y_p, dtype=np.int64)))
            run_pos = cum_y[run_end] - cum_y[run_first]
            keep = run_pos > 0
            run_first, run_end, run_pos = run_first[keep], run_end[keep], run_pos[keep]
            run_group = np.searchsorted(ends, run_first, side="right")
            mid_rank = run_first - starts[run_group] + (run_end - run_first + 1) / 2
            rank_sum = np.bincount(run_group, weights=run_pos * mid_rank, minlength=n_groups)
            n_pos = np.bincount(run_group, weights=run_pos, minlength=n_groups)
        u = rank_sum - n_pos * (n_pos + 1) / 2
        return ratio(u, n_pos * (counts - n_pos))


def roc_auc_by_group(
    y_true: object, y_score: object, codes: np.ndarray, n_groups: int
) -> np.ndarray:
    """ROC AUC per group (NaN where a group lacks positives or negatives).

    Exact Mann-Whitney statistic with ties counted one half, as ``roc_auc_score``; computed from
    a (group, score value) histogram when scores repeat, otherwise from one sort of the scores
    and a radix sort of the group codes.
    """
    codes = np.asarray(codes)
    inputs = validate_fairness_inputs(y_true, y_score=y_score, groups=codes,
                                      names={"groups": "codes"})
    out_of_range = len(codes) > 0 and (codes.min() < 0 or codes.max() >= n_groups)
    if codes.dtype.kind not in "iu" or out_of_range:
        raise ValueError(f"codes must be integers in 0..{n_groups - 1}")
    assert inputs.y_true is not None and inputs.y_score is not None
    return ScoreIndex(inputs.y_true, inputs.y_score).auc(codes.astype(np.int64), n_groups)
