"""Fixed-list-size mode of the threshold search: exactly k rows selected.

With a fixed list size every objective is monotone in the true positives, so each window of
per-group selection counts (:func:`rudikit.fairness.mitigation.windows.window_sets`) is a
resource-allocation problem "maximise sum_g tp_g(s_g) subject to sum_g s_g = k and s_g in
window_g", solved exactly by dynamic programming when that is cheap, otherwise greedily on each
group's upper concave hull of ``tp(s)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rudikit.fairness.mitigation.problem import EPS, Cell, Problem, Solution
from rudikit.fairness.mitigation.scoring import best_feasible, evaluate
from rudikit.fairness.mitigation.windows import thin, window_sets

MAX_FIXED_K_TARGETS = 1_500
"""Cap on allocation problems solved in fixed-list-size mode (each costs ~0.1-1 ms)."""

EXACT_DP_MAX_ITERATIONS = 200_000
"""Above this many DP inner iterations (summed over windows) the hull-greedy allocator is used."""

EXACT_DP_MAX_CELLS = 30_000_000
"""Above this many DP array-element updates the hull-greedy allocator is used."""


def upper_hull(cum_tp: np.ndarray) -> np.ndarray:
    """Vertices (counts) of the upper concave hull of s -> tp(s), s = 0..n.

    tp(s) rises by 0 or 1 per row, so a hull vertex can only sit at 0, n, or the end of a run
    of positives; only those points enter the monotone-chain scan.
    """
    inc = np.diff(cum_tp)
    n = len(inc)
    ends = np.flatnonzero((inc == 1) & np.concatenate((inc[1:] == 0, [True]))) + 1
    xs = np.unique(np.concatenate(([0], ends, [n])))
    ys = cum_tp[xs]
    hull: list[int] = []
    for i in range(len(xs)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b if it lies on or below the chord a -> i
            cross = (xs[b] - xs[a]) * (ys[i] - ys[a]) - (ys[b] - ys[a]) * (xs[i] - xs[a])
            if cross >= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    return xs[hull]


def allocate_hull(
    cells: list[Cell], hulls: list[np.ndarray], lo: np.ndarray, hi: np.ndarray, budget: int
) -> np.ndarray:
    """Near-optimal ``max sum tp_g(s_g)`` s.t. ``sum s_g = budget``, ``lo_g <= s_g <= hi_g``.

    Each cell's tp on [lo, hi] is replaced by the concave chain lo -> hull vertices -> hi;
    segments of all cells are taken in decreasing slope (marginal precision) until the budget is
    used, the last one partially.
    """
    counts = lo.astype(np.int64).copy()
    remaining = budget - int(counts.sum())
    if remaining <= 0:
        return counts
    seg_cell, seg_len, seg_slope = [], [], []
    for g, (cell, hull) in enumerate(zip(cells, hulls, strict=True)):
        if hi[g] <= lo[g]:
            continue
        inner = hull[(hull > lo[g]) & (hull < hi[g])]
        pts = np.concatenate(([lo[g]], inner, [hi[g]]))
        lengths = np.diff(pts)
        gains = np.diff(cell.cum_tp[pts])
        seg_cell.append(np.full(len(lengths), g))
        seg_len.append(lengths)
        seg_slope.append(gains / lengths)
    cell_of = np.concatenate(seg_cell)
    lengths = np.concatenate(seg_len)
    order = np.argsort(-np.concatenate(seg_slope), kind="stable")
    cum = np.cumsum(lengths[order])
    full = int(np.searchsorted(cum, remaining, side="left"))
    np.add.at(counts, cell_of[order[:full]], lengths[order[:full]])
    taken = int(cum[full - 1]) if full > 0 else 0
    if full < len(order):
        counts[cell_of[order[full]]] += remaining - taken
    return counts


def allocate_exact(
    cells: list[Cell], lo: np.ndarray, hi: np.ndarray, budget: int
) -> np.ndarray | None:
    """Exact ``max sum tp_g(s_g)`` s.t. ``sum s_g = budget`` by dynamic programming on the total.

    best_g[t] = max over s in [lo_g, hi_g] of best_{g-1}[t - s] + tp_g(s); O(budget x window).
    """
    neg_inf = -np.inf
    best = np.full(budget + 1, neg_inf)
    best[0] = 0.0
    choices = []
    for g, cell in enumerate(cells):
        new = np.full(budget + 1, neg_inf)
        arg = np.full(budget + 1, -1, dtype=np.int64)
        for s in range(int(lo[g]), int(min(hi[g], budget)) + 1):
            cand = best[: budget + 1 - s] + cell.cum_tp[s]
            view_new = new[s:]
            better = cand > view_new
            view_new[better] = cand[better]
            arg[s:][better] = s
        choices.append(arg)
        best = new
    if not np.isfinite(best[budget]):
        return None
    counts = np.zeros(len(cells), dtype=np.int64)
    t = budget
    for g in range(len(cells) - 1, -1, -1):
        counts[g] = choices[g][t]
        t -= counts[g]
    return counts


def search_fixed_k(
    problem: Problem,
    objective: str,
    tolerance: float,
    gap: str,
    budget: int,
    n_targets: int,
    exact: bool | None = None,
) -> Solution:
    """Exactly ``budget`` rows selected across the cells, gap within tolerance (relaxed if not).

    ``exact=None`` picks dynamic programming when it is cheap and the hull-greedy otherwise.
    """
    hulls = [upper_hull(c.cum_tp) for c in problem.cells]
    tol = tolerance
    while True:
        sol = _search_fixed_k_once(problem, objective, tol, gap, budget, n_targets, hulls, exact)
        if sol is not None or tol >= 1.0:
            break
        tol = min(1.0, max(2 * tol, 1e-3))
    if sol is None:
        raise RuntimeError("no allocation of exactly k rows exists")  # budget > rows; guarded
    sol.satisfied = sol.gap <= tolerance + EPS
    sol.tolerance_used = tol
    return sol


def _search_fixed_k_once(
    problem: Problem,
    objective: str,
    tol: float,
    gap: str,
    budget: int,
    n_targets: int,
    hulls: list[np.ndarray],
    exact: bool | None,
) -> Solution | None:
    cap_axis = max(10, min(n_targets, int(np.sqrt(4 * MAX_FIXED_K_TARGETS))))
    lo, hi = window_sets(problem, tol, gap, MAX_FIXED_K_TARGETS, cap_axis, budget)
    # In this mode candidate index == count, so windows are count ranges.
    ok = (lo <= hi).all(axis=0) & (lo.sum(axis=0) <= budget) & (hi.sum(axis=0) >= budget)
    cols = np.flatnonzero(ok)
    if len(cols) == 0:
        return None
    # Drop duplicate windows, then thin to the allocation budget.
    uniq = np.unique(np.concatenate([lo[:, cols], hi[:, cols]]).T, axis=0)
    g = len(problem.cells)
    lo_u, hi_u = uniq[:, :g].T, uniq[:, g:].T
    keep = thin(np.arange(lo_u.shape[1]), MAX_FIXED_K_TARGETS)
    lo_u, hi_u = lo_u[:, keep], hi_u[:, keep]
    widths = (np.minimum(hi_u, budget) - lo_u + 1).clip(0)
    if exact is None:
        iterations = int(widths.sum())
        exact = (
            iterations <= EXACT_DP_MAX_ITERATIONS
            and iterations * (budget + 1) <= EXACT_DP_MAX_CELLS
        )
    allocate: Callable[[np.ndarray, np.ndarray], np.ndarray | None]
    if exact:

        def allocate(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
            return allocate_exact(problem.cells, a, b, budget)
    else:

        def allocate(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
            return allocate_hull(problem.cells, hulls, a, b, budget)

    sols = []
    for j in range(lo_u.shape[1]):
        counts = allocate(lo_u[:, j], hi_u[:, j])
        if counts is not None:
            sols.append(counts)
    if not sols:
        return None
    counts = np.stack(sols, axis=1)
    obj, gaps = evaluate(problem, counts, objective, gap)
    pick = best_feasible(obj, gaps, np.ones(len(obj), dtype=bool), tol)
    if pick is None:
        return None
    return Solution(counts[:, pick].copy(), float(obj[pick]), float(gaps[pick]), True, tol)
