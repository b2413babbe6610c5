"""What a threshold search needs that does not depend on the tolerance: each constrained
group's scores sorted once with their candidate thresholds, the small groups' fixed decisions,
the overall (group-blind) threshold and the unmitigated decisions. Prepared once per fit, and
once for a whole :func:`rudikit.fairness.mitigation.frontier.frontier`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rudikit.fairness.mitigation.problem import (
    Problem,
    full_candidates,
    make_cell,
    order_by_precision,
    threshold_candidates,
)
from rudikit.fairness.mitigation.rates import DIMS
from rudikit.fairness.mitigation.scoring import objective_from_totals


@dataclass
class Prepared:
    """Everything a search needs that does not depend on the tolerance (shared by frontier)."""

    scores: np.ndarray
    y: np.ndarray
    codes: np.ndarray
    names: list[str]
    columns: list[str] | None
    large: list[int]  # codes of groups in the search
    small: list[int]  # codes of groups below min_group_size
    fallback: float
    k: int | None
    budget: int | None  # k minus rows selected in small groups
    small_selected: np.ndarray  # boolean per row: selected among small-group rows
    problem: Problem
    baseline: np.ndarray  # group-blind (unmitigated) decisions


def best_single_threshold(scores: np.ndarray, y: np.ndarray, objective: str) -> float:
    """Group-blind threshold maximising the objective on all rows (the 'overall threshold')."""
    cell = make_cell("all", scores, y)
    cand = threshold_candidates(cell, grid_size=len(scores) + 1)
    pos = int(y.sum())
    obj = objective_from_totals(
        objective, cand.counts, cand.tp, cand.fp, len(y), pos, len(y) - pos
    )
    best = int(np.argmax(obj))
    return count_to_threshold(cell.scores_desc, int(cand.counts[best]))


def count_to_threshold(scores_desc: np.ndarray, count: int) -> float:
    """Threshold selecting the top ``count`` rows: the lowest selected score (inf for none)."""
    return float(scores_desc[count - 1]) if count > 0 else math.inf


def top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Exactly k rows with the highest scores, ties broken by row order."""
    order = np.argsort(-scores, kind="stable")
    mask = np.zeros(len(scores), dtype=bool)
    mask[order[:k]] = True
    return mask


def prepare(
    scores: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    names: list[str],
    columns: list[str] | None,
    *,
    objective: str,
    constraint: str,
    k: int | None,
    min_group_size: int,
    grid_size: int,
) -> Prepared:
    sizes = np.bincount(codes, minlength=len(names))
    large = [g for g in range(len(names)) if sizes[g] >= min_group_size]
    small = [g for g in range(len(names)) if sizes[g] < min_group_size]
    in_small = np.isin(codes, small)
    if k is None:
        fallback = best_single_threshold(scores, y, objective)
        baseline = scores >= fallback
        small_selected = in_small & baseline
        budget = None
    else:
        baseline = top_k_mask(scores, k)
        fallback = float(np.sort(scores)[::-1][k - 1])
        small_selected = in_small & baseline
        budget = k - int(small_selected.sum())
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    cells, cands = [], []
    for g in large:
        rows = order[bounds[g] : bounds[g + 1]]
        cell = make_cell(names[g], scores[rows], y[rows])
        cells.append(cell)
        cand = (full_candidates(cell) if k is not None
                else threshold_candidates(cell, grid_size))
        cands.append(order_by_precision(cand) if "ppv" in DIMS[constraint] else cand)
    pos = int(y.sum())
    problem = Problem(
        cells=cells,
        cands=cands,
        dims=DIMS[constraint],
        const_sel=int(small_selected.sum()),
        const_tp=int((small_selected & (y == 1)).sum()),
        const_fp=int((small_selected & (y == 0)).sum()),
        total_n=len(y),
        total_pos=pos,
        total_neg=len(y) - pos,
    )
    return Prepared(
        scores,
        y,
        codes,
        names,
        columns,
        large,
        small,
        fallback,
        k,
        budget,
        small_selected,
        problem,
        baseline,
    )
