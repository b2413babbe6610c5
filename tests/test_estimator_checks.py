"""Our estimators keep scikit-learn's contract (``parametrize_with_checks``): they go into
scikit-learn pipelines, grid checks, clones and skops artefacts, which rely on it.

Covered: the three baselines (``CategoryRateClassifier``, ``ScoreColumnClassifier``,
``FeatureRankClassifier``, binary scorers that accept NaN, declared by their tags) and the
identity model that fairlearn's ``ThresholdOptimizer`` wraps (``_ScoreEstimator``).

Not covered, because scikit-learn's checks call ``fit(X, y)`` on numeric arrays and these are
not such estimators: ``TabularEncoder`` (a transformer of a DataFrame by column name, no
predict; tested in test_service_models and test_explain), ``GroupThresholdOptimizer`` and
``FairlearnBaseline`` (``fit(scores, y, groups)``, post-processing of scores by group; tested
in test_fairness_mitigation), and the drift reference of ``rudikit.monitoring.drift``
(``fit(frame, categorical=, numeric=)``; tested in test_monitoring).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from rudikit.fairness.mitigation.fairlearn_baseline import _ScoreEstimator
from rudikit.models.estimators import CategoryRateClassifier, ScoreColumnClassifier
from rudikit.models.temporal import FeatureRankClassifier

ESTIMATORS = [CategoryRateClassifier(), CategoryRateClassifier(column_index=1, smoothing=5.0),
              ScoreColumnClassifier(), FeatureRankClassifier(),
              FeatureRankClassifier(column_index=1, tie_break_indices=(0,)), _ScoreEstimator()]


def expected_failures(estimator: BaseEstimator) -> dict[str, str]:
    """The documented exceptions: check name -> why it does not apply."""
    if isinstance(estimator, ScoreColumnClassifier):
        return {"check_classifiers_one_label": "it ignores y by design (an existing score, "
                                               "rescaled), so it cannot learn a single label"}
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures)
def test_scikit_learn_contract(estimator: BaseEstimator, check: Any) -> None:
    check(estimator)


def test_the_baselines_accept_nan_and_refuse_inf() -> None:
    """NaN is the encoder's missing value (each baseline has a rule for it); inf is an error."""
    X = np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, np.nan], [0.0, 3.0]])
    y = np.array([0, 1, 1, 0])
    for estimator in map(clone, ESTIMATORS[:-1]):
        scores = estimator.fit(X, y).predict_proba(X)[:, 1]
        assert np.isfinite(scores).all()
        with pytest.raises(ValueError, match="infinity"):
            estimator.predict_proba(np.where(np.isnan(X), np.inf, X))


def test_two_labels_other_than_0_and_1_are_named_by_predict() -> None:
    X = np.array([[0.0], [0.0], [1.0], [1.0]])
    model = CategoryRateClassifier().fit(X, np.array(["no", "no", "yes", "yes"]))
    assert model.classes_.tolist() == ["no", "yes"]
    assert model.predict(X).tolist() == ["no", "no", "yes", "yes"]
    with pytest.raises(ValueError, match="two classes"):
        CategoryRateClassifier().fit(X, np.array(["no"] * 4))
    # a split with one 0/1 label still scores both columns, as before
    one = CategoryRateClassifier().fit(X, np.zeros(4, dtype=int))
    assert one.classes_.tolist() == [0, 1] and one.predict_proba(X).shape == (4, 2)


def test_a_column_index_beyond_x_is_refused_when_fitting() -> None:
    X, y = np.zeros((4, 1)), np.array([0, 1, 0, 1])
    for estimator in (CategoryRateClassifier(column_index=1),
                      FeatureRankClassifier(tie_break_indices=(1,))):
        with pytest.raises(ValueError, match=r"\[1\] .* 1 feature\(s\)"):
            estimator.fit(X, y)


def test_unfitted_baselines_raise_not_fitted() -> None:
    for estimator in map(clone, ESTIMATORS):
        with pytest.raises(NotFittedError):
            estimator.predict(np.zeros((2, 2)))
