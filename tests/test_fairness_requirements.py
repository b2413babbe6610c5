"""Requirement checks and list simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rudikit.fairness.list_simulation import simulate_lists
from rudikit.fairness.requirements import (
    STATUS_INSUFFICIENT,
    STATUS_MET,
    STATUS_NOT_MET,
    Requirement,
    evaluate_requirements,
)


def _rows(station: str, eth: str, tp: int, fp: int, tn: int = 0, fn: int = 0) -> list[dict]:
    out = []
    for y, p, k in ((1, 1, tp), (0, 1, fp), (0, 0, tn), (1, 0, fn)):
        out += [{"station": station, "eth": eth, "y": y, "pred": p}] * k
    return out


@pytest.fixture()
def frame() -> pd.DataFrame:
    rows = (
        # station A: precision W 0.80, B 0.77 -> gap 3 pp (met within 5)
        _rows("A", "W", 80, 20, 10, 10) + _rows("A", "B", 77, 23, 10, 10)
        # station B: precision W 0.90, B 0.70 -> gap 20 pp (not met)
        + _rows("B", "W", 90, 10, 5, 5) + _rows("B", "B", 70, 30, 5, 5)
        # station C: second group too small to compare
        + _rows("C", "W", 60, 20, 5, 5) + _rows("C", "B", 5, 5)
        # station D: too small as a unit
        + _rows("D", "W", 10, 10) + _rows("D", "B", 10, 10)
    )
    return pd.DataFrame(rows)


def test_within_units(frame: pd.DataFrame) -> None:
    req = Requirement("precision", 5, unit="station", compare="eth", min_n=50)
    (res,) = evaluate_requirements(frame, "y", "pred", [req])
    assert not res.passed and res.status == STATUS_NOT_MET
    assert (res.units_met, res.units_evaluated) == (1, 2)
    assert res.summary.startswith("not met: met in 1 of 2 units, not met in 1 (largest gap "
                                  "20.0 pp in station=B, Holm-corrected p = ")
    (fail,) = res.failing
    assert fail.p_adjusted < 0.05  # 90 of 100 against 70 of 100 flagged, 20 points over 5
    assert fail.unit == "station=B" and fail.status == STATUS_NOT_MET
    assert fail.gap_pp == pytest.approx(20.0)
    assert (fail.highest_group, fail.lowest_group) == ("W", "B")
    assert [s.unit for s in res.skipped] == ["station=C", "station=D"]
    assert res.skipped[0].excluded_groups == ("B",)
    assert all(s.status == STATUS_INSUFFICIENT for s in res.skipped)
    a = next(o for o in res.outcomes if o.unit == "station=A")
    assert a.status == STATUS_MET and a.gap_pp == pytest.approx(3.0)
    assert len(res.to_frame()) == 4


def test_across_units_and_aliases(frame: pd.DataFrame) -> None:
    # precision per station: A 157/200, B 160/200, C 65/90 -> D excluded (40 flagged)
    req = Requirement("ppv", 10, unit="station", compare="across units", min_n=50)
    (res,) = evaluate_requirements(frame, "y", "pred", [req])
    assert req.metric == "precision" and req.across_units
    assert res.passed and res.status == STATUS_MET and res.units_evaluated == 1
    (o,) = [o for o in res.outcomes if o.status != STATUS_INSUFFICIENT]
    assert o.gap_pp == pytest.approx(100 * (160 / 200 - 65 / 90))
    assert [s.unit for s in res.skipped] == ["station=D"]
    assert "across 3 units" in res.summary


def test_recall_per_two_unit_attributes_and_intersection() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    frame = pd.DataFrame({
        "station": rng.choice(["N", "S"], n), "object": rng.choice(["drugs", "weapons"], n),
        "eth": rng.choice(["W", "B", "A"], n), "gender": rng.choice(["F", "M"], n),
        "score": rng.random(n),
    })
    frame["y"] = (rng.random(n) < frame["score"]).astype(int)
    reqs = [Requirement("recall", 10, unit="station", compare="eth"),
            Requirement("recall", 10, unit="object", compare="eth"),
            Requirement("precision", 5, unit="station", compare=["eth", "gender"], min_n=1)]
    results = evaluate_requirements(frame, "y", "score", reqs, threshold=0.5)
    assert [r.units_evaluated for r in results] == [2, 2, 2]
    for r in results[:2]:
        assert r.passed, r.summary  # no real group effect: recall gaps are small
    # gap equals max - min of the groups' metric within the unit, computed by pandas
    north = frame[frame.station == "N"]
    prec = north[north.score >= 0.5].groupby(["eth", "gender"])["y"].mean()
    o = next(o for o in results[2].outcomes if o.unit == "station=N")
    assert o.gap_pp == pytest.approx(100 * (prec.max() - prec.min()))
    assert o.groups_compared == 6


def test_not_evaluable_does_not_pass(frame: pd.DataFrame) -> None:
    (res,) = evaluate_requirements(frame, "y", "pred", [
        Requirement("precision", 5, unit="station", compare="eth", min_n=10_000)])
    assert not res.passed and not res.evaluable and res.status == STATUS_INSUFFICIENT
    assert res.summary == "insufficient data in every unit"


def test_requirement_validation(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="metric 'lift' is unknown"):
        Requirement("lift", 5, unit="station")
    with pytest.raises(ValueError, match="needs a unit"):
        Requirement("precision", 5)
    with pytest.raises(ValueError, match="max_gap_pp"):
        Requirement("precision", -1, unit="station")
    with pytest.raises(ValueError, match="unknown column 'force'"):
        evaluate_requirements(frame, "y", "pred", [Requirement("precision", 5, unit="force")])
    with pytest.raises(ValueError, match="label_col: unknown column 'nope'"):
        evaluate_requirements(frame, "nope", "pred", [])
    with pytest.raises(ValueError, match="label column 'station': must be binary"):
        evaluate_requirements(frame, "station", "pred", [])


def test_rows_standing_for_several_cases_give_the_verdicts_of_the_cases(frame) -> None:
    """The same cases counted per station, ethnicity, label and decision (as the monitor's
    database counts them), each row weighted by its count: the verdicts, gaps and p-values
    of the case rows above; refused with a clear error for an unknown count column and for a
    roc_auc requirement, which needs each case's score."""
    counted = frame.groupby(["station", "eth", "y", "pred"]).size().rename("n").reset_index()
    reqs = [Requirement("precision", 5, unit="station", compare="eth", min_n=50),
            Requirement("ppv", 10, unit="station", compare="across units", min_n=50)]
    for got, want in zip(evaluate_requirements(counted, "y", "pred", reqs, cases="n"),
                         evaluate_requirements(frame, "y", "pred", reqs), strict=True):
        assert got.status == want.status and got.summary == want.summary
        pd.testing.assert_frame_equal(got.to_frame(), want.to_frame(), check_exact=False,
                                      atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="cases: unknown column 'count'"):
        evaluate_requirements(counted, "y", "pred", reqs, cases="count")
    with pytest.raises(ValueError, match="a roc_auc requirement needs every case's score"):
        evaluate_requirements(counted, "y", "pred",
                              [Requirement("roc_auc", 5, unit="station")], cases="n")


# --- list simulation -----------------------------------------------------------------------


def test_perfect_score_has_precision_one_and_composition_sums_to_one() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    groups = rng.choice(["a", "b", "c"], 1000)
    sim = simulate_lists(y, y.astype(float), groups, n=100, k=10, repeats=200)
    assert sim.precision_mean == 1.0 and sim.precision_lower == sim.precision_upper == 1.0
    assert sim.precision_samples.shape == (200,)
    assert sim.composition["list_share"].sum() == pytest.approx(1.0)
    assert sim.composition["pool_share"].sum() == pytest.approx(1.0)
    assert sim.composition["group"].tolist() == ["a", "b", "c"]


def test_list_simulation_is_seeded_and_plausible() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    score = rng.random(500)  # useless score: precision@k near the base rate
    groups = np.where(score > 0.8, "high", "low")  # 'high' fills the lists
    a = simulate_lists(y, score, groups, random_state=3)
    b = simulate_lists(y, score, groups, random_state=3)
    assert a.precision_mean == b.precision_mean
    assert abs(a.precision_mean - y.mean()) < 0.05
    assert a.precision_lower <= a.precision_mean <= a.precision_upper
    share = a.composition.set_index("group")
    assert share.loc["high", "list_share"] == pytest.approx(1.0)
    assert share.loc["high", "pool_share"] == pytest.approx(0.2, abs=0.02)


def test_list_simulation_validation() -> None:
    with pytest.raises(ValueError, match=r"k \(20\) cannot exceed n \(10\)"):
        simulate_lists([0, 1], [0.1, 0.2], n=10, k=20)
    with pytest.raises(ValueError, match="y_true: has 2 rows, y_score has 1 rows"):
        simulate_lists([0, 1], [0.1])


def test_denominator_basis_and_auc_requirement() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    frame = pd.DataFrame({"station": rng.choice(["N", "S"], n), "eth": rng.choice(["W", "B"], n),
                          "score": np.round(rng.random(n), 2)})
    frame["y"] = (rng.random(n) < frame["score"]).astype(int)
    # few flagged people: every group has about 500 rows but about 15 flagged cases, so the
    # precision comparison is skipped while recall (about 250 positives each) is made
    denom = Requirement("precision", 5, unit="station", compare="eth", min_n=50)
    recall = Requirement("recall", 5, unit="station", compare="eth", min_n=50)
    auc = Requirement("auc", 10, unit="station", compare="eth")
    r_denom, r_recall, r_auc = evaluate_requirements(frame, "y", "score", [denom, recall, auc],
                                                     top_k=60)
    assert r_denom.units_evaluated == 0 and len(r_denom.skipped) == 2
    assert r_denom.status == STATUS_INSUFFICIENT
    assert r_recall.units_evaluated == 2
    assert auc.metric == "roc_auc" and r_auc.units_evaluated == 2
    from sklearn.metrics import roc_auc_score

    north = frame[frame.station == "N"]
    aucs = [roc_auc_score(g.y, g.score) for _, g in north.groupby("eth")]
    o = next(o for o in r_auc.outcomes if o.unit == "station=N")
    assert o.gap_pp == pytest.approx(100 * (max(aucs) - min(aucs)))
