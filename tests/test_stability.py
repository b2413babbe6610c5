"""List stability, reviewed-officer exclusion and rank changes against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from rudikit.evaluation.stability import (
    StabilityError,
    consecutive_stability,
    exclude_reviewed,
    jaccard,
    pairwise_stability,
    rank_changes,
    rank_correlation,
    top_k,
    top_k_jaccard,
    trees_tasks,
)
from rudikit.store import list_tables as lt
from rudikit.store import results
from rudikit.store.engine import open_store

D = pd.Timestamp


def test_jaccard_by_hand() -> None:
    assert jaccard({1, 2, 3}, {2, 3, 4}) == pytest.approx(2 / 4)
    assert jaccard([1, 2], [1, 2]) == 1.0
    assert jaccard([1], [2]) == 0.0
    assert np.isnan(jaccard([], []))


def test_top_k_ties_by_entity_and_top_k_jaccard() -> None:
    a = pd.Series({"e": 0.9, "b": 0.5, "a": 0.5, "c": 0.1, "d": 0.7})
    assert top_k(a, 3) == ["e", "d", "a"]  # a and b tie: a first
    b = pd.Series({"e": 0.2, "b": 0.9, "a": 0.1, "c": 0.8, "d": 0.7})
    # top 3 of b: b, c, d; of a: e, d, a -> common {d}, union {a, b, c, d, e}
    assert top_k_jaccard(a, b, 3) == pytest.approx(1 / 5)
    with pytest.raises(StabilityError):
        top_k(a, 0)


def test_spearman_by_hand() -> None:
    a = pd.Series({"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0})
    b = pd.Series({"a": 10.0, "b": 30.0, "c": 20.0, "d": 40.0, "z": 5.0})
    # common a..d; ranks a 1 2 3 4 vs 1 3 2 4: d^2 = 0 + 1 + 1 + 0 = 2;
    # rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert rank_correlation(a, b) == pytest.approx(0.8)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    # top 2 lists: a -> d, c; b -> d, b: over {b, c, d}: a ranks 1 2 3, b 2 1 3:
    # d^2 = 1 + 1 + 0 = 2; rho = 1 - 12 / (3 * 8) = 0.5
    assert rank_correlation(a, b, k=2) == pytest.approx(0.5)
    assert np.isnan(rank_correlation(a, pd.Series({"a": 1.0})))


def test_pairwise_and_consecutive_stability() -> None:
    s0 = pd.Series({1: 0.9, 2: 0.8, 3: 0.1, 4: 0.2})
    s1 = pd.Series({1: 0.9, 2: 0.1, 3: 0.8, 4: 0.2})
    pairs = pairwise_stability({"seed0": s0, "seed1": s1, "seed0bis": s0}, k=2)
    assert len(pairs) == 3
    same = pairs[(pairs["a"] == "seed0") & (pairs["b"] == "seed0bis")].iloc[0]
    assert same["jaccard"] == 1.0 and same["spearman"] == pytest.approx(1.0)
    # seed0 top 2 {1, 2}, seed1 top 2 {1, 3}: 1/3
    assert pairs.iloc[0]["jaccard"] == pytest.approx(1 / 3)
    by_date = {"2016-01-02": s1, "2016-01-01": s0, "2016-01-03": s1.drop(4)}
    cons = consecutive_stability(by_date, k=2)
    assert cons["as_of_date"].tolist() == [D("2016-01-02"), D("2016-01-03")]
    assert cons["jaccard"].tolist() == pytest.approx([1 / 3, 1.0])
    assert cons["common_entities"].tolist() == [4, 3]


def test_reviewed_officers_are_excluded_within_the_cool_off_and_back_after() -> None:
    scores = pd.Series({"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6, "e": 0.5})
    reviews = pd.DataFrame({"entity_id": ["a", "c", "e"],
                            "review_date": pd.to_datetime(["2016-01-01", "2015-06-01",
                                                           "2016-03-01"])})
    # on 2016-02-01 with a 90-day cool-off: a reviewed 31 days ago (out), c 245 days ago (in),
    # e's review is in the future (ignored)
    listed = exclude_reviewed(scores, reviews, "2016-02-01", cool_off_days=90, k=3)
    assert listed["entity_id"].tolist() == ["b", "c", "d"]  # filled from further down
    assert listed["rank"].tolist() == [1, 2, 3]
    assert listed["original_rank"].tolist() == [2, 3, 4]
    # the day the cool-off ends (90 days after 2016-01-01 = 2016-03-31), a is back
    back = exclude_reviewed(scores, reviews, "2016-03-31", cool_off_days=90, k=3)
    assert back["entity_id"].tolist() == ["a", "b", "c"]
    # and the day before, still out (e now reviewed on 2016-03-01, also out)
    still = exclude_reviewed(scores, reviews, "2016-03-30", cool_off_days=90)
    assert still["entity_id"].tolist() == ["b", "c", "d"]
    # a review on the as-of date itself counts
    same_day = exclude_reviewed(scores, reviews, "2016-01-01", cool_off_days=1)
    assert "a" not in same_day["entity_id"].tolist()
    frame = pd.DataFrame({"entity_id": scores.index, "score": scores.to_numpy()})
    assert exclude_reviewed(frame, reviews, "2016-02-01", 90)["entity_id"].iloc[0] == "b"
    with pytest.raises(StabilityError):
        exclude_reviewed(scores, reviews, "2016-02-01", cool_off_days=-1)


def test_rank_changes_against_a_hand_made_sequence() -> None:
    # four lists: 2015-01-01, 2015-10-01, 2015-12-31, 2016-01-01
    lists = {
        "2015-01-01": pd.Series({"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}),  # a b c d
        "2015-10-01": pd.Series({"a": 1.0, "b": 4.0, "c": 3.0, "d": 2.0}),  # b c d a
        "2015-12-31": pd.Series({"a": 2.0, "b": 1.0, "c": 4.0, "d": 3.0}),  # c d a b
        "2016-01-01": pd.Series({"a": 3.0, "b": 2.0, "c": 1.0, "e": 4.0}),  # e a b c
    }
    changes = rank_changes(lists, dates=["2016-01-01"])
    got = changes.set_index(["entity_id", "horizon"])
    # day: 2015-12-31 (1 day back): a 3 -> 2 (+1), b 4 -> 3 (+1), c 1 -> 4 (-3), e new
    assert got.loc[("a", "day"), "previous_rank"] == 3
    assert got.loc[("a", "day"), "change"] == 1
    assert got.loc[("c", "day"), "change"] == -3
    assert pd.isna(got.loc[("e", "day"), "previous_rank"])
    # week and month: the nearest list at least 7 days / 1 month back is 2015-10-01
    assert got.loc[("a", "week"), "previous_date"] == D("2015-10-01")
    assert got.loc[("a", "month"), "previous_rank"] == 4
    assert got.loc[("a", "month"), "change"] == 2
    # quarter: at least 3 months back (<= 2015-10-01): 2015-10-01; b was 1st, now 3rd: -2
    assert got.loc[("b", "quarter"), "change"] == -2
    # year: <= 2015-01-01: a was 1st, now 2nd
    assert got.loc[("a", "year"), "previous_date"] == D("2015-01-01")
    assert got.loc[("a", "year"), "change"] == -1
    assert got.loc[("e", "year"), "rank"] == 1
    # the first list has no earlier list for any horizon
    first = rank_changes(lists, dates=["2015-01-01"])
    assert first["previous_rank"].isna().all()
    # the long form gives the same answer
    long = pd.concat([pd.DataFrame({"entity_id": s.index, "as_of_date": D(d),
                                    "score": s.to_numpy()}) for d, s in lists.items()])
    again = rank_changes(long, dates=["2016-01-01"])
    pd.testing.assert_frame_equal(again.reset_index(drop=True), changes.reset_index(drop=True))
    assert len(rank_changes(lists)) == 5 * (4 + 4 + 4 + 4)
    with pytest.raises(StabilityError):
        rank_changes(lists, dates=["2017-01-01"])


def test_stability_vs_trees_grows_with_trees() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 5))
    y = (X[:, 0] + 0.5 * rng.normal(size=600) > 1).astype(int)
    X_test = rng.normal(size=(300, 5))
    y_test = (X_test[:, 0] > 1).astype(int)
    curve = trees_tasks(X, y, X_test, range(300), n_estimators=[3, 60], seeds=[0, 1], k=30,
                        params={"min_samples_leaf": 5}, y_test=y_test).run()
    assert curve["n_estimators"].tolist() == [3, 60]
    assert curve["jaccard"].iloc[1] > curve["jaccard"].iloc[0]
    assert curve["precision_at_k"].between(0, 1).all()
    # warm start grows the same forest a fresh fit with the same seed would give
    from sklearn.ensemble import RandomForestClassifier

    fresh = RandomForestClassifier(n_estimators=60, random_state=0, min_samples_leaf=5,
                                   n_jobs=1).fit(X.astype(np.float32), y)
    warm = RandomForestClassifier(n_estimators=3, random_state=0, min_samples_leaf=5,
                                  n_jobs=1, warm_start=True).fit(X.astype(np.float32), y)
    warm.set_params(n_estimators=60).fit(X.astype(np.float32), y)
    np.testing.assert_allclose(fresh.predict_proba(X_test.astype(np.float32)),
                               warm.predict_proba(X_test.astype(np.float32)))
    lgb = trees_tasks(X, y, X_test, range(300), algorithm="lightgbm", n_estimators=[20], k=30,
                      params={"subsample": 0.5, "subsample_freq": 1}).run()
    assert 0 <= lgb["jaccard"].iloc[0] <= 1
    with pytest.raises(StabilityError):
        trees_tasks(X, y, X_test, range(300), seeds=[0])


def test_list_tables_round_trip(store) -> None:
    url, schema = store
    engine = open_store(url, schema=schema)
    run_id = results.start_run(engine, "eis", "h", {}, 0, "synthetic")
    written = lt.record_list_stability(engine, run_id, [
        {"kind": "trees", "algorithm": "random_forest", "parameter": "n_estimators=100",
         "k": 100, "metric": "jaccard", "value": 0.63},
        {"kind": "seeds", "parameter": "0/1", "k": 100, "metric": "jaccard",
         "value": float("nan"), "as_of_date": "2016-01-01"},
    ])
    assert written == 2
    lists = {"2016-01-01": pd.Series({"a": 2.0, "b": 1.0}),
             "2016-01-02": pd.Series({"a": 1.0, "b": 2.0})}
    assert lt.record_rank_changes(engine, run_id, rank_changes(lists)) == 2 * 5 * 2
    lt.record_review(engine, "a", "2016-01-01", reviewer="sgt x", outcome="no_action")
    reviews = lt.load_reviews(engine)
    assert reviews["review_date"].iloc[0] == D("2016-01-01")
    listed = exclude_reviewed(lists["2016-01-02"], reviews, "2016-01-02", 30)
    assert listed["entity_id"].tolist() == ["b"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(lt.rank_changes)).scalar_one() \
            == 20
        nan_row = conn.execute(select(lt.list_stability.c.value).where(
            lt.list_stability.c.kind == "seeds")).scalar_one()
    assert nan_row is None
