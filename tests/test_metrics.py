"""Evaluation metrics against scikit-learn, and precision@k ties against enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn import metrics as skm

from rudikit.evaluation.metrics import (
    evaluate_scores,
    k_for_percent,
    precision_at_k,
    recall_at_k,
    roc_auc,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_point_estimates_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    y = rng.integers(0, 2, n)
    # rounded scores: many ties, which is where hand-written curves usually go wrong
    score = np.round(np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1), 2)
    values = {(m.metric, m.parameter): m.value for m in evaluate_scores(
        y, score, thresholds=[0.3, 0.5], top_k=[50], top_pct=[10], bootstrap=0)}
    assert values[("roc_auc", "")] == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
    assert values[("average_precision", "")] == pytest.approx(
        skm.average_precision_score(y, score), abs=1e-12)
    assert values[("brier", "")] == pytest.approx(skm.brier_score_loss(y, score), abs=1e-12)
    for t in (0.3, 0.5):
        pred = (score >= t).astype(int)
        assert values[("precision", f"{t:g}")] == pytest.approx(skm.precision_score(y, pred),
                                                                abs=1e-12)
        assert values[("recall", f"{t:g}")] == pytest.approx(skm.recall_score(y, pred),
                                                             abs=1e-12)
        assert values[("f1", f"{t:g}")] == pytest.approx(skm.f1_score(y, pred), abs=1e-12)
        assert values[("accuracy", f"{t:g}")] == pytest.approx(skm.accuracy_score(y, pred),
                                                               abs=1e-12)


def brute_force_precision_at_k(y: np.ndarray, score: np.ndarray, k: int) -> float:
    """Mean precision@k over every ordering of the tied cases (the definition we implement)."""
    results = []
    for order in itertools.permutations(range(len(y))):
        order = np.array(order)
        ranked = order[np.argsort(-score[order], kind="stable")]
        results.append(y[ranked[:k]].mean())
    return float(np.mean(results))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_precision_at_k_ties_are_expected_value(k: int) -> None:
    y = np.array([1, 0, 1, 0, 0, 1])
    score = np.array([0.9, 0.5, 0.5, 0.5, 0.1, 0.1])
    assert precision_at_k(y, score, k) == pytest.approx(brute_force_precision_at_k(y, score, k))
    tp = precision_at_k(y, score, k) * k
    assert recall_at_k(y, score, k) == pytest.approx(tp / 3)


def test_top_k_without_ties_matches_sorting() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 1000)
    score = rng.random(1000)
    top = np.argsort(-score)[:100]
    assert precision_at_k(y, score, 100) == pytest.approx(y[top].mean())
    assert k_for_percent(1000, 10) == 100 and k_for_percent(7, 10) == 0
    assert k_for_percent(1005, 10) == 100  # at most 10%
    assert precision_at_k(y, score, 5000) == pytest.approx(y.mean())  # k larger than n


def test_bootstrap_intervals_cover_the_estimate_and_are_reproducible() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    score = rng.random(2000) + 0.3 * y
    a = evaluate_scores(y, score, top_pct=[10], bootstrap=300, seed=1)
    b = evaluate_scores(y, score, top_pct=[10], bootstrap=300, seed=1)
    assert a == b
    for m in a:
        assert m.lower is not None and m.lower <= m.value <= m.upper, m
    auc = next(m for m in a if m.metric == "roc_auc")
    # the bootstrap standard error of AUC on 2,000 cases is about 0.01: the 95% width ~0.04
    assert 0.02 < auc.upper - auc.lower < 0.07


def test_undefined_metrics_are_nan_and_bad_input_is_named() -> None:
    y = np.array([0, 0, 1])
    score = np.array([0.1, 0.2, 0.3])
    values = {(m.metric, m.parameter): m.value for m in evaluate_scores(
        y, score, thresholds=[0.9], bootstrap=0)}
    assert np.isnan(values[("precision", "0.9")])  # nothing predicted positive
    assert roc_auc(y, score) == 1.0
    with pytest.raises(ValueError, match="only 0 and 1"):
        evaluate_scores(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="same length"):
        evaluate_scores(np.array([0, 1]), np.array([0.1]))
    with pytest.raises(ValueError, match="NaN"):
        evaluate_scores(np.array([0, 1]), np.array([0.1, np.nan]))


def test_streamed_bootstrap_equals_the_materialised_one_and_holds_one_block(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The intervals from blocks of resamples equal those from the whole ``resamples x n``
    weight matrix drawn at once with the same seed (the old computation), and the largest
    weight block held does not grow with the number of resamples."""
    from rudikit.evaluation import metrics as m
    from rudikit.evaluation.bootstrap import percentile_interval, resample_weights

    rng = np.random.default_rng(5)
    n = 30_000
    y = (rng.random(n) < 0.2).astype(float)
    score = np.round(np.clip(y * 0.3 + rng.normal(0.4, 0.2, n), 0, 1), 3)  # with ties
    lists = {"thresholds": [0.5], "top_k": [100], "top_pct": [10.0]}
    monkeypatch.setattr(m, "BLOCK_CELLS", 7 * n)  # blocks of 7 resamples: 200 = 28 x 7 + 4
    shapes: list[tuple[int, int]] = []

    def recorded(n_rows: int, resamples: int, generator: np.random.Generator) -> np.ndarray:
        weights = resample_weights(n_rows, resamples, generator)
        shapes.append(weights.shape)
        return weights

    monkeypatch.setattr(m, "resample_weights", recorded)
    streamed = {(v.metric, v.parameter): (v.lower, v.upper)
                for v in m.evaluate_scores(y, score, bootstrap=200, seed=3, **lists)}
    assert max(shapes) == (7, n) and sum(s[0] for s in shapes) == 200
    everything = m._metric_rows(m._Ranking(y, score),
                                resample_weights(n, 200, np.random.default_rng(3)), **lists)
    for key, values in everything.items():
        values = values[~np.isnan(values)]
        lower, upper = percentile_interval(values, 0.95)
        assert streamed[key] == (float(lower), float(upper)), key
    shapes.clear()
    m.evaluate_scores(y, score, bootstrap=1000, seed=3, **lists)
    assert max(shapes) == (7, n) and sum(s[0] for s in shapes) == 1000
