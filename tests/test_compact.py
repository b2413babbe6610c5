"""Compact dtypes from load to fit: text model inputs held as categoricals give the same
fitted models and scores as the text, on the stop-and-search example's real rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rudikit.config import load_project
from rudikit.data.group_size import with_group_size
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
    if features.group_size:  # counted over the loaded rows, as unify counts it
        frame = with_group_size(frame, features.group_size.by, features.group_size.column)
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


def test_a_prepared_run_keeps_its_loaded_rows_as_categoricals_of_the_same_values(
        tmp_path) -> None:
    """After the label, splits and model inputs are taken, the loaded source (what the data
    card reads at the end of the run) holds its text as categoricals: same values, same missing
    cells, same label counts, so the card says what it said when the text was kept."""
    from rudikit.reports.data_card import Profile
    from rudikit.run.case import CaseExperiment
    from tests.conftest import write_project

    folder = write_project(tmp_path / "p")
    project = load_project(folder)
    experiment, loaded = CaseExperiment.load(project, folder)
    before = loaded[0].frame.copy()
    text = [c for c in before.columns if isinstance(before[c].dtype, pd.StringDtype)]
    assert {"force", "outcome", "record_id"} <= set(text)
    experiment.prepare(lambda _: None)
    after = loaded[0].frame
    assert after is experiment.frame
    # an identifier (every value distinct) stays text: as a categorical it would be larger
    assert isinstance(after["record_id"].dtype, pd.StringDtype)
    text.remove("record_id")
    assert all(isinstance(after[c].dtype, pd.CategoricalDtype) for c in ("force", "outcome"))
    text = [c for c in text if isinstance(after[c].dtype, pd.CategoricalDtype)]
    assert experiment.attrs.dtypes.equals(before[experiment.attrs.columns].dtypes)
    assert (after.drop(columns=text).dtypes == before.drop(columns=text).dtypes).all()
    pd.testing.assert_frame_equal(after.astype({c: "string" for c in text}), before)
    assert (Profile([], after).label_counts(project)
            == Profile([], before).label_counts(project))
