"""The fairness stage of a run: audit every model, check the project's requirements, and
mitigate the chosen model, all from ``rudi.yaml``'s ``fairness`` section.

Mitigated thresholds are fitted on the validation rows and applied to the test rows, as they
would be in deployment, so the mitigated model's test figures are out of sample like every other
model's: fitting and scoring thresholds on the same rows would flatter it. A split without a
validation partition cross-fits on the test rows instead (fit on one half, decide on the other,
and the reverse).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rudikit.config import Fairness, Mitigation, OperatingPoint, did_you_mean
from rudikit.fairness.audit import AuditResult, audit
from rudikit.fairness.groups import MISSING_GROUP, attribute_name, join_group
from rudikit.fairness.mitigation.frontier import frontier
from rudikit.fairness.mitigation.optimizer import GroupThresholdOptimizer, centre_threshold
from rudikit.fairness.mitigation.rates import group_labels
from rudikit.fairness.requirements import Requirement, RequirementResult, evaluate_requirements

LABEL, SCORE = "__label__", "__score__"


class FairnessConfigError(ValueError):
    pass


def check_fairness_columns(fairness: Fairness, columns: set[str]) -> list[str]:
    """Key-path problems for fairness columns that are not in the data."""
    problems = []
    for i, column in enumerate(fairness.attributes):
        if column not in columns:
            problems.append(f"fairness.attributes[{i}]: no column {column!r} in the data")
    for i, group in enumerate(fairness.intersections):
        for column in group:
            if column not in columns:
                problems.append(f"fairness.intersections[{i}]: no column {column!r} in the data")
    for i, req in enumerate(fairness.requirements):
        for key in ("unit", "compare"):
            value = getattr(req, key)
            for column in [value] if isinstance(value, str) else (value or []):
                if column not in columns:
                    problems.append(f"fairness.requirements[{i}].{key}: no column {column!r} "
                                    "in the data")
    if fairness.mitigation:
        for i, column in enumerate(fairness.mitigation.attributes):
            if column not in columns:
                problems.append(f"fairness.mitigation.attributes[{i}]: no column {column!r} "
                                "in the data")
    return problems


def check_reference_groups(fairness: Fairness, frame: pd.DataFrame) -> list[str]:
    """Key-path problems for ``fairness.reference_groups`` the data do not hold. The audit
    would refuse them only after every model is fitted; here they are found from the data, and
    the data's own spelling is suggested (a different case first)."""
    specs = [[a] for a in fairness.attributes] + [list(g) for g in fairness.intersections]
    audited = {attribute_name(spec): spec for spec in specs}
    problems = []
    for attr, group in fairness.reference_groups.items():
        key = f"fairness.reference_groups.{attr}"
        columns = audited.get(attr)
        if columns is None:
            problems.append(f"{key}: {attr!r} is not an audited attribute (fairness.attributes "
                            f"or intersections){did_you_mean(attr, audited)}")
            continue
        if any(c not in frame.columns for c in columns):
            continue  # check_fairness_columns names the missing column
        rows = frame[columns].drop_duplicates()
        groups = sorted({join_group(None if pd.isna(v) else v for v in row)
                         for row in rows.itertuples(index=False, name=None)})
        if group not in groups:
            hint = did_you_mean(group, groups) or (
                f"; groups: {', '.join(repr(g) for g in groups[:10])}"
                + (f" and {len(groups) - 10} more" if len(groups) > 10 else ""))
            problems.append(f"{key}: no group {group!r} in the data{hint}")
    return problems


def requirements(fairness: Fairness) -> list[Requirement]:
    out = []
    for i, r in enumerate(fairness.requirements):
        try:
            out.append(Requirement(metric=r.metric, max_gap_pp=r.max_gap_pp, unit=r.unit,
                                   compare=r.compare, min_n=r.min_size, name=r.name))
        except ValueError as exc:
            raise FairnessConfigError(f"fairness.requirements[{i}]: {exc}") from None
    return out


@dataclass
class ModelFairness:
    audit: AuditResult | None
    requirements: list[RequirementResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.requirements)


def _frame(attrs: pd.DataFrame, y: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    frame = attrs.reset_index(drop=True).copy()
    frame[LABEL] = np.asarray(y, dtype=int)
    frame[SCORE] = np.asarray(score, dtype=float)
    return frame


def assess(fairness: Fairness, attrs: pd.DataFrame, y: np.ndarray, score: np.ndarray,
           at: OperatingPoint | None = None) -> ModelFairness:
    """Audit one model's test predictions and evaluate every requirement on them."""
    at = at or fairness.at
    frame = _frame(attrs, y, score)
    result = None
    if fairness.attributes or fairness.intersections:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = audit(frame, LABEL, SCORE, list(fairness.attributes),
                           intersections=[list(g) for g in fairness.intersections] or None,
                           reference=dict(fairness.reference_groups) or "majority",
                           min_group_size=fairness.min_group_size,
                           correction=fairness.correction, **at.kwargs())
    reqs = (evaluate_requirements(frame, LABEL, SCORE, requirements(fairness),
                                  correction=fairness.correction, **at.kwargs())
            if fairness.requirements else [])
    return ModelFairness(result, reqs)


@dataclass
class ScoredRows:
    """Rows a model has scored: their fairness attributes, labels and scores."""

    attrs: pd.DataFrame
    y: np.ndarray
    score: np.ndarray


@dataclass
class MitigationResult:
    adjusted_score: np.ndarray  # the test rows'; decisions are adjusted_score >= 0.5
    thresholds: dict[str, float]  # for deployment: fitted on the validation (else all test) rows
    fold_thresholds: list[dict[str, float]]  # the two cross-fitted halves; empty with validation
    frontier: pd.DataFrame
    settings: dict[str, object]


def _optimizer(m: Mitigation, at: OperatingPoint, tolerance: float) -> GroupThresholdOptimizer:
    kwargs: dict[str, object] = {}
    if at.top_k is not None:
        kwargs["top_k"] = at.top_k
    if at.top_pct is not None:
        kwargs["top_pct"] = at.top_pct
    return GroupThresholdOptimizer(objective=m.objective, constraint=m.constraint,
                                   tolerance=tolerance, min_group_size=m.min_group_size,
                                   **kwargs)


def _centre(score: np.ndarray, labels: np.ndarray, opt: GroupThresholdOptimizer) -> np.ndarray:
    """Each row's score with its group's threshold moved to 0.5 (:func:`centre_threshold`)."""
    thresholds = np.array([opt.thresholds_.get(g, opt.fallback_threshold_) for g in labels],
                          dtype=float)
    return centre_threshold(score, thresholds)


def mitigate(fairness: Fairness, test: ScoredRows, validation: ScoredRows | None = None,
             seed: int = 0) -> MitigationResult:
    """Per-group thresholds for the chosen model: fitted on ``validation`` and applied to
    ``test``, or cross-fitted on two halves of ``test`` when there are no validation rows. The
    fairness-performance frontier is drawn on the rows the thresholds are fitted on."""
    m = fairness.mitigation
    if m is None:
        raise FairnessConfigError("fairness.mitigation is not configured")
    at = fairness.at

    def prepared(rows: ScoredRows) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
        groups = rows.attrs[m.attributes].reset_index(drop=True).astype("string") \
            .fillna(MISSING_GROUP)
        return (groups, group_labels(groups), np.asarray(rows.y, dtype=int),
                np.asarray(rows.score, dtype=float))

    groups, labels, y, score = prepared(test)
    fold_thresholds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if validation is not None:
            fit_groups, _, fit_y, fit_score = prepared(validation)
            full = _optimizer(m, at, m.tolerance).fit(fit_score, fit_y, fit_groups)
            adjusted = _centre(score, labels, full)
        else:
            fit_groups, fit_y, fit_score = groups, y, score
            fold = np.random.default_rng(seed).permutation(len(y)) % 2
            adjusted = np.empty_like(score)
            for k in (0, 1):
                fit, apply = fold != k, fold == k
                opt = _optimizer(m, at, m.tolerance).fit(score[fit], y[fit], groups[fit])
                adjusted[apply] = _centre(score[apply], labels[apply], opt)
                fold_thresholds.append({str(g): float(t) for g, t in opt.thresholds_.items()})
            full = _optimizer(m, at, m.tolerance).fit(score, y, groups)
        curve = frontier(fit_score, fit_y, fit_groups, objective=m.objective,
                         constraint=m.constraint, tolerances=tuple(m.frontier),
                         min_group_size=m.min_group_size,
                         **{k: v for k, v in at.kwargs().items() if k != "threshold"})
    return MitigationResult(
        adjusted, {str(g): float(t) for g, t in full.thresholds_.items()}, fold_thresholds,
        curve, {"attributes": list(m.attributes), "constraint": m.constraint,
                "objective": m.objective, "tolerance": m.tolerance, "at": at.label(),
                "fitted_on": "validation" if validation is not None else "test (cross-fitted)",
                # the single threshold for a group the optimizer never saw (served as such)
                "fallback_threshold": float(full.fallback_threshold_)})
