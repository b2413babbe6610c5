"""Selection rules: turn scores into 0/1 decisions by a threshold or a top-k list.

* A row is predicted positive when ``score >= threshold``, or when it is in the top-k list.
* Top-k lists (``top_k`` rows, or ``top_pct`` percent of rows, ``k = floor(top_pct * n / 100)``)
  rank by descending score. Ties at the k-th score: ``tie_break="expected"`` counts each
  tied row by its expected membership (places left / tied rows), as precision@k does in
  :mod:`rudikit.evaluation.metrics`, so group counts do not depend on file order (the
  predictions are then fractional weights); ``"stable"`` keeps the earlier rows in input order;
  ``"random"`` draws the tied rows uniformly at random with the given ``random_state``. Whenever
  tied rows straddle the cut, a :class:`TiedAtCutWarning` says how many.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from rudikit.evaluation.metrics import expected_selection, k_for_percent
from rudikit.fairness.inputs import check_scores

TieBreak = Literal["expected", "stable", "random"]
TIE_BREAKS: tuple[str, ...] = ("expected", "stable", "random")


class TiedAtCutWarning(UserWarning):
    """Rows tied at the k-th score straddle the cut of a top-k list."""


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
    """Turn scores into predictions with exactly one selection rule.

    ``threshold``: positive (1) when ``score >= threshold``.
    ``top_k`` / ``top_pct``: the k highest scores are positive. Rows with a score strictly above
    the k-th highest are always in; among the rows tied at the k-th score, ``"expected"`` gives
    each the weight ``places left / tied rows`` (float array), ``"stable"`` takes the earliest
    rows (input order) and ``"random"`` a uniform random subset drawn with ``random_state``
    (0/1 array). Warns (:class:`TiedAtCutWarning`) with the number of tied rows straddling the
    cut.
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
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break must be one of {list(TIE_BREAKS)}, got {tie_break!r}")
    k = top_k_size(len(scores), top_k=top_k, top_pct=top_pct)
    share, straddling = expected_selection(scores, k)
    if straddling:
        warnings.warn(
            f"{straddling} rows tied at the k-th score straddle the cut of the top-{k} list; "
            f"tie_break={tie_break!r}" + (" counts each by its expected share"
                                          if tie_break == "expected" else ""),
            TiedAtCutWarning, stacklevel=2)
    if tie_break == "expected":
        return share
    pred = (share == 1.0).astype(np.int8)
    tied = np.flatnonzero((share > 0) & (share < 1))
    missing = k - int(pred.sum())
    if tie_break == "stable":
        pred[tied[:missing]] = 1
    else:
        rng = np.random.default_rng(random_state)
        pred[rng.choice(tied, size=missing, replace=False)] = 1
    return pred
