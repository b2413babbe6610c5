"""The statistics behind every fairness verdict: proportion intervals, tests of a gap or a ratio
against its bound, and the multiple-comparison correction, from statsmodels.

A verdict of "unfair" / "not met" must be supported by the data, not only by a point estimate
over the bound: with a 1-of-1 precision or a handful of flagged cases any gap can appear. Each
comparison is therefore a test of the null hypothesis "within the bound" (``|p1 - p2| <= bound``
for a gap, ``lower <= p1 / p2 <= upper`` for a ratio), and the p-values of all the comparisons
of one requirement (or of one attribute and metric of an audit) are corrected together: Holm
(family-wise error, the default) or Benjamini-Hochberg (false discovery rate, ``fdr_bh``).

The two-sided null is tested as two one-sided tests of
:func:`statsmodels.stats.proportion.test_proportions_2indep`, one per direction, the smaller
p-value doubled (a Bonferroni step over the two directions), which keeps the level. A ratio uses
the score test (Miettinen-Nurminen). A difference at a bound of 0 uses the score test too, which
is then exactly the pooled z-test of equality (Pearson's chi-square); above 0 it uses
Agresti-Caffo (add one success and one failure to each group), because statsmodels' score test
of a non-zero difference solves its constrained maximum likelihood with a wrong coefficient
(statsmodels issue 10269, open in 0.15: 40/340 against 50/110 at a 10-point bound gives
z = 5.12 one way and 5.15 the other, the exact constrained MLE 5.10 both ways).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import special
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint, test_proportions_2indep

Correction = Literal["holm", "fdr_bh"]
CORRECTIONS: tuple[str, ...] = ("holm", "fdr_bh")
CORRECTION_NAMES: dict[str, str] = {"holm": "Holm", "fdr_bh": "Benjamini-Hochberg"}


def check_correction(correction: str) -> None:
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {list(CORRECTIONS)}, got {correction!r}")


def check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")


def proportion_interval(
    successes: object, trials: object, *, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of binomial proportions (NaN where ``trials`` is 0)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    x = np.atleast_1d(np.asarray(successes, dtype=np.float64))
    n = np.atleast_1d(np.asarray(trials, dtype=np.float64))
    if np.any(x < 0) or np.any(x > n):
        raise ValueError("successes must lie between 0 and trials")
    with np.errstate(divide="ignore", invalid="ignore"):
        lower, upper = proportion_confint(x, n, alpha=1 - confidence, method="wilson")
    ok = n > 0
    return (np.where(ok, np.clip(lower, 0, 1), np.nan), np.where(ok, np.clip(upper, 0, 1), np.nan))


def _one_sided(x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray, value: float,
               compare: str, alternative: str) -> np.ndarray:
    if len(x1) == 0:
        return np.empty(0)
    method = "agresti-caffo" if compare == "diff" else "score"
    with np.errstate(divide="ignore", invalid="ignore"):
        res = test_proportions_2indep(x1, n1, x2, n2, value=value, method=method,
                                      compare=compare, alternative=alternative,
                                      correction=False, return_results=True)
    return np.broadcast_to(np.asarray(res.pvalue, dtype=np.float64), x1.shape)


def _arrays(*values: object) -> list[np.ndarray]:
    arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=np.float64))
                                   for v in values))
    return [np.array(a) for a in arrays]


def _finish(p: np.ndarray, n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """NaN where a denominator is empty; 1 (no evidence) where the test degenerates, e.g.
    both proportions 0."""
    valid = (n1 > 0) & (n2 > 0)
    return np.where(valid, np.where(np.isnan(p), 1.0, np.minimum(p, 1.0)), np.nan)


def _outside_pvalue(x1: object, n1: object, x2: object, n2: object, lower: float,
                    upper: float, compare: str) -> np.ndarray:
    """p-value against ``lower <= effect <= upper`` (``compare``: the difference or the ratio
    of the proportions): twice the smaller of the two one-sided p-values, beyond ``upper`` and
    below ``lower``."""
    a1, b1, a2, b2 = _arrays(x1, n1, x2, n2)
    ok = (b1 > 0) & (b2 > 0)
    p = np.full(a1.shape, np.nan)
    if ok.any():
        args = (a1[ok], b1[ok], a2[ok], b2[ok])
        above = _one_sided(*args, upper, compare, "larger")
        below = _one_sided(*args, lower, compare, "smaller")
        p[ok] = 2 * np.fmin(above, below)
    return _finish(p, b1, b2)


def two_proportion_ztest(x1: object, n1: object, x2: object, n2: object
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Pooled two-proportion z-test of equal proportions, two-sided: ``(z, p_value)``.

    The score test at a difference of 0 (equal to Pearson's chi-square without continuity
    correction). NaN when a denominator is 0; when both proportions are 0 (or both 1) there is
    no variation at all: ``z = 0`` and ``p_value = 1``, as an exact test would give.
    """
    a1, b1, a2, b2 = _arrays(x1, n1, x2, n2)
    ok = (b1 > 0) & (b2 > 0)
    z = np.full(a1.shape, np.nan)
    p = np.full(a1.shape, np.nan)
    if ok.any():
        with np.errstate(divide="ignore", invalid="ignore"):
            res = test_proportions_2indep(a1[ok], b1[ok], a2[ok], b2[ok], method="score",
                                          compare="diff", correction=False, return_results=True)
        z[ok] = res.statistic
        p[ok] = res.pvalue
    flat = ok & np.isnan(z)
    z[flat], p[flat] = 0.0, 1.0
    return z, p


def difference_pvalue(x1: object, n1: object, x2: object, n2: object, bound: float = 0.0
                      ) -> np.ndarray:
    """p-value against ``|x1/n1 - x2/n2| <= bound`` (a proportion difference, 0.05 = 5 points).

    At ``bound=0`` it is :func:`two_proportion_ztest`.
    """
    if bound == 0:
        return two_proportion_ztest(x1, n1, x2, n2)[1]
    return _outside_pvalue(x1, n1, x2, n2, -bound, bound, "diff")


def ratio_pvalue(x1: object, n1: object, x2: object, n2: object, lower: float, upper: float
                 ) -> np.ndarray:
    """p-value against ``lower <= (x1/n1) / (x2/n2) <= upper`` (e.g. aequitas's 0.8-1.25)."""
    return _outside_pvalue(x1, n1, x2, n2, lower, upper, "ratio")


def auc_standard_error(auc: object, pos: object, neg: object) -> np.ndarray:
    """Hanley & McNeil's (1982) standard error of a ROC AUC from its positives and negatives.

    Hand-written: neither statsmodels nor scikit-learn has an AUC standard error, and this one
    needs only the AUC and the two counts (no per-row scores), which is what a cell keeps."""
    a, npos, nneg = _arrays(auc, pos, neg)
    q1 = a / (2 - a)
    q2 = 2 * a * a / (1 + a)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = (a * (1 - a) + (npos - 1) * (q1 - a * a) + (nneg - 1) * (q2 - a * a)) / (npos * nneg)
    return np.sqrt(np.where((npos > 0) & (nneg > 0), np.maximum(var, 0.0), np.nan))


def auc_difference_pvalue(auc1: object, se1: object, auc2: object, se2: object,
                          bound: float = 0.0) -> np.ndarray:
    """p-value against ``|auc1 - auc2| <= bound`` for independent groups (normal test, the two
    directions as in :func:`difference_pvalue`)."""
    a1, s1, a2, s2 = _arrays(auc1, se1, auc2, se2)
    se = np.sqrt(s1 * s1 + s2 * s2)
    d = np.abs(a1 - a2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * special.ndtr(-(d - bound) / se)
    p = np.where(se > 0, p, np.where(d > bound, 0.0, 1.0))
    return np.where(np.isnan(a1) | np.isnan(a2) | np.isnan(se), np.nan, np.minimum(p, 1.0))


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values, as ``multipletests(p, method="holm")[1]`` gives them.

    Hand-written because statsmodels' Holm branch calls ``gc.collect()`` on every call: about
    0.5 s with two million live objects, paid for every requirement and every attribute and
    metric of an audit (bench/multipletests.py: 200 families took 104 s against 0.06 s; tests
    compare the two results)."""
    order = np.argsort(p, kind="stable")
    steps = (len(p) - np.arange(len(p))) * p[order]
    out = np.empty(len(p))
    out[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    return out


def auc_ratio_pvalue(auc1: object, se1: object, auc2: object, se2: object, lower: float,
                     upper: float) -> np.ndarray:
    """p-value against ``lower <= auc1 / auc2 <= upper`` for independent groups: a normal test
    of the log ratio, its standard error by the delta method from the two AUCs' errors."""
    a1, s1, a2, s2 = _arrays(auc1, se1, auc2, se2)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(a1 / a2)
        se = np.sqrt((s1 / a1) ** 2 + (s2 / a2) ** 2)
        above = special.ndtr(-(log_ratio - np.log(upper)) / se)
        below = special.ndtr((log_ratio - np.log(lower)) / se)
    p = np.minimum(2 * np.fmin(above, below), 1.0)
    return np.where(np.isfinite(log_ratio) & (se > 0), p, np.nan)


def adjust(p_values: object, correction: Correction = "holm") -> np.ndarray:
    """Corrected p-values of one family (NaN entries are not hypotheses and stay NaN)."""
    check_correction(correction)
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = _holm(p[ok]) if correction == "holm" else multipletests(
            p[ok], method=correction)[1]
    return out
