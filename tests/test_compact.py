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


def test_a_run_loads_its_text_as_the_categoricals_of_the_whole_text_table(tmp_path) -> None:
    """``rudi run`` loads a police.uk source's text as categoricals file by file: the values,
    missing cells and categories (so the codes) of the whole text table made categorical, an
    identifier left as text; the data card's profiles and label counts are those of the text,
    and the fairness attributes are given back as the text they load as."""
    from rudikit.data.profile import profile_frame
    from rudikit.data.sources import unify
    from rudikit.reports.data_card import Profile
    from rudikit.run.case import CaseExperiment
    from tests.conftest import write_project

    folder = write_project(tmp_path / "p")
    project = load_project(folder)
    text_frame, loaded_text = unify(project, folder)  # as every other reader loads it
    assert len(loaded_text[0].files) > 1  # the categories of several files are joined
    experiment, loaded = CaseExperiment.load(project, folder)
    frame = loaded[0].frame
    assert frame is experiment.frame
    categories = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    assert {"force", "outcome", "officer_defined_ethnicity"} <= set(categories)
    # an identifier (every value distinct) stays text: as a categorical it would be larger
    assert isinstance(frame["record_id"].dtype, pd.StringDtype)
    pd.testing.assert_frame_equal(frame.astype({c: "string" for c in categories}), text_frame)
    whole = compact_text(text_frame)
    for column in categories:
        assert frame[column].cat.categories.equals(whole[column].cat.categories), column
    assert profile_frame(frame) == profile_frame(text_frame)
    assert (Profile([], frame).label_counts(project)
            == Profile([], text_frame).label_counts(project))
    experiment.prepare(lambda _: None)
    assert experiment.attrs.dtypes.equals(text_frame[experiment.attrs.columns].dtypes)
    pd.testing.assert_frame_equal(experiment.attrs.reset_index(drop=True), text_frame.loc[
        make_label(text_frame, project.label)[1], experiment.attrs.columns].reset_index(
        drop=True))
