"""Per-group thresholds that target one of the project's own fairness requirements.

A requirement (:class:`rudikit.fairness.requirements.Requirement`) names a metric, a grouping
and a bound: "precision per station within 10 points" compares the stations (thresholds per
station), "recall between ethnicities within each station within 10 points" compares the
ethnicities inside every station (thresholds per station x ethnicity, one search per station:
its constraint involves only its own rows, and a separable objective such as accuracy summed
over stations is maximised by maximising it in each). The metric picks the optimizer's
constraint: selection rate -> demographic parity, recall (or its complement the FNR) -> equal
opportunity, FPR (or TNR) -> FPR parity, precision (or FDR) -> precision parity.

With a ``confidence`` (e.g. 0.9) the thresholds are fitted to a tighter tolerance, the bound
less a margin derived from the groups' sizes (:mod:`rudikit.fairness.mitigation.margin`), so
that the gap on new rows meets the bound with about that probability; groups too small for the
bound to be checkable at all are left unconstrained and named in ``not_checkable``. The margin
depends on the fitted rates and denominators, which depend on the tolerance, so the tolerance
is tightened until a fit's own margin is covered (at most ``margin_rounds`` refits).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rudikit.fairness.groups import MISSING_GROUP, attribute_name, group_key
from rudikit.fairness.mitigation.margin import DENOMINATORS, RATE_COLUMNS, Margin, margin_for
from rudikit.fairness.mitigation.optimizer import GroupThresholdOptimizer
from rudikit.fairness.mitigation.prepare import best_single_threshold
from rudikit.fairness.mitigation.rates import DIMS, group_labels
from rudikit.fairness.requirements import Requirement

CONSTRAINT_FOR_METRIC = {
    "pprev": "demographic_parity",
    "tpr": "equal_opportunity",
    "fnr": "equal_opportunity",  # 1 - TPR: the same gap
    "fpr": "fpr_parity",
    "tnr": "fpr_parity",  # 1 - FPR
    "precision": "precision_parity",
    "fdr": "precision_parity",  # 1 - precision
}
"""The optimizer constraint whose gap is the requirement's gap, per requirement metric."""

ALL_ROWS = "(all)"


def constraint_for(requirement: Requirement) -> str:
    """The optimizer constraint of a requirement, or an error naming the metric."""
    try:
        return CONSTRAINT_FOR_METRIC[requirement.metric]
    except KeyError:
        raise ValueError(
            f"requirement {requirement.name!r}: metric {requirement.metric!r} cannot be targeted "
            f"by per-group thresholds; choose one of {sorted(CONSTRAINT_FOR_METRIC)}") from None


@dataclass
class RequirementThresholds:
    """Thresholds fitted to one requirement: one per compared group (per unit and group when
    the groups are compared within units), the group-blind ``fallback`` for any other group."""

    requirement: Requirement
    columns: list[str]  # the unit columns then the compare columns; labels join their values
    thresholds: dict[str, float]
    fallback: float
    bound: float
    tolerance: dict[str, float]  # per unit (or "(all)"): the gap the thresholds were fitted to
    margins: dict[str, Margin] = field(default_factory=dict)
    not_checkable: list[str] = field(default_factory=list)  # group labels
    constraint_satisfied: bool = True

    def labels(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's threshold key (its values of ``columns`` joined)."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"frame: missing column(s) {missing} of requirement "
                             f"{self.requirement.name!r}")
        return group_labels(_groups(frame, self.columns))

    def threshold_per_row(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's group threshold (``fallback`` for a group never fitted)."""
        labels = self.labels(frame)
        return np.array([self.thresholds.get(g, self.fallback) for g in labels], dtype=float)

    def decide(self, frame: pd.DataFrame, score: Any) -> np.ndarray:
        """0/1 decisions ``score >= the row's group threshold``."""
        s = np.asarray(score, dtype=float)
        return (s >= self.threshold_per_row(frame)).astype(np.int64)

    def settings(self) -> dict[str, Any]:
        """Plain data for the store and the report."""
        return {
            "requirement": self.requirement.name,
            "bound": self.bound,
            "tolerance": dict(self.tolerance),
            "confidence": (next(iter(self.margins.values())).confidence
                           if self.margins else None),
            "margin": {u: m.margin for u, m in self.margins.items()},
            "not_checkable": list(self.not_checkable),
            "constraint_satisfied": self.constraint_satisfied,
        }


def _groups(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame[columns].reset_index(drop=True).astype("string").fillna(MISSING_GROUP)


def fit_requirement(
    frame: pd.DataFrame,
    y: Any,
    score: Any,
    requirement: Requirement,
    *,
    objective: str = "accuracy",
    confidence: float | None = None,
    holdout_ratio: float = 1.0,
    min_group_size: int = 50,
    grid_size: int = 500,
    margin_rounds: int = 4,
) -> RequirementThresholds:
    """Per-group thresholds on the fitting rows whose gap meets ``requirement``.

    ``confidence``: fit to the bound less a margin so the gap on new rows meets the bound with
    this probability (None: fit to the bound itself). ``holdout_ratio``: the expected size of
    the rows the thresholds will be used on relative to the fitting rows (their group
    denominators enter the margin).
    """
    constraint = constraint_for(requirement)
    if holdout_ratio <= 0:
        raise ValueError(f"holdout_ratio: must be positive, got {holdout_ratio!r}")
    y = np.asarray(y, dtype=np.int64)
    score = np.asarray(score, dtype=float)
    unit_cols = list(requirement.unit or ())
    compare_cols = list(requirement.compare or ())
    columns = unit_cols + compare_cols
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"requirement {requirement.name!r}: no column(s) {missing} in the data")
    labels = group_labels(_groups(frame, columns))
    if unit_cols and compare_cols:  # groups compared within each unit: one search per unit
        unit_name = attribute_name(unit_cols)
        units = np.array([group_key(unit_name, u)
                          for u in group_labels(_groups(frame, unit_cols))], dtype=object)
    else:
        units = np.full(len(y), ALL_ROWS, dtype=object)
    bound = requirement.max_gap_pp / 100
    out = RequirementThresholds(requirement, columns, {},
                                best_single_threshold(score, y, objective), bound, {})
    for unit in pd.unique(units):
        rows = np.flatnonzero(units == unit)
        if len(np.unique(labels[rows])) < 2:  # nothing to compare: the unit's best threshold
            for g in np.unique(labels[rows]):
                out.thresholds[str(g)] = best_single_threshold(score[rows], y[rows], objective)
            continue
        _fit_unit(out, str(unit), score[rows], y[rows], labels[rows], constraint, objective,
                  confidence, holdout_ratio, min_group_size, grid_size, margin_rounds)
    return out


def _fit_unit(out: RequirementThresholds, unit: str, score: np.ndarray, y: np.ndarray,
              labels: np.ndarray, constraint: str, objective: str, confidence: float | None,
              holdout_ratio: float, min_group_size: int, grid_size: int, rounds: int) -> None:
    """Fit one unit's groups (in place), refitting with the margin when a confidence is set.

    Groups found not checkable stay in the search (dropping one would leave it at the
    group-blind threshold, far outside the others' window) but are left out of the margin,
    which they would otherwise make as large as the bound."""

    def fit(tolerance: float) -> GroupThresholdOptimizer:
        opt = GroupThresholdOptimizer(objective=objective, constraint=constraint,
                                      tolerance=tolerance, min_group_size=min_group_size,
                                      grid_size=grid_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return opt.fit(score, y, labels)

    opt = fit(out.bound)
    tolerance, margin = out.bound, None
    (dim,) = DIMS[constraint]

    def margin_of(opt: GroupThresholdOptimizer) -> Margin:
        rates = opt.group_rates_[opt.group_rates_["constrained"]]
        denominators = (rates["n"] - rates["positives"] if dim == "fpr"
                        else rates[DENOMINATORS[dim]]).to_numpy(dtype=float)
        return margin_for([str(g) for g in rates.index], rates[RATE_COLUMNS[dim]].to_numpy(),
                          denominators, denominators * holdout_ratio, out.bound,
                          float(confidence))  # type: ignore[arg-type]

    # The margin of a fit depends on its rates (a tighter tolerance can move every group to
    # another operating point), so the tolerance only tightens until the fit's own margin is
    # covered, or the rounds run out (then the figures say so: tolerance > bound - margin).
    for _ in range(rounds if confidence is not None else 0):
        margin = margin_of(opt)
        if tolerance <= margin.tolerance + 1e-12:
            break
        tolerance = margin.tolerance
        opt = fit(tolerance)
    else:
        if confidence is not None:
            margin = margin_of(opt)
    out.thresholds.update({str(g): float(t) for g, t in opt.thresholds_.items()})
    out.tolerance[unit] = tolerance
    if margin is not None:
        out.margins[unit] = margin
        out.not_checkable += list(margin.not_checkable)
    out.constraint_satisfied &= bool(opt.constraint_satisfied_)
