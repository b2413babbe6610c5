"""The temporal experiment runner on a small synthetic force: matrices never leak the test
period into training, every fit is stored, baselines rank by one feature."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy import func, select

from rudikit.config import (
    SELECTION_RULES,
    TEMPORAL_LABELS,
    Features,
    TemporalError,
    TemporalExperiment,
    Timechop,
    label_months,
)
from rudikit.features.asof.defaults import DEFAULT_LABELS, event_specs
from rudikit.features.asof.specs import FeatureError
from rudikit.models.artefacts import load_artefact, save_artefact
from rudikit.models.audition import RULES
from rudikit.models.estimators import GridPoint
from rudikit.models.seeds import FittedSeed, seed_tasks
from rudikit.models.temporal import (
    FeatureRankClassifier,
    LeakageError,
    build_temporal_pipeline,
    consecutive_dates,
    experiment_grid,
    feature_config,
    prepare,
    selection_rules,
    split_matrices,
    stability_rows,
    training_matrix,
)
from rudikit.run.temporal import run_temporal
from rudikit.store import results
from rudikit.store import tables as t
from rudikit.store.engine import open_store

D = pd.Timestamp


def synthetic_tables(n: int = 240, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Officers with a latent risk; complaints and uses of force arrive at that rate."""
    rng = np.random.default_rng(seed)
    uid = np.arange(1, n + 1)
    appointed = D("1996-01-01") + pd.to_timedelta(rng.integers(0, 12 * 365, n), unit="D")
    risk = rng.gamma(0.6, 1.5, n)
    officers = pd.DataFrame({
        "officer_uid": pd.array(uid, dtype="Int64"), "appointed_date": appointed,
        "birth_year": pd.array(appointed.year - rng.integers(21, 35, n), dtype="Int64"),
        "gender": "MALE", "race": "WHITE", "resignation_date": pd.NaT,
    })
    start, end = D("2004-01-01"), D("2013-12-31")
    span = (end - start).days

    def events(rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        counts = rng.poisson(rate * span / 365.25)
        who = np.repeat(uid, counts)
        when = start + pd.to_timedelta(rng.integers(0, span, counts.sum()), unit="D")
        return who, np.asarray(when)

    who, when = events(risk)
    complaints = pd.DataFrame({
        "cr_id": [f"c{i}" for i in range(len(who))],
        "officer_uid": pd.array(who, dtype="Int64"), "complaint_date": when,
        "closed_date": pd.to_datetime(when) + pd.Timedelta(days=200),
        "allegation_category": rng.choice(["excessive_force", "verbal_abuse", "other"],
                                          len(who)),
        "final_finding": rng.choice(["sustained", "not_sustained", "unfounded"], len(who)),
    })
    who, when = events(0.7 * risk)
    flags = {f: rng.random(len(who)) < 0.3 for f in (
        "any_injury", "subject_injured", "subject_alleged_injury", "officer_injured",
        "subject_armed", "force_taser", "force_firearm", "force_impact_weapon",
        "force_mechanical", "force_chemical")}
    use_of_force = pd.DataFrame({
        "trr_id": [f"t{i}" for i in range(len(who))],
        "officer_uid": pd.array(who, dtype="Int64"), "trr_date": when,
        "highest_force": rng.choice(["holding", "taser"], len(who)), **flags,
    })
    unit_history = pd.DataFrame({
        "officer_uid": pd.array(uid, dtype="Int64"),
        "unit": rng.choice(["1", "2", "3"], n), "unit_start_date": appointed,
        "unit_end_date": pd.NaT, "is_change": False,
    })
    rank_history = pd.DataFrame({
        "officer_uid": pd.array(uid, dtype="Int64"), "rank_date": appointed,
        "rank": rng.choice(["POLICE OFFICER", "SERGEANT"], n, p=[0.85, 0.15]),
    })
    return {"officers": officers, "complaints": complaints, "use_of_force": use_of_force,
            "unit_history": unit_history, "rank_history": rank_history}


def experiment(**changes: Any) -> TemporalExperiment:
    config: dict[str, Any] = {
        "name": "eis_test",
        "label": "any_complaint",
        "timechop": {
            "feature_start_time": "2004-01-01", "feature_end_time": "2013-01-01",
            "label_start_time": "2007-01-01", "label_end_time": "2013-01-01",
            "model_update_frequency": "1year",
            "training_as_of_date_frequencies": "6month", "max_training_histories": "2year",
            "training_label_timespans": "1year",
            "test_as_of_date_frequencies": "1year", "test_durations": "0day",
            "test_label_timespans": "1year",
        },
        "test_from": "2010-01-01",
        "models": [
            {"algorithm": "rank_by_feature", "name": "baseline: complaints last year",
             "params": {"column": "cmp_all_1year_count", "tie_break": "cmp_all_5year_count"}},
            {"algorithm": "lightgbm", "params": {"n_estimators": 20, "num_leaves": 7,
                                                 "min_child_samples": 10}},
            {"algorithm": "logistic_regression", "params": {"C": 0.1}},
        ],
        "top_k": 20,
        "bootstrap": 20,
    }
    config.update(changes)
    return TemporalExperiment(**config)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return synthetic_tables()


def test_experiment_maps_from_yaml_like_dicts() -> None:
    config = experiment()
    assert [s.split_time for s in config.splits()] == [D("2010-01-01"), D("2011-01-01"),
                                                       D("2012-01-01")]
    names = [name for _, name in experiment_grid(config)]
    assert names[0] == "baseline: complaints last year"
    assert names[1].startswith("lightgbm(")
    assert isinstance(config.timechop, Timechop)
    assert label_months("1year") == 12 and label_months("6month") == 6
    columns = ["unit", "rank", "cmp_all_1year_count", "cmp_all_1year_rate", "tenure_years"]
    chosen = feature_config(columns, experiment(exclude_patterns=["*_rate"],
                                                exclude_features=["tenure_years"]))
    assert chosen.categorical == ["unit", "rank"]
    assert chosen.numeric == ["cmp_all_1year_count"]
    # "!pattern" takes back what earlier patterns dropped; the last matching pattern decides.
    kept = feature_config(columns, experiment(exclude_patterns=["cmp_*", "!cmp_*_rate"]))
    assert kept.numeric == ["cmp_all_1year_rate", "tenure_years"]
    again = feature_config(columns, experiment(exclude_patterns=["!cmp_*_rate", "cmp_*"]))
    assert again.numeric == ["tenure_years"]
    with pytest.raises(ValidationError):
        experiment(label="no_such_label")
    with pytest.raises(ValidationError):
        experiment(models=[{"algorithm": "xgboost"}])
    assert len(selection_rules(config)) > 3  # the default audition rules
    rules = experiment(selection_rules=[{"name": "best_avg_var_penalized", "param": 0.5}])
    assert [r.label for r in selection_rules(rules)] == ["best_avg_var_penalized(0.5)"]
    with pytest.raises(ValidationError):
        experiment(selection_rules=[{"name": "best_guess"}])


def test_matrices_never_train_on_a_label_window_overlapping_the_test_period(tables) -> None:
    data = prepare(experiment(), tables)
    for split in data.splits:
        m = split_matrices(data, split)
        test_start = m.test["as_of_date"].min()
        assert test_start == split.split_time
        # every training label window [as_of, as_of + 1 year) ends by the first test date
        assert (m.train["label_end"] <= test_start).all()
        assert (m.train["as_of_date"] + pd.DateOffset(years=1) == m.train["label_end"]).all()
        assert m.train["as_of_date"].max() == split.split_time - pd.DateOffset(years=1)
        # a 2-year history at 6-month steps: five training as-of dates (fewer near the start)
        assert set(m.train["as_of_date"]) == set(split.train.as_of_dates)
        assert len(split.train.as_of_dates) == 5 or split.split_time == D("2010-01-01")
        # the labels are the events in the window, read from the raw table
        row = m.train.iloc[len(m.train) // 2]
        c = tables["complaints"]
        hits = c[(c["officer_uid"] == row["officer_uid"])
                 & (c["complaint_date"] >= row["as_of_date"])
                 & (c["complaint_date"] < row["label_end"])]
        assert row["any_complaint"] == int(len(hits) > 0)
        assert m.censored_train == 0


def test_leakage_is_refused(tables) -> None:
    data = prepare(experiment(), tables)
    m = split_matrices(data, data.splits[0])
    m.train.loc[0, "label_end"] = m.test["as_of_date"].min() + pd.Timedelta(days=1)
    with pytest.raises(LeakageError):
        m.check_no_overlap()


def test_censored_test_rows_are_not_scored(tables) -> None:
    # the label window of the 2013 test date runs past the last complaint (end of 2013)
    chop = dict(experiment().timechop.model_dump(mode="json"),
                label_end_time="2014-01-01", feature_end_time="2013-01-01")
    data = prepare(experiment(timechop=chop, test_from="2013-01-01"), tables)
    m = split_matrices(data, data.splits[-1])
    assert m.censored_test > 0 and len(m.test) == 0


def test_run_stores_every_fit_and_returns_precision_per_date(tmp_path, store, tables) -> None:
    url, schema = store
    engine = open_store(url, schema=schema)
    config = experiment()
    run_id = results.start_run(engine, config.name, "h", config.model_dump(mode="json"), 0,
                               "synthetic")
    messages: list[str] = []
    result = run_temporal(config, tables, engine=engine, run_id=run_id,
                          artefacts_dir=tmp_path / "models", progress=messages.append)
    assert messages
    n_groups, n_splits = 3, 3
    assert len(result.metrics) == n_groups * n_splits  # one test date per split
    assert result.metrics["value"].between(0, 1).all()
    for index in result.matrices:
        assert (index["train"]["label_end"] <= index["test"]["as_of_date"].min()).all()
    table = result.precision_table()
    assert table["baseline"].iloc[0]  # baselines first
    assert {"2010-01-01", "2011-01-01", "2012-01-01", "mean"} <= set(table.columns)
    with engine.connect() as conn:
        models = conn.execute(select(func.count()).select_from(t.models).where(
            t.models.c.run_id == run_id)).scalar_one()
        assert models == n_groups * n_splits
        dated = conn.execute(select(func.count()).select_from(t.predictions).where(
            t.predictions.c.as_of_date.is_not(None))).scalar_one()
        assert dated == len(result.predictions)
        rows = conn.execute(select(t.evaluations.c.value, t.evaluations.c.lower,
                                   t.evaluations.c.upper).where(
            t.evaluations.c.metric == "precision_at_k",
            t.evaluations.c.parameter == "20_abs")).all()
    assert len(rows) == n_groups * n_splits
    assert all(r.lower is not None and r.lower <= r.value <= r.upper for r in rows)
    # the stored value is the returned one
    stored = sorted(round(r.value, 9) for r in rows)
    assert stored == sorted(round(v, 9) for v in result.metrics["value"])
    # the baseline's list is the officers with the most complaints last year
    base = result.metrics[result.metrics["baseline"]]
    split = result.data.splits[-1]
    m = split_matrices(result.data, split)
    scores = result.scores(int(base["model_group_id"].iloc[0]), split.split_time)
    counts = m.test.set_index(m.test["officer_uid"].astype("string"))["cmp_all_1year_count"]
    top = scores.sort_values(ascending=False).index[:20]
    assert counts.loc[top].min() >= counts.drop(top).max()


def test_several_test_dates_are_evaluated_per_date(tmp_path, tables) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    chop = dict(experiment().timechop.model_dump(mode="json"),
                test_as_of_date_frequencies=["3month"], test_durations=["6month"],
                label_end_time="2012-07-01")
    config = experiment(timechop=chop, test_from="2011-01-01", models=[
        {"algorithm": "rank_by_feature", "params": {"column": "cmp_all_1year_count"}}])
    run_id = results.start_run(engine, config.name, "h", {}, 0, "synthetic")
    result = run_temporal(config, tables, engine=engine, run_id=run_id,
                          artefacts_dir=tmp_path / "m")
    split = result.data.splits[0]
    assert len(split.test.as_of_dates) == 2
    assert result.metrics["as_of_date"].nunique() == 2
    with engine.connect() as conn:
        params = {r[0] for r in conn.execute(select(t.evaluations.c.parameter).where(
            t.evaluations.c.metric == "precision_at_k")).all()}
    assert {"20_abs", f"20_abs@{split.split_time:%Y-%m-%d}"} <= params
    # audition reads one value per split: the mean over its test dates
    per_split = result.split_metrics()
    assert len(per_split) == len(result.data.splits)
    assert per_split["value"].iloc[0] == pytest.approx(
        result.metrics[result.metrics["split_time"] == split.split_time]["value"].mean())


def test_a_baseline_ranks_by_a_feature_the_models_do_not_see(tmp_path, tables) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    config = experiment(exclude_patterns=["cmp_all_*"], models=[
        {"algorithm": "rank_by_feature", "params": {"column": "cmp_all_1year_count",
                                                    "tie_break": "cmp_all_5year_count"}},
        {"algorithm": "logistic_regression", "params": {"C": 0.1}}])
    run_id = results.start_run(engine, config.name, "h", {}, 0, "synthetic")
    result = run_temporal(config, tables, engine=engine, run_id=run_id,
                          artefacts_dir=tmp_path / "m")
    data = result.data
    assert not any(c.startswith("cmp_all_") for c in data.feature_config.input_columns)
    baseline = result.groups[result.groups["baseline"]].iloc[0]["model_group_id"]
    when = data.splits[-1].split_time
    scores = result.scores(baseline, when)
    rows = data.features[data.features["as_of_date"] == when].set_index("officer_uid")
    rows.index = rows.index.astype("string")
    count = rows.loc[scores.index, "cmp_all_1year_count"].to_numpy()
    tie = rows.loc[scores.index, "cmp_all_5year_count"].to_numpy()
    # The ranking is the column's, ties broken by the second column (missing counts as 0).
    order = np.lexsort((-np.nan_to_num(tie), -np.nan_to_num(count)))
    assert (np.diff(scores.to_numpy()[order]) <= 0).all()
    lr_inputs = load_artefact(*_artefact(engine, result, "logistic_regression"))
    assert "cmp_all_1year_count" not in lr_inputs.named_steps["encode"].input_columns
    def stored() -> list[int]:
        with engine.connect() as conn:
            return [conn.execute(select(func.count()).select_from(table)).scalar_one()
                    for table in (t.model_groups, t.models, t.predictions)]

    before = stored()
    with pytest.raises(TemporalError, match="temporal.models: .*'no_such' is not a numeric"):
        run_temporal(experiment(models=[{"algorithm": "rank_by_feature",
                                         "params": {"column": "no_such"}}]),
                     tables, engine=engine, run_id=run_id, artefacts_dir=tmp_path / "m")
    assert stored() == before


def _artefact(engine: Any, result: Any, algorithm: str) -> tuple[str, str]:
    """(path, hash) of the last stored model of the result's group ``algorithm``."""
    group = result.groups[result.groups["algorithm"] == algorithm].iloc[0]["model_group_id"]
    with engine.connect() as conn:
        row = conn.execute(select(t.models.c.artefact_path, t.models.c.artefact_hash).where(
            t.models.c.model_group_id == int(group)).order_by(t.models.c.id.desc())).first()
    return row[0], row[1]


@pytest.mark.parametrize("stability, expected", [
    ({"algorithm": "random_forest", "params": {"max_depht": 3}}, "max_depht"),
    ({"algorithm": "random_forest", "params": {"max_features": "sqrtt"}}, "max_features"),
    ({"algorithm": "extra_trees", "params": {"criterion": "ginny"}}, "criterion"),
    ({"algorithm": "lightgbm", "params": {"num_leafs": 3}}, "unknown parameter(s) num_leafs"),
    ({"algorithm": "lightgbm", "params": {"num_leaves": -1}}, "num_leaves"),
])
def test_a_bad_stability_forest_fails_the_run_before_anything_is_stored(
        tmp_path, tables, stability, expected) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'rudi.db'}")
    config = experiment(stability=stability)
    run_id = results.start_run(engine, config.name, "h", {}, 0, "synthetic")
    with pytest.raises(TemporalError, match=r"temporal.stability.params: "
                       + stability["algorithm"] + ": .*" + re.escape(expected)):
        run_temporal(config, tables, engine=engine, run_id=run_id,
                     artefacts_dir=tmp_path / "models")
    with engine.connect() as conn:
        for table in (t.model_groups, t.models, t.predictions):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0


def test_experiment_round_trips_through_yaml() -> None:
    config = experiment(selection_rules=[{"name": "best_average_value"}])
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    assert TemporalExperiment(**yaml.safe_load(text)) == config


def test_baseline_pipeline_survives_the_artefact_store(tmp_path) -> None:
    features = Features(numeric=["a", "b"])
    pipe, _ = build_temporal_pipeline(GridPoint("rank_by_feature", {"column": "a",
                                                                    "tie_break": "b"}),
                                      features)
    rows = pd.DataFrame({"a": [1, 2, 2], "b": [5, 0, 1]})
    pipe.fit(rows, np.array([0, 1, 0]))
    digest, path = save_artefact(pipe, tmp_path)
    again = load_artefact(path, digest)
    np.testing.assert_array_equal(again.predict_proba(rows), pipe.predict_proba(rows))


def test_feature_rank_baseline_orders_lexicographically() -> None:
    X = np.array([[2, 0], [1, 100], [2, 5], [0, np.nan]], dtype=float)
    model = FeatureRankClassifier(0, (1,)).fit(X, np.array([0, 1, 0, 1]))
    score = model.predict_proba(X)[:, 1]
    assert list(np.argsort(-score)) == [2, 0, 1, 3]
    assert ((score > 0) & (score < 1)).all()
    features = Features(categorical=["unit"], numeric=["a", "b"])
    pipe, _ = build_temporal_pipeline(GridPoint("rank_by_feature", {"column": "b",
                                                                    "tie_break": ["a"]}),
                                      features)
    # The baseline's pipeline reads its own columns only, in its order.
    assert pipe.named_steps["encode"].input_columns == ["b", "a"]
    rows = pd.DataFrame({"unit": ["7", "9", "7", "1"], "a": X[:, 1], "b": X[:, 0]})
    assert list(np.argsort(-pipe.fit(rows, np.zeros(4)).predict_proba(rows)[:, 1])) == [
        2, 0, 1, 3]
    with pytest.raises(ValueError):
        build_temporal_pipeline(GridPoint("rank_by_feature", {"column": "unit"}), features)


def test_seed_lists_and_consecutive_dates(tables) -> None:
    extra = consecutive_dates("2012-01-01", experiment().stability.consecutive.model_copy(
        update={"days": 2, "weeks": 1, "months": 1}))
    # monthly to 2012-02-01, weekly (2012-01-08), and the two days before the last date
    assert extra == [D("2012-01-01"), D("2012-01-08"), D("2012-01-30"), D("2012-01-31"),
                     D("2012-02-01")]
    default = consecutive_dates("2016-01-01", experiment().stability.consecutive)
    assert default[-1] == D("2016-04-01") and D("2016-03-31") in default
    assert D("2016-03-25") in default and D("2016-03-01") in default
    data = prepare(experiment(), tables, extra_dates=extra)
    point = GridPoint("random_forest", {"n_estimators": 10, "n_jobs": 1,
                                        "min_samples_leaf": 5})
    by_seed, by_date = seed_tasks(data, point, [0, 1],
                                  stability_rows(data, extra_dates=extra)).run()
    assert set(by_seed) == {0, 1} and set(by_date) == set(extra)
    assert not by_seed[0].equals(by_seed[1])  # a forest depends on its seed
    X_train, y_train, X_test, test = training_matrix(data)
    assert X_train.shape[1] == X_test.shape[1] == len(data.feature_config.input_columns)
    assert len(test) == len(by_seed[0]) and set(np.unique(y_train)) == {0, 1}


def test_seed_lists_from_the_grids_fit_are_the_refitted_ones(tables) -> None:
    """The first seed's model given as already fitted (as the grid's fit is) is not refitted:
    its list and its lists on the further dates (scored by the saved bytes, in the same batch
    as the other seeds' refits) are those a refit gives."""
    from rudikit.models.artefacts import artefact_bytes
    from rudikit.models.temporal import fit_and_score

    extra = consecutive_dates("2012-01-01", experiment().stability.consecutive.model_copy(
        update={"days": 2, "weeks": 1, "months": 1}))
    data = prepare(experiment(), tables, extra_dates=extra)
    point = GridPoint("random_forest", {"n_estimators": 10, "n_jobs": 1,
                                        "min_samples_leaf": 5})
    rows = stability_rows(data, extra_dates=extra)
    refitted = seed_tasks(data, point, [3, 4], rows).run()
    matrices = split_matrices(data, data.splits[-1])
    pipeline, score, _ = fit_and_score(point, data.features_for(point), matrices, 3)
    first = (matrices.test["as_of_date"] == matrices.test["as_of_date"].min()).to_numpy()
    digest, saved = artefact_bytes(pipeline)
    fitted = FittedSeed(3, pd.Series(score[first], index=matrices.test.loc[
        first, "officer_uid"].astype("string").to_numpy()), (digest, saved, "grid fit"))
    said: list[str] = []
    given = seed_tasks(data, point, [3, 4], rows, fitted=fitted, progress=said.append).run()
    assert [m.split(": ")[-1] for m in said][0] == "the grid's fit" and len(said) == 2
    for one, other in zip(refitted, given, strict=True):
        assert list(one) == list(other)
        for key in one:
            pd.testing.assert_series_equal(one[key], other[key], rtol=0, atol=0)
    # the dates are scored by the model given, not by a refit
    other_fit = fit_and_score(point, data.features_for(point), matrices, 5)[0]
    _, by_date = seed_tasks(data, point, [3, 4], rows, fitted=dataclasses.replace(
        fitted, artefact=(*artefact_bytes(other_fit), "seed 5"))).run()
    assert any(not by_date[d].equals(refitted[1][d]) for d in extra)
    with pytest.raises(ValueError, match="not the first"):
        seed_tasks(data, point, [4, 3], rows, fitted=fitted)


def test_real_data_smoke(tmp_path, cpdb_loaded) -> None:
    tables = cpdb_loaded.tables()
    config = experiment(
        label="injury_use_of_force",
        timechop={
            "feature_start_time": "2004-01-01", "feature_end_time": "2015-01-01",
            "label_start_time": "2013-01-01", "label_end_time": "2016-01-01",
            "model_update_frequency": "1year", "training_as_of_date_frequencies": "1year",
            "max_training_histories": "0day", "training_label_timespans": "1year",
            "test_as_of_date_frequencies": "1year", "test_durations": "0day",
            "test_label_timespans": "1year"},
        test_from="2015-01-01", top_k=100,
        models=[{"algorithm": "rank_by_feature",
                 "params": {"column": "uof_all_1year_count",
                            "tie_break": "uof_all_5year_count"}}])
    engine = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    run_id = results.start_run(engine, config.name, "h", {}, 0, "real")
    result = run_temporal(config, tables, engine=engine, run_id=run_id,
                          artefacts_dir=tmp_path / "m")
    row = result.metrics.iloc[0]
    assert row["as_of_date"] == D("2015-01-01") and row["n"] > 10_000
    assert 0.5 < row["value"] <= 1.0  # last year's uses of force predict injuries well
    index = result.matrices[0]
    assert (index["train"]["label_end"] <= D("2015-01-01")).all()


def test_bad_settings_are_config_errors_with_their_key_path() -> None:
    def problem(**changes: Any) -> str:
        with pytest.raises(ValidationError) as exc:
            experiment(**changes)
        return str(exc.value)

    chop = experiment().timechop.model_dump(mode="json")
    assert "whole months or years" in problem(
        timechop={**chop, "training_label_timespans": ["30day"]})
    assert "positive interval" in problem(timechop={**chop, "test_label_timespans": ["0day"]})
    assert "at least 2 items" in problem(stability={"seeds": [0]})
    assert "seeds must differ" in problem(stability={"seeds": [3, 3]})
    assert "greater than or equal to 1" in problem(stability={"n_estimators": [0, 100]})
    assert "n_estimators: set by the curve itself" in problem(
        stability={"params": {"n_estimators": 10}})
    assert "less than or equal to 100" in problem(top_pct=[1.0, 500.0])
    assert "Input should be a valid date" in problem(complete_from={"cmp": {"date": "2007-13-01"}})


def test_completeness_names_are_checked_against_the_feature_specs() -> None:
    def problem(**completeness: Any) -> str:
        config = experiment(complete_from=completeness)  # the file itself reads
        with pytest.raises(FeatureError) as exc:
            event_specs(config.complete_from)
        return str(exc.value)

    message = problem(cmp={"date": "2007-01-01", "recorded_before": ["cat_excesive_force"]})
    assert "complete_from" in message
    assert "cmp.recorded_before[0]: no group 'cat_excesive_force'" in message
    assert "no event feature block" in problem(cpm={"date": "2007-01-01"})


def test_config_names_are_the_feature_and_audition_names() -> None:
    # the config package checks names without importing features or models
    assert tuple(spec.name for spec in DEFAULT_LABELS) == TEMPORAL_LABELS
    assert tuple(RULES) == SELECTION_RULES


def test_completeness_dates_reach_the_feature_specs() -> None:
    config = experiment(complete_from={"cmp": {"date": "2007-01-01",
                                               "recorded_before": ["cat_excessive_force"]}})
    specs = {spec.name: spec for spec in event_specs(config.complete_from)}
    assert specs["cmp"].complete_from == "2007-01-01"
    assert specs["cmp"].complete_groups == ("cat_excessive_force",)
    assert specs["uof"].complete_from is None
    assert all(spec.complete_from is None for spec in event_specs(experiment().complete_from))


def test_misspelt_feature_names_are_refused() -> None:
    columns = ["unit", "rank", "cmp_all_1year_count", "cmp_all_1year_rate"]
    with pytest.raises(TemporalError) as exc:
        feature_config(columns, experiment(categorical=["unit", "rnak"],
                                           exclude_features=["no_such"],
                                           exclude_patterns=["*_rat"]))
    message = str(exc.value)
    assert "temporal.categorical[1]: no feature 'rnak'" in message
    assert "temporal.exclude_features[0]: no feature 'no_such'" in message
    assert "temporal.exclude_patterns[0]: '*_rat' matches no feature" in message


@pytest.mark.parametrize("params, expected", [
    ({"num_leaves": -1}, "num_leaves"),       # LightGBM's core refuses it, at fit time
    ({"num_leafs": 7}, "unknown parameter(s) num_leafs"),  # LightGBM would ignore it
])
def test_a_bad_model_fails_the_run_before_anything_is_stored(tmp_path, tables, params,
                                                              expected) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'rudi.db'}")
    config = experiment(models=[
        {"algorithm": "rank_by_feature", "params": {"column": "cmp_all_1year_count"}},
        {"algorithm": "lightgbm", "name": "bad lightgbm", "params": params}])
    run_id = results.start_run(engine, config.name, "h", config.model_dump(mode="json"), 0,
                               "synthetic")
    with pytest.raises(TemporalError, match=r"temporal.models: 'bad lightgbm': .*"
                       + expected.replace("(", r"\(").replace(")", r"\)")):
        run_temporal(config, tables, engine=engine, run_id=run_id,
                     artefacts_dir=tmp_path / "models")
    with engine.connect() as conn:
        for table in (t.model_groups, t.models, t.predictions):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0
