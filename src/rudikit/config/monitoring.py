"""The ``monitoring`` section: alert thresholds for inputs, drift, realised performance and list
stability, and the retraining policy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rudikit.config.base import Strict


class SourceExpectation(Strict):
    """What a healthy input source looks like: how fresh its newest record is and how many rows
    each period holds. Row-count bounds not given are learned from the source's own history."""

    max_staleness_days: int | None = Field(None, ge=0)
    period: Literal["month", "week", "day"] = "month"
    row_count_bounds: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SourceExpectation:
        if self.row_count_bounds and self.row_count_bounds[0] > self.row_count_bounds[1]:
            raise ValueError("row_count_bounds must be [low, high] with low <= high")
        return self


class StabilityBounds(Strict):
    """List stability between consecutive lists: Jaccard of the top ``k`` and Spearman rank
    correlation. The lower bound comes from the values' own history (the low ``quantiles`` of
    it less ``tolerance``, once ``min_history`` values exist), or from ``jaccard_min`` /
    ``spearman_min`` when set. A list identical to the one before, when no earlier pair was,
    is flagged too: the inputs may have stopped updating."""

    k: int = Field(100, ge=1)
    period: Literal["day", "week", "month"] = "week"
    quantiles: tuple[float, float] = (5.0, 95.0)
    min_history: int = Field(8, ge=2)
    tolerance: float = Field(0.05, ge=0)  # how far below the learned band a value must fall
    jaccard_min: float | None = Field(None, ge=0, le=1)
    spearman_min: float | None = Field(None, ge=-1, le=1)


class Retraining(Strict):
    """Champion against challenger on the newest production outcomes (the same holdout for both):
    the challenger is promoted only if ``metric`` is no more than ``max_drop`` below the
    champion's and every fairness requirement passes."""

    holdout_days: int = Field(30, ge=1)
    metric: Literal["roc_auc", "average_precision", "precision", "recall", "f1"] = "roc_auc"
    max_drop: float = Field(0.0, ge=0)
    min_outcomes: int = Field(200, ge=1)


class Monitoring(Strict):
    """Thresholds that raise alerts (`rudi monitor`) and the retraining policy (`rudi retrain`)."""

    window_days: int = Field(30, ge=1)
    psi_warning: float = Field(0.1, gt=0)
    psi_critical: float = Field(0.25, gt=0)
    min_window_rows: int = Field(100, ge=1)
    precision_drop_pp: float = Field(10.0, gt=0)
    # a temporal list's realised precision@k is an alert when a one-sided binomial test puts
    # it below the lowest test-year precision at this significance level
    precision_alpha: float = Field(0.01, gt=0, lt=1)
    min_outcomes: int = Field(50, ge=1)
    segments: list[str] = []
    performance_period: Literal["day", "week", "month"] = "week"
    sources: dict[str, SourceExpectation] = {}
    stability: StabilityBounds = StabilityBounds()
    retraining: Retraining = Retraining()
    webhook_url: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Monitoring:
        if self.psi_warning >= self.psi_critical:
            raise ValueError("psi_warning must be below psi_critical")
        return self

