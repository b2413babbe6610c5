"""Confusion counts per group and the rate metrics computed from them.

Metrics (aequitas names; ``pos = tp + fn``, ``neg = fp + tn``, ``pp = tp + fp``,
``pn = tn + fn``, ``n = pos + neg``)::

    prevalence = pos / n            pprev     = pp / n  (selection rate)
    ppr        = pp / sum(pp)       precision = tp / pp    fdr = fp / pp
    for        = fn / pn            npv       = tn / pn
    tpr        = tp / pos           fnr       = fn / pos
    fpr        = fp / neg           tnr       = tn / neg
    accuracy   = (tp + tn) / n      roc_auc   = Mann-Whitney U / (pos * neg)

``ppr`` is the group's share of all predicted positives (``sum(pp)`` over all rows). Undefined
ratios (0/0) are NaN, never 0.
"""

from __future__ import annotations

import numpy as np

COUNT_COLUMNS: tuple[str, ...] = ("n", "pos", "neg", "tp", "fp", "tn", "fn", "pp", "pn")
RATE_METRICS: tuple[str, ...] = (
    "prevalence",
    "pprev",
    "ppr",
    "precision",
    "fdr",
    "for",
    "npv",
    "tpr",
    "fnr",
    "fpr",
    "tnr",
    "accuracy",
    "roc_auc",
)

# Proportion metrics as (numerator cells, denominator column). ``ppr`` divides by the total
# number of predicted positives; ``roc_auc`` is not a proportion.
PROPORTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "prevalence": (("tp", "fn"), "n"),
    "pprev": (("tp", "fp"), "n"),
    "ppr": (("tp", "fp"), "pp_total"),
    "precision": (("tp",), "pp"),
    "fdr": (("fp",), "pp"),
    "for": (("fn",), "pn"),
    "npv": (("tn",), "pn"),
    "tpr": (("tp",), "pos"),
    "fnr": (("fn",), "pos"),
    "fpr": (("fp",), "neg"),
    "tnr": (("tn",), "neg"),
    "accuracy": (("tp", "tn"), "n"),
}


def confusion_counts(
    y_true: np.ndarray, y_pred: np.ndarray, codes: np.ndarray, n_groups: int
) -> np.ndarray:
    """Confusion cells per group in one ``np.bincount``: array (n_groups, 4) of tn, fp, fn, tp.

    Each row falls in cell ``4 * group + 2 * y_true + y_pred``.
    """
    key = np.asarray(codes).astype(np.int64) * 4 + (2 * np.asarray(y_true, dtype=np.int64)
                                                    + np.asarray(y_pred, dtype=np.int64))
    return np.bincount(key, minlength=4 * n_groups).reshape(n_groups, 4)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` elementwise, NaN where ``den`` is 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def metrics_from_counts(counts: np.ndarray,
                        pp_total: float | None = None) -> dict[str, np.ndarray]:
    """All count columns and rate metrics (except ``roc_auc``) from (n_groups, 4) cells.

    ``pp_total`` is the number of predicted positives the ``ppr`` shares refer to (all rows);
    it defaults to the sum over the given groups, right when they partition the rows. Counts
    stay integers unless they are fractional (top-k ties counted by expected value); ``n``, a
    number of rows, is always an integer.
    """
    counts = np.asarray(counts)
    counts = counts.astype(np.int64 if np.issubdtype(counts.dtype, np.integer) else np.float64)
    tn, fp, fn, tp = counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3]
    pos, neg, pp, pn = tp + fn, fp + tn, tp + fp, tn + fn
    n = np.rint(pos + neg).astype(np.int64)
    total = float(pp.sum()) if pp_total is None else float(pp_total)
    out = {"n": n, "pos": pos, "neg": neg, "tp": tp, "fp": fp, "tn": tn, "fn": fn}
    out |= {"pp": pp, "pn": pn}
    out["prevalence"] = ratio(pos, n)
    out["pprev"] = ratio(pp, n)
    out["ppr"] = ratio(pp, np.full(len(pp), total))
    out["precision"] = ratio(tp, pp)
    out["fdr"] = ratio(fp, pp)
    out["for"] = ratio(fn, pn)
    out["npv"] = ratio(tn, pn)
    out["tpr"] = ratio(tp, pos)
    out["fnr"] = ratio(fn, pos)
    out["fpr"] = ratio(fp, neg)
    out["tnr"] = ratio(tn, neg)
    out["accuracy"] = ratio(tp + tn, n)
    return out
