"""Tests for per-group threshold mitigation (rudikit.fairness.mitigation).

The brute-force oracles below enumerate every combination of per-group thresholds (or per-group
selection counts in fixed-list-size mode) on tiny data, independently of the search code.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    equal_opportunity_difference,
    equalized_odds_difference,
)
from sklearn.base import clone

from rudikit.config import Fairness
from rudikit.fairness.mitigation.fairlearn_baseline import FairlearnBaseline
from rudikit.fairness.mitigation.fixed_k import search_fixed_k
from rudikit.fairness.mitigation.frontier import frontier, frontier_figure
from rudikit.fairness.mitigation.optimizer import (
    GroupThresholdOptimizer,
    UnseenGroupWarning,
    centre_threshold,
)
from rudikit.fairness.mitigation.prepare import prepare
from rudikit.fairness.mitigation.problem import cell_rates, make_cell, threshold_candidates
from rudikit.fairness.mitigation.rates import constraint_gap, encode_groups, group_labels
from rudikit.fairness.stage import ScoredRows, mitigate

CONSTRAINTS = ["demographic_parity", "equal_opportunity", "equalized_odds"]


def make_data(
    n: int, n_groups: int = 3, seed: int = 0, frame: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | pd.DataFrame]:
    """Scores informative of y, with group-dependent base rates and score shifts."""
    rng = np.random.default_rng(seed)
    if frame:
        race = rng.choice(list("ABCDEF"), n, p=[0.35, 0.2, 0.15, 0.12, 0.1, 0.08])
        sex = rng.choice(["F", "M"], n, p=[0.4, 0.6])
        shift = pd.Series(race).map(
            dict(zip("ABCDEF", [0, 0.4, -0.3, 0.6, -0.5, 0.2], strict=True))
        )
        shift = shift.to_numpy() + (sex == "M") * 0.3
        groups: np.ndarray | pd.DataFrame = pd.DataFrame({"race": race, "sex": sex})
    else:
        codes = rng.integers(0, n_groups, n)
        shift = np.linspace(-0.6, 0.6, n_groups)[codes]
        groups = np.array([f"g{c}" for c in codes], dtype=object)
    y = (rng.random(n) < 1 / (1 + np.exp(-(shift - 0.5 + rng.normal(0, 1, n))))).astype(int)
    scores = 1 / (1 + np.exp(-(0.6 * shift + 1.6 * y + rng.normal(0, 1, n) - 1.0)))
    return scores, y, groups


# ---------------------------------------------------------------------------- oracles


def _objective(name: str, sel, tp, fp, n: int, pos: int) -> np.ndarray:
    neg = n - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "accuracy":
            out = (tp + neg - fp) / n
        elif name == "balanced_accuracy":
            out = 0.5 * (tp / pos + 1 - fp / neg)
        elif name == "f1":
            out = 2 * tp / (tp + fp + pos)
        elif name == "precision_at_k":
            out = tp / sel
        else:
            out = tp / pos
    return np.nan_to_num(out)


def _gap(constraint: str, gap: str, sel, tp, fp, n_g, pos_g, tot_sel, tot_tp, tot_fp, n, pos):
    """Gap over a broadcast grid; per-group arrays carry the group on axis 0."""
    parts = {
        "demographic_parity": [(sel, n_g, tot_sel / n)],
        "equal_opportunity": [(tp, pos_g, tot_tp / pos)],
        "equalized_odds": [(tp, pos_g, tot_tp / pos), (fp, n_g - pos_g, tot_fp / (n - pos))],
    }[constraint]
    worst = 0.0
    for num, den, overall in parts:
        keep = den > 0
        rates = np.stack([num[g] / den[g] for g in range(len(den)) if keep[g]])
        if gap == "max_pairwise":
            value = rates.max(axis=0) - rates.min(axis=0)
        else:
            value = np.abs(rates - overall).max(axis=0)
        worst = np.maximum(worst, value)
    return worst


def oracle_thresholds(
    scores, y, labels, objective, constraint, tol, gap="max_pairwise", thresholds=None
):
    """Exhaustive search over every combination of per-group thresholds (2-3 groups)."""
    names = sorted(set(labels))
    per_group = []
    for g in names:
        s, t = scores[labels == g], y[labels == g]
        cuts = thresholds[g] if thresholds else np.concatenate((np.unique(s), [np.inf]))
        dec = s[None, :] >= np.asarray(cuts)[:, None]
        per_group.append(((dec * t).sum(1), (dec * (1 - t)).sum(1), dec.sum(1), cuts))
    grids = np.meshgrid(*[np.arange(len(p[0])) for p in per_group], indexing="ij")
    tp = np.stack([p[0][gi] for p, gi in zip(per_group, grids, strict=True)])
    fp = np.stack([p[1][gi] for p, gi in zip(per_group, grids, strict=True)])
    sel = np.stack([p[2][gi] for p, gi in zip(per_group, grids, strict=True)])
    n, pos = len(y), int(y.sum())
    n_g = np.array([np.sum(labels == g) for g in names])
    pos_g = np.array([y[labels == g].sum() for g in names])
    tot = sel.sum(0), tp.sum(0), fp.sum(0)
    obj = _objective(objective, tot[0], tot[1], tot[2], n, pos)
    gaps = _gap(constraint, gap, sel, tp, fp, n_g, pos_g, *tot, n, pos)
    feasible = gaps <= tol + 1e-9
    return float(obj[feasible].max())


def oracle_fixed_k(scores, y, labels, k, constraint, tol):
    """Exhaustive search over per-group selection counts summing to k; returns best TP."""
    names = sorted(set(labels))
    cum = []
    for g in names:
        order = np.argsort(-scores[labels == g], kind="stable")
        cum.append(np.concatenate(([0], np.cumsum(y[labels == g][order]))))
    grids = np.meshgrid(*[np.arange(len(c)) for c in cum], indexing="ij")
    sel = np.stack(grids)
    tp = np.stack([c[gi] for c, gi in zip(cum, grids, strict=True)])
    fp = sel - tp
    n, pos = len(y), int(y.sum())
    n_g = np.array([len(c) - 1 for c in cum])
    pos_g = np.array([c[-1] for c in cum])
    tot = sel.sum(0), tp.sum(0), fp.sum(0)
    gaps = _gap(constraint, "max_pairwise", sel, tp, fp, n_g, pos_g, *tot, n, pos)
    ok = (tot[0] == k) & (gaps <= tol + 1e-9)
    return int(tot[1][ok].max()) if ok.any() else None


# ------------------------------------------------------------- gap on training data


@pytest.fixture(scope="module")
def intersectional() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    return make_data(6000, frame=True, seed=1)


@pytest.mark.parametrize("constraint", CONSTRAINTS)
@pytest.mark.parametrize("objective", ["accuracy", "f1", "balanced_accuracy"])
@pytest.mark.parametrize("tol", [0.02, 0.1])
def test_largest_pairwise_gap_within_tolerance(intersectional, constraint, objective, tol):
    scores, y, groups = intersectional
    est = GroupThresholdOptimizer(objective=objective, constraint=constraint, tolerance=tol)
    est.fit(scores, y, groups)
    assert len(est.thresholds_) == 12
    assert est.constraint_satisfied_
    assert est.achieved_gap_ <= tol + 1e-9
    assert est.baseline_["achieved_gap"] > tol  # the data does need mitigation
    decisions = est.predict(scores, groups)
    labels = group_labels(groups)
    independent = {
        "demographic_parity": demographic_parity_difference,
        "equal_opportunity": equal_opportunity_difference,
        "equalized_odds": equalized_odds_difference,
    }[constraint](y, decisions, sensitive_features=labels)
    assert independent == pytest.approx(est.achieved_gap_, abs=1e-12)


@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_mean_to_overall_gap_within_tolerance(intersectional, constraint):
    scores, y, groups = intersectional
    est = GroupThresholdOptimizer(constraint=constraint, tolerance=0.03, gap="mean_to_overall")
    est.fit(scores, y, groups)
    d = est.predict(scores, groups)
    gap = constraint_gap(y, d, groups, constraint, gap="mean_to_overall")
    assert gap <= 0.03 + 1e-9
    assert est.achieved_gap_ == pytest.approx(gap)


# ------------------------------------------------------------- optimality vs oracle


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("constraint", CONSTRAINTS)
@pytest.mark.parametrize("objective", ["accuracy", "f1", "balanced_accuracy"])
def test_matches_exhaustive_grid_on_tiny_case(seed, constraint, objective):
    scores, y, groups = make_data(45, n_groups=3, seed=seed)
    for tol in (0.0, 0.1, 0.25):
        est = GroupThresholdOptimizer(
            objective=objective,
            constraint=constraint,
            tolerance=tol,
            min_group_size=1,
            grid_size=1000,
            n_targets=1000,
        ).fit(scores, y, groups)
        best = oracle_thresholds(scores, y, groups, objective, constraint, tol)
        assert est.objective_value_ == pytest.approx(best, abs=1e-12)
        assert est.achieved_gap_ <= tol + 1e-9


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_coarse_grid_matches_oracle_on_same_grid(seed, constraint):
    """With a coarse grid, the result equals an exhaustive search over the same thresholds."""
    scores, y, groups = make_data(240, n_groups=3, seed=seed)
    est = GroupThresholdOptimizer(
        constraint=constraint, tolerance=0.05, min_group_size=1, grid_size=8, n_targets=1000
    ).fit(scores, y, groups)
    cuts = {}
    for g in sorted(set(groups)):
        cell = make_cell(g, scores[groups == g], y[groups == g])
        cand = threshold_candidates(cell, grid_size=8)
        cuts[g] = [float(cell.scores_desc[c - 1]) if c else np.inf for c in cand.counts]
    same_grid = oracle_thresholds(scores, y, groups, "accuracy", constraint, 0.05, thresholds=cuts)
    assert est.objective_value_ == pytest.approx(same_grid, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_coarse_grid_loses_at_most_its_resolution(seed, constraint):
    """Grid resolution bound: coarse(tol) >= exact(tol - 2 * delta) - step.

    Snapping each group of an exact solution to its nearest grid point moves each of its rates
    by at most delta (the largest rate jump between neighbouring grid points), so pairwise gaps
    grow by at most 2 * delta, and moves at most one grid step of rows per group. (A bound at
    the same tolerance does not hold: under tight equalised odds a coarse grid can have almost
    no feasible combination.)
    """
    scores, y, groups = make_data(600, n_groups=3, seed=seed)
    grid, tol = 30, 0.25
    delta, step = 0.0, 0
    for g in sorted(set(groups)):
        cell = make_cell(g, scores[groups == g], y[groups == g])
        cand = threshold_candidates(cell, grid_size=grid)
        step += int(np.diff(cand.counts).max())
        for dim in ("sr", "tpr", "fpr"):
            rates = cell_rates(cell, cand, dim)
            delta = max(delta, float(np.diff(rates).max()))
    assert tol - 2 * delta > 0
    coarse = GroupThresholdOptimizer(
        constraint=constraint, tolerance=tol, min_group_size=1, grid_size=grid, n_targets=1000
    ).fit(scores, y, groups)
    exact = GroupThresholdOptimizer(
        constraint=constraint,
        tolerance=tol - 2 * delta,
        min_group_size=1,
        grid_size=10_000,
        n_targets=10_000,
    ).fit(scores, y, groups)
    assert coarse.objective_value_ >= exact.objective_value_ - step / len(y) - 1e-12


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_mean_to_overall_never_beats_oracle(seed, constraint):
    """The to-overall search is a heuristic: feasible, and bounded by the exact optimum."""
    scores, y, groups = make_data(45, n_groups=3, seed=seed)
    est = GroupThresholdOptimizer(
        constraint=constraint,
        tolerance=0.1,
        gap="mean_to_overall",
        min_group_size=1,
        grid_size=1000,
        n_targets=1000,
    ).fit(scores, y, groups)
    best = oracle_thresholds(scores, y, groups, "accuracy", constraint, 0.1, "mean_to_overall")
    assert est.achieved_gap_ <= 0.1 + 1e-9
    assert est.objective_value_ <= best + 1e-12
    assert est.objective_value_ >= best - 0.1


@pytest.mark.parametrize("objective", ["accuracy", "f1"])
def test_tolerance_one_is_unconstrained_optimum(objective):
    scores, y, groups = make_data(3000, n_groups=4, seed=3)
    est = GroupThresholdOptimizer(
        objective=objective, tolerance=1.0, min_group_size=1, grid_size=5000
    ).fit(scores, y, groups)
    if objective == "accuracy":  # separable: each group's own best threshold
        expected = {}
        for g in sorted(set(groups)):
            s, t = scores[groups == g], y[groups == g]
            cuts = np.concatenate((np.unique(s), [np.inf]))
            dec = s[None, :] >= cuts[:, None]
            correct = (dec == t[None, :]).sum(1)
            expected[g] = correct.max()
        assert est.objective_value_ == pytest.approx(sum(expected.values()) / len(y))
    small = make_data(45, n_groups=3, seed=3)
    est_small = GroupThresholdOptimizer(
        objective=objective, tolerance=1.0, min_group_size=1, grid_size=1000
    ).fit(*small)
    best = oracle_thresholds(*small, objective, "demographic_parity", 1.0)
    assert est_small.objective_value_ == pytest.approx(best, abs=1e-12)


# ------------------------------------------------------------------ fixed list size


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_fixed_k_selects_exactly_k_and_matches_oracle(seed, constraint):
    scores, y, groups = make_data(60, n_groups=3, seed=seed)
    for tol in (0.1, 0.3, 1.0):
        est = GroupThresholdOptimizer(
            objective="precision_at_k",
            constraint=constraint,
            tolerance=tol,
            top_k=15,
            min_group_size=1,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # an infeasible tolerance is relaxed
            est.fit(scores, y, groups)
        decisions = est.predict(scores, groups)
        assert decisions.sum() == 15
        best_tp = oracle_fixed_k(scores, y, groups, 15, constraint, tol)
        if best_tp is None:
            assert not est.constraint_satisfied_
            continue
        assert est.constraint_satisfied_
        assert est.achieved_gap_ <= tol + 1e-9
        assert est.objective_value_ == pytest.approx(best_tp / 15)


def test_fixed_k_intervention_panel_on_new_batch(intersectional):
    """Pick 10 of 100: fit on history, then every new panel gets exactly 10 selections."""
    scores, y, groups = intersectional
    est = GroupThresholdOptimizer(
        objective="precision_at_k", constraint="demographic_parity", tolerance=0.05, top_pct=10
    ).fit(scores, y, groups)
    assert est.k_ == 600
    train = est.predict(scores, groups)
    assert train.sum() == 600
    assert est.achieved_gap_ <= 0.05 + 1e-9
    # With no ties the thresholds reproduce the quota selection on the training data.
    assert np.array_equal(train, est.predict_by_threshold(scores, groups))
    new_s, _, new_g = make_data(100, frame=True, seed=9)
    assert est.predict(new_s, new_g).sum() == 10
    topk = GroupThresholdOptimizer(
        objective="recall_at_k", constraint="equal_opportunity", tolerance=0.05, top_k=600
    ).fit(scores, y, groups)
    assert topk.predict(scores, groups).sum() == 600
    assert topk.predict(new_s, new_g).sum() == 100  # top_k capped at the batch size
    assert topk.predict(new_s, new_g, k=10).sum() == 10


@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_hull_allocation_close_to_exact_dp(constraint):
    """The large-data allocator loses at most a few true positives against exact DP."""
    scores, y, groups = make_data(1500, n_groups=4, seed=5)
    est = GroupThresholdOptimizer(
        objective="precision_at_k", constraint=constraint, top_k=200, min_group_size=1
    )
    codes, names, cols = encode_groups(groups, len(y))
    prep = prepare(
        scores,
        y,
        codes,
        names,
        cols,
        objective="precision_at_k",
        constraint=constraint,
        k=200,
        min_group_size=1,
        grid_size=200,
    )
    exact = search_fixed_k(prep.problem, "precision_at_k", 0.05, "max_pairwise", 200, 200, True)
    hull = search_fixed_k(prep.problem, "precision_at_k", 0.05, "max_pairwise", 200, 200, False)
    assert hull.counts.sum() == exact.counts.sum() == 200
    assert hull.gap <= 0.05 + 1e-9
    assert hull.objective <= exact.objective + 1e-12
    assert hull.objective >= exact.objective - 3 / 200
    assert est.get_params()["top_k"] == 200


# ------------------------------------------------------------------ fairlearn agreement


def test_agrees_with_fairlearn_threshold_optimizer_dp_two_groups():
    scores, y, groups = make_data(4000, n_groups=2, seed=7)
    tol = 0.05
    ours = GroupThresholdOptimizer(constraint="demographic_parity", tolerance=tol, grid_size=1000)
    ours.fit(scores, y, groups)
    fl = FairlearnBaseline("demographic_parity", tolerance=tol).fit(scores, y, groups)
    # fairlearn randomises between two thresholds; use its expected selection probabilities.
    p = fl.optimizer_._pmf_predict(scores.reshape(-1, 1), sensitive_features=groups)[:, 1]
    d = ours.predict(scores, groups)
    for g in ("g0", "g1"):
        ours_rate = d[groups == g].mean()
        fl_rate = p[groups == g].mean()
        assert abs(ours_rate - fl_rate) <= tol
    fl_gap = abs(p[groups == "g0"].mean() - p[groups == "g1"].mean())
    assert ours.achieved_gap_ <= tol + 1e-9
    assert fl_gap <= tol + 1e-6
    fl_acc = float(np.mean(p * y + (1 - p) * (1 - y)))
    # fairlearn interpolates on each group's convex hull, so it may be slightly ahead.
    assert ours.objective_value_ == pytest.approx(fl_acc, abs=0.01)


# ------------------------------------------------------------------- groups & errors


def test_unseen_group_gets_overall_threshold(intersectional):
    scores, y, groups = intersectional
    est = GroupThresholdOptimizer().fit(scores, y, groups)
    new = pd.DataFrame({"race": ["A", "Z", "Z"], "sex": ["F", "F", "M"]})
    s = np.array([0.9, est.fallback_threshold_, est.fallback_threshold_ - 1e-6])
    with pytest.warns(UnseenGroupWarning, match="'Z:F'"):
        out = est.predict(s, new)
    assert out.tolist() == [int(est.thresholds_["A:F"] <= 0.9), 1, 0]


def test_small_groups_get_overall_threshold_and_are_unconstrained():
    scores, y, groups = make_data(2000, n_groups=3, seed=4)
    groups = groups.copy()
    groups[:8] = "tiny"
    with pytest.warns(UserWarning, match="min_group_size"):
        est = GroupThresholdOptimizer(min_group_size=30).fit(scores, y, groups)
    assert est.small_groups_ == ["tiny"]
    assert est.thresholds_["tiny"] == est.fallback_threshold_
    assert not est.group_rates_.loc["tiny", "constrained"]
    assert est.achieved_gap_ <= 0.05 + 1e-9


def test_missing_group_values_form_their_own_group():
    labels = group_labels(pd.DataFrame({"a": ["x", None, "x"], "b": [1, 2, 1]}))
    assert labels.tolist() == ["x:1", "(missing):2", "x:1"]


@pytest.mark.parametrize(
    ("kwargs", "fit_args", "match"),
    [
        ({}, "y_short", "^y:"),
        ({}, "groups_short", "^groups:"),
        ({}, "y_not_binary", "^y:"),
        ({}, "scores_nan", "^scores:"),
        ({"objective": "auc"}, None, "^objective:"),
        ({"constraint": "parity"}, None, "^constraint:"),
        ({"gap": "mean"}, None, "^gap:"),
        ({"tolerance": 1.5}, None, "^tolerance:"),
        ({"objective": "precision_at_k"}, None, "^objective:"),
        ({"top_k": 5, "top_pct": 10}, None, "^top_k:"),
        ({"top_k": 0}, None, "^top_k:"),
        ({"top_pct": 200.0}, None, "^top_pct:"),
        ({"min_group_size": 0}, None, "^min_group_size:"),
    ],
)
def test_bad_input_names_the_argument(kwargs, fit_args, match):
    scores, y, groups = make_data(100, seed=0)
    if fit_args == "y_short":
        y = y[:-1]
    elif fit_args == "groups_short":
        groups = groups[:-1]
    elif fit_args == "y_not_binary":
        y = y * 2
    elif fit_args == "scores_nan":
        scores = scores.copy()
        scores[3] = np.nan
    with pytest.raises(ValueError, match=match):
        GroupThresholdOptimizer(**kwargs).fit(scores, y, groups)


def test_predict_input_checks(intersectional):
    scores, y, groups = intersectional
    est = GroupThresholdOptimizer()
    with pytest.raises(ValueError, match="fit"):
        est.predict(scores, groups)
    est.fit(scores, y, groups)
    with pytest.raises(ValueError, match="^groups:"):
        est.predict(scores, groups.iloc[:-1])
    with pytest.raises(ValueError, match="^groups:"):
        est.predict(scores, groups[["race"]])
    with pytest.raises(ValueError, match="^k:"):
        est.predict(scores, groups, k=3)


# ---------------------------------------------------------------- serialisation & API


def test_to_dict_round_trip_is_plain_json(intersectional):
    scores, y, groups = intersectional
    est = GroupThresholdOptimizer(
        objective="precision_at_k", constraint="equalized_odds", tolerance=0.05, top_pct=10
    ).fit(scores, y, groups)
    data = est.to_dict()
    assert all(isinstance(k, str) and isinstance(v, float) for k, v in data["thresholds"].items())
    back = GroupThresholdOptimizer.from_dict(json.loads(json.dumps(data)))
    assert back.thresholds_ == est.thresholds_
    assert np.array_equal(back.predict(scores, groups), est.predict(scores, groups))
    assert back.achieved_gap_ == est.achieved_gap_
    with pytest.raises(ValueError, match="^data:"):
        GroupThresholdOptimizer.from_dict({"format": "something else"})


def test_sklearn_clone_and_params():
    est = GroupThresholdOptimizer(constraint="equal_opportunity", tolerance=0.1)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert GroupThresholdOptimizer(constraint="equalised_odds")._validated()["constraint"] == (
        "equalized_odds"
    )


def test_frontier_and_figure(intersectional):
    scores, y, groups = intersectional
    frame = frontier(scores, y, groups, "accuracy", "demographic_parity")
    assert frame["kind"].iloc[0] == "unmitigated"
    mitigated = frame[frame["kind"] == "mitigated"]
    assert (mitigated["achieved_gap"] <= mitigated["tolerance"] + 1e-9).all()
    # Feasible sets are nested, so the objective cannot fall as the tolerance grows.
    assert mitigated["objective_value"].is_monotonic_increasing
    assert set(mitigated["thresholds"].iloc[0]) == set(group_labels(groups))
    fig = frontier_figure(frame)
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["per-group thresholds", "unmitigated (one threshold)"]
    assert "gap" in fig.layout.xaxis.title.text
    fixed = frontier(
        scores, y, groups, "precision_at_k", "equal_opportunity", (0.02, 0.2), top_k=300
    )
    assert len(fixed) == 3
    with pytest.raises(ValueError, match="^frame:"):
        frontier_figure(pd.DataFrame({"x": [1]}))


def _rows(n: int, seed: int) -> ScoredRows:
    scores, y, groups = make_data(n, seed=seed)
    return ScoredRows(pd.DataFrame({"group": np.asarray(groups).astype(str)}), y, scores)


def test_run_mitigation_fits_on_validation_rows_and_applies_to_test_rows():
    """With validation rows the thresholds come from them alone (the test labels never move
    them) and the test decisions are the test scores shifted by those thresholds."""
    fairness = Fairness(attributes=["group"], at={"threshold": 0.5},
                        mitigation={"attributes": ["group"], "tolerance": 0.02})
    validation, test = _rows(3000, seed=1), _rows(2000, seed=2)
    result = mitigate(fairness, test, validation)
    oracle = GroupThresholdOptimizer(tolerance=0.02).fit(
        validation.score, validation.y, validation.attrs[["group"]].astype("string"))
    assert result.thresholds == pytest.approx({str(g): t for g, t in oracle.thresholds_.items()})
    assert result.fold_thresholds == [] and result.settings["fitted_on"] == "validation"
    shift = test.attrs["group"].map(result.thresholds).to_numpy(dtype=float)
    np.testing.assert_allclose(result.adjusted_score, centre_threshold(test.score, shift))
    np.testing.assert_array_equal(result.adjusted_score >= 0.5, test.score >= shift)
    # flipping every test label changes nothing that was fitted
    flipped = mitigate(fairness, replace(test, y=1 - test.y), validation)
    assert flipped.thresholds == result.thresholds
    np.testing.assert_array_equal(flipped.adjusted_score, result.adjusted_score)
    # without validation rows it cross-fits on the test rows' two halves
    crossed = mitigate(fairness, test)
    assert len(crossed.fold_thresholds) == 2 and crossed.settings["fitted_on"] != "validation"


def test_centre_threshold_moves_each_threshold_to_one_half_and_keeps_the_order():
    # hand-computed: t = 0.2 maps [0, 0.2] onto [0, 0.5] and [0.2, 1] onto [0.5, 1]
    assert centre_threshold(0.1, 0.2) == pytest.approx(0.25)
    assert centre_threshold(0.2, 0.2) == pytest.approx(0.5)
    assert centre_threshold(0.6, 0.2) == pytest.approx(0.75)
    assert centre_threshold(1.0, 0.2) == pytest.approx(1.0)
    assert centre_threshold(0.9, np.inf) == 0.0  # an infinite threshold selects nobody
    assert centre_threshold(0.0, 0.0) == pytest.approx(0.5)  # a zero threshold selects all
    rng = np.random.default_rng(3)
    score = rng.random(5000)
    for t in (0.0, 0.03, 0.5, 0.97, 1.0, np.inf):
        adjusted = centre_threshold(score, t)
        np.testing.assert_array_equal(adjusted >= 0.5, score >= t)  # the same decisions
        assert ((adjusted >= 0) & (adjusted <= 1)).all()
        order = np.argsort(score)
        assert (np.diff(adjusted[order]) >= 0).all()  # the order within the group is kept
        if 0 < t < 1:  # and, away from an infinite threshold, no new ties
            assert len(np.unique(adjusted)) == len(np.unique(score))
