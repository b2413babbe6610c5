"""Stability where it can vary: which sources of randomness a model has (checked against two
fits with different seeds), bootstrap resamples of officers, refits without one data source
(checked by changing that source: the refit's list must not move), the comparison numbers
(checked with scipy and numpy) and the configuration's key paths."""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.exceptions import ConvergenceWarning

from rudikit.config import FEATURE_TABLES, Features, ProjectError, parse_project
from rudikit.evaluation.stability import against_reference
from rudikit.features.asof.defaults import DEFAULT_SPECS, DEFAULT_STATES
from rudikit.models.estimators import GridPoint
from rudikit.models.perturb import perturbed_tasks, resample_positions, without_table
from rudikit.models.randomness import randomness_sources
from rudikit.models.temporal import (
    build_temporal_pipeline,
    fit_and_score,
    prepare,
    split_matrices,
    stability_rows,
)
from rudikit.reports.list_perturbation import perturbations, randomness
from rudikit.run.lists import ListStability
from tests.test_eis import project_config
from tests.test_temporal import experiment, synthetic_tables

#: Deterministic (no bagging, no feature sampling) and quick to fit.
LGBM = GridPoint("lightgbm", {"n_estimators": 15, "num_leaves": 4, "min_child_samples": 5})


@pytest.mark.parametrize("algorithm, params, random", [
    ("lightgbm", {}, False),
    ("lightgbm", {"subsample": 0.5}, False),  # a fraction without a bagging frequency
    ("lightgbm", {"subsample": 0.5, "subsample_freq": 1}, True),
    ("lightgbm", {"bagging_fraction": 1.0, "subsample": 0.5, "bagging_freq": 1}, False),
    ("lightgbm", {"colsample_bytree": 0.5}, True),
    ("lightgbm", {"extra_trees": True}, True),
    ("random_forest", {"n_estimators": 5}, True),
    # every row and every feature: equally good splits are still picked at random
    ("random_forest", {"n_estimators": 5, "bootstrap": False, "max_features": None}, True),
    ("random_forest", {"n_estimators": 5, "bootstrap": False}, True),
    ("logistic_regression", {"C": 0.1}, False),
    ("logistic_regression", {"C": 0.1, "solver": "saga", "max_iter": 5}, True),
    ("rank_by_feature", {"column": "a", "tie_break": "b"}, False),
])
def test_randomness_sources_are_what_two_seeds_change(algorithm: str, params: dict[str, Any],
                                                      random: bool) -> None:
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(600, 6)), columns=list("abcdef"))
    y = (X["a"] + X["b"] * X["c"] + rng.normal(size=600) > 0).astype(int).to_numpy()
    X, X_new, y = X.iloc[:400], X.iloc[400:], y[:400]  # scored on rows it did not learn
    features = Features(numeric=list("abcdef"))
    point = GridPoint(algorithm, params)
    scores = []
    for seed in (0, 1):
        pipeline, _ = build_temporal_pipeline(point, features, seed)
        with warnings.catch_warnings():  # saga stopped after 5 passes: not converged
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipeline.fit(X, y)
        scores.append(pipeline.predict_proba(X_new)[:, 1])
    # the oracle: two seeds on the same data give different scores exactly when it is random
    assert (not np.array_equal(*scores)) == random
    sources = randomness_sources(build_temporal_pipeline(point, features, 0)[0])
    assert bool(sources) == random
    assert randomness_sources(pipeline) == sources  # fitted or not, the same answer


def test_resample_entities_draws_officers_with_all_their_rows() -> None:
    rows = pd.DataFrame({"officer_uid": [5, 5, 7, 9, 9, 9, 11],
                         "as_of_date": pd.to_datetime(["2010-01-01", "2011-01-01", "2010-01-01",
                                                       "2009-01-01", "2010-01-01", "2011-01-01",
                                                       "2011-01-01"]),
                         "x": np.arange(7)})
    got = rows.iloc[resample_positions(rows, np.random.default_rng(11))].reset_index(drop=True)
    # oracle: the same draws made by hand, each drawn officer's rows as often as drawn, in
    # the rows' order
    officers = list(pd.unique(rows["officer_uid"]))
    draws = Counter(officers[i] for i in np.random.default_rng(11).integers(0, 4, 4))
    expected = rows.loc[[i for i, o in enumerate(rows["officer_uid"])
                         for _ in range(draws[o])]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)
    assert sum(draws.values()) == 4 and len(draws) < 4  # with replacement: someone repeats
    # over many draws about 1 - 1/e of the officers appear
    many = pd.DataFrame({"officer_uid": np.repeat(np.arange(5000), 2), "x": 0})
    drawn = many["officer_uid"].iloc[resample_positions(many, np.random.default_rng(0))]
    share = drawn.nunique() / 5000
    assert share == pytest.approx(1 - np.exp(-1), abs=0.02)


def test_feature_tables_are_the_tables_the_feature_specs_read() -> None:
    assert set(FEATURE_TABLES) == {s.table for s in (*DEFAULT_STATES, *DEFAULT_SPECS)}


@pytest.fixture(scope="module")
def one_split() -> tuple[Any, dict[str, pd.DataFrame]]:
    """Features of one split (test date 2012-01-01, two training dates) of 160 synthetic
    officers."""
    tables = synthetic_tables(n=160, seed=2)
    chop = {**experiment().timechop.model_dump(mode="json"),
            "training_as_of_date_frequencies": ["1year"], "max_training_histories": ["1year"]}
    return prepare(experiment(test_from="2012-01-01", timechop=chop), tables), tables


def test_each_feature_comes_from_one_table(one_split) -> None:
    data, _ = one_split
    by_prefix = {"complaints": "cmp_", "use_of_force": "uof_", "unit_history": "unit",
                 "rank_history": "rank"}
    for table, prefix in by_prefix.items():
        assert set(data.table_columns[table]) == {
            c for c in data.features.columns if c.startswith(prefix)}
    attributed = [c for cols in data.table_columns.values() for c in cols]
    assert len(attributed) == len(set(attributed))
    assert set(data.features.columns) - set(attributed) == {
        "officer_uid", "as_of_date", "tenure_years", "age_years"}  # the cohort's own


def test_a_refit_without_a_source_never_sees_it(one_split) -> None:
    data, tables = one_split
    test, refits = perturbed_tasks(data, LGBM, 0, stability_rows(data), resamples=0,
                                   tables=["use_of_force"]).run()
    (refit,) = refits
    uof = set(data.table_columns["use_of_force"])
    assert refit.kind == "drop_source" and refit.parameter == "source=use_of_force"
    assert not uof & set(refit.columns)
    assert set(refit.columns) == set(data.feature_config.input_columns) - uof
    assert refit.details["dropped_columns"] == [
        c for c in data.feature_config.input_columns if c in uof]
    # rewrite the use-of-force table: the full model's list moves, the refit's does not
    changed = dict(tables)
    uof_rows = tables["use_of_force"]
    changed["use_of_force"] = uof_rows.assign(officer_uid=uof_rows["officer_uid"].sample(
        frac=1, random_state=0).to_numpy())
    again = prepare(data.experiment, changed)
    _, (refit_again,) = perturbed_tasks(again, LGBM, 0, stability_rows(again), resamples=0,
                                        tables=["use_of_force"]).run()
    assert np.array_equal(refit.scores.to_numpy(), refit_again.scores.to_numpy())
    full = [_full_scores(d) for d in (data, again)]
    assert not np.allclose(*full)
    assert len(test) == len(refit.scores)


def _full_scores(data: Any) -> np.ndarray:
    """The unperturbed model's scores on the split's (one) test date."""
    return fit_and_score(LGBM, data.feature_config, split_matrices(data, data.splits[-1]), 0)[1]


def test_a_baseline_without_the_source_it_ranks_by_is_not_refitted(one_split) -> None:
    data, _ = one_split
    baseline = GridPoint("rank_by_feature", {"column": "cmp_all_1year_count"})
    _, refits = perturbed_tasks(data, baseline, 0, stability_rows(data), resamples=1,
                                tables=["complaints", "use_of_force"]).run()
    boot, complaints, uof = refits
    assert complaints.scores is None and "cmp_all_1year_count" in complaints.note
    assert boot.scores is not None and uof.scores is not None
    # it ranks by one column: neither resampling nor leaving use of force out moves its list
    assert np.array_equal(boot.scores.to_numpy(), uof.scores.to_numpy())
    assert uof.columns == ["cmp_all_1year_count"]


def test_comparisons_match_scipy_and_numpy(one_split) -> None:
    data, _ = one_split
    test, refits = perturbed_tasks(data, LGBM, 0, stability_rows(data), resamples=2,
                                   tables=["complaints"]).run()
    entities = test["officer_uid"].astype("string").to_numpy()
    labels = pd.Series(test["any_complaint"].to_numpy(), index=entities)
    reference = pd.Series(_full_scores(data), index=entities)
    k = 15
    got = against_reference(reference, {r.parameter: r.scores for r in refits}, labels, k)
    assert list(got["name"]) == ["resample=1", "resample=2", "source=complaints"]
    y = labels.to_numpy()

    def top(scores: np.ndarray) -> set[str]:  # ties go to the smaller officer id
        return set(entities[np.lexsort((entities, -scores))[:k]])

    def precision(scores: np.ndarray) -> float:  # the officers tied at the cut share its seats
        cut = np.sort(scores)[::-1][k - 1]
        above, tied = scores > cut, scores == cut
        return (y[above].sum() + (k - above.sum()) * y[tied].mean()) / k

    for refit, row in zip(refits, got.itertuples(), strict=True):
        a, b = reference.to_numpy(), refit.scores.to_numpy()
        assert row.jaccard == pytest.approx(len(top(a) & top(b)) / len(top(a) | top(b)))
        assert row.spearman == pytest.approx(stats.spearmanr(a, b).statistic)
        assert row.precision_at_k == pytest.approx(precision(b))
        assert row.reference_precision_at_k == pytest.approx(precision(a))
    assert got["jaccard"].lt(1).any()  # the perturbations did move the list


def test_summary_line_names_each_perturbation() -> None:
    pairs = pd.DataFrame({"a": [0], "b": [1], "jaccard": [1.0]})
    perturbed = pd.DataFrame({
        "kind": ["bootstrap", "bootstrap", "drop_source", "drop_source"],
        "parameter": ["resample=1", "resample=2", "source=complaints", "source=rank_history"],
        "jaccard": [0.5, 0.7, 0.4, np.nan], "spearman": [0.9, 0.9, 0.8, np.nan],
        "precision_at_k": [0.30, 0.34, 0.31, np.nan],
        "reference_precision_at_k": [0.33] * 4})
    seeds, line = ListStability(pairs, [], perturbed).summary(100)
    assert "seeds 0/1 top-100 Jaccard 1.000 (no source of randomness" in seeds
    assert "chosen 0.330" in line
    assert "officer bootstrap x2 0.60 (p 0.320)" in line
    assert "without complaints 0.40 (p 0.310)" in line and "rank_history" not in line
    random = ListStability(pairs, ["bagging"], perturbed.iloc[:0]).summary(100)
    assert random == ["seeds 0/1 top-100 Jaccard 1.000 (1 source(s) of randomness)"]


def test_perturbation_settings_errors_name_the_key_path(tmp_path) -> None:
    def problems(**stability: Any) -> list[str]:
        config = project_config(tmp_path)
        config["temporal"]["stability"].update(stability)
        with pytest.raises(ProjectError) as caught:
            parse_project(config)
        return caught.value.problems

    (problem,) = problems(drop_sources=["complaints", "complaint"])
    assert problem.startswith("temporal.stability.drop_sources[1]: input should be "
                              "'complaints', 'use_of_force'")
    assert problem.endswith("got 'complaint'")
    assert problems(drop_sources=["complaints", "complaints"]) == [
        "temporal.stability.drop_sources: complaints listed twice"]
    (problem,) = problems(resamples=-1)
    assert problem.startswith("temporal.stability.resamples: ")
    assert "greater than or equal to 0" in problem
    config = project_config(tmp_path)
    config["temporal"]["stability"].update(resamples=0, drop_sources=[])
    settings = parse_project(config).temporal.stability
    assert settings.resamples == 0 and settings.drop_sources == []


def test_without_table_keeps_the_other_kinds() -> None:
    features = Features(categorical=["unit", "rank"], numeric=["unit_days", "x"],
                        boolean=["flag"])
    left = without_table(features, ["unit", "unit_days"])
    assert (left.categorical, left.numeric, left.boolean) == (["rank"], ["x"], ["flag"])


def test_report_reads_randomness_and_perturbations_from_the_stored_rows() -> None:
    when = pd.Timestamp("2016-01-01")

    def row(kind: str, parameter: str, metric: str, value: float | None,
            details: dict[str, Any]) -> dict[str, Any]:
        return {"kind": kind, "parameter": parameter, "metric": metric, "value": value,
                "details": details, "as_of_date": when}

    boot = {"officers": 10, "distinct_officers": 6, "reference_precision_at_k": 0.4, "note": ""}
    rows = [row("seeds", "0/1", "jaccard", 0.8, {"randomness": ["bagging"]}),
            *(row("bootstrap", f"resample={b}", m, v, boot)
              for b, values in ((1, (0.5, 0.9, 0.3)), (2, (0.7, 0.8, 0.5)))
              for m, v in zip(("jaccard", "spearman", "precision_at_k"), values, strict=True)),
            *(row("drop_source", "source=rank_history", m, None,
                  {"note": "the model reads no feature of rank_history",
                   "reference_precision_at_k": 0.4}) for m in ("jaccard", "spearman"))]
    stability = pd.DataFrame(rows)
    assert randomness(stability) == ["bagging"]
    assert randomness(stability[stability["kind"] != "seeds"]) is None  # not recorded
    found = perturbations(stability)
    assert found is not None and found["reference"] == 0.4
    assert found["bootstrap_mean"] == pytest.approx({"jaccard": 0.6, "spearman": 0.85,
                                                     "precision": 0.4})
    assert [r["label"] for r in found["rows"]] == ["resample 1", "resample 2",
                                                   "without rank_history"]
    assert found["rows"][2]["jaccard"] is None and "reads no feature" in found["rows"][2]["note"]
    assert perturbations(stability[stability["kind"] == "seeds"]) is None
