"""One-number summaries of group differences per attribute, after OxonFair's fairness report.

Each measure takes a per-group rate ``m_g`` over the groups whose rate has a denominator of at
least ``min_group_size`` (rows for the selection rate, positives for recall, flagged cases for
the acceptance rate, ...; :data:`RATE_DENOMINATORS`) and a defined value, and reports

* ``aggregate="max"`` (default): the maximal group difference ``max_g m_g - min_g m_g``
  (for ``disparate_impact`` the minimal ratio ``min_g m_g / max_g m_g``);
* ``aggregate="mean"``: OxonFair's default, the mean absolute difference over all pairs of
  groups (for ``disparate_impact`` the mean over pairs of ``min(m_a/m_b, m_b/m_a)``).

Per-group rates (``tp, fp, tn, fn`` are the group's confusion counts)::

    class_imbalance                    prevalence          (tp + fn) / n
    demographic_parity                 selection rate      (tp + fp) / n
    disparate_impact                   selection rate      (tp + fp) / n     (ratio)
    accuracy_difference                accuracy            (tp + tn) / n
    recall_difference                  recall              tp / (tp + fn)
    acceptance_rate_difference         acceptance rate     tp / (tp + fp)    (= precision)
    conditional_acceptance_difference  cond. acceptance    (tp + fn) / (tp + fp)
    specificity_difference             specificity         tn / (tn + fp)
    conditional_rejectance_difference  cond. rejectance    (tn + fp) / (tn + fn)
    rejection_rate_difference          rejection rate      tn / (tn + fn)    (= NPV)
    treatment_equality                 error ratio         fn / fp
    equalized_odds_difference          max(recall difference, FPR difference)   (fairlearn)

The acceptance/rejectance names follow OxonFair (from SageMaker Clarify): "acceptance rate" is
P(y=1 | yhat=1), "conditional acceptance" is observed over predicted positives, so 1 means the
model flags as many people as there are positives. Treatment equality uses fn / fp
(Berk et al. 2018, SageMaker Clarify); OxonFair's code uses the inverse, fp / fn. Rates that are
0/0 (e.g. no false positives) are left out rather than counted as 0 as OxonFair does.

The generalised entropy index (Speicher et al. 2018) measures unfairness between individuals
with the benefit ``b_i = yhat_i - y_i + 1`` (0 for a false negative, 1 when right, 2 for a
false positive) and its mean ``mu``::

    GE(alpha) = 1 / (n alpha (alpha - 1)) * sum_i [(b_i / mu)^alpha - 1]    alpha not in {0, 1}
    GE(1)     = 1 / n * sum_i (b_i / mu) ln(b_i / mu)                       (Theil index)
    GE(0)     = -1 / n * sum_i ln(b_i / mu)                                 (inf if any b_i = 0)

Because ``b`` only takes the values 0, 1 and 2 it is computed exactly from the four confusion
counts. Its between-group component replaces each ``b_i`` by its group's mean benefit; it is
reported per attribute over all groups (it decomposes the population index, so small groups are
not dropped).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from rudikit.fairness.inputs import validate_fairness_inputs

SUMMARY_COLUMNS: tuple[str, ...] = (
    "attribute",
    "measure",
    "value",
    "aggregation",
    "groups_compared",
    "max_group",
    "max_value",
    "min_group",
    "min_value",
)

# measure -> (rate computed from counts, kind)
_RATES: dict[str, str] = {
    "class_imbalance": "prevalence",
    "demographic_parity": "selection_rate",
    "disparate_impact": "selection_rate",
    "accuracy_difference": "accuracy",
    "recall_difference": "recall",
    "acceptance_rate_difference": "acceptance_rate",
    "conditional_acceptance_difference": "conditional_acceptance",
    "specificity_difference": "specificity",
    "conditional_rejectance_difference": "conditional_rejectance",
    "rejection_rate_difference": "rejection_rate",
    "treatment_equality": "error_ratio",
}

# what each per-group rate is, for a reader of the summary
_RATE_NAMES: dict[str, str] = {
    "selection_rate": "selection rates",
    "accuracy": "accuracies",
    "recall": "recalls",
    "acceptance_rate": "precisions",
    "conditional_acceptance": "ratios of observed to flagged positives",
    "specificity": "specificities",
    "conditional_rejectance": "ratios of observed to predicted negatives",
    "rejection_rate": "negative predictive values",
    "error_ratio": "ratios fn / fp",
}


# the count each per-group rate divides by, which ``min_group_size`` applies to
RATE_DENOMINATORS: dict[str, str] = {
    "prevalence": "n", "selection_rate": "n", "accuracy": "n", "recall": "pos", "fpr": "neg",
    "acceptance_rate": "pp", "conditional_acceptance": "pp", "specificity": "neg",
    "conditional_rejectance": "pn", "rejection_rate": "pn", "error_ratio": "fp",
}


def measure_reading(measure: str) -> str:
    """How to read a summary measure: its kind, its ideal value and which way is worse.

    A bare number such as 0.30 means nothing without it: a 0.30 disparate impact (a ratio) is
    far from parity, a 0.30 recall difference (a gap) is also far, but in the other direction.
    """
    if measure == "class_imbalance":
        return "difference in label base rates, 0 is equal; describes the data, not the model"
    if measure == "disparate_impact":
        return "ratio, 1 is parity, lower means selection rates further apart"
    if measure == "equalized_odds_difference":
        return "difference (larger of recall and FPR gaps), 0 is parity, higher means less equal"
    if measure == "between_group_generalized_entropy":
        return "index, 0 is equal benefit across groups, higher means less equal"
    if measure == "generalized_entropy_index":
        return "index, 0 is equal benefit across people, higher means less equal"
    if measure in _RATES:
        return f"difference, 0 is parity, higher means {_RATE_NAMES[_RATES[measure]]} further apart"
    raise ValueError(f"unknown summary measure {measure!r}; choose from {list(SUMMARY_MEASURES)}")


SUMMARY_MEASURES: tuple[str, ...] = (
    *_RATES,
    "equalized_odds_difference",
    "between_group_generalized_entropy",
    "generalized_entropy_index",
)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def summary_rates(tp: np.ndarray, fp: np.ndarray, tn: np.ndarray, fn: np.ndarray
                  ) -> dict[str, np.ndarray]:
    """The per-group rates behind the summary measures (see the module docstring)."""
    n = tp + fp + tn + fn
    return {
        "prevalence": _div(tp + fn, n),
        "selection_rate": _div(tp + fp, n),
        "accuracy": _div(tp + tn, n),
        "recall": _div(tp, tp + fn),
        "fpr": _div(fp, fp + tn),
        "acceptance_rate": _div(tp, tp + fp),
        "conditional_acceptance": _div(tp + fn, tp + fp),
        "specificity": _div(tn, tn + fp),
        "conditional_rejectance": _div(tn + fp, tn + fn),
        "rejection_rate": _div(tn, tn + fn),
        "error_ratio": _div(fn, fp),
    }


def generalized_entropy_from_counts(
    tp: float, fp: float, tn: float, fn: float, *, alpha: float = 2.0
) -> float:
    """Generalised entropy index of ``b = yhat - y + 1`` from confusion counts (exact)."""
    n = tp + fp + tn + fn
    if n <= 0:
        return float("nan")
    mu = (tp + tn + 2 * fp) / n
    if mu <= 0:
        return float("nan")
    # (count, benefit) for the three possible benefit values
    terms = ((fn, 0.0), (tp + tn, 1.0), (fp, 2.0))
    if alpha == 1:
        total = sum(c * (b / mu) * np.log(b / mu) for c, b in terms if c > 0 and b > 0)
        return float(total / n)
    if alpha == 0:
        if fn > 0:
            return float("inf")
        return float(-sum(c * np.log(b / mu) for c, b in terms if c > 0) / n)
    if alpha < 0 and fn > 0:
        return float("inf")
    total = sum(c * ((b / mu) ** alpha - 1) for c, b in terms if c > 0)
    return float(total / (n * alpha * (alpha - 1)))


def generalized_entropy_index(y_true: object, y_pred: object, *, alpha: float = 2.0) -> float:
    """Generalised entropy index (Speicher et al. 2018) of the benefit ``yhat - y + 1``.

    0 means every individual gets the same benefit; larger is more unequal. ``alpha=2`` (half
    the squared coefficient of variation) is the default, as in the paper and OxonFair.
    """
    inputs = validate_fairness_inputs(y_true, y_pred)
    assert inputs.y_true is not None and inputs.y_pred is not None
    cells = np.bincount(2 * inputs.y_true.astype(np.int64) + inputs.y_pred, minlength=4)
    tn, fp, fn, tp = (float(c) for c in cells)
    return generalized_entropy_from_counts(tp, fp, tn, fn, alpha=alpha)


def between_group_generalized_entropy(
    tp: np.ndarray, fp: np.ndarray, tn: np.ndarray, fn: np.ndarray, *, alpha: float = 2.0
) -> float:
    """Between-group component: the index with every ``b_i`` replaced by its group mean.

    ``GE_between = 1 / (n alpha (alpha - 1)) * sum_g n_g [(mu_g / mu)^alpha - 1]`` (and the
    Theil / mean-log-deviation forms for ``alpha`` 1 and 0).
    """
    tp, fp, tn, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, tn, fn))
    n_g = tp + fp + tn + fn
    keep = n_g > 0
    n_g = n_g[keep]
    benefit = (tp + tn + 2 * fp)[keep]
    n = n_g.sum()
    if n <= 0 or benefit.sum() <= 0:
        return float("nan")
    mu = benefit.sum() / n
    r = benefit / n_g / mu
    with np.errstate(divide="ignore"):
        if alpha == 1:
            return float(np.sum(n_g * np.where(r > 0, r * np.log(np.where(r > 0, r, 1)), 0)) / n)
        if alpha == 0:
            return float(-np.sum(n_g * np.log(r)) / n)
        return float(np.sum(n_g * (r**alpha - 1)) / (n * alpha * (alpha - 1)))


def _spread(values: np.ndarray, labels: np.ndarray, *, ratio: bool, aggregate: str
            ) -> tuple[float, int, str | None, float, str | None, float]:
    ok = ~np.isnan(values)
    v, lab = values[ok], labels[ok]
    if len(v) < 2:
        return float("nan"), len(v), None, float("nan"), None, float("nan")
    hi, lo = int(np.argmax(v)), int(np.argmin(v))
    if aggregate == "max" and ratio:
        value = v[lo] / v[hi] if v[hi] > 0 else float("nan")
    elif aggregate == "max":
        value = v[hi] - v[lo]
    elif ratio:
        a, b = v[:, None], v[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            pair = np.minimum(a / b, b / a)
        pair[~np.isfinite(pair)] = 1.0  # 0 vs 0: no difference
        iu = np.triu_indices(len(v), 1)
        value = float(pair[iu].mean())
    else:
        iu = np.triu_indices(len(v), 1)
        value = float(np.abs(v[:, None] - v[None, :])[iu].mean())
    return float(value), len(v), str(lab[hi]), float(v[hi]), str(lab[lo]), float(v[lo])


def summary_measures(
    groups: pd.DataFrame,
    *,
    min_group_size: int = 50,
    aggregate: Literal["max", "mean"] = "max",
    alpha: float = 2.0,
) -> pd.DataFrame:
    """Summary measures per attribute of a group table (one row per attribute and measure).

    ``groups`` is a table from :func:`rudikit.fairness.group_metrics.group_metrics`. A group's
    rate whose denominator is under ``min_group_size`` is left out of the differences and
    ratios. The overall
    ``generalized_entropy_index`` is reported once, with attribute ``"(all)"``.
    """
    needed = ("attribute", "group", "n", "tp", "fp", "tn", "fn")
    missing = [c for c in needed if c not in groups.columns]
    if missing:
        raise ValueError(f"groups is not a group-metrics table: missing columns {missing}")
    if aggregate not in ("max", "mean"):
        raise ValueError(f"aggregate must be 'max' or 'mean', got {aggregate!r}")
    rows: list[tuple[object, ...]] = []
    first_counts: tuple[float, float, float, float] | None = None
    for attribute, part in groups.groupby("attribute", sort=False):
        tp, fp, tn, fn = (part[c].to_numpy(dtype=np.float64) for c in ("tp", "fp", "tn", "fn"))
        if first_counts is None:
            first_counts = (tp.sum(), fp.sum(), tn.sum(), fn.sum())
        size = {"n": tp + fp + tn + fn, "pos": tp + fn, "neg": fp + tn, "pp": tp + fp,
                "pn": tn + fn, "fp": fp}
        labels = part["group"].to_numpy(dtype=object)
        # a rate of a group whose denominator is under the minimum is left out (NaN)
        rates = {k: np.where(size[RATE_DENOMINATORS[k]] >= min_group_size, v, np.nan)
                 for k, v in summary_rates(tp, fp, tn, fn).items()}
        for measure, rate in _RATES.items():
            res = _spread(rates[rate], labels, ratio=measure == "disparate_impact",
                          aggregate=aggregate)
            rows.append((attribute, measure, res[0], aggregate, *res[1:]))
        tpr = _spread(rates["recall"], labels, ratio=False, aggregate=aggregate)
        fpr = _spread(rates["fpr"], labels, ratio=False, aggregate=aggregate)
        eo = max(tpr[0], fpr[0]) if not (np.isnan(tpr[0]) or np.isnan(fpr[0])) else np.nan
        rows.append((attribute, "equalized_odds_difference", eo, aggregate,
                     min(tpr[1], fpr[1]), None, np.nan, None, np.nan))
        between = between_group_generalized_entropy(tp, fp, tn, fn, alpha=alpha)
        rows.append((attribute, "between_group_generalized_entropy", between, f"alpha={alpha:g}",
                     len(part), None, np.nan, None, np.nan))
    if first_counts is not None:
        tp_, fp_, tn_, fn_ = first_counts
        ge = generalized_entropy_from_counts(tp_, fp_, tn_, fn_, alpha=alpha)
        rows.append(("(all)", "generalized_entropy_index", ge, f"alpha={alpha:g}",
                     None, None, np.nan, None, np.nan))
    out = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    out["value"] = out["value"].astype(np.float64)
    out["groups_compared"] = out["groups_compared"].astype("Int64")
    return out
