"""Ensembles (``algorithm: ensemble``): stored scores are their members' averages (scores, or
ranks among the validation rows, with scipy's rankdata as the oracle); a project without
validation rows is refused; an ensemble deploys and scores through the service's scorer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import rankdata
from sqlalchemy import select

from rudikit.config import ProjectError, load_project
from rudikit.data.sources import load_source
from rudikit.features.labels import make_label
from rudikit.features.splits import make_split
from rudikit.models.artefacts import load_artefact
from rudikit.run.develop import run_project
from rudikit.service.deploy import deploy, load_deployed_model
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from tests.conftest import write_project

MODELS = [
    {"algorithm": "rate_by_category", "params": {"column": "object_of_search"}},
    {"algorithm": "logistic_regression", "params": {"C": [0.1, 1.0]}},
    {"algorithm": "lightgbm", "params": {"n_estimators": 30, "num_leaves": 7}},
    {"algorithm": "ensemble", "params": {"members": 3,
                                         "method": ["probability_average", "rank_average",
                                                    "stack"]}},
]
SPLIT = {"name": "r60", "kind": "random", "test_size": 0.2, "validation_size": 0.2, "seed": 4}


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    folder = write_project(tmp_path_factory.mktemp("ens") / "proj", models=MODELS,
                           splits=[SPLIT],
                           evaluation={"bootstrap": 0, "selection": {"metric": "roc_auc"}})
    config = yaml.safe_load((folder / "rudi.yaml").read_text(encoding="utf-8"))
    config["data"]["sources"][0]["rows_per_month"] = 300  # small: a few seconds
    config["fairness"].pop("mitigation", None)  # not what this file tests
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return folder, run_project(folder)


@pytest.fixture(scope="module")
def validation_rows(ran: tuple[Path, object]) -> pd.DataFrame:
    folder, _ = ran
    project = load_project(folder)
    frame = load_source(project.data.sources[0], folder, "data.sources[0]").frame
    _, keep = make_label(frame, project.label)
    data = frame.loc[keep].reset_index(drop=True)
    split = make_split(data, project.splits[0], "splits[0]", project.data.knowledge_date)
    return data.iloc[split.validation]


def _stored(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    engine = open_store(None, folder)
    with engine.connect() as conn:
        groups = pd.DataFrame(conn.execute(select(t.model_groups)).mappings().all())
        models = pd.DataFrame(conn.execute(select(t.models)).mappings().all())
        preds = pd.DataFrame(conn.execute(select(t.predictions)).mappings().all())
    engine.dispose()
    return groups, models, preds


@pytest.mark.parametrize("method", ["probability_average", "rank_average"])
def test_ensemble_scores_are_the_average_of_its_members(
        ran: tuple[Path, object], validation_rows: pd.DataFrame, method: str) -> None:
    folder, result = ran
    ensemble = next(m for m in result.models  # type: ignore[attr-defined]
                    if m.algorithm == "ensemble" and m.params["method"] == method)
    grid = [m for m in result.models if m.algorithm != "ensemble"]  # type: ignore[attr-defined]
    best = sorted(grid, key=lambda m: -m.validation_metrics[("roc_auc", "")].value)[:3]
    assert ensemble.details["member_model_ids"] == [m.model_id for m in best]
    _, models, preds = _stored(folder)
    by_model = {mid: p.set_index("entity_id")["score"] for mid, p in preds.groupby("model_id")}
    mine = by_model[ensemble.model_id]
    members = pd.concat([by_model[m.model_id] for m in best], axis=1).loc[mine.index]
    if method == "probability_average":
        expected = members.mean(axis=1).to_numpy()
    else:  # each member's test score ranked among its validation-row scores, scaled to [0, 1]
        refs = [np.asarray(m.validation_score) for m in best]
        expected = np.array([np.mean([(rankdata(np.append(ref, s))[-1] - 1) / len(ref)
                                      for ref, s in zip(refs, row, strict=True)])
                             for row in members.to_numpy()])
        # on the validation rows themselves: the members' mid-ranks, (rank - 0.5) / n
        on_validation = np.mean([(rankdata(r) - 0.5) / len(r) for r in refs], axis=0)
        np.testing.assert_allclose(ensemble.validation_score, on_validation, atol=1e-12)
    np.testing.assert_allclose(mine.to_numpy(), expected, atol=1e-12)
    assert len(set(np.round(mine, 9))) > 10  # a real spread of scores, not a constant
    # the saved artefact gives the same scores as were stored (skops round trip)
    row = models.set_index("id").loc[ensemble.model_id]
    pipeline = load_artefact(row.artefact_path, row.artefact_hash, folder)
    np.testing.assert_allclose(pipeline.predict_proba(validation_rows)[:, 1],
                               ensemble.validation_score, atol=1e-12)


def test_ensemble_deploys_and_scores_through_the_service(ran: tuple[Path, object],
                                                         validation_rows: pd.DataFrame) -> None:
    folder, result = ran
    ensemble = next(m for m in result.models  # type: ignore[attr-defined]
                    if m.algorithm == "ensemble" and m.params["method"] == "rank_average")
    engine = open_store(None, folder)
    deploy(engine, ensemble.model_group_id, model_id=ensemble.model_id, reason="test",
           by="tester", project_dir=folder)
    loaded = load_deployed_model(engine, project_dir=folder)
    engine.dispose()
    assert loaded.algorithm == "ensemble" and loaded.scorer is not None
    rows = validation_rows.head(20)
    records = rows[loaded.scorer.encoder.input_columns].to_dict("records")
    np.testing.assert_allclose(loaded.scorer.score(records), ensemble.validation_score[:20],
                               atol=1e-9)
    assert loaded.scorer.path == "predict_proba"  # the documented slower path, self-checked


def test_ensemble_without_validation_rows_is_refused(tmp_path: Path) -> None:
    folder = write_project(tmp_path / "proj", models=MODELS,
                           splits=[{**SPLIT, "validation_size": None}],
                           evaluation={"bootstrap": 0})
    with pytest.raises((ValueError, ProjectError)) as caught:
        run_project(folder)
    message = str(caught.value)
    assert "models[3]" in message and "splits[0].validation_size" in message



def test_an_ensemble_is_explained_by_permutation_importance(
        ran: tuple[Path, object], validation_rows: pd.DataFrame) -> None:
    """Were selection to choose an ensemble, the step after it explains the artefact as it
    does any model: permutation importance (the drop in ROC AUC) for every input column,
    some of it real. Per-row reasons average the members' contributions, so they need a
    method for every member; this ensemble has a member without one (none here)."""
    from rudikit.explain import explanation_method
    from rudikit.run.case_explain import permutation_importances

    folder, result = ran
    ensemble = next(m for m in result.models  # type: ignore[attr-defined]
                    if m.algorithm == "ensemble")
    _, models, _ = _stored(folder)
    row = models.set_index("id").loc[ensemble.model_id]
    pipeline = load_artefact(row.artefact_path, row.artefact_hash, folder)
    assert explanation_method(pipeline) is None
    project = load_project(folder)
    y, _ = make_label(validation_rows, project.label)
    found = {c: mean for c, _, mean, _, _
             in permutation_importances(pipeline, validation_rows, y, 0)}
    # every column a reason can name: the inputs, and the location categories (town, cell)
    assert set(found) == set(pipeline.named_steps["encode"].output_positions())
    assert max(found.values()) > 0.01  # some column matters to the averaged score


def test_stack_meta_model_reads_only_out_of_fold_training_scores(
        ran: tuple[Path, object]) -> None:
    """The stack's meta-model is the same with the validation and test labels flipped (it is
    fitted on out-of-fold scores of the training rows only), is the one in the artefact, and
    the stored test scores are its logistic function of the members' stored scores."""
    from dataclasses import replace

    from scipy.special import expit

    from rudikit.run.case import CaseExperiment
    from rudikit.run.ensembles import stack_meta

    folder, result = ran
    models_in_memory = result.models  # type: ignore[attr-defined]
    ensemble = next(m for m in models_in_memory
                    if m.algorithm == "ensemble" and m.params["method"] == "stack")
    chosen = [next(m for m in models_in_memory if m.model_id == i)
              for i in ensemble.details["member_model_ids"]]
    experiment, _ = CaseExperiment.load(load_project(folder), folder)
    experiment.prepare(lambda _: None)
    rows = experiment.split_rows()[0]
    poisoned = replace(rows, y_test=1 - rows.y_test, y_validation=1 - rows.y_validation)
    meta = stack_meta(poisoned, chosen, experiment.scoring().build, experiment.seed)
    _, models, preds = _stored(folder)
    row = models.set_index("id").loc[ensemble.model_id]
    stored_meta = load_artefact(row.artefact_path, row.artefact_hash, folder
                                ).named_steps["model"].meta
    np.testing.assert_allclose(meta.coef_, stored_meta.coef_, atol=1e-12)
    np.testing.assert_allclose(meta.intercept_, stored_meta.intercept_, atol=1e-12)
    assert np.all(meta.coef_ != 0)
    by_model = {mid: p.set_index("entity_id")["score"] for mid, p in preds.groupby("model_id")}
    mine = by_model[ensemble.model_id]
    members = pd.concat([by_model[m.model_id] for m in chosen], axis=1).loc[mine.index]
    expected = expit(members.to_numpy() @ meta.coef_[0] + meta.intercept_[0])
    np.testing.assert_allclose(mine.to_numpy(), expected, atol=1e-12)
    # poisoning the training labels does change it: the check above can fail
    flipped = replace(rows, y_train=1 - rows.y_train)
    build = experiment.scoring().build
    assert not np.allclose(stack_meta(flipped, chosen, build, experiment.seed).coef_,
                           meta.coef_)
