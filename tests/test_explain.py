"""Explanations: SHAP for LightGBM and coefficient x value for logistic regression, checked
against oracles that do not use the code under test (a stump's SHAP values from its leaves,
LightGBM's raw margin, the decision function, single-column changes), the top reasons
``rudi run`` stores for the chosen model, and ``POST /predict?explain=true``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_service_support import Artefact, Trained, auth, observation, service_store

from rudikit.config import (
    DatetimeFeatures,
    Features,
    ProjectError,
    load_project,
    parse_project,
)
from rudikit.explain import (
    Explanation,
    explain,
    explanation_method,
    global_importance,
    remember_reference,
    top_reasons,
)
from rudikit.explain.contributions import REFERENCE, mean_prepared_row
from rudikit.models.artefacts import load_artefact
from rudikit.models.estimators import GridPoint, build_pipeline
from rudikit.run.case_explain import reason_rows
from rudikit.run.develop import run_project
from rudikit.service.app import create_app
from rudikit.service.settings import ServiceSettings
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from tests.conftest import example_config, write_project

FEATURES = Features(categorical=["colour"], boolean=["flag"], numeric=["a", "b"],
                    datetime=DatetimeFeatures(column="when", parts=["hour", "weekday"]))


def frame(n: int = 1_500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows whose label depends on ``a``, ``colour`` and the hour; ``b`` is noise and has
    missing values; ``flag`` is a boolean with missing values."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.normal(size=n)
    b[rng.random(n) < 0.1] = np.nan
    colour = rng.choice(["red", "green", "blue"], size=n)
    hour = rng.integers(0, 24, size=n)
    when = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 60, size=n) * 24 + hour, unit="h")
    flag = pd.Series(rng.random(n) < 0.5, dtype="object")
    flag[rng.random(n) < 0.05] = None
    logit = 1.5 * a + (colour == "red") * 1.0 + (hour >= 20) * 0.8 - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"colour": colour, "flag": flag, "a": a, "b": b, "when": when}), y


def fitted(algorithm: str, params: dict, X: pd.DataFrame, y: np.ndarray):
    pipeline, fit_params = build_pipeline(GridPoint(algorithm, params), FEATURES, seed=0)
    return pipeline.fit(X, y, **fit_params)


def test_lightgbm_stump_shap_equals_leaf_minus_expected_value() -> None:
    """A one-split tree: the split feature's SHAP value is the row's leaf value minus the
    count-weighted mean of the leaves; every other column contributes nothing."""
    X, y = frame()
    pipeline = fitted("lightgbm", {"n_estimators": 1, "num_leaves": 2, "min_child_samples": 20},
                      X, y)
    tree = pipeline.named_steps["model"].booster_.trees_to_dataframe()
    split = tree[tree["split_feature"].notna()].iloc[0]
    leaves = tree[tree["split_feature"].isna()].set_index("node_index")
    expected = float((leaves["value"] * leaves["count"]).sum() / leaves["count"].sum())
    # fitted on the encoded matrix, whose column 2 is "a", the informative column
    assert split["split_feature"] == "Column_2" and split["decision_type"] == "<="
    goes_left = X["a"].to_numpy() <= float(split["threshold"])
    left_value = leaves.loc[split["left_child"], "value"]
    right_value = leaves.loc[split["right_child"], "value"]
    oracle = np.where(goes_left, left_value, right_value) - expected

    explanation = explain(pipeline, X)
    assert explanation.method == "shap" and explanation_method(pipeline) == "shap"
    assert explanation.base == pytest.approx(expected, abs=1e-9)
    np.testing.assert_allclose(explanation.contributions["a"], oracle, atol=1e-9)
    others = explanation.contributions.drop(columns="a").to_numpy()
    assert np.abs(others).max() == 0


def test_lightgbm_contributions_add_up_to_the_raw_margin_per_input_column() -> None:
    X, y = frame()
    pipeline = fitted("lightgbm", {"n_estimators": 80, "num_leaves": 7}, X, y)
    explanation = explain(pipeline, X.iloc[:300])
    # one column per input column: the two datetime parts come back as "when"
    assert list(explanation.contributions.columns) == ["colour", "flag", "a", "b", "when"]
    model = pipeline.named_steps["model"]
    raw = model.predict(pipeline.named_steps["encode"].transform(X.iloc[:300]), raw_score=True)
    np.testing.assert_allclose(explanation.margin, raw, rtol=1e-9, atol=1e-9)
    proba = pipeline.predict_proba(X.iloc[:300])[:, 1]
    np.testing.assert_allclose(1 / (1 + np.exp(-explanation.margin)), proba, rtol=1e-9)
    ranking = global_importance(explanation)
    assert ranking.index[0] == "a" and ranking["b"] < ranking["a"]


def test_logistic_contributions_sum_to_the_decision_function_minus_its_mean() -> None:
    X, y = frame()
    train, rows = X.iloc[:1_200], X.iloc[1_200:]
    pipeline = fitted("logistic_regression", {"C": 1.0}, train, y[:1_200])
    explanation = explain(pipeline, rows, background=train)
    assert explanation.method == "coefficient"
    assert list(explanation.contributions.columns) == ["colour", "flag", "a", "b", "when"]
    decision = pipeline.decision_function(rows)
    np.testing.assert_allclose(explanation.contributions.sum(axis=1),
                               decision - pipeline.decision_function(train).mean(), atol=1e-9)
    np.testing.assert_allclose(explanation.margin, decision, atol=1e-9)


def test_a_remembered_reference_explains_one_row_as_the_training_background_does() -> None:
    """What the service relies on: one row, explained alone, gets the contributions it gets
    in a batch centred on the training rows (alone and without it, it would be all zeros)."""
    X, y = frame()
    train, rows = X.iloc[:1_200], X.iloc[1_200:1_210]
    pipeline = fitted("logistic_regression", {"C": 1.0}, train, y[:1_200])
    batch = explain(pipeline, rows, background=train)
    assert (explain(pipeline, rows.iloc[[3]]).contributions.to_numpy() == 0).all()
    remember_reference(pipeline, train)
    alone = explain(pipeline, rows.iloc[[3]])
    np.testing.assert_allclose(alone.contributions.iloc[0], batch.contributions.iloc[3],
                               atol=1e-12)
    assert alone.base == pytest.approx(pipeline.decision_function(train).mean(), abs=1e-9)


def test_the_reference_taken_in_chunks_is_the_dense_mean_to_the_last_bit() -> None:
    """The training rows are prepared a chunk at a time so the dense one-hot matrix is never
    whole; the mean must be exactly the one the whole matrix gives (a chunk boundary that
    changed the summation order would move it in the last bits). Chunks of one row are
    checked on the first 60 rows: each chunk is a whole transform (5.6 s of CPU for 1,500)."""
    X, y = frame()
    pipeline = fitted("logistic_regression", {"C": 1.0}, X, y)
    prepare = pipeline.named_steps["model"].named_steps["prepare"]
    encoder = pipeline.named_steps["encode"]

    def dense_mean(rows: pd.DataFrame) -> np.ndarray:
        prepared = prepare.transform(encoder.transform(rows))
        return (prepared.toarray() if hasattr(prepared, "toarray") else prepared).mean(axis=0)

    whole = dense_mean(X)
    assert np.array_equal(mean_prepared_row(prepare, encoder, X.iloc[:60], chunk=1),
                          dense_mean(X.iloc[:60]))
    for chunk in (7, 256, len(X), 10 * len(X)):
        assert np.array_equal(mean_prepared_row(prepare, encoder, X, chunk=chunk), whole)
    remember_reference(pipeline, X)
    assert np.array_equal(getattr(pipeline.named_steps["model"].named_steps["classifier"],
                                  REFERENCE), whole)


def test_logistic_contributions_prepared_in_chunks_are_the_whole_matrix_s_to_the_last_bit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The explained rows (and a background) are one-hot prepared a chunk at a time; every
    row's contributions, the reference and the base must be those of one whole matrix."""
    from rudikit.explain import contributions

    X, y = frame()
    train, rows = X.iloc[:1_200], X.iloc[1_200:1_300]
    pipeline = fitted("logistic_regression", {"C": 1.0}, train, y[:1_200])
    found = []
    for chunk in (len(X), 64, 7):
        monkeypatch.setattr(contributions, "CHUNK", chunk)
        found.append((explain(pipeline, rows, background=train.iloc[:300]),
                      explain(pipeline, rows)))
    for batch in found[1:]:
        for ours, whole in zip(batch, found[0], strict=True):
            assert np.array_equal(ours.contributions.to_numpy(), whole.contributions.to_numpy())
            assert ours.base == whole.base


@pytest.mark.parametrize(("column", "new_value"), [
    ("colour", "red"), ("colour", "purple"), ("flag", None), ("b", np.nan), ("a", 3.0),
    ("when", pd.Timestamp("2024-03-01 22:00", tz="UTC")),
])
def test_logistic_change_in_one_column_moves_only_that_columns_contribution(
        column: str, new_value: object) -> None:
    """Linearity as the oracle: change one input of one row; the change in the decision
    function must land wholly on that column (one-hot levels, missing-value indicators and
    datetime parts all map back to their input)."""
    X, y = frame()
    pipeline = fitted("logistic_regression", {"C": 1.0}, X, y)
    rows = X.iloc[[5, 5]].reset_index(drop=True).astype(object)
    rows.loc[1, column] = new_value
    explanation = explain(pipeline, rows, background=X)
    delta = explanation.contributions.iloc[1] - explanation.contributions.iloc[0]
    decision = pipeline.decision_function(rows)
    assert delta[column] == pytest.approx(decision[1] - decision[0], abs=1e-9)
    assert np.abs(delta.drop(column)).max() == pytest.approx(0, abs=1e-12)


def test_top_reasons_rank_by_size_skip_zeros_and_keep_values() -> None:
    contributions = pd.DataFrame({"age": [0.5, 0.0], "priors": [-0.9, 0.2], "sex": [0.1, 0.0]})
    values = pd.DataFrame({"age": [23.0, np.nan], "priors": [4.0, 0.0], "sex": ["Male", None]})
    reasons = top_reasons(Explanation("shap", contributions, -1.0, values), n=2)
    assert reasons.to_dict("records") == [
        {"row": 0, "feature": "priors", "contribution": -0.9, "value": "4", "rank": 1},
        {"row": 0, "feature": "age", "contribution": 0.5, "value": "23", "rank": 2},
        {"row": 1, "feature": "priors", "contribution": 0.2, "value": "0", "rank": 1},
    ]  # row 1: "age" and "sex" did not move the score, so they are no reason
    assert global_importance(Explanation("shap", contributions, 0.0, values)).to_dict() == \
        pytest.approx({"priors": 0.55, "age": 0.25, "sex": 0.05})


def test_unsupported_model_has_no_method() -> None:
    X, y = frame(n=300)
    forest = fitted("random_forest", {"n_estimators": 5, "n_jobs": 1}, X, y)
    assert explanation_method(forest) is None


@pytest.mark.parametrize("wanted", [{}, {"store_reasons": "top_k", "sample": 30}])
def test_run_stores_the_top_reasons_of_the_test_rows_a_person_looks_at(
        store, tmp_path: Path, wanted: dict) -> None:
    """By default the rows on the largest evaluated list or flagged at the decision threshold;
    ``top_k`` with a ``sample`` gives the list and exactly that many others."""
    url, schema = store
    folder = write_project(tmp_path / "proj", explain=wanted, models=[
        {"algorithm": "lightgbm", "params": {"n_estimators": 40, "num_leaves": 7}}])
    result = run_project(folder, url=url, schema=schema)
    chosen = result.selected
    assert chosen is not None and chosen.algorithm == "lightgbm"
    engine = open_store(url, schema=schema)
    with engine.connect() as conn:
        reasons = pd.DataFrame(conn.execute(select(t.individual_importances)).mappings().all())
        preds = pd.DataFrame(conn.execute(select(t.predictions).where(
            t.predictions.c.model_id == chosen.model_id)).mappings().all())
    assert set(reasons["model_id"]) == {chosen.model_id}
    assert set(reasons["method"]) == {"shap"}
    project = load_project(folder)
    longest = max(100, *project.evaluation.top_k,
                  *(int(p * len(preds) // 100) for p in project.evaluation.top_pct))
    on_list = set(preds.loc[preds["rank_abs"] <= longest, "entity_id"])
    stored = set(reasons["entity_id"])
    if wanted:
        assert on_list < stored and len(stored - on_list) == 30
        assert stored <= set(preds["entity_id"])
    else:
        flagged = set(preds.loc[preds["score"] >= project.fairness.at.threshold, "entity_id"])
        assert stored == on_list | flagged and len(stored) < len(preds)
    for _, one in reasons.groupby("entity_id"):
        one = one.sort_values("rank")
        assert one["rank"].tolist() == list(range(1, len(one) + 1)) and len(one) <= 5
        assert (np.diff(one["contribution"].abs()) <= 1e-12).all()
        assert (one["contribution"] != 0).all()
    # the stored as-of dates are the predictions' (one entity, one case here)
    merged = reasons.merge(preds[["entity_id", "as_of_date"]], on="entity_id",
                           suffixes=("", "_pred"))
    assert (merged["as_of_date"] == merged["as_of_date_pred"]).all()


def test_reason_rows_all_is_every_row_and_bad_settings_name_the_field() -> None:
    project = parse_project(example_config() | {"explain": {"store_reasons": "all"}})
    assert (reason_rows(project, np.linspace(0, 1, 500)) == np.arange(500)).all()
    for bad, field in [({"store_reasons": "everyone"}, "explain.store_reasons[0]"),
                       ({"sample": -1}, "explain.sample")]:
        with pytest.raises(ProjectError, match=re.escape(field)):
            parse_project(example_config() | {"explain": bad})


_SERVED: dict[str, Trained] = {}
XDIST_SHARED_CACHE = True  # _SERVED: keep this module on one pytest-xdist worker


def served(factory: pytest.TempPathFactory) -> Trained:
    """A LightGBM, a logistic regression and a per-category rate fitted by ``rudi run`` (so
    the regression keeps its training mean), once per session."""
    if not _SERVED:
        evaluation = example_config()["evaluation"] | {"bootstrap": 0}
        folder = write_project(factory.mktemp("explained"), evaluation=evaluation, fairness={},
                               models=[{"algorithm": "lightgbm",
                                        "params": {"n_estimators": 40, "num_leaves": 7}},
                                       {"algorithm": "logistic_regression",
                                        "params": {"C": [1.0]}},
                                       {"algorithm": "rate_by_category",
                                        "params": {"column": "object_of_search"}}])
        run = run_project(folder)
        engine = open_store(None, folder)
        with engine.connect() as conn:
            rows = {m.algorithm: conn.execute(
                select(t.models.c.artefact_path, t.models.c.artefact_hash).where(
                    t.models.c.id == m.model_id)).one() for m in run.models
                if m.split == "last_month"}
        # absolute: the tests register them in stores of other projects
        artefacts = {name: Artefact(name, str(folder / path), digest,
                                    next(m.params for m in run.models if m.algorithm == name))
                     for name, (path, digest) in rows.items()}
        engine.dispose()
        _SERVED["project"] = Trained(folder, load_project(folder).features.model_dump(
            mode="json"), artefacts)
    return _SERVED["project"]


@pytest.mark.parametrize("algorithm", ["lightgbm", "logistic_regression"])
def test_predict_explain_true_returns_reasons_that_add_up_to_the_models_margin(
        store, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, algorithm: str
        ) -> None:
    url, schema = store
    project = served(tmp_path_factory)
    artefact = project.artefacts[algorithm]
    pipeline = load_artefact(artefact.path, artefact.digest)
    s = service_store(url, schema, project, algorithm=algorithm)
    app = create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema))
    headers = auth(s.tokens["predict"])
    bodies = [observation("x-1"), observation("x-2", gender=None, age_range="over 34",
                                              object_of_search="Firearms", latitude=None,
                                              datetime="2020-01-05T23:30:00+05:00")]
    with TestClient(app) as client:
        plain = client.post("/predict", json=bodies[0], headers=headers).json()
        answer = client.post("/predict?explain=true", json=bodies[0], headers=headers).json()
        batch = client.post("/predict", params={"explain": "true"},
                            json={"observations": bodies}, headers=headers).json()
        unchanged = client.post("/predict?explain=false", json=bodies[1], headers=headers)
        bad = client.post("/predict?explain=maybe", json=observation("x-3"), headers=headers)
        document = client.get("/openapi.json", headers=auth(s.tokens["admin"])).json()
    assert "explanation" not in plain and "explanation" not in unchanged.json()
    # the same observation again: the stored answer, now with its explanation
    assert {k: v for k, v in answer.items() if k != "explanation"} == plain | {"replayed": True}
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "explain"]
    # the oracle: the fitted model's own log-odds for the same rows
    encoder = pipeline.named_steps["encode"]
    rows = pd.DataFrame([{k: v for k, v in b.items() if k != "observation_id"} for b in bodies],
                        columns=encoder.input_columns)
    model = pipeline.named_steps["model"]
    margin = (model.predict(encoder.transform(rows), raw_score=True) if algorithm == "lightgbm"
              else model.decision_function(encoder.transform(rows)))
    explained = [answer, *batch["predictions"]]
    for got, expected in zip(explained, [margin[0], *margin], strict=True):
        e = got["explanation"]
        assert e["method"] == ("shap" if algorithm == "lightgbm" else "coefficient")
        contributions = [r["contribution"] for r in e["reasons"]]
        assert 0 < len(contributions) <= 5
        assert e["base"] + sum(contributions) + e["rest"] == pytest.approx(expected, abs=1e-9)
        assert e["margin"] == pytest.approx(expected, abs=1e-9)
        assert 1 / (1 + np.exp(-e["margin"])) == pytest.approx(got["score"], abs=1e-9)
        assert np.all(np.diff(np.abs(contributions)) <= 1e-12)
    for body, got in zip(bodies, batch["predictions"], strict=True):  # the values sent
        for reason in got["explanation"]["reasons"]:
            sent, value = body[reason["feature"]], reason["value"]
            if reason["feature"] == "datetime":
                assert pd.Timestamp(value) == pd.Timestamp(sent)
            else:
                assert value == (None if sent is None else f"{sent:g}"
                                 if isinstance(sent, float) else str(sent))
    operation = document["paths"]["/predict"]["post"]
    assert [p["name"] for p in operation["parameters"]] == ["explain"]
    assert "ExplainedPredictionOut" in document["components"]["schemas"]


def test_predict_explain_on_a_model_without_explanations_is_a_422_and_stores_nothing(
        store, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    url, schema = store
    s = service_store(url, schema, served(tmp_path_factory), algorithm="rate_by_category")
    app = create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema))
    with TestClient(app) as client:
        refused = client.post("/predict?explain=1", json=observation("y-1"),
                              headers=auth(s.tokens["predict"]))
        lookup = client.get("/predictions/y-1", headers=auth(s.tokens["admin"]))
    assert refused.status_code == 422
    assert "no explanation method" in refused.json()["errors"][0]["msg"]
    assert lookup.status_code == 404
