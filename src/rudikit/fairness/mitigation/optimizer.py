"""Per-group score thresholds maximising an objective under a fairness-gap tolerance.

:class:`GroupThresholdOptimizer` prepares each group's sorted scores once, runs the search
(:mod:`rudikit.fairness.mitigation.search`, :mod:`rudikit.fairness.mitigation.fixed_k`) and
predicts with the fitted thresholds or per-group quotas; the rules it follows (small and unseen
groups, fixed list size, infeasible tolerance) are in :mod:`rudikit.fairness.mitigation`.
"""

from __future__ import annotations

import warnings
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from rudikit.evaluation.metrics import k_for_percent
from rudikit.fairness.inputs import validate_fairness_inputs
from rudikit.fairness.mitigation.fixed_k import search_fixed_k
from rudikit.fairness.mitigation.prepare import Prepared, count_to_threshold, prepare
from rudikit.fairness.mitigation.problem import Solution
from rudikit.fairness.mitigation.rates import (
    CONSTRAINTS,
    FIXED_K_OBJECTIVES,
    GAPS,
    OBJECTIVES,
    check_choice,
    constraint_gap,
    encode_groups,
    group_rates,
)
from rudikit.fairness.mitigation.scoring import objective_from_totals
from rudikit.fairness.mitigation.search import search_thresholds

SERIAL_FORMAT = "rudikit.fairness.GroupThresholdOptimizer/1"


class UnseenGroupWarning(UserWarning):
    """A group at predict time was not seen in training: it got the overall threshold."""




def centre_threshold(score: Any, threshold: Any) -> Any:
    """One score adjusted so that its group's threshold lands on 0.5, keeping the order within
    the group: ``[0, t]`` maps linearly onto ``[0, 0.5]`` and ``[t, 1]`` onto ``[0.5, 1]``, so
    ``adjusted >= 0.5`` exactly when ``score >= t`` (an infinite ``t`` selects nobody: 0).

    Why not the shift ``score - t + 0.5``: it clips, collapsing a group's lowest or highest
    scores into ties, and moves whole groups past each other, so a mitigated ranking lost much
    more ROC AUC for the same decisions (COMPAS felony_365, 3 splits: 0.054 vs 0.011). Works on
    scalars (the service, one row at a time) and arrays alike."""
    score = np.asarray(score, dtype=float)
    t = np.asarray(threshold, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        below = 0.5 * score / t
        above = 0.5 + 0.5 * np.where(t < 1, (score - t) / (1 - t), 0.0)
    return np.clip(np.where(score >= t, above, below), 0.0, 1.0)


class GroupThresholdOptimizer(BaseEstimator):
    """Per-group score thresholds maximising an objective under a fairness-gap tolerance.

    Parameters
    ----------
    objective : "accuracy", "balanced_accuracy", "f1", "precision_at_k" or "recall_at_k"
        What to maximise on the training data. The ``*_at_k`` objectives need ``top_k`` or
        ``top_pct``; with a fixed list size every objective is equivalent to maximising TP.
    constraint : "demographic_parity", "equal_opportunity", "equalized_odds",
        "precision_parity" or "fpr_parity"
        Rates to equalise: selection rate; TPR; TPR and FPR; precision (flagged cases that
        are positive; threshold mode only, every group flags at least one row); FPR.
    tolerance : float in [0, 1]
        Largest allowed gap (``tolerance=1`` means unconstrained per-group thresholds).
    gap : "max_pairwise" or "mean_to_overall"
        ``max_g rate - min_g rate`` or ``max_g |rate_g - overall rate|``.
    top_k, top_pct : int or float, optional
        Fixed list size: select exactly ``top_k`` rows, or the top ``top_pct`` percent
        (:func:`rudikit.evaluation.metrics.k_for_percent`, at least one row).
    min_group_size : int
        Groups with fewer training rows get the overall threshold and are not constrained.
    grid_size : int
        Candidate thresholds per group (a quantile grid over the group's scores; every distinct
        score is used when there are fewer). Ignored in fixed-list-size mode (all counts used).
    n_targets : int
        For equalised odds, rate floors swept per axis (TPR x FPR); more is slower and closer
        to exact. One-dimensional constraints sweep every attainable rate.
    """

    def __init__(
        self,
        objective: str = "accuracy",
        constraint: str = "demographic_parity",
        tolerance: float = 0.05,
        gap: str = "max_pairwise",
        top_k: int | None = None,
        top_pct: float | None = None,
        min_group_size: int = 30,
        grid_size: int = 500,
        n_targets: int = 200,
    ) -> None:
        self.objective = objective
        self.constraint = constraint
        self.tolerance = tolerance
        self.gap = gap
        self.top_k = top_k
        self.top_pct = top_pct
        self.min_group_size = min_group_size
        self.grid_size = grid_size
        self.n_targets = n_targets

    # ---- validation

    def _validated(self) -> dict[str, Any]:
        """Check parameters; every error names the offending argument."""
        objective = check_choice("objective", self.objective, OBJECTIVES)
        constraint = check_choice("constraint", self.constraint, CONSTRAINTS)
        gap = check_choice("gap", self.gap, GAPS)
        tol = self.tolerance
        if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 <= tol <= 1:
            raise ValueError(f"tolerance: must be a number in [0, 1], got {tol!r}")
        if self.top_k is not None and self.top_pct is not None:
            raise ValueError("top_k: give top_k or top_pct, not both")
        if self.top_k is not None and (
            isinstance(self.top_k, bool)
            or not isinstance(self.top_k, int | np.integer)
            or self.top_k < 1
        ):
            raise ValueError(f"top_k: must be a positive integer, got {self.top_k!r}")
        if self.top_pct is not None and (
            isinstance(self.top_pct, bool)
            or not isinstance(self.top_pct, int | float)
            or not 0 < self.top_pct <= 100
        ):
            raise ValueError(f"top_pct: must be a percentage in (0, 100], got {self.top_pct!r}")
        fixed = self.top_k is not None or self.top_pct is not None
        if constraint == "precision_parity" and fixed:
            raise ValueError("constraint: precision_parity needs a score threshold, not a fixed "
                             "list size (top_k / top_pct)")
        if objective in FIXED_K_OBJECTIVES and not fixed:
            raise ValueError(f"objective: {objective!r} needs top_k or top_pct")
        for name in ("min_group_size", "grid_size", "n_targets"):
            value = getattr(self, name)
            low = 2 if name != "min_group_size" else 1
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ValueError(f"{name}: must be an integer >= {low}, got {value!r}")
        return {"objective": objective, "constraint": constraint, "gap": gap, "tol": float(tol)}

    def _k_for(self, n: int) -> int | None:
        if self.top_k is not None:
            if self.top_k > n:
                raise ValueError(f"top_k: {self.top_k} is larger than the {n} rows")
            return int(self.top_k)
        if self.top_pct is not None:
            return max(1, min(n, k_for_percent(n, self.top_pct)))
        return None

    # ---- fitting

    def fit(self, scores: Any, y: Any, groups: Any) -> Self:
        """Choose one threshold per group on training scores, labels and group attributes."""
        params = self._validated()
        prep, names = self._prepare_inputs(scores, y, groups, params)
        if prep.small:
            warnings.warn(
                f"{len(prep.small)} group(s) have fewer than min_group_size="
                f"{self.min_group_size} rows and get the overall threshold, unconstrained: "
                f"{[names[g] for g in prep.small][:10]}",
                UserWarning,
                stacklevel=2,
            )
        self._fit_prepared(prep, params)
        return self

    def _prepare_inputs(self, scores: Any, y: Any, groups: Any, params: dict[str, Any]
                        ) -> tuple[Prepared, list[str]]:
        """Validate inputs and sort each group's scores once; shared by ``fit`` and
        :func:`frontier`, which refits many tolerances on one preparation."""
        inputs = validate_fairness_inputs(y, y_score=scores, groups=groups, min_rows=1,
                                          names={"y_true": "y", "y_score": "scores"})
        s, yy = inputs.y_score, inputs.y_true
        assert s is not None and yy is not None
        yy = yy.astype(np.int64)
        codes, names, columns = encode_groups(groups, len(s))
        prep = prepare(
            s,
            yy,
            codes,
            names,
            columns,
            objective=params["objective"],
            constraint=params["constraint"],
            k=self._k_for(len(s)),
            min_group_size=int(self.min_group_size),
            grid_size=int(self.grid_size),
        )
        return prep, names

    def _fit_prepared(self, prep: Prepared, params: dict[str, Any]) -> None:
        if not prep.large:
            sol = Solution(np.zeros(0, dtype=np.int64), 0.0, 0.0, True, params["tol"])
        elif prep.k is None:
            sol = search_thresholds(
                prep.problem,
                params["objective"],
                params["tol"],
                params["gap"],
                int(self.n_targets),
            )
        else:
            sol = search_fixed_k(
                prep.problem,
                params["objective"],
                params["tol"],
                params["gap"],
                int(prep.budget or 0),
                int(self.n_targets),
            )
        if not sol.satisfied:
            warnings.warn(
                f"tolerance: no thresholds reach a gap of {params['tol']}; relaxed to "
                f"{sol.tolerance_used:.4g} (achieved gap {sol.gap:.4g})",
                UserWarning,
                stacklevel=3,
            )
        thresholds = {prep.names[g]: prep.fallback for g in prep.small}
        decisions = prep.small_selected.copy()
        order = np.argsort(prep.codes, kind="stable")
        sizes = np.bincount(prep.codes, minlength=len(prep.names))
        bounds = np.concatenate(([0], np.cumsum(sizes)))
        quota_rates: dict[str, float] = {}
        for cell_idx, g in enumerate(prep.large):
            cell = prep.problem.cells[cell_idx]
            count = int(sol.counts[cell_idx])
            thresholds[cell.label] = count_to_threshold(cell.scores_desc, count)
            rows = order[bounds[g] : bounds[g + 1]]
            ranked = rows[np.argsort(-prep.scores[rows], kind="stable")]
            decisions[ranked[:count]] = True
            quota_rates[cell.label] = count / cell.n
        self.thresholds_: dict[str, float] = {name: thresholds[name] for name in prep.names}
        self.fallback_threshold_: float = float(prep.fallback)
        self.small_groups_: list[str] = [prep.names[g] for g in prep.small]
        self.group_columns_: list[str] | None = prep.columns
        self.k_: int | None = prep.k
        self.quota_rates_: dict[str, float] | None = quota_rates if prep.k is not None else None
        self.n_train_: int = len(prep.y)
        self.tolerance_used_: float = float(sol.tolerance_used)
        self.constraint_satisfied_: bool = bool(sol.satisfied)
        # Reported figures are recomputed from the decisions, independently of the search.
        d = decisions.astype(np.int64)
        self.achieved_gap_: float = self._gap_of(prep, d, params)
        self.objective_value_: float = self._objective_of(prep, d, params)
        self.baseline_: dict[str, float] = {
            "threshold": float(prep.fallback),
            "achieved_gap": self._gap_of(prep, prep.baseline.astype(np.int64), params),
            "objective_value": self._objective_of(prep, prep.baseline.astype(np.int64), params),
        }
        rates = group_rates(prep.y, d, np.asarray(prep.names, dtype=object)[prep.codes])
        rates["threshold"] = [self.thresholds_[g] for g in rates.index]
        rates["constrained"] = [g not in self.small_groups_ for g in rates.index]
        self.group_rates_: pd.DataFrame = rates

    def _gap_of(self, prep: Prepared, d: np.ndarray, params: dict[str, Any]) -> float:
        labels = np.asarray(prep.names, dtype=object)[prep.codes]
        return constraint_gap(
            prep.y, d, labels, params["constraint"], params["gap"], int(self.min_group_size)
        )

    @staticmethod
    def _objective_of(prep: Prepared, d: np.ndarray, params: dict[str, Any]) -> float:
        tp = int((d * prep.y).sum())
        sel = int(d.sum())
        pos = int(prep.y.sum())
        value = objective_from_totals(
            params["objective"],
            np.array([sel]),
            np.array([tp]),
            np.array([sel - tp]),
            len(prep.y),
            pos,
            len(prep.y) - pos,
        )
        return float(value[0])

    # ---- prediction

    def _check_fitted(self) -> None:
        if not hasattr(self, "thresholds_"):
            raise ValueError("GroupThresholdOptimizer: call fit() (or from_dict()) first")

    def _row_groups(self, scores: Any, groups: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Validated scores, group code per row and code names; warns about unseen groups."""
        self._check_fitted()
        s = check_scores_arg(scores)
        if self.group_columns_ is not None and isinstance(groups, pd.DataFrame):
            missing = [c for c in self.group_columns_ if c not in map(str, groups.columns)]
            if missing:
                raise ValueError(f"groups: missing attribute column(s) {missing}")
            groups = groups[[c for c in groups.columns if str(c) in self.group_columns_]]
            groups = groups[sorted(groups.columns, key=lambda c: self.group_columns_.index(str(c)))]
        codes, names, _ = encode_groups(groups, len(s))
        unseen = [name for name in names if name not in self.thresholds_]
        if unseen:
            warnings.warn(
                f"{len(unseen)} group(s) not seen in training get the overall threshold "
                f"{self.fallback_threshold_:.6g}: {unseen[:10]}",
                UnseenGroupWarning,
                stacklevel=3,
            )
        return s, codes, names

    def predict_by_threshold(self, scores: Any, groups: Any) -> np.ndarray:
        """0/1 decisions ``score >= threshold of the row's group`` (overall one if unseen)."""
        s, codes, names = self._row_groups(scores, groups)
        per_group = np.array(
            [self.thresholds_.get(name, self.fallback_threshold_) for name in names], dtype=float
        )
        return (s >= per_group[codes]).astype(np.int64)

    def predict(self, scores: Any, groups: Any, *, k: int | None = None) -> np.ndarray:
        """0/1 decisions. Threshold mode: per-group thresholds. Fixed-list-size mode: exactly k.

        In fixed-list-size mode the batch gets ``k`` (default ``top_k``, or
        ``k_for_percent(len(batch), top_pct)``) selections split into per-group quotas proportional
        to ``quota_rate_g * batch rows of g``; small and unseen groups ask for their rows at
        or above the overall threshold. Quotas are scaled to sum to k, rounded by largest
        remainder, capped at the group's size, and filled with the group's top scores.
        """
        if getattr(self, "k_", None) is None:
            if k is not None:
                raise ValueError("k: only used when fitted with top_k or top_pct")
            return self.predict_by_threshold(scores, groups)
        s, codes, names = self._row_groups(scores, groups)
        m = len(s)
        if k is None:
            k = min(int(self.top_k), m) if self.top_k is not None else self._k_for(m)
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k <= m:
            raise ValueError(f"k: must be an integer in [0, {m}], got {k!r}")
        sizes = np.bincount(codes, minlength=len(names)).astype(float)
        above = np.bincount(codes, weights=s >= self.fallback_threshold_, minlength=len(names))
        rates = self.quota_rates_ or {}
        desired = np.array(
            [rates[name] * sizes[i] if name in rates else above[i] for i, name in enumerate(names)]
        )
        quotas = _quotas(desired, sizes.astype(np.int64), int(k))
        out = np.zeros(m, dtype=np.int64)
        order = np.lexsort((np.arange(m), -s, codes))  # by group, score desc, row order
        starts = np.concatenate(([0], np.cumsum(sizes.astype(np.int64))))
        for i in range(len(names)):
            out[order[starts[i] : starts[i] + quotas[i]]] = 1
        return out

    # ---- serialisation

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (str keys, float thresholds) for storing as a model group.

        ``inf`` thresholds (select nobody) stay floats; Python's ``json`` writes them as
        ``Infinity``.
        """
        self._check_fitted()
        return {
            "format": SERIAL_FORMAT,
            "params": {k: _plain(v) for k, v in self.get_params().items()},
            "thresholds": {str(k): float(v) for k, v in self.thresholds_.items()},
            "fallback_threshold": float(self.fallback_threshold_),
            "small_groups": [str(g) for g in self.small_groups_],
            "group_columns": None if self.group_columns_ is None else list(self.group_columns_),
            "k": self.k_,
            "quota_rates": None
            if self.quota_rates_ is None
            else {str(k): float(v) for k, v in self.quota_rates_.items()},
            "n_train": int(self.n_train_),
            "achieved_gap": float(self.achieved_gap_),
            "objective_value": float(self.objective_value_),
            "constraint_satisfied": bool(self.constraint_satisfied_),
            "tolerance_used": float(self.tolerance_used_),
            "baseline": {k: float(v) for k, v in self.baseline_.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupThresholdOptimizer:
        """Rebuild a fitted optimizer from :meth:`to_dict` output (no training data needed)."""
        if not isinstance(data, dict) or data.get("format") != SERIAL_FORMAT:
            raise ValueError(f"data: not a {SERIAL_FORMAT} dictionary")
        est = cls(**data["params"])
        est.thresholds_ = {str(k): float(v) for k, v in data["thresholds"].items()}
        est.fallback_threshold_ = float(data["fallback_threshold"])
        est.small_groups_ = list(data["small_groups"])
        est.group_columns_ = data["group_columns"]
        est.k_ = data["k"]
        qr = data["quota_rates"]
        est.quota_rates_ = None if qr is None else {str(k): float(v) for k, v in qr.items()}
        est.n_train_ = int(data["n_train"])
        est.achieved_gap_ = float(data["achieved_gap"])
        est.objective_value_ = float(data["objective_value"])
        est.constraint_satisfied_ = bool(data["constraint_satisfied"])
        est.tolerance_used_ = float(data["tolerance_used"])
        est.baseline_ = dict(data["baseline"])
        return est


def _plain(value: Any) -> Any:
    """numpy scalars to Python scalars so that ``to_dict`` is plain data."""
    return value.item() if isinstance(value, np.generic) else value


def _quotas(desired: np.ndarray, caps: np.ndarray, k: int) -> np.ndarray:
    """Integer quotas summing to k, proportional to ``desired``, never above ``caps``.

    Water-filling: scale the uncapped groups to the remaining budget, cap those that overflow,
    repeat; then round by largest remainder.
    """
    target = np.zeros(len(desired))
    free = caps > 0
    remaining = float(k)
    desired = np.where(desired > 0, desired, 0.0)
    if desired[free].sum() <= 0:  # nobody asks for anything: share by group size
        desired = caps.astype(float)
    for _ in range(len(desired) + 1):
        weight = desired[free].sum()
        if weight <= 0:
            break
        target[free] = desired[free] * remaining / weight
        over = free & (target > caps)
        if not over.any():
            break
        target[over] = caps[over]
        free &= ~over
        remaining = k - target[~free].sum()
    base = np.floor(target + 1e-9).astype(np.int64)
    base = np.minimum(base, caps)
    short = k - int(base.sum())
    if short > 0:
        frac = np.where(base < caps, target - base, -np.inf)
        for i in np.argsort(-frac, kind="stable"):
            if short == 0:
                break
            if base[i] < caps[i]:
                base[i] += 1
                short -= 1
    return base



def check_scores_arg(scores: Any) -> np.ndarray:
    """Scores given to predict: finite numbers, at least one row, errors naming ``scores``."""
    s = validate_fairness_inputs(y_score=scores, names={"y_score": "scores"}, min_rows=1).y_score
    assert s is not None
    return s
