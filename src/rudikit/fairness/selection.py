"""Selection rules: turn scores into 0/1 decisions by a threshold or a top-k list.

* A row is predicted positive when ``score >= threshold``, or when it is in the top-k list.
* Top-k lists (``top_k`` rows, or ``top_pct`` percent of rows, ``k = floor(top_pct * n / 100)``)
  rank by descending score. Ties at the k-th score are broken explicitly:
  ``tie_break="stable"`` (default) keeps the earlier rows in input order, so the list is
  reproducible from the data alone; ``tie_break="random"`` draws the tied rows uniformly at
  random with the given ``random_state``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from rudikit.evaluation.metrics import k_for_percent
from rudikit.fairness.inputs import check_scores

TieBreak = Literal["stable", "random"]


def top_k_size(n: int, *, top_k: int | None = None, top_pct: float | None = None) -> int:
    """Number of rows in the list: ``top_k``, or
    :func:`rudikit.evaluation.metrics.k_for_percent` (at most ``top_pct`` percent of rows)."""
    if (top_k is None) == (top_pct is None):
        raise ValueError("give exactly one of top_k and top_pct")
    if top_k is not None:
        if isinstance(top_k, bool) or int(top_k) != top_k or top_k < 0:
            raise ValueError(f"top_k must be a non-negative integer, got {top_k!r}")
        if top_k > n:
            raise ValueError(f"top_k={top_k} is larger than the number of rows ({n})")
        return int(top_k)
    assert top_pct is not None
    if not 0 <= top_pct <= 100:
        raise ValueError(f"top_pct must be between 0 and 100, got {top_pct!r}")
    return k_for_percent(n, top_pct)


def binarize(
    y_score: object,
    *,
    threshold: float | None = None,
    top_k: int | None = None,
    top_pct: float | None = None,
    tie_break: TieBreak = "stable",
    random_state: int | None = 0,
) -> np.ndarray:
    """Turn scores into 0/1 predictions with exactly one selection rule.

    ``threshold``: positive when ``score >= threshold``.
    ``top_k`` / ``top_pct``: the k highest scores are positive. Rows with a score strictly above
    the k-th highest are always in; among the rows tied at the k-th score, ``"stable"`` takes the
    earliest rows (input order) and ``"random"`` a uniform random subset drawn with
    ``random_state``. Runs in O(n) (``np.partition``), no full sort.
    """
    scores = check_scores(y_score, "y_score")
    chosen = [v is not None for v in (threshold, top_k, top_pct)]
    if sum(chosen) != 1:
        raise ValueError("give exactly one of threshold, top_k and top_pct")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.number) \
                or not np.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        return (scores >= threshold).astype(np.int8)
    if tie_break not in ("stable", "random"):
        raise ValueError(f"tie_break must be 'stable' or 'random', got {tie_break!r}")
    n = len(scores)
    k = top_k_size(n, top_k=top_k, top_pct=top_pct)
    pred = np.zeros(n, dtype=np.int8)
    if k == 0:
        return pred
    kth = np.partition(scores, n - k)[n - k]
    above = scores > kth
    pred[above] = 1
    missing = k - int(above.sum())
    tied = np.flatnonzero(scores == kth)
    if tie_break == "stable":
        pred[tied[:missing]] = 1
    else:
        rng = np.random.default_rng(random_state)
        pred[rng.choice(tied, size=missing, replace=False)] = 1
    return pred
