"""Search engine behind :class:`rudikit.fairness.mitigation.optimizer.GroupThresholdOptimizer`.

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
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

EPS = 1e-9
"""Slack for floating-point comparisons of rates against window edges and tolerances."""

MAX_1D_TARGETS = 50_000
"""Cap on swept rate floors for one-dimensional constraints in threshold mode."""


@dataclass
class Cell:
    """One constrained group: its scores sorted once and cumulative true-positive counts."""

    label: str
    scores_desc: np.ndarray
    cum_tp: np.ndarray  # cum_tp[s] = positives among the top s rows, s = 0..n
    n: int
    pos: int
    neg: int


@dataclass
class Candidates:
    """Selection counts a threshold can realise in one cell, with their tp/fp counts."""

    counts: np.ndarray
    tp: np.ndarray
    fp: np.ndarray


@dataclass
class Problem:
    """All cells of one fit plus the fixed contribution of rows outside the search."""

    cells: list[Cell]
    cands: list[Candidates]
    dims: tuple[str, ...]  # ("sr",), ("tpr",) or ("tpr", "fpr")
    const_sel: int  # rows selected outside the search (small groups at the fallback threshold)
    const_tp: int
    const_fp: int
    total_n: int
    total_pos: int
    total_neg: int


@dataclass
class Solution:
    """The chosen candidate per cell and how it scores on the training data."""

    counts: np.ndarray  # selected rows per cell
    objective: float
    gap: float
    satisfied: bool
    tolerance_used: float


def make_cell(label: str, scores: np.ndarray, y: np.ndarray) -> Cell:
    """Sort a group's scores once (stable, so ties keep row order) and accumulate positives."""
    order = np.argsort(-scores, kind="stable")
    ys = y[order]
    cum_tp = np.concatenate(([0], np.cumsum(ys, dtype=np.int64)))
    pos = int(cum_tp[-1])
    return Cell(label, scores[order], cum_tp, len(scores), pos, len(scores) - pos)


def threshold_candidates(cell: Cell, grid_size: int) -> Candidates:
    """Selection counts at distinct-score boundaries, thinned to about ``grid_size + 1``.

    A deterministic threshold ``score >= t`` can only stop at the end of a block of tied scores,
    so the candidates are 0, every count where the sorted score changes, and n. If there are more
    than ``grid_size + 1`` of them they are thinned to the ones nearest an even (quantile) grid.
    """
    s = cell.scores_desc
    bounds = np.flatnonzero(s[:-1] != s[1:]) + 1 if cell.n > 1 else np.empty(0, dtype=np.int64)
    counts = np.concatenate(([0], bounds, [cell.n])).astype(np.int64)
    if len(counts) > grid_size + 1:
        wanted = np.linspace(0, cell.n, grid_size + 1)
        pos = np.clip(np.searchsorted(counts, wanted), 0, len(counts) - 1)
        prev = np.clip(pos - 1, 0, len(counts) - 1)
        nearer = np.where(np.abs(counts[prev] - wanted) <= np.abs(counts[pos] - wanted), prev, pos)
        counts = np.unique(np.concatenate(([0], counts[nearer], [cell.n])))
    tp = cell.cum_tp[counts]
    return Candidates(counts, tp, counts - tp)


def full_candidates(cell: Cell) -> Candidates:
    """Every count 0..n (fixed-list-size mode needs exact counts; ties are split by row order)."""
    counts = np.arange(cell.n + 1, dtype=np.int64)
    return Candidates(counts, cell.cum_tp, counts - cell.cum_tp)


def order_by_precision(cand: Candidates) -> Candidates:
    """Candidates selecting at least one row, ordered by precision (ties by count)."""
    keep = cand.counts > 0
    counts, tp, fp = cand.counts[keep], cand.tp[keep], cand.fp[keep]
    order = np.lexsort((counts, tp / counts))
    return Candidates(counts[order], tp[order], fp[order])


def cell_rates(cell: Cell, cand: Candidates, dim: str) -> np.ndarray | None:
    """Rate of one dimension per candidate, or None when undefined (no positives/negatives).

    Precision (``ppv``) is not monotone in the selection count, so its candidates are stored in
    order of precision (:func:`order_by_precision`): every window is then still a contiguous
    range of candidate indices, and the range-argmax search works unchanged."""
    if dim == "sr":
        return cand.counts / cell.n
    if dim == "tpr":
        return cand.tp / cell.pos if cell.pos > 0 else None
    if dim == "fpr":
        return cand.fp / cell.neg if cell.neg > 0 else None
    if dim == "ppv":  # candidates are ordered by precision and never select nobody
        return cand.tp / cand.counts
    raise ValueError(f"unknown rate dimension {dim!r}")


def thin(values: np.ndarray, cap: int) -> np.ndarray:
    """Keep at most ``cap`` values spread evenly over a sorted array (always both ends)."""
    if len(values) <= cap:
        return values
    keep = np.unique(np.linspace(0, len(values) - 1, cap).round().astype(np.int64))
    return values[keep]


def _union_rates(rates: list[np.ndarray | None]) -> np.ndarray:
    """All distinct attainable rates across constrained cells (candidate window floors)."""
    defined = [r for r in rates if r is not None]
    if not defined:
        return np.array([0.0])
    return np.unique(np.round(np.concatenate(defined), 12))


def _windows(
    rates: list[np.ndarray | None], sizes: list[int], targets: np.ndarray, low: float, high: float
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate index ranges [lo, hi] per cell whose rate lies in [t + low, t + high]."""
    lo = np.empty((len(rates), len(targets)), dtype=np.int64)
    hi = np.empty_like(lo)
    for g, (r, m) in enumerate(zip(rates, sizes, strict=True)):
        if r is None:  # rate undefined in this cell: the dimension does not constrain it
            lo[g] = 0
            hi[g] = m - 1
        else:
            lo[g] = np.searchsorted(r, targets + low - EPS, side="left")
            hi[g] = np.searchsorted(r, targets + high + EPS, side="right") - 1
    return lo, hi


def window_sets(
    problem: Problem,
    tolerance: float,
    gap: str,
    cap_1d: int,
    cap_axis: int,
    budget: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate windows (lo, hi), shape (cells, windows), whose product covers the feasible set.

    For ``max_pairwise`` the floors ``r`` are every attainable rate (thinned only above the caps)
    and the window is ``[r, r + tol]``: exact. For ``mean_to_overall`` the centre ``r`` is swept
    with half-widths tol and tol / 2 (heuristic; solutions are re-checked afterwards). With a
    ``budget`` (fixed list size, where candidate index == count) floors are first restricted to
    those whose windows can hold exactly ``budget`` rows on that axis alone, so that the thinned
    grid is spent where solutions can exist.
    """
    sizes = [len(c.counts) for c in problem.cands]
    if gap == "max_pairwise":
        offsets = [(0.0, tolerance)]
    else:
        offsets = [(-tolerance, tolerance), (-tolerance / 2, tolerance / 2)]
    per_dim_rates = [
        [
            cell_rates(cell, cand, dim)
            for cell, cand in zip(problem.cells, problem.cands, strict=True)
        ]
        for dim in problem.dims
    ]

    def floors(rates: list[np.ndarray | None], low: float, high: float, cap: int) -> np.ndarray:
        """Attainable floors whose window is non-empty in every cell (and can hold the budget)."""
        targets = _union_rates(rates)
        lo, hi = _windows(rates, sizes, targets, low, high)
        fits = (lo <= hi).all(axis=0)
        if budget is not None:
            fits &= (lo.sum(axis=0) <= budget) & (hi.sum(axis=0) >= budget)
        targets = targets[fits] if fits.any() else targets[:1]
        return thin(targets, cap)

    los, his = [], []
    for low, high in offsets:
        if len(problem.dims) == 1:
            rates = per_dim_rates[0]
            lo, hi = _windows(rates, sizes, floors(rates, low, high, cap_1d), low, high)
        else:
            lo, hi = _windows_2d(
                per_dim_rates[0], per_dim_rates[1], sizes, low, high, floors, cap_axis
            )
        los.append(lo)
        his.append(hi)
    return np.concatenate(los, axis=1), np.concatenate(his, axis=1)


def _windows_2d(
    ra: list[np.ndarray | None],
    rb: list[np.ndarray | None],
    sizes: list[int],
    low: float,
    high: float,
    floors: Callable[[list[np.ndarray | None], float, float, int], np.ndarray],
    cap_axis: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Windows for two rates (TPR floor a, FPR floor b), spending the b grid where it matters.

    For a given a, cell g may use candidates [lo_a, hi_a]; FPR is monotone in the candidate, so
    the cell can reach FPRs only in [fpr(lo_a), fpr(hi_a)]. A floor b can then be feasible only
    if b + high >= max_g fpr_g(lo_a) and b + low <= min_g fpr_g(hi_a). Per a, up to ``cap_axis``
    attainable FPR values inside that interval are swept (all of them when there are fewer, in
    which case the sweep over b is exact for that a).
    """
    g_count = len(sizes)
    ta = floors(ra, low, high, cap_axis)
    lo_a, hi_a = _windows(ra, sizes, ta, low, high)
    b_min = np.full(len(ta), -np.inf)
    b_max = np.full(len(ta), np.inf)
    for g, r in enumerate(rb):
        if r is None:
            continue
        b_min = np.maximum(b_min, r[lo_a[g].clip(0, sizes[g] - 1)] - high)
        b_max = np.minimum(b_max, r[hi_a[g].clip(0, sizes[g] - 1)] - low)
    ub = _union_rates(rb)
    i0 = np.searchsorted(ub, b_min - EPS, side="left")
    i1 = np.searchsorted(ub, b_max + EPS, side="right")
    count = np.maximum(i1 - i0, 1)
    n_b = int(min(cap_axis, count.max()))
    steps = np.linspace(0.0, 1.0, n_b)
    pick = (i0[:, None] + np.floor(steps[None, :] * (count[:, None] - 1) + 0.5)).astype(np.int64)
    pick = pick.clip(0, len(ub) - 1)
    # Intervals holding fewer than n_b values repeat some b: drop repeated (a, b) pairs.
    pairs = np.unique(np.stack([np.repeat(np.arange(len(ta)), n_b), pick.ravel()]), axis=1)
    a_idx, b_idx = pairs
    lo_b, hi_b = _windows(rb, sizes, ub[b_idx], low, high)
    lo = np.maximum(lo_a[:, a_idx], lo_b).reshape(g_count, -1)
    hi = np.minimum(hi_a[:, a_idx], hi_b).reshape(g_count, -1)
    return lo, hi


# --------------------------------------------------------------------------- evaluation


def objective_from_totals(
    objective: str, sel: np.ndarray, tp: np.ndarray, fp: np.ndarray, n: int, pos: int, neg: int
) -> np.ndarray:
    """Objective from confusion totals (vectorised over solutions).

    accuracy = (TP + N - FP) / n; balanced_accuracy = (TP / P + 1 - FP / N) / 2;
    f1 = 2TP / (TP + FP + P); precision_at_k = TP / selected; recall_at_k = TP / P.
    """
    tp = tp.astype(float)
    fp = fp.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if objective == "accuracy":
            out = (tp + (neg - fp)) / n
        elif objective == "balanced_accuracy":
            tpr = tp / pos if pos else np.zeros_like(tp)
            tnr = 1.0 - fp / neg if neg else np.ones_like(fp)
            out = 0.5 * (tpr + tnr)
        elif objective == "f1":
            out = 2 * tp / (tp + fp + pos)
        elif objective == "precision_at_k":
            out = tp / sel
        elif objective == "recall_at_k":
            out = tp / pos if pos else np.zeros_like(tp)
        else:
            raise ValueError(f"objective: unknown objective {objective!r}")
    return np.nan_to_num(np.asarray(out, dtype=float), nan=0.0)


def evaluate(
    problem: Problem, counts: np.ndarray, objective: str, gap: str
) -> tuple[np.ndarray, np.ndarray]:
    """Objective and achieved gap of many solutions; ``counts`` has shape (cells, solutions).

    The gap is taken over the cells of the search (groups with at least ``min_group_size`` rows)
    and, for equalised odds, is the larger of the TPR and FPR gaps.
    """
    tp = np.stack([c.cum_tp[counts[g]] for g, c in enumerate(problem.cells)])
    fp = counts - tp
    sel_tot = problem.const_sel + counts.sum(axis=0)
    tp_tot = problem.const_tp + tp.sum(axis=0)
    fp_tot = problem.const_fp + fp.sum(axis=0)
    obj = objective_from_totals(
        objective, sel_tot, tp_tot, fp_tot, problem.total_n, problem.total_pos, problem.total_neg
    )
    gaps = np.zeros(counts.shape[1])
    for dim in problem.dims:
        if dim == "sr":
            denom = np.array([c.n for c in problem.cells], dtype=float)
            num, overall = counts, sel_tot / problem.total_n
        elif dim == "tpr":
            denom = np.array([c.pos for c in problem.cells], dtype=float)
            num, overall = tp, tp_tot / max(problem.total_pos, 1)
        elif dim == "fpr":
            denom = np.array([c.neg for c in problem.cells], dtype=float)
            num, overall = fp, fp_tot / max(problem.total_neg, 1)
        else:  # ppv: the denominator is each solution's own selection count
            with np.errstate(divide="ignore", invalid="ignore"):
                rates = np.where(counts > 0, tp / np.maximum(counts, 1), np.nan)
            overall = tp_tot / np.maximum(sel_tot, 1)
            gaps = np.maximum(gaps, _gap_of(rates, overall, gap))
            continue
        defined = denom > 0
        if not defined.any():
            continue
        rates = num[defined] / denom[defined, None]
        gaps = np.maximum(gaps, _gap_of(rates, overall, gap))
    return obj, gaps


def _gap_of(rates: np.ndarray, overall: np.ndarray, gap: str) -> np.ndarray:
    """Gap per solution (column) of cell rates (rows); undefined (NaN) rates are ignored."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: no gap
        if gap == "max_pairwise":
            g = np.nanmax(rates, axis=0) - np.nanmin(rates, axis=0)
        else:
            g = np.nanmax(np.abs(rates - overall[None, :]), axis=0)
    return np.nan_to_num(g, nan=0.0)


def best_feasible(obj: np.ndarray, gaps: np.ndarray, ok: np.ndarray,
                  tolerance: float) -> int | None:
    """Best objective among feasible solutions; ties go to the smaller gap."""
    feasible = ok & (gaps <= tolerance + EPS)
    if not feasible.any():
        return None
    best = obj[feasible].max()
    tied = feasible & (obj >= best - 1e-12)
    idx = np.flatnonzero(tied)
    return int(idx[np.argmin(gaps[idx])])


# --------------------------------------------------------------------- threshold mode


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
