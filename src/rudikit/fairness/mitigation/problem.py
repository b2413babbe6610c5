"""The threshold search's input and output: each constrained group ("cell") with its scores
sorted once, the selection counts a threshold can realise in it (candidates), the rate each
candidate gives, and the chosen counts (:class:`Solution`). The algorithm is described in
:mod:`rudikit.fairness.mitigation.search`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-9
"""Slack for floating-point comparisons of rates against window edges and tolerances."""


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

