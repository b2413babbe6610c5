"""Fairness mitigation by post-processing: per-group decision thresholds.

A police fairness review that finds a disparity in a risk model's decisions often mitigates it
after training by giving each group its own threshold on the model's score. This module fits
such thresholds so that an objective (accuracy, balanced accuracy, F1, or precision/recall at a
fixed list size k) is maximised while a fairness gap stays within a tolerance:

* ``demographic_parity``: selection rate ``SR_g = selected_g / n_g``;
* ``equal_opportunity``: true-positive rate ``TPR_g = TP_g / P_g``;
* ``equalized_odds``: both ``TPR_g`` and false-positive rate ``FPR_g = FP_g / N_g``; the gap is
  the larger of the TPR gap and the FPR gap.

Gap definitions (``gap=``):

* ``max_pairwise`` (default): ``max_g rate_g - min_g rate_g``, the largest gap between any two
  groups, which is what an intersectional review quotes;
* ``mean_to_overall``: ``max_g |rate_g - overall rate|``, the distance of each group from the
  population-wide (mean) rate, as fairlearn's ``method="to_overall"``.

Groups can be one label per row or a DataFrame of several attribute columns, combined into
intersectional cells labelled ``"race=Black|sex=F"``. The search is O(groups x grid) rather than
exponential in the number of groups; see :mod:`rudikit.fairness.mitigation_search` for the
algorithm and why it is hand-written rather than taken from fairlearn or OxonFair.

Documented rules:

* **Small groups.** Groups with fewer than ``min_group_size`` training rows are too noisy to
  constrain. They get the *overall threshold* (the group-blind threshold the unmitigated model
  would use: the single threshold maximising the objective on all rows, or in fixed-list-size
  mode the score of the k-th ranked row) and are left out of the gap, but count in the
  objective and in k.
* **Unseen groups** at predict time get the same overall threshold and an
  :class:`UnseenGroupWarning` names them; prediction never fails because of them.
* **Fixed list size** (``top_k`` / ``top_pct``): exactly k rows are selected on the training
  data (per-group quotas; ties are split by row order). ``predict`` on a new batch selects
  exactly ``top_k`` (or ``k_for_percent(batch size, top_pct)``) rows using quotas proportional
  to the fitted per-group selection rates; ``predict_by_threshold`` applies the thresholds instead.
* **Infeasible tolerance.** If no thresholds meet the tolerance (possible in fixed-list-size
  mode or with ``mean_to_overall``), the tolerance is relaxed step by step, a warning is issued
  and ``constraint_satisfied_`` is False.
* Thresholds are deterministic (``score >= threshold``); a threshold of ``inf`` selects nobody.
  No randomised (two-threshold) mixing is done, so where groups' ROC curves differ a tight
  equalised-odds tolerance costs more objective than fairlearn's randomised solution does
  (see the benchmark); the gap, however, holds on the actual decisions, not in expectation.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from rudikit.evaluation.metrics import k_for_percent
from rudikit.fairness import mitigation_search as ms

__all__ = [
    "CONSTRAINTS",
    "DEFAULT_TOLERANCES",
    "GAPS",
    "OBJECTIVES",
    "FairlearnBaseline",
    "GroupThresholdOptimizer",
    "UnseenGroupWarning",
    "centre_threshold",
    "constraint_gap",
    "frontier",
    "frontier_figure",
    "group_labels",
    "group_rates",
]

OBJECTIVES = ("accuracy", "balanced_accuracy", "f1", "precision_at_k", "recall_at_k")
FIXED_K_OBJECTIVES = ("precision_at_k", "recall_at_k")
CONSTRAINTS = ("demographic_parity", "equal_opportunity", "equalized_odds")
GAPS = ("max_pairwise", "mean_to_overall")
DEFAULT_TOLERANCES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 1.0)
MISSING_LABEL = "<missing>"
SERIAL_FORMAT = "rudikit.fairness.GroupThresholdOptimizer/1"

_CONSTRAINT_ALIASES = {"equalised_odds": "equalized_odds", "equal_odds": "equalized_odds"}
_DIMS = {
    "demographic_parity": ("sr",),
    "equal_opportunity": ("tpr",),
    "equalized_odds": ("tpr", "fpr"),
}


class UnseenGroupWarning(UserWarning):
    """A group at predict time was not seen in training: it got the overall threshold."""


# ------------------------------------------------------------------------ input handling


def _as_1d(values: Any, name: str) -> np.ndarray:
    """Flatten a list / Series / 1-column frame to a 1-D array, or raise naming ``name``."""
    if values is None:
        raise ValueError(f"{name}: must not be None")
    arr = values.to_numpy() if isinstance(values, pd.Series | pd.DataFrame) else np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    return arr


def _check_scores(scores: Any) -> np.ndarray:
    arr = _as_1d(scores, "scores")
    if len(arr) == 0:
        raise ValueError("scores: must contain at least one row")
    try:
        out = arr.astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError("scores: must be numeric") from exc
    if not np.isfinite(out).all():
        raise ValueError("scores: must be finite (no NaN or inf)")
    return out


def _check_labels(y: Any, n: int) -> np.ndarray:
    arr = _as_1d(y, "y")
    if len(arr) != n:
        raise ValueError(f"y: length {len(arr)} does not match scores length {n}")
    try:
        num = arr.astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError("y: labels must be 0/1") from exc
    if not np.isin(num, (0.0, 1.0)).all():
        bad = sorted({str(v) for v in np.unique(arr[~np.isin(num, (0.0, 1.0))])})[:5]
        raise ValueError(f"y: labels must be 0/1, found {bad}")
    return num.astype(np.int64)


def _encode_groups(groups: Any, n: int) -> tuple[np.ndarray, list[str], list[str] | None]:
    """Integer codes per row, their string labels, and the attribute columns (if a frame).

    A DataFrame (or 2-D array) of attributes is combined into intersectional cells labelled
    ``"col=value|col=value"``; a 1-D input is labelled ``str(value)``. Missing values form
    their own group, labelled ``<missing>``.
    """
    if groups is None:
        raise ValueError("groups: must not be None")
    if isinstance(groups, np.ndarray) and groups.ndim == 2:
        groups = pd.DataFrame(groups, columns=[f"attr{i}" for i in range(groups.shape[1])])
    columns: list[str] | None = None
    if isinstance(groups, pd.DataFrame):
        if groups.shape[1] == 0:
            raise ValueError("groups: DataFrame has no columns")
        columns = [str(c) for c in groups.columns]
        parts = [groups.iloc[:, j] for j in range(groups.shape[1])]
    else:
        parts = [pd.Series(_as_1d(groups, "groups"))]
    if len(parts[0]) != n:
        raise ValueError(f"groups: length {len(parts[0])} does not match scores length {n}")
    codes_per_col, names_per_col = [], []
    for part in parts:
        codes, uniques = pd.factorize(part, use_na_sentinel=False)
        names = [MISSING_LABEL if _is_missing(u) else str(u) for u in uniques]
        codes_per_col.append(codes.astype(np.int64))
        names_per_col.append(names)
    if columns is None:
        codes, names = codes_per_col[0], names_per_col[0]
    else:
        dims = tuple(max(len(nm), 1) for nm in names_per_col)
        key = np.ravel_multi_index(tuple(codes_per_col), dims)
        codes, uniq_keys = pd.factorize(key)
        combos = np.unravel_index(np.asarray(uniq_keys), dims)
        names = [
            "|".join(f"{col}={names_per_col[j][combos[j][i]]}" for j, col in enumerate(columns))
            for i in range(len(uniq_keys))
        ]
    # Distinct values with the same string (1 and "1") become one group.
    unique_names, remap = np.unique(np.asarray(names, dtype=object), return_inverse=True)
    return remap[codes].astype(np.int64), [str(x) for x in unique_names], columns


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def group_labels(groups: Any) -> np.ndarray:
    """String group label per row, combining several attribute columns into intersections.

    Use it to see the cell names that appear in ``thresholds_`` (``"race=Black|sex=F"``).
    """
    n = len(groups)
    codes, names, _ = _encode_groups(groups, n)
    return np.asarray(names, dtype=object)[codes]


# ------------------------------------------------------------------- rates and gaps


def group_rates(y: Any, decisions: Any, groups: Any) -> pd.DataFrame:
    """Per-group n, positives, selected, selection rate, TPR and FPR of 0/1 decisions."""
    d = _check_labels(decisions, len(_as_1d(decisions, "decisions")))
    yy = _check_labels(y, len(d))
    codes, names, _ = _encode_groups(groups, len(d))
    k = len(names)
    n = np.bincount(codes, minlength=k)
    pos = np.bincount(codes, weights=yy, minlength=k)
    sel = np.bincount(codes, weights=d, minlength=k)
    tp = np.bincount(codes, weights=d * yy, minlength=k)
    fp = sel - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        frame = pd.DataFrame(
            {
                "n": n,
                "positives": pos.astype(np.int64),
                "selected": sel.astype(np.int64),
                "selection_rate": sel / n,
                "tpr": np.where(pos > 0, tp / pos, np.nan),
                "fpr": np.where(n - pos > 0, fp / (n - pos), np.nan),
            },
            index=pd.Index(names, name="group"),
        )
    return frame


def _gap_from_rates(
    rates: pd.DataFrame, overall: dict[str, float], constraint: str, gap: str
) -> float:
    """Largest gap over the constraint's rate columns (NaN rates are ignored)."""
    columns = {"sr": "selection_rate", "tpr": "tpr", "fpr": "fpr"}
    worst = 0.0
    for dim in _DIMS[constraint]:
        col = rates[columns[dim]].dropna()
        if col.empty:
            continue
        if gap == "max_pairwise":
            value = float(col.max() - col.min())
        else:
            value = float((col - overall[dim]).abs().max())
        worst = max(worst, value)
    return worst


def constraint_gap(
    y: Any,
    decisions: Any,
    groups: Any,
    constraint: str = "demographic_parity",
    gap: str = "max_pairwise",
    min_group_size: int = 1,
) -> float:
    """Achieved fairness gap of 0/1 decisions (the quantity the optimizer bounds).

    Groups with fewer than ``min_group_size`` rows are left out of the gap (as in the fit),
    but the overall rate for ``mean_to_overall`` uses every row.
    """
    constraint = _check_choice("constraint", constraint, CONSTRAINTS)
    gap = _check_choice("gap", gap, GAPS)
    rates = group_rates(y, decisions, groups)
    d = np.asarray(decisions, dtype=float)
    yy = np.asarray(y, dtype=float)
    overall = {
        "sr": float(d.mean()),
        "tpr": float((d * yy).sum() / max(yy.sum(), 1)),
        "fpr": float((d * (1 - yy)).sum() / max((1 - yy).sum(), 1)),
    }
    return _gap_from_rates(rates[rates["n"] >= min_group_size], overall, constraint, gap)


def _check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if name == "constraint" and isinstance(value, str):
        value = _CONSTRAINT_ALIASES.get(value, value)
    if value not in allowed:
        raise ValueError(f"{name}: unknown value {value!r}; choose one of {list(allowed)}")
    return str(value)


# ------------------------------------------------------------------------ preparation


@dataclass
class _Prepared:
    """Everything a search needs that does not depend on the tolerance (shared by frontier)."""

    scores: np.ndarray
    y: np.ndarray
    codes: np.ndarray
    names: list[str]
    columns: list[str] | None
    large: list[int]  # codes of groups in the search
    small: list[int]  # codes of groups below min_group_size
    fallback: float
    k: int | None
    budget: int | None  # k minus rows selected in small groups
    small_selected: np.ndarray  # boolean per row: selected among small-group rows
    problem: ms.Problem
    baseline: np.ndarray  # group-blind (unmitigated) decisions


def _best_single_threshold(scores: np.ndarray, y: np.ndarray, objective: str) -> float:
    """Group-blind threshold maximising the objective on all rows (the 'overall threshold')."""
    cell = ms.make_cell("all", scores, y)
    cand = ms.threshold_candidates(cell, grid_size=len(scores) + 1)
    pos = int(y.sum())
    obj = ms.objective_from_totals(
        objective, cand.counts, cand.tp, cand.fp, len(y), pos, len(y) - pos
    )
    best = int(np.argmax(obj))
    return _count_to_threshold(cell.scores_desc, int(cand.counts[best]))


def _count_to_threshold(scores_desc: np.ndarray, count: int) -> float:
    """Threshold selecting the top ``count`` rows: the lowest selected score (inf for none)."""
    return float(scores_desc[count - 1]) if count > 0 else math.inf


def _top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Exactly k rows with the highest scores, ties broken by row order."""
    order = np.argsort(-scores, kind="stable")
    mask = np.zeros(len(scores), dtype=bool)
    mask[order[:k]] = True
    return mask


def _prepare(
    scores: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    names: list[str],
    columns: list[str] | None,
    *,
    objective: str,
    constraint: str,
    k: int | None,
    min_group_size: int,
    grid_size: int,
) -> _Prepared:
    sizes = np.bincount(codes, minlength=len(names))
    large = [g for g in range(len(names)) if sizes[g] >= min_group_size]
    small = [g for g in range(len(names)) if sizes[g] < min_group_size]
    in_small = np.isin(codes, small)
    if k is None:
        fallback = _best_single_threshold(scores, y, objective)
        baseline = scores >= fallback
        small_selected = in_small & baseline
        budget = None
    else:
        baseline = _top_k_mask(scores, k)
        fallback = float(np.sort(scores)[::-1][k - 1])
        small_selected = in_small & baseline
        budget = k - int(small_selected.sum())
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    cells, cands = [], []
    for g in large:
        rows = order[bounds[g] : bounds[g + 1]]
        cell = ms.make_cell(names[g], scores[rows], y[rows])
        cells.append(cell)
        cands.append(
            ms.full_candidates(cell) if k is not None else ms.threshold_candidates(cell, grid_size)
        )
    pos = int(y.sum())
    problem = ms.Problem(
        cells=cells,
        cands=cands,
        dims=_DIMS[constraint],
        const_sel=int(small_selected.sum()),
        const_tp=int((small_selected & (y == 1)).sum()),
        const_fp=int((small_selected & (y == 0)).sum()),
        total_n=len(y),
        total_pos=pos,
        total_neg=len(y) - pos,
    )
    return _Prepared(
        scores,
        y,
        codes,
        names,
        columns,
        large,
        small,
        fallback,
        k,
        budget,
        small_selected,
        problem,
        baseline,
    )


# -------------------------------------------------------------------------- estimator


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
    constraint : "demographic_parity", "equal_opportunity" or "equalized_odds"
        Rates to equalise: selection rate; TPR; TPR and FPR.
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
        objective = _check_choice("objective", self.objective, OBJECTIVES)
        constraint = _check_choice("constraint", self.constraint, CONSTRAINTS)
        gap = _check_choice("gap", self.gap, GAPS)
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
                        ) -> tuple[_Prepared, list[str]]:
        """Validate inputs and sort each group's scores once; shared by ``fit`` and
        :func:`frontier`, which refits many tolerances on one preparation."""
        s = _check_scores(scores)
        yy = _check_labels(y, len(s))
        codes, names, columns = _encode_groups(groups, len(s))
        prep = _prepare(
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

    def _fit_prepared(self, prep: _Prepared, params: dict[str, Any]) -> None:
        if not prep.large:
            sol = ms.Solution(np.zeros(0, dtype=np.int64), 0.0, 0.0, True, params["tol"])
        elif prep.k is None:
            sol = ms.search_thresholds(
                prep.problem,
                params["objective"],
                params["tol"],
                params["gap"],
                int(self.n_targets),
            )
        else:
            sol = ms.search_fixed_k(
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
            thresholds[cell.label] = _count_to_threshold(cell.scores_desc, count)
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

    def _gap_of(self, prep: _Prepared, d: np.ndarray, params: dict[str, Any]) -> float:
        labels = np.asarray(prep.names, dtype=object)[prep.codes]
        return constraint_gap(
            prep.y, d, labels, params["constraint"], params["gap"], int(self.min_group_size)
        )

    @staticmethod
    def _objective_of(prep: _Prepared, d: np.ndarray, params: dict[str, Any]) -> float:
        tp = int((d * prep.y).sum())
        sel = int(d.sum())
        pos = int(prep.y.sum())
        value = ms.objective_from_totals(
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
        s = _check_scores(scores)
        if self.group_columns_ is not None and isinstance(groups, pd.DataFrame):
            missing = [c for c in self.group_columns_ if c not in map(str, groups.columns)]
            if missing:
                raise ValueError(f"groups: missing attribute column(s) {missing}")
            groups = groups[[c for c in groups.columns if str(c) in self.group_columns_]]
            groups = groups[sorted(groups.columns, key=lambda c: self.group_columns_.index(str(c)))]
        codes, names, _ = _encode_groups(groups, len(s))
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


# --------------------------------------------------------------------------- frontier


def frontier(
    scores: Any,
    y: Any,
    groups: Any,
    objective: str = "accuracy",
    constraint: str = "demographic_parity",
    tolerances: Iterable[float] = DEFAULT_TOLERANCES,
    *,
    gap: str = "max_pairwise",
    top_k: int | None = None,
    top_pct: float | None = None,
    min_group_size: int = 30,
    grid_size: int = 500,
    n_targets: int = 200,
) -> pd.DataFrame:
    """Fairness-versus-performance frontier: one fit per tolerance plus the unmitigated point.

    Columns: kind ("unmitigated" for the group-blind threshold, else "mitigated"), tolerance,
    achieved_gap (on the training data), objective_value, constraint_satisfied, thresholds.
    Sorting and candidate grids are computed once and shared by all tolerances.
    """
    tolerances = [float(t) for t in tolerances]
    if not tolerances:
        raise ValueError("tolerances: give at least one tolerance")
    est = GroupThresholdOptimizer(
        objective=objective,
        constraint=constraint,
        tolerance=tolerances[0],
        gap=gap,
        top_k=top_k,
        top_pct=top_pct,
        min_group_size=min_group_size,
        grid_size=grid_size,
        n_targets=n_targets,
    )
    prep, names = est._prepare_inputs(scores, y, groups, est._validated())
    rows: list[dict[str, Any]] = []
    for tol in tolerances:
        est.set_params(tolerance=tol)
        params = est._validated()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            est._fit_prepared(prep, params)
        if not rows:
            rows.append(
                {
                    "kind": "unmitigated",
                    "tolerance": np.nan,
                    "achieved_gap": est.baseline_["achieved_gap"],
                    "objective_value": est.baseline_["objective_value"],
                    "constraint_satisfied": np.nan,
                    "thresholds": dict.fromkeys(names, est.baseline_["threshold"]),
                }
            )
        rows.append(
            {
                "kind": "mitigated",
                "tolerance": tol,
                "achieved_gap": est.achieved_gap_,
                "objective_value": est.objective_value_,
                "constraint_satisfied": est.constraint_satisfied_,
                "thresholds": dict(est.thresholds_),
            }
        )
    frame = pd.DataFrame(rows)
    frame.attrs.update(
        {"objective": params["objective"], "constraint": params["constraint"], "gap": gap}
    )
    return frame


def frontier_figure(frame: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Plot a :func:`frontier` frame: x = achieved gap, y = objective, unmitigated marked."""
    for col in ("kind", "tolerance", "achieved_gap", "objective_value"):
        if col not in frame.columns:
            raise ValueError(f"frame: missing column {col!r}; pass the output of frontier()")
    objective = frame.attrs.get("objective", "objective")
    constraint = frame.attrs.get("constraint", "constraint")
    gap = frame.attrs.get("gap", "max_pairwise")
    mitigated = frame[frame["kind"] == "mitigated"].sort_values("achieved_gap")
    base = frame[frame["kind"] == "unmitigated"]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=mitigated["achieved_gap"],
            y=mitigated["objective_value"],
            mode="lines+markers",
            name="per-group thresholds",
            text=[f"tolerance {t:g}" for t in mitigated["tolerance"]],
            hovertemplate="%{text}<br>gap %{x:.4f}<br>" + objective + " %{y:.4f}<extra></extra>",
        )
    )
    if not base.empty:
        fig.add_trace(
            go.Scatter(
                x=base["achieved_gap"],
                y=base["objective_value"],
                mode="markers+text",
                name="unmitigated (one threshold)",
                marker={"symbol": "star", "size": 14, "color": "crimson"},
                text=["unmitigated"],
                textposition="top center",
                hovertemplate="unmitigated<br>gap %{x:.4f}<br>"
                + objective
                + " %{y:.4f}<extra></extra>",
            )
        )
    label = "largest pairwise gap" if gap == "max_pairwise" else "largest gap to overall"
    fig.update_layout(
        title=title or f"Fairness-performance frontier ({constraint})",
        xaxis_title=f"achieved {label} ({constraint.replace('_', ' ')})",
        yaxis_title=objective.replace("_", " "),
        template="plotly_white",
    )
    return fig


# -------------------------------------------------------------- fairlearn baseline


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
        self.constraint = _check_choice("constraint", constraint, CONSTRAINTS)
        if objective not in self._OBJECTIVES:
            raise ValueError(f"objective: fairlearn supports {list(self._OBJECTIVES)}")
        self.objective = objective
        self.tolerance = tolerance
        self.grid_size = grid_size

    def fit(self, scores: Any, y: Any, groups: Any) -> Self:
        """Fit fairlearn's optimizer with the same intersectional group labels as ours."""
        from fairlearn.postprocessing import ThresholdOptimizer

        s = _check_scores(scores)
        yy = _check_labels(y, len(s))
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
        s = _check_scores(scores)
        out = self.optimizer_.predict(
            s.reshape(-1, 1), sensitive_features=group_labels(groups), random_state=random_state
        )
        return np.asarray(out, dtype=np.int64)
