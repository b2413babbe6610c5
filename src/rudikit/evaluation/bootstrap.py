"""The one bootstrap helper: seeded resamples and percentile intervals.

Every bootstrap in rudikit (metric intervals in :mod:`rudikit.evaluation.metrics`, group
intervals in :mod:`rudikit.fairness.disparities`, simulated lists in
:mod:`rudikit.fairness.list_simulation`) draws its resamples and reads its interval here, so a
given seed gives the same figures whichever report shows them. Callers own their
``np.random.Generator`` and the order of draws (e.g. chunked for memory), which fixes each
caller's numbers for a seed.

Three ways to resample ``n`` rows with replacement, all equivalent to the row bootstrap:

* :func:`resample_indices`: the drawn row numbers, ``(resamples, size)``;
* :func:`resample_weights`: how often each row was drawn, ``(resamples, n)`` (weights for
  metrics computed from one sort of the scores);
* :func:`resample_counts`: stratified (grouped) resampling when only each group's cell counts
  matter; a group's resampled counts are multinomial with its observed cell frequencies.
"""

from __future__ import annotations

import numpy as np


def resample_indices(n: int, resamples: int, rng: np.random.Generator,
                     size: int | None = None) -> np.ndarray:
    """Row numbers drawn uniformly with replacement: array ``(resamples, size or n)``."""
    return rng.integers(0, n, size=(resamples, n if size is None else size))


def resample_weights(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Multinomial case counts: row b says how often each case was drawn in resample b."""
    draws = resample_indices(n, resamples, rng)
    offsets = (np.arange(resamples) * n)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=resamples * n).reshape(
        resamples, n).astype(float)


def resample_counts(counts: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Stratified bootstrap of per-group cell counts ``(groups, cells)``: array
    ``(resamples, groups, cells)``, each group keeping its size. An empty group draws all of its
    (zero) rows into the first cell. Fractional counts (expected values) give the cell
    frequencies; each group's size is their rounded sum."""
    counts = np.asarray(counts, dtype=np.float64)
    n = np.rint(counts.sum(axis=1)).astype(np.int64)
    first = np.zeros(counts.shape[1])
    first[0] = 1.0
    probs = np.where(n[:, None] > 0, counts / np.maximum(n, 1)[:, None], first)
    return rng.multinomial(n, probs, size=(resamples, len(n)))


def percentile_interval(values: np.ndarray, confidence: float, axis: int | None = None,
                        ignore_nan: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper): the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of
    the replicates (linear interpolation), over ``axis``; with ``ignore_nan`` undefined
    replicates (NaN) are left out."""
    alpha = (1 - confidence) / 2
    quantile = np.nanquantile if ignore_nan else np.quantile
    lower, upper = quantile(values, [alpha, 1 - alpha], axis=axis)
    return lower, upper
