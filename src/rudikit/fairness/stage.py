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
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from rudikit.config import Fairness, Mitigation, OperatingPoint, did_you_mean
from rudikit.evaluation.metrics import MetricValue
from rudikit.fairness.audit import AuditResult, audit
from rudikit.fairness.groups import MISSING_GROUP, attribute_name, join_group
from rudikit.fairness.mitigation.holdout import Judged, judge
from rudikit.fairness.mitigation.optimizer import GroupThresholdOptimizer, centre_threshold
from rudikit.fairness.mitigation.rates import constraint_gap, group_labels
from rudikit.fairness.mitigation.scoring import objective_from_totals
from rudikit.fairness.mitigation.targets import (
    CONSTRAINT_FOR_METRIC,
    constraint_for,
    fit_requirement,
)
from rudikit.fairness.requirements import (
    STATUS_MET,
    Requirement,
    RequirementResult,
    evaluate_requirements,
)
from rudikit.fairness.selection import binarize

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
        if fairness.mitigation.requirement is not None:
            try:
                target_requirement(fairness)
            except FairnessConfigError as exc:
                problems.append(str(exc))
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


def requirements_met(fairness: Fairness, cells: pd.DataFrame, threshold: float
                     ) -> list[RequirementResult]:
    """Every requirement at ``score >= threshold`` on cases counted per value of the fairness
    columns and ``__outcome__`` (0/1), then per ``__flagged__`` (the decision, 0/1) or, for a
    ``roc_auc`` requirement, per ``__score__``: ``__cases__`` cases each (what the monitor
    reads of a production window; names no input can share). Rows per score are expanded to
    their cases for the ROC AUC."""
    frame = cells.rename(columns={"__outcome__": LABEL})
    reqs = requirements(fairness)
    if "__score__" in frame:
        frame = frame.loc[frame.index.repeat(frame.pop("__cases__"))].reset_index(drop=True)
        return evaluate_requirements(frame.rename(columns={"__score__": SCORE}), LABEL, SCORE,
                                     reqs, correction=fairness.correction, threshold=threshold)
    return evaluate_requirements(frame, LABEL, "__flagged__", reqs,
                                 correction=fairness.correction, cases="__cases__")


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
    frontier: pd.DataFrame  # per tolerance: gap, objective and requirements met, fitting rows
    settings: dict[str, object]  # what defines the mitigation (the model group's parameters)
    details: dict[str, object] = field(default_factory=dict)  # what the fit found: margins...
    # every requirement judged on the rows the thresholds were fitted on, and on held-out rows
    # (validation-fitted thresholds on the test rows; cross-fitted halves without validation)
    fitting: list[Judged] = field(default_factory=list)
    held_out: list[Judged] = field(default_factory=list)
    fitting_score: np.ndarray | None = None  # the fitting rows' adjusted scores

    @property
    def fitted_on_validation(self) -> bool:
        return self.settings.get("fitted_on") == "validation"


def _optimizer(m: Mitigation, at: OperatingPoint, tolerance: float) -> GroupThresholdOptimizer:
    kwargs: dict[str, object] = {}
    if at.top_k is not None:
        kwargs["top_k"] = at.top_k
    if at.top_pct is not None:
        kwargs["top_pct"] = at.top_pct
    return GroupThresholdOptimizer(objective=m.objective, constraint=m.constraint,
                                   tolerance=tolerance, min_group_size=m.min_group_size,
                                   **kwargs)


def target_requirement(fairness: Fairness) -> Requirement | None:
    """The requirement ``fairness.mitigation.requirement`` names, or None when the mitigation
    uses attributes and a constraint."""
    m = fairness.mitigation
    if m is None or m.requirement is None:
        return None
    reqs = requirements(fairness)
    for req in reqs:
        if req.name == m.requirement:
            if fairness.at.threshold is None:
                raise FairnessConfigError(
                    "fairness.mitigation.requirement: targeting a requirement needs a score "
                    f"threshold operating point (fairness.at.threshold), not {fairness.at.label()}")
            try:
                constraint_for(req)
            except ValueError as exc:
                raise FairnessConfigError(f"fairness.mitigation.requirement: {exc}") from None
            return req
    names = [r.name for r in reqs]
    raise FairnessConfigError(f"fairness.mitigation.requirement: no requirement named "
                              f"{m.requirement!r}{did_you_mean(m.requirement, names)}; "
                              f"requirements: {names}")


@dataclass
class _Fitted:
    """Thresholds of either kind with the one way to apply them to rows."""

    attributes: list[str]
    thresholds: dict[str, float]
    fallback: float
    settings: dict[str, object]
    details: dict[str, object]

    def adjusted(self, attrs: pd.DataFrame, score: np.ndarray) -> np.ndarray:
        """Each row's score with its group's threshold moved to 0.5 (:func:`centre_threshold`)."""
        labels = group_labels(attrs[self.attributes].reset_index(drop=True).astype("string")
                              .fillna(MISSING_GROUP))
        per_row = np.array([self.thresholds.get(g, self.fallback) for g in labels], dtype=float)
        return centre_threshold(score, per_row)


def _fit(fairness: Fairness, rows: ScoredRows, holdout_ratio: float,
         tolerance: float | None = None) -> _Fitted:
    """Fit the configured mitigation on these rows (at ``tolerance`` for a frontier point)."""
    m = fairness.mitigation
    assert m is not None
    y, score = np.asarray(rows.y, dtype=int), np.asarray(rows.score, dtype=float)
    req = target_requirement(fairness)
    if req is not None:
        if tolerance is not None:
            req = replace(req, max_gap_pp=100 * tolerance)
        fitted = fit_requirement(rows.attrs, y, score, req, objective=m.objective,
                                 confidence=m.confidence if tolerance is None else None,
                                 holdout_ratio=holdout_ratio, min_group_size=m.min_group_size)
        return _Fitted(fitted.columns, fitted.thresholds, fitted.fallback,
                       {"requirement": req.name, "confidence": m.confidence}, fitted.settings())
    groups = rows.attrs[m.attributes].reset_index(drop=True).astype("string") \
        .fillna(MISSING_GROUP)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = _optimizer(m, fairness.at, m.tolerance if tolerance is None else tolerance) \
            .fit(score, y, groups)
    return _Fitted(list(m.attributes), {str(g): float(t) for g, t in opt.thresholds_.items()},
                   float(opt.fallback_threshold_),
                   {"constraint": m.constraint, "tolerance": m.tolerance},
                   {"tolerance_used": float(opt.tolerance_used_),
                    "constraint_satisfied": bool(opt.constraint_satisfied_)})


def _decisions(at: OperatingPoint, adjusted: np.ndarray) -> np.ndarray:
    """The mitigated decisions: adjusted >= 0.5, or a fixed-size list of the adjusted scores."""
    if at.threshold is not None:
        return (adjusted >= 0.5).astype(np.int64)
    return binarize(adjusted, top_k=at.top_k, top_pct=at.top_pct).astype(np.int64)


def _judge(fairness: Fairness, rows: ScoredRows, decisions: np.ndarray) -> list[Judged]:
    if not fairness.requirements:
        return []
    return judge(rows.attrs, np.asarray(rows.y, dtype=int), decisions, requirements(fairness),
                 correction=fairness.correction)


def _frontier(fairness: Fairness, rows: ScoredRows, ratio: float) -> pd.DataFrame:
    """Per tolerance of ``mitigation.frontier`` (kind "mitigated"), the unmitigated model at
    the operating point, and thresholds targeting each requirement in turn (kind "target",
    with ``mitigation.confidence``'s margin): the largest gap of the configured constraint's
    metric, the objective and how many requirements are met, all on ``rows``."""
    m = fairness.mitigation
    assert m is not None
    y, score = np.asarray(rows.y, dtype=int), np.asarray(rows.score, dtype=float)
    req = target_requirement(fairness)
    constraint = constraint_for(req) if req is not None else m.constraint
    columns = (list(req.unit or ()) + list(req.compare or ())) if req else list(m.attributes)
    labels = group_labels(rows.attrs[columns].reset_index(drop=True).astype("string")
                          .fillna(MISSING_GROUP))
    out = []
    # the unmitigated model decides at the project's operating point
    points = [("unmitigated", np.nan,
               binarize(score, **fairness.at.kwargs()).astype(np.int64))]
    for tol in m.frontier:
        fitted = _fit(fairness, rows, ratio, tolerance=float(tol))
        points.append(("mitigated", float(tol),
                       _decisions(fairness.at, fitted.adjusted(rows.attrs, score))))
    targets = []  # one variant per requirement per-group thresholds can target
    if fairness.at.threshold is not None:
        for req in requirements(fairness):
            if req.metric in CONSTRAINT_FOR_METRIC:
                target = fit_requirement(rows.attrs, y, score, req, objective=m.objective,
                                         confidence=m.confidence, holdout_ratio=ratio,
                                         min_group_size=m.min_group_size)
                points.append(("target", np.nan, target.decide(rows.attrs, score)))
                targets.append(req.name)
    names = [None] * (len(points) - len(targets)) + targets
    for (kind, tol, d), name in zip(points, names, strict=True):
        judged = _judge(fairness, rows, d)
        tp, sel, pos = int((d * y).sum()), int(d.sum()), int(y.sum())
        objective = objective_from_totals(m.objective, np.array([sel]), np.array([tp]),
                                          np.array([sel - tp]), len(y), pos, len(y) - pos)
        out.append({"kind": kind, "tolerance": tol, "target": name,
                    "achieved_gap": constraint_gap(y, d, labels, constraint,
                                                   min_group_size=m.min_group_size),
                    "objective_value": float(objective[0]),
                    "requirements_met": sum(j.status == STATUS_MET for j in judged),
                    "requirements": len(judged)})
    return pd.DataFrame(out)


def mitigate(fairness: Fairness, test: ScoredRows, validation: ScoredRows | None = None,
             seed: int = 0) -> MitigationResult:
    """Per-group thresholds for the chosen model: fitted on ``validation`` and applied to
    ``test``, or cross-fitted on two halves of ``test`` when there are no validation rows.
    Every requirement is judged on the fitting rows and on the held-out rows; the
    fairness-performance frontier is drawn on the rows the thresholds are fitted on."""
    m = fairness.mitigation
    if m is None:
        raise FairnessConfigError("fairness.mitigation is not configured")
    score = np.asarray(test.score, dtype=float)
    fold_thresholds = []
    if validation is not None:
        fit_rows = validation
        full = _fit(fairness, validation, len(test.y) / max(len(validation.y), 1))
        adjusted = full.adjusted(test.attrs, score)
    else:
        fit_rows = test
        fold = np.random.default_rng(seed).permutation(len(test.y)) % 2
        adjusted = np.empty_like(score)
        for k in (0, 1):
            fit, apply = fold != k, fold == k
            half = ScoredRows(test.attrs.iloc[np.flatnonzero(fit)],
                              np.asarray(test.y)[fit], score[fit])
            opt = _fit(fairness, half, float(apply.sum()) / max(int(fit.sum()), 1))
            adjusted[apply] = opt.adjusted(test.attrs.iloc[np.flatnonzero(apply)], score[apply])
            fold_thresholds.append(opt.thresholds)
        full = _fit(fairness, test, 1.0)
    fit_adjusted = full.adjusted(fit_rows.attrs, np.asarray(fit_rows.score, dtype=float))
    fitting = _judge(fairness, fit_rows, _decisions(fairness.at, fit_adjusted))
    held_out = _judge(fairness, test, _decisions(fairness.at, adjusted))
    curve = _frontier(fairness, fit_rows, len(test.y) / max(len(fit_rows.y), 1))
    return MitigationResult(
        adjusted, full.thresholds, fold_thresholds, curve,
        {"attributes": full.attributes, **full.settings, "objective": m.objective,
         "at": fairness.at.label(),
         "fitted_on": "validation" if validation is not None else "test (cross-fitted)",
         # the single threshold for a group the optimizer never saw (served as such)
         "fallback_threshold": float(full.fallback)},
        full.details, fitting, held_out, fit_adjusted)


def mitigation_gap_metrics(result: MitigationResult) -> list[MetricValue]:
    """Each requirement's largest gap (points) with its interval, on the fitting rows
    (``mitigation_fitting_gap_pp``) and the held-out rows (``mitigation_held_out_gap_pp``),
    the requirement's name as the parameter (the verdicts are stored with the requirements);
    with a margin, the margin per unit (``mitigation_margin_pp``) and each group found not
    checkable (``mitigation_not_checkable``, the group as the parameter)."""
    out = []
    details = result.details
    for unit, margin in dict(details.get("margin") or {}).items():  # type: ignore[call-overload]
        out.append(MetricValue("mitigation_margin_pp", str(unit)[:100], 100 * float(margin),
                               None, None, 0))
    for group in list(details.get("not_checkable") or []):  # type: ignore[call-overload]
        out.append(MetricValue("mitigation_not_checkable", str(group)[:100], 1.0, None, None, 0))
    for metric, judged in (("mitigation_fitting_gap_pp", result.fitting),
                           ("mitigation_held_out_gap_pp", result.held_out)):
        for j in judged:
            def num(v: float) -> float | None:
                return None if not np.isfinite(v) else float(v)
            out.append(MetricValue(metric, j.result.requirement.name[:100], float(j.gap_pp),
                                   num(j.lower_pp), num(j.upper_pp), j.rows))
    return out
