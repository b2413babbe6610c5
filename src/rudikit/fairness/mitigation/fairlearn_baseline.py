"""fairlearn's ``ThresholdOptimizer`` behind this package's signature: the reference that tests
and the benchmark compare :class:`~rudikit.fairness.mitigation.optimizer.GroupThresholdOptimizer`
with."""

from __future__ import annotations

from typing import Any, Self

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from rudikit.fairness.inputs import validate_fairness_inputs
from rudikit.fairness.mitigation.optimizer import check_scores_arg
from rudikit.fairness.mitigation.rates import CONSTRAINTS, check_choice, group_labels


class _ScoreEstimator(BaseEstimator):
    """Identity 'model' for fairlearn: the single feature column is the score."""

    def fit(self, X: Any, y: Any = None) -> _ScoreEstimator:
        validate_data(self, X, dtype=float)
        self.fitted_ = True
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, dtype=float, reset=False)[:, 0]


class FairlearnBaseline:
    """fairlearn's ``ThresholdOptimizer`` on precomputed scores, with this module's signature.

    Used as the reference in tests and the benchmark: it gives randomised (interpolated)
    thresholds; ``tolerance`` bounds the range of one rate (not supported by fairlearn for
    equalised odds, which it equalises exactly). Objectives: accuracy, balanced_accuracy.
    """

    _CONSTRAINTS = {
        "demographic_parity": "demographic_parity",
        "equal_opportunity": "true_positive_rate_parity",
        "equalized_odds": "equalized_odds",
    }
    _OBJECTIVES = {"accuracy": "accuracy_score", "balanced_accuracy": "balanced_accuracy_score"}

    def __init__(
        self,
        constraint: str = "demographic_parity",
        objective: str = "accuracy",
        tolerance: float | None = None,
        grid_size: int = 1000,
    ) -> None:
        self.constraint = check_choice("constraint", constraint, CONSTRAINTS)
        if objective not in self._OBJECTIVES:
            raise ValueError(f"objective: fairlearn supports {list(self._OBJECTIVES)}")
        self.objective = objective
        self.tolerance = tolerance
        self.grid_size = grid_size

    def fit(self, scores: Any, y: Any, groups: Any) -> Self:
        """Fit fairlearn's optimizer with the same intersectional group labels as ours."""
        from fairlearn.postprocessing import ThresholdOptimizer

        inputs = validate_fairness_inputs(y, y_score=scores, min_rows=1,
                                          names={"y_true": "y", "y_score": "scores"})
        s, yy = inputs.y_score, inputs.y_true
        assert s is not None and yy is not None
        labels = group_labels(groups)
        self.optimizer_ = ThresholdOptimizer(
            estimator=_ScoreEstimator().fit(s.reshape(-1, 1)),
            constraints=self._CONSTRAINTS[self.constraint],
            objective=self._OBJECTIVES[self.objective],
            grid_size=self.grid_size,
            prefit=True,
            predict_method="predict",
            tol=self.tolerance if self.constraint != "equalized_odds" else None,
        )
        self.optimizer_.fit(s.reshape(-1, 1), yy, sensitive_features=labels)
        return self

    def predict(self, scores: Any, groups: Any, random_state: int | None = 0) -> np.ndarray:
        """Randomised 0/1 decisions (fairlearn mixes two thresholds per group)."""
        s = check_scores_arg(scores)
        out = self.optimizer_.predict(
            s.reshape(-1, 1), sensitive_features=group_labels(groups), random_state=random_state
        )
        return np.asarray(out, dtype=np.int64)
