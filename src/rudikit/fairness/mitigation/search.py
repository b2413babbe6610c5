"""Search engine behind :class:`rudikit.fairness.mitigation.optimizer.GroupThresholdOptimizer`:
the algorithm, and its threshold mode (the fixed-list-size mode is in ``fixed_k``).

Why this is hand-written rather than delegated to a library
-----------------------------------------------------------
* fairlearn's ``ThresholdOptimizer`` (0.15) does relax "simple" constraints (demographic
  parity, TPR parity) with ``tol``, which bounds the *range* (max - min) of the rate on a shared
  grid; but equalised odds must hold *exactly* (no tolerance), its objectives are limited to
  accuracy / balanced accuracy / rates (no F1, no precision@k), it has no fixed-list-size
  (exactly k selected) mode, no ``mean_to_overall`` tolerance, and its decisions are randomised
  (hard to store and explain per group). Measured in ``bench/fairness_mitigation.py`` on 100,000
  rows it takes ~1.5-3 s per fit against ~0.1-0.6 s here; its memory use there is modest
  (~15-21 MiB), so memory is not the reason at 12-48 groups. It is used as the reference
  (``FairlearnBaseline``) in tests and the benchmark.
* OxonFair's ``FairPredictor`` searches an exhaustive grid of thresholds: ``grid ** groups``
  combinations (reported to us as 247 s and 19.6 GB at 5 groups, out of memory at 6; OxonFair
  is not installed here and was not re-measured).

The idea used here is O(groups x grid) instead of O(grid ** groups):

1. Per group ("cell") sort the scores once (descending, stable) and keep the cumulative number of
   true positives ``tp(s)`` after selecting the top ``s`` rows; ``fp(s) = s - tp(s)``. A
   threshold is a selection count ``s`` (its threshold is the score of the ``s``-th row).
2. Every rate that can be constrained is non-decreasing in ``s``:
   selection rate ``SR = s / n_g``, ``TPR = tp(s) / P_g``, ``FPR = fp(s) / N_g``.
3. "Largest pairwise gap <= tol" (max_g rate_g - min_g rate_g <= tol) holds exactly when every
   group's rate lies in a window ``[r, r + tol]`` with ``r`` = the smallest group rate. Because
   rates are monotone, each window is a contiguous range of candidates, found by binary search.
   Sweeping ``r`` over all attainable rates enumerates the feasible set *exactly*; for
   equalised odds the sweep is 2-D over (TPR floor, FPR floor) and the window is the
   intersection of two ranges.
4. Within a window, separable objectives (accuracy = (TP + TN) / n, balanced accuracy) are
   maximised group by group with an O(1) range-argmax query (sparse table). F1 =
   2TP / (TP + FP + P) is a ratio of separable terms and is maximised exactly with Dinkelbach's
   method: repeatedly maximise ``2TP - lambda (TP + FP + P)`` and set ``lambda`` to the best F1.
5. Fixed list size (exactly k selected): every objective is then monotone in TP (precision@k =
   TP / k, recall@k = TP / P, accuracy = (2TP + N - k) / n, F1 = 2TP / (k + P)), so each window
   is a resource-allocation problem "maximise sum_g tp_g(s_g) subject to sum_g s_g = k and
   s_g in window_g". It is solved exactly by dynamic programming over the count when that is
   cheap, otherwise greedily on each group's upper concave hull of ``tp(s)`` (at most one group
   ends off a hull vertex, so the loss is at most that group's hull deviation on one segment);
   see :mod:`rudikit.fairness.mitigation.fixed_k`.

"mean_to_overall" gaps (max_g |rate_g - overall rate|, fairlearn's ``method="to_overall"``)
couple groups through the overall rate, so they are handled heuristically: windows
``[r - w, r + w]`` with ``w`` in {tol, tol / 2} are swept and every resulting solution is
re-checked against the realised overall rate; the half-width windows are feasible whenever the
overall rate is a weighted mean of the constrained groups' rates.

The parts: :mod:`~rudikit.fairness.mitigation.problem` (cells, candidates, rates, solutions),
:mod:`~rudikit.fairness.mitigation.windows` (steps 2-3), :mod:`~rudikit.fairness.mitigation.scoring`
(objectives, gaps, the best feasible solution), this module (step 4) and
:mod:`~rudikit.fairness.mitigation.fixed_k` (step 5).
"""

from __future__ import annotations

import numpy as np

from rudikit.fairness.mitigation.problem import EPS, Problem, Solution
from rudikit.fairness.mitigation.scoring import best_feasible, evaluate
from rudikit.fairness.mitigation.windows import window_sets

MAX_1D_TARGETS = 50_000
"""Cap on swept rate floors for one-dimensional constraints in threshold mode."""


def _argmax_table(values: np.ndarray) -> np.ndarray:
    """Sparse table for O(1) range-argmax: row j holds the argmax of values[i : i + 2**j]."""
    m = len(values)
    levels = max(1, int(m).bit_length())
    table = np.tile(np.arange(m, dtype=np.int64), (levels, 1))
    for j in range(1, levels):
        span = 1 << (j - 1)
        width = m - (1 << j) + 1
        if width <= 0:
            break
        left = table[j - 1, :width]
        right = table[j - 1, span : span + width]
        table[j, :width] = np.where(values[right] > values[left], right, left)
    return table


def _range_argmax(
    table: np.ndarray, values: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Vectorised argmax of values[lo..hi] (inclusive, lo <= hi) using the sparse table."""
    length = hi - lo + 1
    level = np.frexp(length.astype(float))[1] - 1  # floor(log2(length)), exact
    a = table[level, lo]
    b = table[level, hi - (1 << level) + 1]
    return np.where(values[b] > values[a], b, a)


def _solve_separable(
    problem: Problem, lo: np.ndarray, hi: np.ndarray, weight_tp: float, weight_fp: float
) -> np.ndarray:
    """Per cell and window, the candidate maximising ``weight_tp * tp + weight_fp * fp``."""
    idx = np.zeros_like(lo)
    for g, cand in enumerate(problem.cands):
        values = weight_tp * cand.tp + weight_fp * cand.fp
        table = _argmax_table(values)
        lo_g = np.minimum(lo[g], hi[g]).clip(0)
        hi_g = np.maximum(lo[g], hi[g]).clip(0)
        idx[g] = _range_argmax(table, values, lo_g, hi_g)
    return idx


def search_thresholds(
    problem: Problem,
    objective: str,
    tolerance: float,
    gap: str,
    n_targets: int,
) -> Solution:
    """Best per-cell thresholds whose gap is within ``tolerance`` (relaxed if infeasible)."""
    tol = tolerance
    while True:
        sol = _search_thresholds_once(problem, objective, tol, gap, n_targets)
        if sol is not None or tol >= 1.0:
            break
        tol = min(1.0, max(2 * tol, 1e-3))
    if sol is None:  # cannot happen for rates in [0, 1]; kept as a guard
        raise RuntimeError("no feasible thresholds even with tolerance 1")
    sol.satisfied = sol.gap <= tolerance + EPS
    sol.tolerance_used = tol
    return sol


def _search_thresholds_once(
    problem: Problem, objective: str, tol: float, gap: str, n_targets: int
) -> Solution | None:
    lo, hi = window_sets(problem, tol, gap, MAX_1D_TARGETS, n_targets)
    ok = (lo <= hi).all(axis=0)
    # Selecting nobody / everybody gives every group the same rates (not the same precision,
    # whose candidates never select nobody): always a candidate, checked like the others.
    trivial = np.array([[np.argmin(c.counts), np.argmax(c.counts)] for c in problem.cands],
                       dtype=np.int64).reshape(-1, 2)

    def solve(weight_tp: float, weight_fp: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = np.concatenate([_solve_separable(problem, lo, hi, weight_tp, weight_fp), trivial], 1)
        counts = np.stack([c.counts[idx[g]] for g, c in enumerate(problem.cands)])
        obj, gaps = evaluate(problem, counts, objective, gap)
        return counts, obj, gaps

    ok_all = np.concatenate([ok, [True, True]])
    if objective == "accuracy":
        counts, obj, gaps = solve(1.0, -1.0)
    elif objective == "balanced_accuracy":
        counts, obj, gaps = solve(1.0 / max(problem.total_pos, 1), -1.0 / max(problem.total_neg, 1))
    elif objective == "f1":
        # Dinkelbach: F1 = 2TP / (TP + FP + P). For lambda = best F1 so far, maximise
        # 2TP - lambda (TP + FP) over the feasible set; stop when that gives no better F1.
        lam, best = 0.0, None
        for _ in range(100):
            counts, obj, gaps = solve(2.0 - lam, -lam)
            pick = best_feasible(obj, gaps, ok_all, tol)
            if pick is None:
                break
            if best is not None and obj[pick] <= lam + 1e-12:
                break
            best = (counts, obj, gaps)
            lam = float(obj[pick])
        if best is None:
            return None
        counts, obj, gaps = best
    else:
        raise ValueError(f"objective: {objective!r} needs top_k or top_pct")
    pick = best_feasible(obj, gaps, ok_all, tol)
    if pick is None:
        return None
    return Solution(counts[:, pick].copy(), float(obj[pick]), float(gaps[pick]), True, tol)
