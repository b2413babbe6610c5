"""Wide sources (issue 20, item 5): a source with hundreds of numeric columns, such as
bag-of-words charge descriptions, trains through the wide rule of the model grid
(:data:`rudikit.models.estimators.WIDE_COLUMNS`), its feature globs resolve to the right
columns, and a whole run explains and documents it without a step quadratic in the columns."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import MaxAbsScaler, OneHotEncoder, StandardScaler

from rudikit.config import Features
from rudikit.models.estimators import WIDE_COLSAMPLE, WIDE_COLUMNS, GridPoint, build_pipeline
from tests.conftest import write_project

WIDTH = 1000


def wide_frame(rows: int, width: int = WIDTH, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """``width`` 0/1 ``bow_*`` columns (a few words per row, some missing), two categories and
    a label driven by the first five words and a category."""
    rng = np.random.default_rng(seed)
    words = (rng.random((rows, width)) < 6 / width).astype(float)
    words[:, :5] = rng.random((rows, 5)) < 0.2
    words[rng.random((rows, width)) < 0.002] = np.nan
    data = pd.DataFrame(words, columns=[f"bow_{i}" for i in range(width)])
    data["charge_degree"] = rng.choice(["F", "M", "X"], size=rows)
    data["sex"] = rng.choice(["Male", "Female"], size=rows)
    logit = -1.5 + 1.5 * np.nan_to_num(words[:, :5]).sum(axis=1) + (data["charge_degree"] == "F")
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return data, y


FEATURES = Features(categorical=["charge_degree", "sex"], numeric=["bow_*"])


def test_wide_logistic_regression_equals_scikit_learns_own_pipeline() -> None:
    """The wide rule's model (sparse numeric block, median + missing indicator, MaxAbsScaler,
    lbfgs) scores every row as scikit-learn's own estimators fitted by hand on the same matrix,
    to 1e-9; its prepared matrix really is sparse; it is explained like a narrow one."""
    data, y = wide_frame(800)
    features, problems = FEATURES.resolve(list(data.columns))
    assert not problems
    pipeline, fit_params = build_pipeline(GridPoint("logistic_regression", {"C": 0.5}),
                                          features)
    pipeline.fit(data, y, **fit_params)
    prepare = pipeline.named_steps["model"].named_steps["prepare"]
    assert sparse.issparse(prepare.transform(pipeline.named_steps["encode"].transform(data)))

    onehot = OneHotEncoder(handle_unknown="ignore", min_frequency=5)
    impute = SimpleImputer(strategy="median", add_indicator=True)
    scale = MaxAbsScaler()
    words = data[[f"bow_{i}" for i in range(WIDTH)]].to_numpy()
    codes = pipeline.named_steps["encode"].transform(data)[:, :2]  # the categories' codes
    matrix = sparse.hstack([onehot.fit_transform(codes),
                            sparse.csr_matrix(scale.fit_transform(impute.fit_transform(words)))])
    oracle = LogisticRegression(C=0.5, max_iter=2000, random_state=0).fit(matrix.tocsr(), y)
    np.testing.assert_allclose(pipeline.predict_proba(data)[:, 1],
                               oracle.predict_proba(matrix.tocsr())[:, 1], rtol=0, atol=1e-9)
    # and its explanation (coefficient x value, summed back to the 1,002 input columns) adds
    # up to the decision function row by row
    from rudikit.explain import explain

    explanation = explain(pipeline, data.iloc[:50], background=data)
    assert explanation.contributions.shape == (50, WIDTH + 2)
    np.testing.assert_allclose(explanation.margin, pipeline.decision_function(data.iloc[:50]),
                               rtol=0, atol=1e-9)


def test_a_narrow_source_keeps_the_dense_standard_scaled_path() -> None:
    """Below WIDE_COLUMNS numeric columns nothing changes: StandardScaler, dense, and LightGBM
    without column sampling."""
    data, y = wide_frame(300, width=WIDE_COLUMNS - 1)
    features, _ = FEATURES.resolve(list(data.columns))
    pipeline, _ = build_pipeline(GridPoint("logistic_regression", {}), features)
    numeric = dict((n, t) for n, t, _ in
                   pipeline.named_steps["model"].named_steps["prepare"].transformers)["numeric"]
    assert isinstance(numeric.named_steps["scale"], StandardScaler)
    lgbm, _ = build_pipeline(GridPoint("lightgbm", {}), features)
    assert lgbm.named_steps["model"].get_params()["colsample_bytree"] == 1.0


@pytest.mark.parametrize(("params", "expected"), [
    ({}, {"colsample_bytree": WIDE_COLSAMPLE}),
    ({"colsample_bytree": 0.8}, {"colsample_bytree": 0.8}),
    ({"feature_fraction": 0.6}, {"colsample_bytree": 1.0, "feature_fraction": 0.6}),
])
def test_lightgbm_samples_columns_on_a_wide_source_unless_told(params: dict,
                                                               expected: dict) -> None:
    """A wide source's LightGBM samples WIDE_COLSAMPLE of the columns per tree; a value the
    project gives (under any of LightGBM's aliases) wins, and is never set twice."""
    data, y = wide_frame(300)
    features, _ = FEATURES.resolve(list(data.columns))
    pipeline, fit_params = build_pipeline(GridPoint("lightgbm", {"n_estimators": 5, **params}),
                                          features)
    model_params = pipeline.named_steps["model"].get_params()
    assert {k: model_params.get(k) for k in expected} == expected
    pipeline.fit(data, y, **fit_params)  # LightGBM accepts the combination


def test_feature_globs_select_the_right_columns_in_data_order() -> None:
    """``bow_*``, ``?`` and ``[...]`` patterns pick exactly what fnmatch picks, in the data's
    order; a look-alike column is left out; a pattern matching nothing is a key-path problem."""
    columns = ["id", "bow_b", "bowl", "bow_a", "x_bow_1", "bow_10", "bow_2", "sex", "BOW_3"]
    spec = Features(categorical=["sex"], numeric=["bow_*"], boolean=["bow[l]"])
    resolved, problems = spec.resolve(columns)
    assert problems == []
    assert resolved.numeric == ["bow_b", "bow_a", "bow_10", "bow_2"]
    assert resolved.numeric == fnmatch.filter(columns, "bow_*")  # the oracle
    assert resolved.boolean == ["bowl"]
    single, _ = Features(numeric=["bow_?"]).resolve(columns)
    assert single.numeric == ["bow_b", "bow_a", "bow_2"]
    _, problems = Features(numeric=["words_*"]).resolve(columns)
    assert problems == ["features.numeric[0]: pattern 'words_*' matches no column in the data"]


def test_permutation_importance_of_a_wide_model_permutes_its_top_columns() -> None:
    """With WIDE_COLUMNS input columns or more, permutation importance is computed for the
    model's MAX_PERMUTED largest mean absolute contributions only; the informative words are
    among them and show a real drop in ROC AUC."""
    from rudikit.explain import explain, global_importance
    from rudikit.run.case_explain import MAX_PERMUTED, permutation_importances

    data, y = wide_frame(800)
    features, _ = FEATURES.resolve(list(data.columns))
    pipeline, fit_params = build_pipeline(GridPoint("lightgbm", {"n_estimators": 40}), features)
    pipeline.fit(data, y, **fit_params)
    ranking = list(global_importance(explain(pipeline, data)).index)
    found = {c: mean for c, _, mean, _, _
             in permutation_importances(pipeline, data, y, 0, ranking)}
    assert set(found) == set(ranking[:MAX_PERMUTED])
    assert {f"bow_{i}" for i in range(5)} <= set(found)
    assert min(found[f"bow_{i}"] for i in range(5)) > 0.005


def wide_project(folder: Path, rows: int = 600, width: int = WIDTH) -> Path:
    """A case project on a parquet source of ``width`` bag-of-words columns, with both
    algorithms (``bench/wide_run.py`` runs it too)."""
    data, y = wide_frame(rows, width)
    data.insert(0, "case_id", [f"c{i}" for i in range(rows)])
    data["arrested_at"] = pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(
        np.arange(rows), unit="h")
    data["reoffended"] = y.astype(bool)
    folder.mkdir(parents=True, exist_ok=True)
    data.to_parquet(folder / "cases.parquet")
    return write_project(
        folder,
        data={"entity_id": "case_id", "knowledge_date": "arrested_at",
              "sources": [{"name": "cases", "kind": "parquet", "path": "cases.parquet"}]},
        label={"name": "reoffended", "positive_when": [{"column": "reoffended",
                                                         "equals": True}]},
        features={"categorical": ["charge_degree"], "numeric": ["bow_*"],
                  "protected": ["sex"]},
        splits=[{"name": "random", "kind": "random", "test_size": 0.3, "seed": 0}],
        models=[{"algorithm": "logistic_regression", "params": {"C": [1.0]}},
                {"algorithm": "lightgbm", "params": {"n_estimators": 60, "num_leaves": 7}}],
        evaluation={"bootstrap": 50, "selection": {"metric": "roc_auc", "split": "random"}},
        fairness={"attributes": ["sex"], "min_group_size": 20},
        monitoring={"segments": ["charge_degree"]})


def test_a_wide_source_runs_end_to_end(tmp_path: Path) -> None:
    """``rudi run``'s API on 1,000 bag-of-words columns: both algorithms are fitted and
    stored, the chosen model gets permutation importance for at most MAX_PERMUTED columns
    (the informative words among them) and per-row reasons, and the data card draws at most
    MAX_PANELS columns per chart while its Variables table lists them all."""
    from sqlalchemy import select

    from rudikit.reports.data_card import build_data_card
    from rudikit.reports.profile_figures import MAX_PANELS
    from rudikit.run.case_explain import MAX_PERMUTED
    from rudikit.run.develop import run_project
    from rudikit.store import tables as t
    from rudikit.store.engine import open_store

    folder = wide_project(tmp_path / "wide")
    url = f"sqlite:///{tmp_path / 'rudi.db'}"
    result = run_project(folder, url=url)
    assert sorted(m.algorithm for m in result.models) == ["lightgbm", "logistic_regression"]
    assert result.selected is not None
    engine = open_store(url)
    with engine.connect() as conn:
        imps = pd.DataFrame(conn.execute(select(t.feature_importances)).mappings().all())
        reasons = conn.execute(select(t.individual_importances)).mappings().all()
        snapshot = conn.execute(select(t.data_snapshots.c.id)).scalar_one()
    assert set(imps["model_id"]) == {result.selected.model_id}
    assert len(imps) == MAX_PERMUTED and imps["feature"].is_unique
    assert len({f"bow_{i}" for i in range(5)} & set(imps["feature"])) >= 4
    assert len(reasons) > 0
    card = build_data_card(engine, snapshot, project_dir=folder)
    variables = next(s for s in card.sections if s.title == "Variables")
    assert variables.figures and all(len(f.layout.annotations) <= MAX_PANELS
                                     for f in variables.figures)
    table = variables.fields[0].parts[0]
    assert sum(1 for row in table.rows if row[0].startswith("bow_")) == WIDTH


def test_a_numeric_columns_top_values_are_counted_as_their_text() -> None:
    """The profile counts a number or boolean column's values without turning every value into
    text first, and names them exactly as counting their text does (pandas' own oracle)."""
    from rudikit.data.profile import profile_frame

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"bow_0": rng.integers(0, 3, 200).astype(float),
                          "count": pd.array(rng.integers(0, 5, 200), dtype="Int64"),
                          "flag": rng.random(200) < 0.3})
    frame.loc[::9, ["bow_0", "count"]] = None
    for profile in profile_frame(frame):
        counts = frame[profile["column_name"]].dropna().astype(str).value_counts()
        assert profile["summary"] == {"values": list(counts.index),
                                      "counts": [int(c) for c in counts], "other": 0}


def test_the_missing_chart_of_a_wide_source_keeps_its_most_missing_columns() -> None:
    """With more columns missing than MAX_PANELS, the chart draws the MAX_PANELS most missing
    ones (in the columns' order) and says so in its title."""
    from rudikit.data.profile import profile_frame
    from rudikit.reports.profile_figures import MAX_PANELS, missing_figure

    rng = np.random.default_rng(0)
    n = MAX_PANELS + 40
    frame = pd.DataFrame(rng.random((200, n)), columns=[f"bow_{i}" for i in range(n)])
    for i in range(n):  # column i misses i + 1 values
        frame.iloc[: i + 1, i] = np.nan
    profiles = pd.DataFrame(profile_frame(frame)).assign(snapshot_id=1)
    fig = missing_figure(profiles, list(frame.columns), {1: "snapshot 1"})
    assert fig is not None
    assert list(fig.data[0].y)[::-1] == [f"bow_{i}" for i in range(n - MAX_PANELS, n)]
    assert f"the {MAX_PANELS} most missing of {n} columns" in fig.layout.title.text
