"""Hyperparameter search (``models[i].search``): seeded trials, scored on validation rows only,
every trial stored as a model group and drawn in the run report; config errors by key path.

The constructed project: 1,800 cases over 90 days, a label from two numeric features and a
category, a temporal split with a validation month; LightGBM searched over small ranges."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import case_rows, example_config
from sklearn.metrics import roc_auc_score

from rudikit.config import ModelSpec, ProjectError, parse_project
from rudikit.models.artefacts import load_artefact
from rudikit.models.estimators import GridPoint
from rudikit.models.search import SEARCH_TRIAL, search_points
from rudikit.reports.run_figures import search_history
from rudikit.reports.run_report import write_run_report
from rudikit.run.develop import run_project
from rudikit.run.engine import RunResult
from rudikit.store.engine import open_store
from rudikit.store.queries import evaluations as evaluations_q
from rudikit.store.queries import runs as runs_q

VALIDATION_START, TEST_START = "2021-02-15", "2021-03-10"
TRIALS = 6
SEARCHED = {"algorithm": "lightgbm",
            "params": {"n_estimators": 30, "min_child_samples": 20,
                       "num_leaves": {"int": [4, 31], "log": True},
                       "learning_rate": {"float": [0.02, 0.3], "log": True},
                       "colsample_bytree": [0.6, 1.0]},
            "search": {"method": "optuna", "trials": TRIALS, "seed": 0, "startup_trials": 2}}


def _config(**models: Any) -> dict[str, Any]:
    return {
        "name": "search-test", "rationale": example_config()["rationale"],
        "data": {"entity_id": "case_id", "knowledge_date": "date",
                 "sources": [{"name": "rows", "kind": "parquet", "path": "rows.parquet"}]},
        "label": {"name": "found", "positive_when": [{"column": "outcome", "equals": 1}]},
        "features": {"numeric": ["x1", "x2"], "categorical": ["kind"]},
        "splits": [{"name": "by_date", "kind": "temporal", "date_column": "date",
                    "validation_start": VALIDATION_START, "test_start": TEST_START}],
        "models": [{"algorithm": "logistic_regression", "params": {"C": 1.0}},
                   {**SEARCHED, **models}],
        "evaluation": {"thresholds": [0.5], "top_k": [50], "top_pct": [10], "bootstrap": 0,
                       "selection": {"metric": "roc_auc"}},
    }


def _project(folder: Path, rows: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(folder / "rows.parquet")
    (folder / "rudi.yaml").write_text(yaml.safe_dump(_config(), sort_keys=False),
                                      encoding="utf-8")
    return folder


def _poisoned(rows: pd.DataFrame) -> pd.DataFrame:
    """Test-row labels replaced by noise: any choice that read them would change."""
    out = rows.copy()
    test = out["date"] >= pd.Timestamp(TEST_START, tz="UTC")
    out.loc[test, "outcome"] = np.random.default_rng(7).integers(0, 2, int(test.sum()))
    return out


def _trials(result: RunResult) -> pd.DataFrame:
    """Per stored trial model: trial number, hyperparameters, validation and test ROC AUC."""
    engine = open_store(result.store_url)
    with engine.connect() as conn:
        models = runs_q.run_models(conn, result.run_id)
        evals = evaluations_q.evaluations_of_models(conn, models["id"].tolist())
    wide = evals.pivot_table(index="model_id", columns="metric", values="value")
    trials = wide[wide[SEARCH_TRIAL].notna()]
    out = models.set_index("id").loc[trials.index, ["model_group_id", "hyperparameters",
                                                    "selected", "artefact_path",
                                                    "artefact_hash"]]
    out["trial"] = trials[SEARCH_TRIAL].astype(int)
    out["validation_roc_auc"] = trials["validation_roc_auc"]
    out["roc_auc"] = trials["roc_auc"]
    return out.sort_values("trial")


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return case_rows(1800)


@pytest.fixture(scope="module")
def clean(rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return run_project(_project(tmp_path_factory.mktemp("clean"), rows))


@pytest.fixture(scope="module")
def poisoned(rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return run_project(_project(tmp_path_factory.mktemp("poisoned"), _poisoned(rows)))


def test_a_seeded_search_proposes_the_same_trials_twice_and_another_seed_others() -> None:
    spec = ModelSpec.model_validate(SEARCHED)

    def proposed(seed: int) -> list[dict[str, Any]]:
        other = spec.model_copy(update={"search": spec.search.model_copy(  # type: ignore[union-attr]
            update={"seed": seed, "trials": 8})})
        # a score the sampler can learn from, so TPE's own proposals (after its two start-up
        # trials) are compared too, not only the random start
        points = search_points(other, 1, lambda p: -abs(p.params["num_leaves"] - 12)
                               - p.params["learning_rate"])
        assert [p.trial for p in points] == [(1, i) for i in range(8)]
        return [p.params for p in points]

    first = proposed(0)
    assert proposed(0) == first
    assert proposed(1) != first
    for params in first:  # inside the ranges, the choice among the listed values
        assert 4 <= params["num_leaves"] <= 31 and isinstance(params["num_leaves"], int)
        assert 0.02 <= params["learning_rate"] <= 0.3
        assert params["colsample_bytree"] in (0.6, 1.0)
        assert params["n_estimators"] == 30


def test_every_trial_is_stored_as_a_model_group_with_its_validation_score(
        clean: RunResult, rows: pd.DataFrame) -> None:
    trials = _trials(clean)
    assert trials["trial"].tolist() == list(range(TRIALS))
    assert trials["model_group_id"].nunique() == TRIALS
    assert all(h.keys() >= {"num_leaves", "learning_rate", "colsample_bytree"}
               for h in trials["hyperparameters"])
    # the stored validation ROC AUC of the best trial, against sklearn on its artefact
    best = trials.loc[trials["validation_roc_auc"].idxmax()]
    dates = rows["date"]
    val = rows[(dates >= pd.Timestamp(VALIDATION_START, tz="UTC"))
               & (dates < pd.Timestamp(TEST_START, tz="UTC"))]
    project_dir = Path(clean.store_url.removeprefix("sqlite:///")).parent.parent
    pipeline = load_artefact(best["artefact_path"], best["artefact_hash"], project_dir)
    oracle = roc_auc_score(val["outcome"], pipeline.predict_proba(
        val[["kind", "x1", "x2"]])[:, 1])
    assert best["validation_roc_auc"] == pytest.approx(oracle, abs=1e-9)
    # selection reads the validation rows: the chosen model is the best there of all groups
    assert clean.selected is not None
    chosen_validation = clean.selected.validation_metrics[("roc_auc", "")].value  # type: ignore[index]
    assert chosen_validation == pytest.approx(max(
        m.validation_metrics[("roc_auc", "")].value for m in clean.models  # type: ignore[index]
        if m.validation_metrics))


def test_no_trial_reads_a_test_row(clean: RunResult, poisoned: RunResult) -> None:
    """Poisoned test labels change the test figures but neither the trials (after two random
    start-up trials, TPE proposes from the scores so far), their scores nor the choice."""
    a, b = _trials(clean), _trials(poisoned)
    assert a["hyperparameters"].tolist() == b["hyperparameters"].tolist()
    assert np.allclose(a["validation_roc_auc"], b["validation_roc_auc"], rtol=0, atol=1e-12)
    assert not np.allclose(a["roc_auc"], b["roc_auc"])  # the poison reached the test rows
    assert clean.selected is not None and poisoned.selected is not None
    assert clean.selected.params == poisoned.selected.params


def test_the_run_report_draws_the_search_history(clean: RunResult, tmp_path: Path) -> None:
    html = write_run_report(open_store(clean.store_url), clean.run_id, tmp_path).read_text(
        encoding="utf-8")
    assert "Hyperparameter search: roc_auc of each trial (validation rows)" in html
    assert "models[1]: best so far" in html
    engine = open_store(clean.store_url)
    with engine.connect() as conn:
        models = runs_q.run_models(conn, clean.run_id)
        evals = evaluations_q.evaluations_of_models(conn, models["id"].tolist())
        config = runs_q.run(conn, clean.run_id)["config"]
    drawn = search_history(models, evals, "by_date", config)
    stored = _trials(clean)
    assert drawn["trial"].tolist() == stored["trial"].tolist()
    assert np.allclose(drawn["score"], stored["validation_roc_auc"])
    assert np.allclose(drawn["best_so_far"], np.maximum.accumulate(stored["validation_roc_auc"]))
    assert drawn["chosen"].sum() == int(stored["selected"].sum())


def _problems(**models: Any) -> list[str]:
    with pytest.raises(ProjectError) as caught:
        parse_project(_config(**models))
    return caught.value.problems


@pytest.mark.parametrize(("params", "expected"), [
    ({"num_leaves": {"int": [63, 4]}},
     "models[1]: params.num_leaves.int: low (63) must be below high (4)"),
    ({"num_leaves": {"int": [4.5, 63]}},
     "models[1]: params.num_leaves.int: bounds must be whole numbers"),
    ({"learning_rate": {"float": [0, 0.2], "log": True}},
     "models[1]: params.learning_rate.float: a log range needs low > 0, got 0"),
    ({"num_leaves": {"int": [4, 63], "scale": "log"}},
     "models[1]: params.num_leaves: unknown range key(s) scale"),
    ({"num_leaves": {"range": [4, 63]}},
     "models[1]: params.num_leaves: unknown range key(s) range"),
])
def test_a_bad_range_is_named_by_its_key_path(params: dict[str, Any], expected: str) -> None:
    problems = _problems(params={**SEARCHED["params"], **params})
    assert any(p.startswith(expected) for p in problems), problems


def test_a_range_without_search_and_a_search_without_validation_are_refused() -> None:
    assert any(p.startswith("models[1]: params.num_leaves: a range needs 'search'")
               for p in _problems(search=None))
    config = _config()
    del config["splits"][0]["validation_start"]
    with pytest.raises(ProjectError) as caught:
        parse_project(config)
    assert any("models[1].search: the selection split 'by_date' has no validation "
               "partition" in p and "validation_start" in p
               for p in caught.value.problems), caught.value.problems


def test_an_unknown_searched_parameter_is_named_with_a_suggestion(
        rows: pd.DataFrame, tmp_path: Path) -> None:
    folder = _project(tmp_path, rows)
    config = _config(params={**SEARCHED["params"], "num_leafs": {"int": [4, 63]}})
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(ValueError, match=r"models\[1\]\.params\.num_leafs: lightgbm has no "
                                         r"parameter 'num_leafs'; did you mean 'num_leaves'\?"):
        run_project(folder)


def test_a_timeout_ends_the_search_after_the_trial_that_passed_it() -> None:
    """``timeout_minutes`` cuts a search short: optuna checks the time after each trial, so a
    trial slower than the whole budget is the last, and the trials run are the seeded search's
    first ones (the same proposals as without the timeout)."""
    import time

    spec = ModelSpec.model_validate(SEARCHED)
    budget = 0.05  # seconds
    timed = spec.model_copy(update={"search": spec.search.model_copy(  # type: ignore[union-attr]
        update={"trials": 6, "timeout_minutes": budget / 60})})

    def slow(point: GridPoint) -> float:
        time.sleep(2 * budget)  # every trial takes longer than the whole budget
        return -point.params["learning_rate"]

    cut = search_points(timed, 1, slow)
    assert [p.trial for p in cut] == [(1, 0)]
    untimed = search_points(spec.model_copy(update={"search": spec.search.model_copy(  # type: ignore[union-attr]
        update={"trials": 6, "timeout_minutes": None})}), 1, lambda p: -p.params["learning_rate"])
    assert len(untimed) == 6 and untimed[0].params == cut[0].params


def test_search_points_name_the_trial_of_a_failing_fit() -> None:
    spec = ModelSpec.model_validate(SEARCHED)

    def fails(point: GridPoint) -> float:
        raise ValueError("bad value")

    with pytest.raises(ValueError, match=r"models\[1\]\.search: trial 0 \(lightgbm trial 0 \("
                                         r".*\): bad value"):
        search_points(spec, 1, fails)


# --- temporal projects: trials scored on the splits before the last ----------------------------

TEMPORAL_SEARCH = {"algorithm": "lightgbm", "name": "searched lightgbm",
                   "params": {"n_estimators": 10, "min_child_samples": 10,
                              "num_leaves": {"int": [3, 15]},
                              "learning_rate": {"float": [0.03, 0.3], "log": True}},
                   "search": {"trials": 3, "seed": 0, "startup_trials": 1}}


@pytest.fixture(scope="module")
def temporal_data() -> Any:
    from test_temporal import experiment, synthetic_tables

    from rudikit.models.temporal import prepare

    config = experiment(models=[TEMPORAL_SEARCH])
    tables = synthetic_tables()
    return config, tables, prepare(config, tables)


def _temporal_run(tmp_path: Path, config: Any, tables: Any, data: Any) -> pd.DataFrame:
    """Run the temporal grid; per stored model: split, trial, hyperparameters, precision@k."""
    from rudikit.run.temporal import run_temporal
    from rudikit.store import results

    tmp_path.mkdir()
    engine = open_store(f"sqlite:///{tmp_path / 'rudi.db'}")
    run_id = results.start_run(engine, config.name, "h",  # stored as a project file holds it
                               {"temporal": config.model_dump(mode="json")}, 0, "synthetic")
    run_temporal(config, tables, engine=engine, run_id=run_id, artefacts_dir=tmp_path / "m",
                 data=data)
    with engine.connect() as conn:
        models = runs_q.run_models(conn, run_id)
        evals = evaluations_q.evaluations_of_models(conn, models["id"].tolist())
    trial = evals[evals["metric"] == SEARCH_TRIAL].set_index("model_id")["value"]
    precision = evals[(evals["metric"] == "precision_at_k") & (evals["parameter"] == "20_abs")
                      ].set_index("model_id")["value"]
    out = models.set_index("id")[["split", "hyperparameters"]]
    return out.assign(trial=trial, precision=precision, params=out["hyperparameters"].map(
        lambda h: (h.get("num_leaves"), round(h.get("learning_rate", 0), 12))))


def _searched(config: Any, tables: Any, data: Any
              ) -> tuple[list[tuple[Any, ...]], list[float]]:
    """Only the search step of a temporal run (no grid fit, nothing stored): each trial's
    parameters and the score the search gave it."""
    from rudikit.config import Fairness
    from rudikit.run import temporal

    scores: list[float] = []

    def recording(spec: Any, index: int, score: Any, **kwargs: Any) -> list[GridPoint]:
        def recorded(point: GridPoint) -> float:
            scores.append(score(point))
            return scores[-1]
        return search_points(spec, index, recorded, **kwargs)

    lists = temporal.TemporalLists(config, tables, Path("unused"), Fairness(), None, data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(temporal, "search_points", recording)
        lists.prepare(lambda _: None)
    return [(e.point.params["num_leaves"], e.point.params["learning_rate"])
            for e in lists.entries if e.point.trial is not None], scores


@pytest.fixture(scope="module")
def temporal_search(temporal_data: Any) -> tuple[list[tuple[Any, ...]], list[float]]:
    return _searched(*temporal_data)


def test_a_temporal_search_stores_every_trial_on_every_split(
        temporal_data: Any, temporal_search: Any, tmp_path: Path) -> None:
    config, tables, data = temporal_data
    stored = _temporal_run(tmp_path / "run", config, tables, data)
    assert len(stored) == 3 * len(data.splits)  # one model group per trial, on every split
    assert stored["trial"].notna().all()
    assert stored.groupby("trial")["params"].nunique().eq(1).all()
    proposed, scores = temporal_search
    assert [(n, round(r, 12)) for n, r in proposed] == stored.drop_duplicates("trial")[
        "params"].tolist()
    # the report's search history: what the search scored each trial by, from the store
    from rudikit.reports.temporal_report import precision_over_time, search_history

    engine = open_store(f"sqlite:///{tmp_path / 'run' / 'rudi.db'}")  # its one run: id 1
    drawn = search_history(engine, precision_over_time(engine, 1), data.splits[-1])
    assert np.allclose(drawn["score"], scores)
    assert np.allclose(drawn["best_so_far"], np.maximum.accumulate(scores))


def test_a_temporal_search_never_reads_the_last_splits_test_dates(
        temporal_data: Any, temporal_search: Any) -> None:
    """The last split's test labels flipped: the trials' scores and TPE's proposals (after one
    random start-up trial) are unchanged; the scores differ when an earlier split's are."""
    config, tables, data = temporal_data

    def flipped(split_index: int) -> Any:
        test = data.splits[split_index].tests[0]
        labels = data.labels[test.label_timespan].copy()
        at = labels["as_of_date"].isin(list(test.as_of_dates))
        labels.loc[at, data.label_name] = 1 - labels.loc[at, data.label_name]
        return dataclasses.replace(data, labels={**data.labels, test.label_timespan: labels})

    assert _searched(config, tables, flipped(-1)) == temporal_search
    assert _searched(config, tables, flipped(0))[1] != temporal_search[1]


def test_a_temporal_search_with_quarterly_lists_reads_only_lists_labelled_by_its_era(
        tmp_path: Path) -> None:
    """Four test lists a year: an earlier split's April-October lists are labelled by events
    after the last split time, so the search skips them. Flipping the labels of every list
    whose window ends after it leaves the trials and their scores unchanged; flipping a list
    whose window closed before it changes the scores. The report's search history reads the
    same lists."""
    from test_temporal import experiment, synthetic_tables

    from rudikit.config import Fairness
    from rudikit.models.temporal import prepare
    from rudikit.run.temporal import TemporalLists

    config = experiment(models=[TEMPORAL_SEARCH], timechop={
        **experiment().timechop.model_dump(mode="json"), "label_end_time": "2014-01-01",
        "test_as_of_date_frequencies": "3month", "test_durations": "1year"})
    tables = synthetic_tables()
    data = prepare(config, tables)
    era_end = data.splits[-1].split_time
    assert [len(s.test.as_of_dates) for s in data.splits] == [4, 4, 4]
    labels = data.labels["1year"]
    late = labels["as_of_date"] + pd.DateOffset(years=1) > era_end  # 2011-04-01 and later

    def flipped(rows: pd.Series) -> Any:
        out = labels.copy()
        out.loc[rows, data.label_name] = 1 - out.loc[rows, data.label_name]
        return dataclasses.replace(data, labels={"1year": out})

    said: list[str] = []
    lists = TemporalLists(config, tables, Path("unused"), Fairness(), None, data)
    lists.prepare(said.append)
    assert said[0] == ("temporal.models[0]: searching lightgbm (3 trials, scored on 2 "
                       "training-era split(s), test lists 2010-01-01, 2010-04-01, 2010-07-01, "
                       "2010-10-01, 2011-01-01)")
    # then each trial's score as it is found (a long search is not silent)
    assert [line.rsplit(": ", 1)[0] for line in said[1:]] == [
        f"models[0] search: trial {i}" for i in range(3)]
    clean = _searched(config, tables, data)
    assert _searched(config, tables, flipped(late)) == clean
    closed = labels["as_of_date"] == pd.Timestamp("2011-01-01")
    assert _searched(config, tables, flipped(closed))[1] != clean[1]
    from rudikit.reports.temporal_report import precision_over_time, search_history

    _temporal_run(tmp_path / "run", config, tables, data)
    engine = open_store(f"sqlite:///{tmp_path / 'run' / 'rudi.db'}")
    drawn = search_history(engine, precision_over_time(engine, 1), data.splits[-1])
    assert np.allclose(drawn["score"], clean[1])


def test_a_temporal_search_with_no_list_closed_by_the_last_split_is_refused(
        temporal_data: Any, tmp_path: Path) -> None:
    """When every earlier list is labelled by events after the last split time, no trial can
    be scored without reading what the last split tests: refused, naming the field and the
    date, before any model is stored."""
    from rudikit.config import TemporalError
    from rudikit.run.temporal import run_temporal
    from rudikit.store import results

    config, tables, data = temporal_data
    first, last = data.splits[0], data.splits[-1]
    early = dataclasses.replace(last, split_time=first.split_time)  # before any list closes
    engine = open_store(f"sqlite:///{tmp_path / 'rudi.db'}")
    run_id = results.start_run(engine, config.name, "h", config.model_dump(mode="json"), 0,
                               "synthetic")
    with pytest.raises(TemporalError, match=(
            r"temporal\.models\[0\]\.search: no test list before the last split has a label "
            rf"window that ends by its split time \({first.split_time:%Y-%m-%d}\)")):
        run_temporal(config, tables, engine=engine, run_id=run_id, artefacts_dir=tmp_path / "m",
                     data=dataclasses.replace(data, splits=[first, early]))
    with engine.connect() as conn:
        assert runs_q.run_models(conn, run_id).empty


def test_a_temporal_search_needs_a_split_before_the_last(temporal_data: Any,
                                                         tmp_path: Path) -> None:
    from rudikit.config import TemporalError
    from rudikit.run.temporal import run_temporal
    from rudikit.store import results

    config, tables, data = temporal_data
    engine = open_store(f"sqlite:///{tmp_path / 'rudi.db'}")
    run_id = results.start_run(engine, config.name, "h", config.model_dump(mode="json"), 0,
                               "synthetic")
    with pytest.raises(TemporalError, match=r"temporal\.models\[0\]\.search: needs at least "
                                            r"two splits"):
        run_temporal(config, tables, engine=engine, run_id=run_id, artefacts_dir=tmp_path / "m",
                     data=dataclasses.replace(data, splits=data.splits[-1:]))
