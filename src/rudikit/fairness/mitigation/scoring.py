"""Scoring candidate solutions of the threshold search: the objective from confusion totals, the
gap a solution achieves, and the best solution within the tolerance."""

from __future__ import annotations

import warnings

import numpy as np

from rudikit.fairness.mitigation.problem import EPS, Problem


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

