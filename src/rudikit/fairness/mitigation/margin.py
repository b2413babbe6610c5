"""How much tighter than a requirement's bound to fit thresholds so the gap holds on new rows.

Thresholds fitted to a gap ``t`` on the fitting rows do not give a gap ``t`` on the rows they
are used on: each group's rate there differs from its fitted rate by binomial noise (the fitted
rate is itself an estimate from the fitting rows, and the held-out rate another from the
held-out rows). With the fitted rates ``r_g`` within ``[r, r + t]``, the held-out rates are
``r_g + e_g`` with ``e_g`` about ``N(0, s_g^2)``, ``s_g^2 = p_g (1 - p_g) (1 / d_g + 1 / d'_g)``
(``d_g`` and ``d'_g`` the metric's own denominator in the group on the fitting and held-out rows:
rows for the selection rate, positives for the TPR, negatives for the FPR, flagged cases for
precision). The held-out gap is then at most ``t + (max_g e_g - min_g e_g)``, so fitting to
``t = bound - m`` with ``m`` the ``confidence`` quantile of the range of the ``e_g`` keeps the
held-out gap within the bound with at least that probability.

A group is **not checkable** when the margin reaches the bound (``m >= bound``): no thresholds
fitted on these rows can then be expected to meet the bound on new rows. The least precise
groups are named not checkable one by one until the margin of the others is below the bound;
they stay in the search but not in the margin, and a verdict involving them says nothing the
bound can be held to.

The quantile of the range of independent normals with different variances has no closed form
in scipy or statsmodels (``scipy.stats.studentized_range`` is for equal variances), so it is
integrated here: ``P(range <= m) = sum_i integral f_i(x) prod_{j != i} (F_j(x) - F_j(x - m)) dx``
(group ``i`` is the maximum at ``x``, every other group lies in ``[x - m, x]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

DENOMINATORS = {"sr": "n", "tpr": "positives", "fpr": "negatives", "ppv": "selected"}
"""The column of ``group_rates`` that is each rate's own denominator."""

RATE_COLUMNS = {"sr": "selection_rate", "tpr": "tpr", "fpr": "fpr", "ppv": "precision"}


def range_cdf(m: float, sd: np.ndarray, grid: int = 2001) -> float:
    """``P(max_g e_g - min_g e_g <= m)`` for independent ``e_g ~ N(0, sd_g^2)``."""
    sd = np.asarray(sd, dtype=float)
    if len(sd) < 2 or m <= 0:
        return 1.0 if len(sd) < 2 else 0.0
    x = np.linspace(-9 * sd.max(), 9 * sd.max(), grid)
    z = x[None, :] / sd[:, None]
    inside = special.ndtr(z) - special.ndtr(z - m / sd[:, None])  # F_j(x) - F_j(x - m)
    pdf = np.exp(-0.5 * z * z) / (np.sqrt(2 * np.pi) * sd[:, None])
    log_inside = np.log(np.clip(inside, 1e-300, None))
    total = log_inside.sum(axis=0)
    integrand = (pdf * np.exp(total[None, :] - log_inside)).sum(axis=0)
    return float(np.clip(np.trapezoid(integrand, x), 0.0, 1.0))


def range_quantile(sd: np.ndarray, confidence: float) -> float:
    """The ``confidence`` quantile of the range of independent normals with these sds.

    Two groups: the range is ``|e_1 - e_2|``, in closed form. More: solved between the two
    least precise groups' quantile (the range is at least their difference) and twice the
    union bound on the largest ``|e_g|``."""
    sd = np.sort(np.asarray(sd, dtype=float))[::-1]
    if len(sd) < 2 or not (sd > 0).any():
        return 0.0
    sd = np.maximum(sd, 1e-12)
    lo = float(np.hypot(sd[0], sd[1]) * stats.norm.ppf((1 + confidence) / 2))
    if len(sd) == 2:
        return lo
    hi = float(2 * sd[0] * stats.norm.ppf(1 - (1 - confidence) / (2 * len(sd))))
    return float(optimize.brentq(lambda m: range_cdf(m, sd) - confidence, lo * (1 - 1e-9),
                                 hi * (1 + 1e-9), xtol=1e-7))


@dataclass(frozen=True)
class Margin:
    """The margin for one set of groups compared under one bound."""

    margin: float  # fit to bound - margin
    bound: float
    confidence: float
    not_checkable: tuple[str, ...]  # groups whose pair margin alone reaches the bound
    sd: dict[str, float]  # per checked group: sd of its held-out rate about the fitted one

    @property
    def tolerance(self) -> float:
        """The gap to fit to: the bound less the margin (0 when the margin reaches the bound)."""
        return max(self.bound - self.margin, 0.0)


def group_sd(rate: np.ndarray, fit_denominator: np.ndarray, holdout_denominator: np.ndarray
             ) -> np.ndarray:
    """Binomial sd of a held-out rate about the fitted one (fitting and held-out noise).

    A rate of exactly 0 or 1 would give 0; it is taken at one case from the edge instead, so
    a tiny group never looks precise."""
    d = np.asarray(fit_denominator, dtype=float)
    d2 = np.asarray(holdout_denominator, dtype=float)
    p = np.clip(np.asarray(rate, dtype=float), 1 / np.maximum(d, 1), 1 - 1 / np.maximum(d, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        var = p * (1 - p) * (1 / d + 1 / d2)
    return np.where((d > 0) & (d2 > 0), np.sqrt(var), np.inf)


def margin_for(labels: list[str], rate: np.ndarray, fit_denominator: np.ndarray,
               holdout_denominator: np.ndarray, bound: float, confidence: float) -> Margin:
    """The margin for groups with these fitted rates and denominators (see the module doc).

    While the margin of the groups still checked reaches the bound, the least precise group
    (largest sd) is found not checkable and left out; a group without cases is never
    checkable."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: must be between 0 and 1, got {confidence!r}")
    sd = group_sd(rate, fit_denominator, holdout_denominator)
    keep = [i for i in np.argsort(sd, kind="stable") if np.isfinite(sd[i])]  # most precise 1st
    m = range_quantile(sd[keep], confidence)
    while len(keep) >= 2 and m >= bound:
        keep.pop()
        m = range_quantile(sd[keep], confidence)
    kept = set(keep)
    return Margin(m, bound, confidence, tuple(g for i, g in enumerate(labels) if i not in kept),
                  {labels[i]: float(sd[i]) for i in sorted(keep)})
