"""Refit after choice (``evaluation.selection.refit: train_and_validation``): the group is
chosen on the validation rows, then fitted again on the training and validation rows and that
refit model is the run's selected one.

Oracles: a second split with the same test start and no validation partition trains the same
group on exactly the rows a refit trains on (the same rows, order and seed), so its test
scores are what the refit's must be; an ensemble of refit members averages their stored
scores; test labels replaced by noise change neither the choice nor the refit model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import case_rows, example_config, write_project
from sklearn.metrics import roc_auc_score

from rudikit.config import ProjectError, load_project, parse_project
from rudikit.fairness.stage import ScoredRows, mitigate
from rudikit.models.artefacts import load_artefact
from rudikit.monitoring.drift import ReferenceProfile
from rudikit.monitoring.monitor import store_reference
from rudikit.run.case import CaseExperiment
from rudikit.run.develop import run_project
from rudikit.run.engine import RunResult
from rudikit.service.deploy import deploy
from rudikit.store.engine import open_store
from rudikit.store.queries import evaluations as evaluations_q
from rudikit.store.queries import monitoring as monitoring_q
from rudikit.store.queries import predictions as predictions_q
from rudikit.store.queries import runs as runs_q
from rudikit.store.queries.evaluations import REFIT_OF

VALIDATION_START, TEST_START = "2021-02-15", "2021-03-10"
LIGHTGBM = {"algorithm": "lightgbm",
            "params": {"n_estimators": 40, "num_leaves": [4, 15], "min_child_samples": 20,
                       "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8}}
SPLITS = [{"name": "by_date", "kind": "temporal", "date_column": "date",
           "validation_start": VALIDATION_START, "test_start": TEST_START},
          {"name": "no_validation", "kind": "temporal", "date_column": "date",
           "test_start": TEST_START}]


def _config(models: list[dict[str, Any]], splits: list[dict[str, Any]] | None = None,
            refit: str = "train_and_validation") -> dict[str, Any]:
    return {
        "name": "refit-test", "rationale": example_config()["rationale"],
        "data": {"entity_id": "case_id", "knowledge_date": "date",
                 "sources": [{"name": "rows", "kind": "parquet", "path": "rows.parquet"}]},
        "label": {"name": "found", "positive_when": [{"column": "outcome", "equals": 1}]},
        "features": {"numeric": ["x1", "x2"], "categorical": ["kind"]},
        "splits": splits or SPLITS,
        "models": models,
        "evaluation": {"thresholds": [0.5], "top_k": [50], "top_pct": [10], "bootstrap": 0,
                       "selection": {"metric": "roc_auc", "split": "by_date", "refit": refit}},
    }


def _run(folder: Path, rows: pd.DataFrame, models: list[dict[str, Any]]) -> RunResult:
    folder.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(folder / "rows.parquet")
    (folder / "rudi.yaml").write_text(yaml.safe_dump(_config(models), sort_keys=False),
                                      encoding="utf-8")
    return run_project(folder)


def _stored(result: RunResult) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, pd.Series]]:
    """The run's models, their evaluations, and each model's test scores by entity."""
    engine = open_store(result.store_url)
    with engine.connect() as conn:
        models = runs_q.run_models(conn, result.run_id).set_index("id")
        evals = evaluations_q.evaluations_of_models(conn, models.index.tolist())
        scores = {int(mid): predictions_q.model_predictions(conn, int(mid))
                  .set_index("entity_id")["score"] for mid in models.index}
    engine.dispose()
    return models, evals, scores


def _poisoned(rows: pd.DataFrame) -> pd.DataFrame:
    out = rows.copy()
    test = out["date"] >= pd.Timestamp(TEST_START, tz="UTC")
    out.loc[test, "outcome"] = np.random.default_rng(7).integers(0, 2, int(test.sum()))
    return out


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return case_rows(2400, sorted_days=False)


@pytest.fixture(scope="module")
def single(rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return _run(tmp_path_factory.mktemp("single"), rows,
                [{"algorithm": "logistic_regression", "params": {"C": [0.01, 1.0]}}, LIGHTGBM])


def test_the_refit_model_is_the_group_fitted_on_training_and_validation_rows(
        rows: pd.DataFrame, single: RunResult) -> None:
    chosen = single.selected
    assert chosen is not None
    models, evals, scores = _stored(single)
    grid = models[(models["split"] == "by_date") & (models.index != chosen.model_id)]
    original = grid[grid["model_group_id"] == chosen.model_group_id]
    assert len(original) == 1 and not original["selected"].iloc[0]
    assert bool(models.loc[chosen.model_id, "selected"])
    # the choice read the validation rows: the original has the best validation ROC AUC
    val = evals[evals["metric"] == "validation_roc_auc"].set_index("model_id")["value"]
    assert val.loc[grid.index].idxmax() == original.index[0]
    # it trained on every row before the test start (training + validation), none after
    before = rows["date"] < pd.Timestamp(TEST_START, tz="UTC")
    assert models.loc[chosen.model_id, "train_rows"] == int(before.sum())
    assert original["train_rows"].iloc[0] == int(
        (rows["date"] < pd.Timestamp(VALIDATION_START, tz="UTC")).sum())
    # oracle: the same group on the split without validation trains on exactly those rows
    twin = models[(models["split"] == "no_validation")
                  & (models["model_group_id"] == chosen.model_group_id)].index[0]
    mine = scores[chosen.model_id]
    np.testing.assert_allclose(mine.to_numpy(), scores[twin].loc[mine.index].to_numpy(),
                               atol=1e-12)
    assert not np.allclose(mine.to_numpy(),
                           scores[original.index[0]].loc[mine.index].to_numpy())
    # its test figure is its own, computed on the held-out test rows (sklearn's oracle)
    test = rows.set_index("case_id").loc[mine.index]
    auc = evals[(evals["model_id"] == chosen.model_id) & (evals["metric"] == "roc_auc")]
    assert auc["value"].iloc[0] == pytest.approx(roc_auc_score(test["outcome"], mine), abs=1e-12)
    refit_of = evals[(evals["model_id"] == chosen.model_id) & (evals["metric"] == REFIT_OF)]
    assert refit_of["value"].tolist() == [float(original.index[0])]
    # the reason gives the validation figure of the choice and the refit's test figure
    reason = models.loc[chosen.model_id, "selection_reason"]
    assert f"on the validation rows of split 'by_date': {val.loc[original.index[0]]:.3f}" \
        in reason
    assert "refit with the same hyperparameters on the training and validation rows" in reason
    assert f"the refit model gives {auc['value'].iloc[0]:.3f}" in reason


def test_poisoned_test_labels_change_neither_the_choice_nor_the_refit_model(
        rows: pd.DataFrame, single: RunResult, tmp_path: Path) -> None:
    again = _run(tmp_path / "poisoned", _poisoned(rows),
                 [{"algorithm": "logistic_regression", "params": {"C": [0.01, 1.0]}}, LIGHTGBM])
    assert again.selected is not None and single.selected is not None
    assert again.selected.params == single.selected.params
    np.testing.assert_array_equal(again.selected.score, single.selected.score)
    first = single.selected.metrics[("roc_auc", "")].value
    assert again.selected.metrics[("roc_auc", "")].value != pytest.approx(first, abs=1e-3)


def test_a_chosen_ensemble_is_refit_member_by_member(rows: pd.DataFrame,
                                                     tmp_path: Path) -> None:
    # two noisy copies of the true log-odds as existing scores, and a logistic regression
    # that misses its square term: an average of two of them is what validation prefers here
    # (asserted below, not assumed)
    rng = np.random.default_rng(1)
    truth = (1.2 * rows["x1"] - 0.8 * rows["x2"] ** 2
             + np.where(rows["kind"] == "a", 0.8, 0.0))
    rows = rows.assign(**{c: 1 / (1 + np.exp(-(truth + rng.normal(0, 1.5, len(rows)))))
                          for c in ("s1", "s2")})
    result = _run(tmp_path / "ens", rows, [
        {"algorithm": "score_column", "params": {"column": "s1"}},
        {"algorithm": "score_column", "params": {"column": "s2"}},
        {"algorithm": "logistic_regression", "params": {"C": 1.0}},
        {"algorithm": "ensemble", "params": {"members": 2, "method": "probability_average"}}])
    chosen = result.selected
    assert chosen is not None and chosen.algorithm == "ensemble", result.selection_reason
    models, evals, scores = _stored(result)
    refit_of = evals[evals["metric"] == REFIT_OF].set_index("model_id")["value"]
    members = chosen.details["member_model_ids"]
    assert set(refit_of.index) == {chosen.model_id, *members}
    before = int((rows["date"] < pd.Timestamp(TEST_START, tz="UTC")).sum())
    assert (models.loc[[chosen.model_id, *members], "train_rows"] == before).all()
    assert models.loc[members, "selected"].eq(False).all()
    mine = scores[chosen.model_id]
    mean = pd.concat([scores[m].loc[mine.index] for m in members], axis=1).mean(axis=1)
    np.testing.assert_allclose(mine.to_numpy(), mean.to_numpy(), atol=1e-12)
    # each refit member is its group fitted on the split without validation, and the
    # logistic regression's refit scores differ from its scores before
    assert "logistic_regression" in set(models.loc[members, "algorithm"])
    for m in members:
        group = models.loc[m, "model_group_id"]
        first = models[(models["split"] == "by_date") & (models["model_group_id"] == group)
                       & ~models.index.isin(refit_of.index)].index[0]
        if models.loc[m, "algorithm"] == "logistic_regression":
            assert not np.allclose(scores[m].to_numpy(), scores[first].loc[scores[m].index])
    for m in members:
        group = models.loc[m, "model_group_id"]
        twin = models[(models["split"] == "no_validation")
                      & (models["model_group_id"] == group)].index[0]
        np.testing.assert_allclose(scores[m].loc[mine.index].to_numpy(),
                                   scores[twin].loc[mine.index].to_numpy(), atol=1e-12)


def test_refit_without_a_validation_partition_is_refused_naming_the_key() -> None:
    config = _config([LIGHTGBM], splits=[SPLITS[1]])
    config["evaluation"]["selection"]["split"] = "no_validation"
    with pytest.raises(ProjectError) as caught:
        parse_project(config)
    message = str(caught.value)
    assert "evaluation.selection.refit" in message and "validation_start" in message
    parse_project({**config, "evaluation": {**config["evaluation"], "selection": {
        "split": "no_validation", "refit": "none"}}})  # refit: none needs nothing


def test_refit_is_case_only() -> None:
    """A temporal project's selection has no refit: said, with the key's path."""
    with pytest.raises(ProjectError) as caught:
        parse_project({"name": "t", "temporal": {"selection": {"refit": "train_and_validation"}}})
    assert ("temporal.selection: refit: train_and_validation is for case projects only "
            "(their evaluation.selection.refit)" in str(caught.value))
    with pytest.raises(ProjectError) as caught:  # refit: none is what a temporal run does
        parse_project({"name": "t", "temporal": {"selection": {"refit": "none"}}})
    assert "refit" not in str(caught.value)


def _mitigated_refit(folder: Path, trees: int) -> tuple[Path, RunResult, Any, Any]:
    """The example with per-group thresholds, one split and one LightGBM group of ``trees``
    trees, run: (folder, result, the selected refit, the mitigated model over it)."""
    config = example_config()
    folder = write_project(folder, splits=config["splits"][:1],
                           evaluation={**config["evaluation"], "bootstrap": 0},
                           models=[{"algorithm": "lightgbm",
                                    "params": {"n_estimators": trees, "num_leaves": 7}}])
    result = run_project(folder)
    refit, mitigated = result.selected, result.mitigated
    assert refit is not None and refit.refit_of is not None and mitigated is not None
    return folder, result, refit, mitigated


def test_mitigation_of_a_refit_model_fits_on_the_chosen_models_validation_scores(
        tmp_path: Path) -> None:
    """The refit has trained on the validation rows, so its per-group thresholds are fitted
    on the chosen model's validation scores (out of sample) and applied to the refit's test
    scores; fitting them on the refit's own validation scores gives other thresholds."""
    folder, result, refit, mitigated = _mitigated_refit(tmp_path / "proj", trees=40)
    engine = open_store(result.store_url)
    with engine.connect() as conn:
        models = runs_q.run_models(conn, result.run_id).set_index("id")
    engine.dispose()
    row = models.loc[mitigated.model_id]
    stored = json.loads((folder / row["artefact_path"]).read_text(encoding="utf-8"))
    assert stored["base_model_id"] == refit.model_id and stored["fitted_on"] == "validation"
    assert row["train_rows"] == models.loc[refit.model_id, "train_rows"]
    # the oracle: the same fit from the chosen model's validation scores, and the refit's
    project = load_project(folder)
    experiment, _ = CaseExperiment.load(project, folder)
    experiment.prepare(lambda _: None)
    split = experiment.splits[0]
    chosen = next(m for m in models.itertuples() if m.Index == refit.refit_of)
    pipeline = load_artefact(chosen.artefact_path, chosen.artefact_hash, folder)
    own = load_artefact(models.loc[refit.model_id, "artefact_path"],
                        models.loc[refit.model_id, "artefact_hash"], folder)
    X_val = experiment.X.iloc[split.validation]
    test = ScoredRows(experiment.attrs.iloc[split.test], experiment.y[split.test], refit.score)

    def thresholds(model) -> dict[str, float]:
        validation = ScoredRows(experiment.attrs.iloc[split.validation],
                                experiment.y[split.validation],
                                model.predict_proba(X_val)[:, 1])
        return mitigate(project.fairness, test, validation, seed=experiment.seed).thresholds

    assert stored["thresholds"] == pytest.approx(thresholds(pipeline), abs=1e-12)
    assert stored["thresholds"] != pytest.approx(thresholds(own), abs=1e-6)


def test_the_monitor_reference_of_a_refit_deployment_profiles_what_it_trained_on(
        rows: pd.DataFrame, single: RunResult) -> None:
    """Drift is measured against the rows the deployed model trained on: for a refit, the
    training and the validation rows (every row before the test start)."""
    chosen = single.selected
    assert chosen is not None
    folder = Path(single.store_url.removeprefix("sqlite:///")).parents[1]
    engine = open_store(single.store_url)
    try:
        deploy(engine, chosen.model_group_id, model_id=chosen.model_id, reason="test",
               by="tester", project_dir=folder)
        store_reference(load_project(folder), folder, engine)
        stored = monitoring_q.reference_profile(engine, 1)
    finally:
        engine.dispose()
    assert stored is not None and stored["model_id"] == chosen.model_id
    profile = ReferenceProfile.from_json(stored["profile"]["inputs"])
    before = int((rows["date"] < pd.Timestamp(TEST_START, tz="UTC")).sum())
    assert int(np.sum(profile.reference_counts_["x1"])) == before


def test_the_run_report_labels_the_refit_model(single: RunResult, tmp_path: Path) -> None:
    from rudikit.reports.run_report import write_run_report

    assert single.selected is not None
    engine = open_store(single.store_url)
    try:
        html = write_run_report(engine, single.run_id, tmp_path).read_text(encoding="utf-8")
    finally:
        engine.dispose()
    label = f"#{single.selected.model_group_id} {single.selected.algorithm}"
    assert html.count(f"{label} refit") >= 1  # the refit, apart from the model chosen
    assert "refit with the same hyperparameters on the training and validation rows" in html


def test_a_mitigated_refit_deployment_profiles_the_refits_training_rows(tmp_path: Path) -> None:
    """Per-group thresholds over a refit score with a model trained on the training and
    validation rows, so the monitor's reference for the mitigated model holds the same rows as
    the refit's own (it held only the training rows)."""
    folder, result, refit, mitigated = _mitigated_refit(tmp_path / "proj", trees=20)
    engine = open_store(result.store_url)
    counts = []
    try:
        for deployment, model in enumerate((mitigated, refit), start=1):
            deploy(engine, model.model_group_id, model_id=model.model_id, reason="test",
                   by="tester", project_dir=folder)
            store_reference(load_project(folder), folder, engine)
            stored = monitoring_q.reference_profile(engine, deployment)
            assert stored is not None and stored["model_id"] == model.model_id
            profile = ReferenceProfile.from_json(stored["profile"]["inputs"])
            counts.append({c: int(np.sum(v)) for c, v in profile.reference_counts_.items()})
        with engine.connect() as conn:
            models = runs_q.run_models(conn, result.run_id).set_index("id")
    finally:
        engine.dispose()
    assert counts[0] == counts[1] and counts[0]
    trained = int(models.loc[refit.model_id, "train_rows"])
    assert max(counts[1].values()) == trained


def test_the_search_history_of_a_refit_search_keeps_one_row_per_trial(tmp_path: Path) -> None:
    """The refit of a trial chosen by a hyperparameter search is not another trial: the report's
    history has each trial once, scored, and the chosen trial marked as chosen."""
    from rudikit.reports.run_figures import search_history

    search = {"algorithm": "logistic_regression",
              "params": {"C": {"float": [0.001, 10.0], "log": True}},
              "search": {"method": "optuna", "trials": 4, "seed": 0, "startup_trials": 2}}
    result = _run(tmp_path / "proj", case_rows(1200, sorted_days=False), [search])
    assert result.selected is not None and result.selected.refit_of is not None
    models, evals, _ = _stored(result)
    history = search_history(models.reset_index(), evals, "by_date",
                             {"evaluation": _config([search])["evaluation"]})
    assert sorted(history["trial"]) == [0, 1, 2, 3]
    assert history["score"].notna().all()
    assert history.loc[history["chosen"], "model_id"].tolist() == [result.selected.refit_of]
