"""The service's models beyond LightGBM: fast scoring paths for logistic regression and random
forests, mitigated model groups (per-group thresholds on a base model), and switching to a new
deployment without a restart."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from conftest import example_config, write_project
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_service_support import (
    HANG_GUARD,
    ServiceStore,
    Trained,
    auth,
    counts,
    observation,
    register,
    service_store,
    trained,
)

from rudikit.fairness.mitigation.optimizer import centre_threshold
from rudikit.fairness.mitigation.rates import group_labels
from rudikit.models.artefacts import load_artefact, save_json_artefact
from rudikit.service import scoring
from rudikit.service.app import create_app
from rudikit.service.deploy import deploy
from rudikit.service.errors import ServiceError
from rudikit.service.observations import parse_observations
from rudikit.service.scoring import GroupThresholds, Scorer, sample_rows
from rudikit.service.settings import ServiceSettings
from rudikit.store import production_tables as pt
from rudikit.store import results
from rudikit.store import tables as t
from rudikit.store.engine import open_store

_PIPELINES: dict[str, Any] = {}
XDIST_SHARED_CACHE = True  # _PIPELINES: keep this module on one pytest-xdist worker


def fitted(factory: pytest.TempPathFactory, algorithm: str) -> Any:
    """A logistic regression and a random forest on the small synthetic project, trained once
    per session (a few seconds)."""
    if not _PIPELINES:
        evaluation = example_config()["evaluation"]
        evaluation["bootstrap"] = 0
        folder = write_project(factory.mktemp("linear-forest"), evaluation=evaluation,
                               fairness={}, models=[
            {"algorithm": "logistic_regression", "params": {"C": [1.0]}},
            {"algorithm": "random_forest", "params": {"n_estimators": 30,
                                                      "min_samples_leaf": 3}}])
        from rudikit.run.develop import run_project

        run_project(folder)
        engine = open_store(None, folder)
        with engine.connect() as conn:
            for path, digest, name in conn.execute(
                    select(t.models.c.artefact_path, t.models.c.artefact_hash,
                           t.model_groups.c.algorithm).join(t.model_groups)):
                _PIPELINES.setdefault(name, load_artefact(path, digest, folder))
        engine.dispose()
    return _PIPELINES[algorithm]


# --- fast paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "path"), [
    ("logistic_regression", "logistic regression (per-column tables)"),
    ("random_forest", "random forest (numpy, all trees at once)")])
def test_fast_paths_give_the_pipelines_scores(tmp_path_factory, algorithm, path) -> None:
    pipeline = fitted(tmp_path_factory, algorithm)
    scorer = Scorer(pipeline)
    assert scorer.path == path
    # other rows than the load-time check: unseen categories, nulls, time zones
    raw, validated = sample_rows(scorer.encoder, 300, seed=11)
    expected = pipeline.predict_proba(pd.DataFrame(raw, columns=scorer.encoder.input_columns))
    np.testing.assert_allclose(scorer.score(validated), expected[:, 1], rtol=0, atol=1e-12)
    one_by_one = [scorer.score([row])[0] for row in validated[:50]]
    np.testing.assert_allclose(one_by_one, expected[:50, 1], rtol=0, atol=1e-12)
    # how much faster than predict_proba they are is measured by bench/hot_paths.py


def test_unseen_categories_are_those_the_pipeline_scores_as_missing(tmp_path_factory) -> None:
    """The report of unseen values agrees with the reference encoder: a value is reported
    exactly when it was given and the encoder turns it into a missing code."""
    scorer = Scorer(fitted(tmp_path_factory, "logistic_regression"))
    raw, validated = sample_rows(scorer.encoder, 200, seed=5)
    matrix = scorer.encoder.encode_records(raw)
    reported = scorer.record_encoder.unseen(validated)
    for row, found, encoded in zip(raw, reported, matrix, strict=True):
        expected = {c: row[c] for j, c in enumerate(scorer.encoder.categorical)
                    if row[c] is not None and np.isnan(encoded[j])}
        assert found == expected
    assert sum(bool(found) for found in reported) > 20  # sample_rows does send unseen values


def test_a_fast_path_that_disagrees_falls_back_to_predict_proba(tmp_path_factory, monkeypatch,
                                                                caplog) -> None:
    pipeline = fitted(tmp_path_factory, "random_forest")
    monkeypatch.setattr(scoring.ForestPredictor, "__call__",
                        lambda self, X: np.full(X.shape[0], 0.5))
    scorer = Scorer(pipeline)
    assert scorer.path == "predict_proba"
    assert "differs from the pipeline" in caplog.text
    raw, validated = sample_rows(scorer.encoder, 20, seed=3)
    expected = pipeline.predict_proba(pd.DataFrame(raw, columns=scorer.encoder.input_columns))
    np.testing.assert_allclose(scorer.score(validated), expected[:, 1], rtol=0, atol=1e-12)


# --- mitigated model groups ------------------------------------------------------------------

ATTRIBUTES = ["officer_defined_ethnicity", "self_defined_ethnicity"]  # the second: no feature
THRESHOLDS = {"White:(missing)": 0.30, "White:White British": 0.40, "Black:(missing)": 0.20}


def deploy_mitigated(s: ServiceStore, project: Trained, folder: Path,
                     thresholds: dict[str, float] | None = None) -> int:
    """A mitigated group on the store's LightGBM model, as `rudi run` records one."""
    digest, path = save_json_artefact({
        "base_model_id": s.model_id, "thresholds": thresholds or THRESHOLDS,
        "fold_thresholds": [], "attributes": ATTRIBUTES, "constraint": "equal_opportunity",
        "objective": "f1", "tolerance": 0.05, "at": "threshold=0.25"}, folder)
    run = results.start_run(s.engine, "service-test", "hash", {}, 0, "synthetic")
    group = results.get_or_create_model_group(
        s.engine, "service-test", "mitigated_lightgbm", {"base_model_group": s.group_id},
        project.features, "label")
    results.record_model(s.engine, results.FittedModel(
        run, group, "last_month", 100, 3, (None, None), (None, None), digest, str(path), 0.1),
        entity_ids=np.array(["a"]), as_of=None, score=np.array([0.5]), label=np.array([1]),
        metrics=[], importances=[])
    results.finish_run(s.engine, run, "finished")
    return deploy(s.engine, group, reason="fairer decisions", by="pytest").id


def test_group_labels_are_those_the_mitigation_was_fitted_with() -> None:
    rows = [{"a": "White", "b": None}, {"a": None, "b": "x y"}, {"a": "Black", "b": True}]
    frame = pd.DataFrame(rows).astype("string").fillna("(missing)")  # as stage.mitigate
    groups = GroupThresholds(["a", "b"], {})
    assert [groups.label(r) for r in rows] == list(group_labels(frame))
    # the service's mapping: 0.5 + 0.5 * (0.35 - 0.30) / 0.70 and 0.5 * 0.45 / 0.9, by hand
    assert centre_threshold(0.35, 0.30) == pytest.approx(0.5 + 0.05 / 1.4)
    assert centre_threshold(0.45, 0.90) == pytest.approx(0.25)
    assert centre_threshold(1.0, 0.20) == 1.0 and centre_threshold(0.0, 0.9) == 0.0


def test_thresholds_stored_with_the_old_group_keys_still_match_their_groups() -> None:
    # artefacts written before the one label convention keyed groups "a=v|b=<missing>"
    groups = GroupThresholds(["a", "b"], {"a=White|b=<missing>": 0.3, "a=Black|b=x": 0.6,
                                          "White:y": 0.4})
    assert groups.threshold({"a": "White", "b": None}) == 0.3
    assert groups.threshold({"a": "Black", "b": "x"}) == 0.6
    assert groups.threshold({"a": "White", "b": "y"}) == 0.4
    assert groups.threshold({"a": "Black", "b": "y"}) is None  # no fallback: not guessed


def test_a_mitigated_group_is_served_with_its_group_thresholds(store, tmp_path,
                                                               tmp_path_factory) -> None:
    project = trained(tmp_path_factory)
    url, schema = store
    s = service_store(url, schema, project)
    deployment = deploy_mitigated(s, project, tmp_path / "artefacts")
    app = create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema,
                                     token_cache_seconds=0.0, reload_seconds=0))
    base = app.state.service.model.scorer
    with TestClient(app) as client:
        def predict(body: Any) -> Any:
            return client.post("/predict", json=body, headers=auth(s.tokens["predict"]))

        before = counts(s.engine)
        r = predict(observation("m-0"))  # the group attribute that is no feature is required
        assert r.status_code == 422
        assert [e["field"] for e in r.json()["errors"]] == ["self_defined_ethnicity"]
        r = predict(observation("m-1", officer_defined_ethnicity="Asian",
                                self_defined_ethnicity=None))
        assert r.status_code == 422  # a group the thresholds were not fitted on
        assert {e["field"] for e in r.json()["errors"]} == set(ATTRIBUTES)
        assert "'Asian:(missing)'" in r.text
        for value, problem in (("x" * 1001, "at most 1000 characters"),
                               ([1], "expected a string, number, boolean or null")):
            r = predict(observation("m-1", self_defined_ethnicity=value))
            assert r.status_code == 422
            (error,) = r.json()["errors"]  # one error naming the field, not one per type
            assert error["field"] == "self_defined_ethnicity" and problem in error["msg"]
        assert counts(s.engine) == before

        cases = [("White", None, 0.30), ("White", "White British", 0.40), ("Black", None, 0.20)]
        body = {"observations": [observation(f"m-{i + 2}", officer_defined_ethnicity=ode,
                                             self_defined_ethnicity=sde)
                                 for i, (ode, sde, _) in enumerate(cases)]}
        r = predict(body)
        assert r.status_code == 200, r.text
        schema_values = parse_observations(app.state.service.schema,
                                           orjson.dumps(body)).observations
        base_scores = base.score([o.values for o in schema_values])
        for answer, (_, _, threshold), score in zip(r.json()["predictions"], cases, base_scores,
                                                    strict=True):
            # [0, t] -> [0, 0.5] and [t, 1] -> [0.5, 1], by hand
            adjusted = (0.5 * score / threshold if score < threshold
                        else 0.5 + 0.5 * (score - threshold) / (1 - threshold))
            assert answer["score"] == pytest.approx(adjusted, abs=1e-12)
            assert answer["decision"] == (score >= threshold)
            assert answer["deployment_id"] == deployment
        with s.engine.connect() as conn:
            stored = conn.execute(select(pt.production_predictions).where(
                pt.production_predictions.c.observation_id == "m-3")).mappings().one()
        assert stored["features"]["self_defined_ethnicity"] == "White British"
        assert stored["score"] == r.json()["predictions"][1]["score"]
    s.engine.dispose()


def test_a_mitigated_group_with_a_tampered_threshold_file_is_refused(store, tmp_path,
                                                                     tmp_path_factory) -> None:
    project = trained(tmp_path_factory)
    url, schema = store
    s = service_store(url, schema, project)
    deploy_mitigated(s, project, tmp_path / "artefacts")
    for file in (tmp_path / "artefacts").glob("*.json"):
        file.write_text(file.read_text().replace("0.3", "0.9"))
    with pytest.raises(ServiceError, match="refusing to start.*hash"):
        create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema))
    s.engine.dispose()


# --- a new deployment without a restart ------------------------------------------------------


def test_a_new_deployment_is_served_without_a_restart(store, tmp_path, tmp_path_factory
                                                      ) -> None:
    project = trained(tmp_path_factory)
    url, schema = store
    s = service_store(url, schema, project)
    app = create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema,
                                     token_cache_seconds=0.0, reload_seconds=0.1))
    with TestClient(app) as client:
        def predict(oid: str) -> Any:
            return client.post("/predict", json=observation(oid),
                               headers=auth(s.tokens["predict"]))

        assert predict("r-0").json()["model_id"] == s.model_id
        group, model = register(s.engine, project, "rate_by_category")
        new = deploy(s.engine, group, reason="a better model", by="pytest").id
        answers = []
        deadline = time.monotonic() + HANG_GUARD  # until the reload, however slow the machine
        while time.monotonic() < deadline:  # requests keep coming while the model changes
            r = predict(f"r-{len(answers) + 1}")
            assert r.status_code == 200, r.text
            answers.append(r.json())
            if answers[-1]["model_id"] == model:
                break
        assert answers[-1]["model_id"] == model and answers[-1]["deployment_id"] == new
        assert {a["model_id"] for a in answers} <= {s.model_id, model}
        health = client.get("/health").json()
        assert health["deployment_current"] is True and health["deployment_id"] == new
        with s.engine.connect() as conn:
            stored = dict(conn.execute(select(pt.production_predictions.c.observation_id,
                                              pt.production_predictions.c.model_id)).all())
        assert len(stored) == len(answers) + 1  # every answer stored, with its own model
        assert all(stored[a["observation_id"]] == a["model_id"] for a in answers)
        metrics = client.get("/metrics", headers=auth(s.tokens["analyst"])).text
        assert f'deployment_id="{new}"' in metrics
    s.engine.dispose()


def test_a_new_deployment_that_cannot_be_loaded_leaves_the_old_one_serving(
        store, tmp_path, tmp_path_factory) -> None:
    project = trained(tmp_path_factory)
    url, schema = store
    s = service_store(url, schema, project)
    app = create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema,
                                     token_cache_seconds=0.0, reload_seconds=0))
    service = app.state.service
    copy = tmp_path / "copy.skops"
    shutil.copy(project.artefacts["rate_by_category"].path, copy)
    group, _ = register(s.engine, project, "rate_by_category", artefact_path=str(copy))
    new = deploy(s.engine, group, reason="tests", by="pytest").id
    copy.write_bytes(copy.read_bytes() + b"tampered")
    with TestClient(app) as client:
        assert client.portal.call(service.reload_if_redeployed) is False
        health = client.get("/health").json()
        assert health["deployment_current"] is False and health["deployment_id"] != new
        assert f"deployment {new} is live but not served" in health["reload_error"]
        assert "hash" in health["reload_error"]
        r = client.post("/predict", json=observation("t-1"), headers=auth(s.tokens["predict"]))
        assert r.status_code == 200 and r.json()["model_id"] == s.model_id
        shutil.copy(project.artefacts["rate_by_category"].path, copy)  # repaired
        assert client.portal.call(service.reload_if_redeployed) is True
        assert client.get("/health").json()["reload_error"] is None
    s.engine.dispose()
