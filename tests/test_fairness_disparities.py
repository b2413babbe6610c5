"""Disparities, Wilson intervals, z-tests and summary measures, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rudikit.fairness.disparities import (
    STATUS_INCONCLUSIVE,
    STATUS_INSUFFICIENT,
    STATUS_OK,
    STATUS_REFERENCE,
    STATUS_REFERENCE_INSUFFICIENT,
    STATUS_UNFAIR,
    bootstrap_intervals,
    disparities,
    disparity_wide,
    proportion_counts,
)
from rudikit.fairness.group_metrics import group_metrics
from rudikit.fairness.significance import adjust, ratio_pvalue, two_proportion_ztest
from rudikit.fairness.significance import proportion_interval as wilson_interval
from rudikit.fairness.summary import (
    between_group_generalized_entropy,
    generalized_entropy_from_counts,
    generalized_entropy_index,
    summary_measures,
)


def _table(cells: dict[str, tuple[int, int, int, int]]) -> pd.DataFrame:
    """Group table for one attribute 'a' from {group: (tp, fp, tn, fn)}."""
    y, p, g = [], [], []
    for group, (tp, fp, tn, fn) in cells.items():
        for yy, pp, k in ((1, 1, tp), (0, 1, fp), (0, 0, tn), (1, 0, fn)):
            y += [yy] * k
            p += [pp] * k
            g += [group] * k
    return group_metrics(np.array(y), np.array(p), sensitive_features={"a": g})


CELLS = {"big": (60, 40, 300, 100), "mid": (50, 50, 60, 40), "small": (5, 5, 5, 5)}


def _row(long: pd.DataFrame, group: str, metric: str) -> pd.Series:
    return long[(long.group == group) & (long.metric == metric)].iloc[0]


# --- Wilson ------------------------------------------------------------------------------


def test_wilson_published_values() -> None:
    # textbook values (e.g. Newcombe 1998, Brown, Cai & DasGupta 2001) for 95 %
    lo, hi = wilson_interval([0, 1, 5, 10], [10, 10, 10, 10])
    np.testing.assert_allclose(lo, [0.0, 0.017876, 0.236590, 0.722467], atol=5e-6)
    np.testing.assert_allclose(hi, [0.277533, 0.404150, 0.763410, 1.0], atol=5e-6)


def test_wilson_against_the_formula_and_empty() -> None:
    x, n, conf = 17, 83, 0.9
    z = stats.norm.ppf(0.95)
    p = x / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    lo, hi = wilson_interval(x, n, confidence=conf)
    assert lo == pytest.approx(centre - half, abs=1e-12)
    assert hi == pytest.approx(centre + half, abs=1e-12)
    lo, hi = wilson_interval([0], [0])
    assert np.isnan(lo[0]) and np.isnan(hi[0])
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=1.5)


# --- z-test ------------------------------------------------------------------------------


def test_ztest_by_hand_and_equals_pearson_chi_square() -> None:
    x1, n1, x2, n2 = 40, 340, 50, 110
    p1, p2, pool = x1 / n1, x2 / n2, (x1 + x2) / (n1 + n2)
    z_hand = (p1 - p2) / math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
    p_hand = 2 * stats.norm.sf(abs(z_hand))
    z, p = two_proportion_ztest(x1, n1, x2, n2)
    assert z == pytest.approx(z_hand, abs=1e-12)
    assert p == pytest.approx(p_hand, rel=1e-10)
    chi2, p_chi, _, _ = stats.chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)
    assert z**2 == pytest.approx(chi2, rel=1e-10)
    assert p == pytest.approx(p_chi, rel=1e-10)


def test_ztest_degenerate_cases() -> None:
    z, p = two_proportion_ztest([0, 3, 2], [10, 0, 5], [0, 1, 2], [20, 4, 5])
    assert z[0] == 0 and p[0] == 1  # both 0 %: no difference
    assert np.isnan(z[1]) and np.isnan(p[1])  # empty denominator
    assert z[2] == 0 and p[2] == pytest.approx(1.0)


def test_each_metric_is_tested_on_its_own_denominator() -> None:
    t = _table(CELLS)
    long = disparities(t, reference={"a": "big"}, min_group_size=10)
    big, mid = CELLS["big"], CELLS["mid"]
    # (numerator, denominator) as (tp, fp, tn, fn) index combinations
    checks = {
        "fpr": (lambda c: c[1], lambda c: c[1] + c[2]),
        "fdr": (lambda c: c[1], lambda c: c[0] + c[1]),
        "precision": (lambda c: c[0], lambda c: c[0] + c[1]),
        "for": (lambda c: c[3], lambda c: c[2] + c[3]),
        "tpr": (lambda c: c[0], lambda c: c[0] + c[3]),
        "pprev": (lambda c: c[0] + c[1], lambda c: sum(c)),
    }
    for metric, (num, den) in checks.items():
        r = _row(long, "mid", metric)
        x1, n1, x2, n2 = num(mid), den(mid), num(big), den(big)
        p1, p2, pool = x1 / n1, x2 / n2, (x1 + x2) / (n1 + n2)
        z = (p1 - p2) / math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
        assert r.numerator == x1 and r.denominator == n1, metric
        assert r.z == pytest.approx(z, abs=1e-12), metric
        assert r.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9), metric
    # FPR and FDR have different tests (aequitas tests the FDR for both)
    assert _row(long, "mid", "fpr").p_value != pytest.approx(_row(long, "mid", "fdr").p_value)
    assert np.isnan(_row(long, "mid", "ppr").p_value)


# --- disparities -------------------------------------------------------------------------


def test_disparities_by_hand() -> None:
    t = _table(CELLS)
    long = disparities(t, reference={"a": "big"}, min_group_size=10)
    r = _row(long, "mid", "fpr")
    fpr_mid, fpr_big = 50 / 110, 40 / 340
    assert r.value == pytest.approx(fpr_mid)
    assert r.reference_group == "big" and r.reference_value == pytest.approx(fpr_big)
    assert r.disparity_ratio == pytest.approx(fpr_mid / fpr_big)
    assert r.difference_pp == pytest.approx(100 * (fpr_mid - fpr_big))
    # a ratio of 3.9 on 110 and 340 negatives: outside 0.8-1.25 with support after Holm over
    # the two compared groups (mid: 50/110, small: 5/10 against 40/340)
    raw = ratio_pvalue([50, 5], [110, 10], 40, 340, 0.8, 1.25)
    assert r.p_adjusted == pytest.approx(float(adjust(raw, "holm")[0]))
    assert r.p_adjusted < 0.05
    assert not r.fair and r.significant and r.status == STATUS_UNFAIR
    lo, hi = wilson_interval(50, 110)
    assert (r.lower, r.upper) == pytest.approx((float(lo[0]), float(hi[0])))
    ppr = _row(long, "mid", "ppr")
    assert ppr.value == pytest.approx(100 / 210)
    assert ppr.disparity_ratio == pytest.approx(1.0) and ppr.fair
    ref = _row(long, "big", "fpr")
    assert ref.status == STATUS_REFERENCE and ref.disparity_ratio == 1 and np.isnan(ref.p_value)


def test_small_groups_are_insufficient_not_compared() -> None:
    t = _table(CELLS)
    long = disparities(t, min_group_size=50)  # majority reference: 'big'
    small = long[long.group == "small"]
    assert (small.status == STATUS_INSUFFICIENT).all()
    assert small.disparity_ratio.isna().all() and small.p_value.isna().all()
    assert small.fair.isna().all() and small.value.notna().all()  # still described
    assert (long[long.group == "big"].status == STATUS_REFERENCE).all()


def test_named_reference_too_small() -> None:
    long = disparities(_table(CELLS), reference={"a": "small"}, min_group_size=50)
    assert (long[long.group == "mid"].status == STATUS_REFERENCE_INSUFFICIENT).all()
    assert long[long.group == "mid"].disparity_ratio.isna().all()


def test_min_metric_reference_gives_ratios_at_least_one() -> None:
    long = disparities(_table(CELLS), reference="min_metric", min_group_size=10)
    ok = long[long.status == STATUS_OK]
    assert (ok.disparity_ratio >= 1 - 1e-12).all()
    fpr_ref = long[(long.metric == "fpr") & (long.status == STATUS_REFERENCE)]
    assert fpr_ref.group.tolist() == ["big"]  # lowest FPR: 40/340
    fnr_ref = long[(long.metric == "fnr") & (long.status == STATUS_REFERENCE)]
    assert fnr_ref.group.tolist() == ["mid"]  # lowest FNR: 40/90


def test_undefined_metric_status_and_fairness_bounds_option() -> None:
    cells = {"a": (0, 0, 80, 20), "b": (10, 10, 60, 20)}  # group a flags nobody
    long = disparities(_table(cells), reference={"a": "b"}, fairness_bounds=None,
                       min_group_size=10)
    # precision is 0/0 for a: no flagged case, so under any minimum of flagged cases
    assert _row(long, "a", "precision").status == STATUS_INSUFFICIENT
    assert long.fair.isna().all()
    strict = disparities(_table(cells), reference={"a": "b"}, fairness_bounds=(0.9, 1.1),
                         min_group_size=10)
    assert _row(strict, "a", "npv").fair  # 80/100 vs 60/80: ratio 1.067
    assert _row(strict, "a", "npv").disparity_ratio == pytest.approx(0.8 / 0.75)
    # 80/80 vs 60/70: ratio 1.167 is over 1.1, but on 80 and 70 negatives not significantly
    tnr = _row(strict, "a", "tnr")
    assert tnr.disparity_ratio == pytest.approx(1 / (60 / 70))
    assert pd.isna(tnr.fair) and tnr.status == STATUS_INCONCLUSIVE and tnr.p_adjusted > 0.05


def test_disparity_validation_errors() -> None:
    t = _table(CELLS)
    with pytest.raises(ValueError, match="reference group 'nobody' not found"):
        disparities(t, reference={"a": "nobody"})
    with pytest.raises(ValueError, match="unknown attribute 'b'"):
        disparities(t, reference={"b": "x"})
    with pytest.raises(ValueError, match="unknown metric"):
        disparities(t, metrics=["fpr", "nonsense"])
    with pytest.raises(ValueError, match="reference must be"):
        disparities(t, reference="smallest")


def test_bootstrap_intervals_cover_the_value() -> None:
    t = _table(CELLS)
    boot = bootstrap_intervals(t, ["fpr", "ppr"], n_resamples=400, random_state=1)
    lo, hi = boot["fpr"]
    x, n = proportion_counts(t, "fpr")
    value = x / n
    assert (lo <= value).all() and (value <= hi).all()
    w_lo, w_hi = wilson_interval(x, n)
    np.testing.assert_allclose(lo[:2], w_lo[:2], atol=0.03)  # large groups: close to Wilson
    np.testing.assert_allclose(hi[:2], w_hi[:2], atol=0.03)
    long = disparities(t, interval="bootstrap", n_bootstrap=200, min_group_size=10)
    assert long[long.metric == "fpr"].lower.notna().all()


def test_wide_table_has_aequitas_columns() -> None:
    wide = disparity_wide(disparities(_table(CELLS), min_group_size=10))
    assert {"fpr", "fpr_disparity", "fpr_status", "n"} <= set(wide.columns)
    assert wide.group.tolist() == ["big", "mid", "small"]


# --- summary measures ---------------------------------------------------------------------


def test_summary_measures_by_hand() -> None:
    cells = {"g": (30, 10, 50, 10), "h": (20, 30, 40, 10), "tiny": (1, 0, 0, 0)}
    s = summary_measures(_table(cells), min_group_size=10).set_index("measure")
    # g: sel 0.40, acc 0.80, rec 0.75, prec 0.75, cond.acc 40/40, spec 50/60,
    #    cond.rej 60/60, rej 50/60, fn/fp 1.0
    # h: sel 0.50, acc 0.60, rec 2/3,  prec 0.40, cond.acc 30/50, spec 40/70,
    #    cond.rej 70/50, rej 0.80, fn/fp 1/3
    expected = {
        "class_imbalance": 0.40 - 0.30,
        "demographic_parity": 0.10,
        "disparate_impact": 0.40 / 0.50,
        "accuracy_difference": 0.20,
        "recall_difference": 0.75 - 2 / 3,
        "acceptance_rate_difference": 0.35,
        "conditional_acceptance_difference": 1 - 0.6,
        "specificity_difference": 50 / 60 - 40 / 70,
        "conditional_rejectance_difference": 1.4 - 1.0,
        "rejection_rate_difference": 50 / 60 - 0.8,
        "treatment_equality": 1 - 1 / 3,
        "equalized_odds_difference": max(0.75 - 2 / 3, 30 / 70 - 10 / 60),
    }
    for measure, value in expected.items():
        assert s.loc[measure, "value"] == pytest.approx(value), measure
    assert s.loc["demographic_parity", "max_group"] == "h"
    assert s.loc["demographic_parity", "groups_compared"] == 2  # 'tiny' left out


def test_summary_mean_aggregate_is_mean_pairwise_difference() -> None:
    cells = {"g": (30, 10, 50, 10), "h": (20, 30, 40, 10), "k": (10, 10, 70, 10)}
    s = summary_measures(_table(cells), min_group_size=10, aggregate="mean")
    dp = s.set_index("measure").loc["demographic_parity", "value"]
    sel = [0.4, 0.5, 0.2]
    assert dp == pytest.approx(np.mean([0.1, 0.2, 0.3]))
    di = s.set_index("measure").loc["disparate_impact", "value"]
    assert di == pytest.approx(np.mean([sel[0] / sel[1], sel[2] / sel[0], sel[2] / sel[1]]))


def test_generalized_entropy_index_against_direct_formula() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    p = rng.integers(0, 2, 500)
    b = p - y + 1.0
    mu = b.mean()
    for alpha in (2.0, 3.0, 0.5):
        direct = np.mean((b / mu) ** alpha - 1) / (alpha * (alpha - 1))
        assert generalized_entropy_index(y, p, alpha=alpha) == pytest.approx(direct, rel=1e-12)
    r = b / mu
    theil = np.mean(np.where(r > 0, r * np.log(np.where(r > 0, r, 1)), 0))
    assert generalized_entropy_index(y, p, alpha=1) == pytest.approx(theil, rel=1e-12)
    assert generalized_entropy_index(y, p, alpha=0) == math.inf  # a false negative: b = 0
    tn, fp, fn, tp = np.bincount(2 * y + p, minlength=4)
    n = len(y)
    oxonfair = (n * (tp + 4 * fp + tn) / (tp + 2 * fp + tn) ** 2 - 1) / 2  # OxonFair, alpha=2
    assert generalized_entropy_from_counts(tp, fp, tn, fn) == pytest.approx(oxonfair, rel=1e-12)
    assert generalized_entropy_index([1, 0], [1, 0]) == 0.0


def test_between_group_generalized_entropy() -> None:
    # two groups; replace each benefit by its group mean and apply the index
    tp, fp, tn, fn = np.array([5, 1]), np.array([3, 0]), np.array([2, 4]), np.array([0, 5])
    n_g = tp + fp + tn + fn
    mu_g = (tp + tn + 2 * fp) / n_g
    b = np.repeat(mu_g, n_g)
    direct = np.mean((b / b.mean()) ** 2 - 1) / 2
    assert between_group_generalized_entropy(tp, fp, tn, fn) == pytest.approx(direct)


def test_bootstrap_never_gives_a_tiny_cell_a_zero_width_interval() -> None:
    from statsmodels.stats.proportion import proportion_confint

    # group a: 3 flagged, all true positives (precision 3 of 3); b: 0 of 4 false positives
    # among 4 negatives (fpr 0); c: large, an ordinary bootstrap interval
    t = _table({"a": (3, 0, 2, 0), "b": (2, 0, 4, 1), "c": (200, 120, 300, 90)})
    boot = bootstrap_intervals(t, ["precision", "fpr"], n_resamples=300, random_state=0)
    lo, hi = boot["precision"]
    assert (hi - lo > 0).all()
    expected = proportion_confint(3, 3, alpha=0.05, method="wilson")
    np.testing.assert_allclose([lo[0], hi[0]], expected, rtol=1e-12)
    assert lo[0] < 1 and hi[0] == pytest.approx(1)
    lo, hi = boot["fpr"]
    np.testing.assert_allclose([lo[1], hi[1]], proportion_confint(0, 4, method="wilson"),
                               rtol=1e-12, atol=1e-12)
    # the large group keeps its bootstrap interval (it is not the Wilson one exactly)
    assert (lo[2], hi[2]) != pytest.approx(proportion_confint(120, 420, method="wilson"),
                                           abs=1e-9)
    long = disparities(t, interval="bootstrap", n_bootstrap=300, min_group_size=1)
    row = _row(long, "a", "precision")
    assert row.upper - row.lower > 0.3
