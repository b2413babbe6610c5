"""Candidate windows of the threshold search: per cell, the contiguous range of candidates whose
rate lies in ``[r + low, r + high]`` for each swept floor ``r`` (one rate, or TPR and FPR for
equalised odds), so that the product of the windows covers the feasible set."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rudikit.fairness.mitigation.problem import EPS, Problem, cell_rates


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

