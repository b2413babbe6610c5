"""Group metrics: every metric against fairlearn's MetricFrame / scikit-learn, plus edge cases."""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np
import pandas as pd
import pytest
import sklearn
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_negative_rate,
)
from sklearn.metrics import (
    accuracy_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from rudikit.fairness.auc import ScoreIndex, roc_auc_by_group
from rudikit.fairness.counts import COUNT_COLUMNS, RATE_METRICS, confusion_counts
from rudikit.fairness.group_metrics import group_metrics
from rudikit.fairness.groups import encode_groups
from rudikit.fairness.inputs import check_binary
from rudikit.fairness.selection import binarize, top_k_size

TOL = 1e-12


def _count(true: int, pred: int):
    def metric(y_true: np.ndarray, y_pred: np.ndarray) -> int:
        return int(np.sum((y_true == true) & (y_pred == pred)))

    return metric


# sklearn/fairlearn functions are the oracle; FDR and FOR are derived from sklearn's precision
# and NPV after the MetricFrame (1 - value), which keeps the number of slow sklearn calls down.
ORACLE = {
    "n": count,
    "tn": _count(0, 0),
    "fp": _count(0, 1),
    "fn": _count(1, 0),
    "tp": _count(1, 1),
    "prevalence": lambda y_true, y_pred: float(np.mean(y_true)),
    "pprev": selection_rate,
    "precision": partial(precision_score, zero_division=np.nan),
    "npv": partial(precision_score, pos_label=0, zero_division=np.nan),
    "tpr": partial(recall_score, zero_division=np.nan),
    "fnr": false_negative_rate,  # fairlearn: 0.0 when there are no positives
    "fpr": false_positive_rate,  # fairlearn: 0.0 when there are no negatives
    "tnr": true_negative_rate,  # fairlearn: 0.0 when there are no negatives
    "accuracy": accuracy_score,
}
# fairlearn's rate functions return 0.0 for 0/0 where we return NaN
FAIRLEARN_ZERO_FOR_EMPTY = {"fnr": "pos", "fpr": "neg", "tnr": "neg"}


def _auc_or_nan(y_true: np.ndarray, y_score: np.ndarray) -> float:
    return roc_auc_score(y_true, y_score) if len(np.unique(y_true)) == 2 else np.nan


def _oracle(y: np.ndarray, pred: np.ndarray, score: np.ndarray, sf: pd.DataFrame) -> pd.DataFrame:
    """MetricFrame.by_group with string group labels joined like ours, empty cells dropped."""
    sf = sf.astype(object).where(sf.notna(), "(missing)").astype(str)
    # skipping sklearn's argument validation only saves time; the computations are unchanged
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        counts = MetricFrame(metrics=ORACLE, y_true=y, y_pred=pred, sensitive_features=sf)
        auc = MetricFrame(metrics={"roc_auc": _auc_or_nan}, y_true=y, y_pred=score,
                          sensitive_features=sf)
    table = pd.concat([counts.by_group, auc.by_group], axis=1)
    table.index = [":".join(i) if isinstance(i, tuple) else str(i) for i in table.index]
    table = table[table["n"].notna() & (table["n"] > 0)].copy()
    table["fdr"] = 1 - table["precision"].astype(float)
    table["for"] = 1 - table["npv"].astype(float)
    table["ppr"] = (table["tp"] + table["fp"]) / pred.sum() if pred.sum() else np.nan
    return table


def _assert_matches(ours: pd.DataFrame, y, pred, score, frame, specs) -> None:
    for spec in specs:
        cols = [spec] if isinstance(spec, str) else list(spec)
        name = ":".join(cols)
        mine = ours[ours["attribute"] == name].set_index("group")
        theirs = _oracle(y, pred, score, frame[cols])
        assert sorted(mine.index) == sorted(theirs.index), name
        mine = mine.loc[theirs.index]
        for metric in ("n", "tp", "fp", "tn", "fn", *RATE_METRICS):
            a = mine[metric].to_numpy(dtype=float)
            b = theirs[metric].to_numpy(dtype=float)
            if metric in FAIRLEARN_ZERO_FOR_EMPTY:
                empty = mine[FAIRLEARN_ZERO_FOR_EMPTY[metric]].to_numpy() == 0
                assert np.isnan(a[empty]).all() and (b[empty] == 0).all(), (name, metric)
                a, b = a[~empty], b[~empty]
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{name} {metric}")
            ok = ~np.isnan(a)
            np.testing.assert_allclose(a[ok], b[ok], rtol=0, atol=TOL, err_msg=f"{name} {metric}")


def _random_frame(seed: int, n: int = 240) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Random data with a tiny group, a group without positives and missing values."""
    rng = np.random.default_rng(seed)
    race = rng.choice(["A", "B", "C"], n, p=[0.6, 0.3, 0.1]).astype(object)
    race[rng.random(n) < 0.05] = None  # missing values: their own group
    sex = rng.choice(["F", "M"], n, p=[0.3, 0.7]).astype(object)
    station = rng.choice(["N", "S", "E"], n).astype(object)
    score = np.round(rng.random(n), 2)  # ties
    y = (rng.random(n) < score).astype(int)
    race[0], sex[0], station[0] = "Tiny", "F", "N"  # a group of one
    only_neg = np.flatnonzero(station == "E")[:6]
    station[only_neg] = "W"  # a small group with (probably) mixed labels...
    y[only_neg] = 0  # ...forced to have no positives: tpr, fnr, auc undefined
    frame = pd.DataFrame({"race": race, "sex": sex, "station": station})
    return frame, y, score


SPECS = ["race", "sex", ["race", "sex"]]


@pytest.mark.parametrize(("seed", "threshold"), [(0, 0.0), (1, 0.45), (3, 1.01)])
def test_threshold_metrics_match_fairlearn(seed: int, threshold: float) -> None:
    frame, y, score = _random_frame(seed)
    ours = group_metrics(y, y_score=score, sensitive_features=frame, attributes=SPECS,
                         threshold=threshold)
    pred = (score >= threshold).astype(int)
    _assert_matches(ours, y, pred, score, frame, SPECS)


def test_three_way_intersection_matches_fairlearn() -> None:
    frame, y, score = _random_frame(4)
    spec = [["station", "race", "sex"]]
    ours = group_metrics(y, y_score=score, sensitive_features=frame, attributes=spec,
                         threshold=0.5)
    assert (ours["n"] == 1).any()  # tiny cells are kept
    _assert_matches(ours, y, (score >= 0.5).astype(int), score, frame, spec)


@pytest.mark.parametrize(("seed", "selection"), [(5, {"top_k": 37}), (6, {"top_pct": 25})])
def test_top_k_metrics_match_fairlearn(seed: int, selection: dict) -> None:
    frame, y, score = _random_frame(seed)
    ours = group_metrics(y, y_score=score, sensitive_features=frame, attributes=SPECS,
                         tie_break="stable", **selection)
    k = top_k_size(len(y), **selection)
    pred = np.zeros(len(y), dtype=int)
    pred[np.argsort(-score, kind="stable")[:k]] = 1  # stable rule: earlier rows win ties
    assert int(ours[ours["attribute"] == "race"]["pp"].sum()) == k
    _assert_matches(ours, y, pred, score, frame, SPECS)


def test_binary_predictions_match_fairlearn() -> None:
    frame, y, score = _random_frame(7)
    pred = (score > 0.5).astype(int)
    ours = group_metrics(y, pred, sensitive_features=frame, attributes=["station"])
    # without scores the AUC is that of the 0/1 predictions
    _assert_matches(ours, y, pred, pred.astype(float), frame, ["station"])


def test_unobserved_categories_and_intersections_have_no_row() -> None:
    frame = pd.DataFrame({
        "a": pd.Categorical(["x", "x", "y", "y"], categories=["x", "y", "never"]),
        "b": ["p", "q", "p", "p"],
    })
    t = group_metrics([0, 1, 1, 0], [0, 1, 1, 1], sensitive_features=frame,
                      attributes=["a", ["a", "b"]])
    assert t[t.attribute == "a"]["group"].tolist() == ["x", "y"]
    assert t[t.attribute == "a:b"]["group"].tolist() == ["x:p", "x:q", "y:p"]


def test_missing_values_are_their_own_group() -> None:
    frame = pd.DataFrame({"a": ["x", None, np.nan, "x"],
                          "b": pd.Categorical(["u", None, "u", "u"])})
    t = group_metrics([1, 0, 1, 0], [1, 1, 0, 0], sensitive_features=frame, attributes=["a", "b"])
    a = t[t.attribute == "a"].set_index("group")
    assert a.loc["(missing)", "n"] == 2 and a.loc["x", "n"] == 2
    b = t[t.attribute == "b"].set_index("group")
    assert b.loc["(missing)", "n"] == 1
    assert t.groupby("attribute")["n"].sum().eq(4).all()


def test_counts_and_undefined_ratios_by_hand() -> None:
    # group g: tp=2 fp=1 tn=0 fn=1 ; group h: all negatives predicted negative
    y = [1, 1, 0, 1, 0, 0]
    p = [1, 1, 1, 0, 0, 0]
    t = group_metrics(y, p, sensitive_features={"grp": ["g", "g", "g", "g", "h", "h"]})
    g = t.set_index("group").loc["g"]
    assert (g.tp, g.fp, g.tn, g.fn, g.pp, g.pn, g.n) == (2, 1, 0, 1, 3, 1, 4)
    assert g.precision == pytest.approx(2 / 3) and g["for"] == 1.0 and g.tnr == 0
    assert g.ppr == 1.0
    h = t.set_index("group").loc["h"]
    assert np.isnan(h.precision) and np.isnan(h.tpr) and np.isnan(h.roc_auc)
    assert h.fpr == 0 and h.npv == 1 and h.pprev == 0 and h.ppr == 0
    assert list(t.columns) == ["attribute", "group", *COUNT_COLUMNS, *RATE_METRICS]


@pytest.mark.parametrize("decimals", [1, 3, 4, None])
def test_auc_with_ties_matches_sklearn(decimals: int | None) -> None:
    rng = np.random.default_rng(11)
    n = 3000
    score = rng.random(n)
    if decimals is not None:
        score = np.round(score, decimals)
    y = (rng.random(n) < score).astype(int)
    codes = rng.integers(0, 7, n)
    auc = roc_auc_by_group(y, score, codes, 7)
    for g in range(7):
        m = codes == g
        assert auc[g] == pytest.approx(roc_auc_score(y[m], score[m]), abs=TOL)


def test_both_auc_strategies_agree() -> None:
    # histogram of (group, score value) vs sort + radix sort: same exact statistic
    rng = np.random.default_rng(12)
    score = np.round(rng.random(5000), 2)
    y = (rng.random(5000) < score).astype(np.int8)
    codes = rng.integers(0, 300, 5000)
    index = ScoreIndex(y, score)
    assert index.value is not None
    np.testing.assert_allclose(index._auc_counts(codes, 300), index._auc_sorted(codes, 300),
                               rtol=0, atol=TOL)


def test_stable_tie_break_takes_earlier_rows() -> None:
    s = np.array([0.9, 0.5, 0.5, 0.5, 0.1, 0.5])
    assert binarize(s, top_k=3).tolist() == [1, 1, 1, 0, 0, 0]
    assert binarize(s, top_k=0).sum() == 0
    assert binarize(s, top_pct=50).tolist() == [1, 1, 1, 0, 0, 0]  # floor(0.5 * 6) = 3
    assert binarize(s, threshold=0.5).tolist() == [1, 1, 1, 1, 0, 1]


def test_random_tie_break_is_seeded_and_exact() -> None:
    s = np.r_[np.ones(5), np.full(100, 0.5), np.zeros(10)]
    a = binarize(s, top_k=20, tie_break="random", random_state=1)
    b = binarize(s, top_k=20, tie_break="random", random_state=1)
    c = binarize(s, top_k=20, tie_break="random", random_state=2)
    assert a.sum() == 20 and a[:5].all() and not a[105:].any()
    assert (a == b).all() and (a != c).any()


def test_top_pct_uses_floor() -> None:
    assert top_k_size(1000, top_pct=10) == 100
    assert top_k_size(7, top_pct=29) == 2  # 2.03 -> 2
    assert top_k_size(100, top_pct=29) == 29  # no float rounding down to 28


def test_encode_groups_orders_values_and_joins_intersections() -> None:
    frame = pd.DataFrame({"a": ["y", "x", "y"], "b": [2, 1, 1]})
    codes, labels = encode_groups(frame, ["a", "b"])
    assert labels == ["x:1", "y:1", "y:2"]
    assert codes.tolist() == [2, 0, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y_true": [0, 2, 1], "y_pred": [0, 1, 1]}, r"y_true: must be binary \(0/1\)"),
        ({"y_true": [0, np.nan, 1], "y_pred": [0, 1, 1]}, "y_true: has 1 missing"),
        ({"y_true": ["a", "b", "a"], "y_pred": [0, 1, 1]}, "non-numeric"),
        ({"y_true": [0, 1, 1], "y_pred": [0, 1]}, "y_pred: has 2 rows, y_true has 3 rows"),
        ({"y_true": [0, 1, 1], "y_pred": [0, 1, 0.5]}, "y_pred: must be binary"),
        ({"y_true": [0, 1, 1], "y_score": [0.1, np.nan, 0.3], "threshold": 0.5},
         "y_score: has 1 missing"),
        ({"y_true": [0, 1, 1], "y_score": [0.1, 0.2, 0.3]}, "needs one of threshold"),
        ({"y_true": [0, 1, 1], "y_score": [0.1, 0.2, 0.3], "threshold": 0.5, "top_k": 1},
         "exactly one of threshold"),
        ({"y_true": [0, 1, 1], "y_score": [0.1, 0.2, 0.3], "top_k": 4}, "larger than the number"),
        ({"y_true": [0, 1, 1], "y_pred": [0, 1, 1], "threshold": 0.5}, "not both"),
    ],
)
def test_bad_input_is_a_clear_value_error(kwargs: dict, message: str) -> None:
    kwargs.setdefault("sensitive_features", {"g": ["a", "b", "a"]})
    with pytest.raises(ValueError, match=message):
        group_metrics(**kwargs)


def test_unknown_attribute_and_length_mismatch_of_features() -> None:
    with pytest.raises(ValueError, match="unknown attribute column 'nope'"):
        group_metrics([0, 1], [0, 1], sensitive_features={"g": ["a", "b"]}, attributes=["nope"])
    with pytest.raises(ValueError, match="sensitive_features: has 3 rows, y_true has 2 rows"):
        group_metrics([0, 1], [0, 1], sensitive_features={"g": ["a", "b", "c"]})


def test_check_binary_accepts_bools_floats_and_nullable() -> None:
    assert check_binary([True, False]).tolist() == [1, 0]
    assert check_binary(np.array([1.0, 0.0])).tolist() == [1, 0]
    assert check_binary(pd.Series([1, 0], dtype="Int64")).tolist() == [1, 0]
    with pytest.raises(ValueError, match="label: has 1 missing"):
        check_binary(pd.Series([1, None], dtype="Int64"), "label")


def _pandas_counts(frame: pd.DataFrame, cols: list[str], y: np.ndarray, pred: np.ndarray
                   ) -> pd.DataFrame:
    d = frame[cols].astype(str).assign(tp=(y == 1) & (pred == 1), fp=(y == 0) & (pred == 1),
                                       tn=(y == 0) & (pred == 0), fn=(y == 1) & (pred == 0))
    out = d.groupby(cols)[["tp", "fp", "tn", "fn"]].sum()
    out.index = [":".join(i) if isinstance(i, tuple) else str(i) for i in out.index]
    return out


@pytest.mark.parametrize("levels", [300, 200])
def test_many_level_attributes_use_the_per_attribute_path(levels: int) -> None:
    # 300 x 300 cells (too many for one joint table) and 200^3 = 8e6 possible cells (sparse
    # renumbering): same counts as a pandas groupby, AUC as scikit-learn
    rng = np.random.default_rng(8)
    n = 3000
    frame = pd.DataFrame({c: rng.integers(0, levels, n) for c in "abc"})
    score = np.round(rng.random(n), 3)
    y = (rng.random(n) < score).astype(int)
    specs = ["a", ["a", "b"]] if levels == 300 else ["a", ["a", "b", "c"]]
    t = group_metrics(y, y_score=score, sensitive_features=frame, attributes=specs,
                      threshold=0.5)
    pred = (score >= 0.5).astype(int)
    for spec in specs:
        cols = [spec] if isinstance(spec, str) else spec
        mine = t[t.attribute == ":".join(cols)].set_index("group")[["tp", "fp", "tn", "fn"]]
        theirs = _pandas_counts(frame, cols, y, pred)
        pd.testing.assert_frame_equal(mine.sort_index(), theirs.sort_index(), check_dtype=False,
                                      check_names=False)
    a = t[t.attribute == "a"].set_index("group")
    for g in a.index[:5]:
        m = frame["a"].astype(str).to_numpy() == g
        expected = _auc_or_nan(y[m], score[m])
        assert a.loc[g, "roc_auc"] == pytest.approx(expected, abs=TOL, nan_ok=True)


def test_empty_input_and_repeated_column() -> None:
    t = group_metrics(np.array([], dtype=int), np.array([], dtype=int),
                      sensitive_features={"g": np.array([], dtype=object)})
    assert len(t) == 0
    with pytest.raises(ValueError, match="more than once"):
        group_metrics([0, 1], [0, 1], sensitive_features={"g": ["a", "b"]},
                      attributes=[["g", "g"]])


def test_confusion_counts_layout() -> None:
    counts = confusion_counts(np.array([0, 0, 1, 1, 1]), np.array([0, 1, 0, 1, 1]),
                              np.array([0, 0, 0, 1, 1]), 2)
    assert counts.tolist() == [[1, 1, 1, 0], [0, 0, 0, 2]]  # tn, fp, fn, tp per group


def test_expected_tie_break_shares_the_places_left() -> None:
    from rudikit.fairness.selection import TiedAtCutWarning

    s = np.array([0.9, 0.5, 0.5, 0.5, 0.1, 0.5])
    with pytest.warns(TiedAtCutWarning, match=r"^4 rows tied"):
        shares = binarize(s, top_k=3, tie_break="expected")
    np.testing.assert_allclose(shares, [1, 0.5, 0.5, 0.5, 0, 0.5])  # 2 places, 4 tied rows
    np.testing.assert_allclose(binarize(s[::-1], top_k=3, tie_break="expected"), shares[::-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the cut between 0.5 and 0.1 splits no tie
        np.testing.assert_allclose(binarize(s, top_k=5, tie_break="expected"),
                                   [1, 1, 1, 1, 0, 1])
    with pytest.raises(ValueError, match="tie_break must be one of"):
        binarize(s, top_k=3, tie_break="first")  # type: ignore[arg-type]
