"""The ``fairness`` section: where decisions are made, the groups audited, the requirements
that must hold and the mitigation to apply."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rudikit.config.base import Strict


class OperatingPoint(Strict):
    """Where decisions are made: a score threshold, a top-k list or a top-% list (exactly one)."""

    threshold: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=1)
    top_pct: float | None = Field(None, gt=0, le=100)

    @model_validator(mode="after")
    def _one(self) -> OperatingPoint:
        given = [k for k in ("threshold", "top_k", "top_pct") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of threshold, top_k, top_pct (got {len(given)})")
        return self

    def kwargs(self) -> dict[str, float | int]:
        return {k: v for k, v in self.model_dump().items() if v is not None}

    def label(self) -> str:
        (key, value), = self.kwargs().items()
        return f"{key}={value:g}"


class FairnessRequirement(Strict):
    """A bound on the largest gap (max - min, percentage points) of a metric between groups:
    the units themselves (``compare`` empty), or the ``compare`` groups within each unit."""

    name: str = ""
    metric: str
    max_gap_pp: float = Field(gt=0)
    unit: list[str] | str | None = None
    compare: list[str] | str | None = None
    min_size: int = Field(50, ge=0)  # of the metric's denominator, e.g. flagged cases

    @model_validator(mode="after")
    def _something_to_compare(self) -> FairnessRequirement:
        if not self.unit and not self.compare:
            raise ValueError("give a 'unit', attributes to 'compare', or both")
        return self


Constraint = Literal["demographic_parity", "equal_opportunity", "equalized_odds",
                     "precision_parity", "fpr_parity"]
Objective = Literal["accuracy", "balanced_accuracy", "f1", "precision_at_k", "recall_at_k"]


class Mitigation(Strict):
    """Per-group thresholds on the chosen model's scores (a new model group).

    Either ``attributes`` with a ``constraint`` and ``tolerance``, or ``requirement``: the name
    of one of ``fairness.requirements``, whose metric, grouping and bound the thresholds then
    target (e.g. precision per station). ``confidence`` (e.g. 0.9) fits to a tighter tolerance
    so that the gap on new rows meets the bound with that probability, from the groups' sizes;
    groups too small for that are reported as not checkable."""

    attributes: list[str] = []
    requirement: str | None = None
    constraint: Constraint = "demographic_parity"
    objective: Objective = "accuracy"
    tolerance: float = Field(0.05, ge=0, le=1)
    confidence: float | None = Field(None, gt=0, lt=1)
    min_group_size: int = Field(50, ge=1)
    frontier: list[float] = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 1.0]

    @model_validator(mode="after")
    def _target(self) -> Mitigation:
        if not self.attributes and self.requirement is None:
            raise ValueError("give 'attributes' (with a constraint) or a 'requirement' to target")
        if self.attributes and self.requirement is not None:
            raise ValueError("give 'attributes' or 'requirement', not both (a requirement "
                             "brings its own groups)")
        if self.confidence is not None and self.requirement is None:
            raise ValueError("'confidence' sets the margin to a requirement's bound: give the "
                             "'requirement' to target")
        return self


class Fairness(Strict):
    """``correction``: how the tests behind "not met" and "unfair" are corrected for the many
    comparisons of one requirement (or one attribute and metric of the audit): ``holm`` (the
    family-wise error, default) or ``fdr_bh`` (Benjamini-Hochberg, the false discovery
    rate)."""

    attributes: list[str] = []
    intersections: list[list[str]] = []
    reference_groups: dict[str, str] = {}
    min_group_size: int = Field(50, ge=1)
    at: OperatingPoint = OperatingPoint(threshold=0.5)
    requirements: list[FairnessRequirement] = []
    mitigation: Mitigation | None = None
    correction: Literal["holm", "fdr_bh"] = "holm"

    @property
    def columns(self) -> list[str]:
        """Every data column the fairness stage reads, in first-use order."""
        cols: list[str] = list(self.attributes)
        for group in self.intersections:
            cols += group
        for r in self.requirements:
            for part in (r.unit, r.compare):
                cols += [part] if isinstance(part, str) else list(part or [])
        if self.mitigation:
            cols += self.mitigation.attributes
        return list(dict.fromkeys(cols))
