"""Compact dtypes from load to fit: text model inputs held as categoricals give the same
fitted models and scores as the text, on the stop-and-search example's real rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rudikit.config import load_project
from rudikit.data.police_uk import read_archive_file
from rudikit.features.encoding import compact_text
from rudikit.features.labels import make_label
from rudikit.models.estimators import GridPoint, build_pipeline
from tests.conftest import EXAMPLE


@pytest.mark.parametrize("algorithm, params", [
    ("lightgbm", {"n_estimators": 60, "num_leaves": 15}),
    ("logistic_regression", {"C": 1.0}),
])
def test_categorical_inputs_give_the_scores_of_the_text_inputs(shared_data, algorithm: str,
                                                               params: dict) -> None:
    files = sorted((shared_data / "stop_and_search").rglob("*-stop-and-search.csv"))
    frame = pd.concat([read_archive_file(f)[0] for f in files], ignore_index=True)
    project = load_project(EXAMPLE)
    features = project.features
    y_all, keep = make_label(frame, project.label)
    X, y = frame.loc[keep, features.input_columns].reset_index(drop=True), y_all[keep]
    compact = compact_text(X)
    text = [c for c in X.columns if isinstance(X[c].dtype, pd.StringDtype)]
    assert text and all(isinstance(compact[c].dtype, pd.CategoricalDtype) for c in text)
    assert compact[text].memory_usage(deep=True).sum() < X[text].memory_usage(deep=True).sum() / 4
    assert (compact.drop(columns=text).dtypes == X.drop(columns=text).dtypes).all()
    scores = []
    for inputs in (X, compact):
        pipeline, fit_params = build_pipeline(GridPoint(algorithm, params), features, seed=0)
        pipeline.fit(inputs, y, **fit_params)
        scores.append(pipeline.predict_proba(inputs)[:, 1])
    np.testing.assert_array_equal(scores[0], scores[1])  # identical, not merely close
