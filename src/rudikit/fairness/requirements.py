"""Check deployment fairness requirements such as "precision within 5 points per station".

A :class:`Requirement` names a metric, an optional *unit* attribute (e.g. ``station``), the
attributes whose groups are compared *within* each unit (e.g. ``ethnicity`` and ``gender``,
crossed), or none to compare the units with each other, and the largest allowed gap in
percentage points. The gap is the largest pairwise difference, ``100 * (max - min)`` of the
metric over the eligible groups; a group (or unit) is eligible when the metric's own
denominator reaches ``min_n`` (flagged cases for precision, actual positives for recall,
negatives for the FPR, the smaller of positives and negatives for the ROC AUC) and the metric
is defined for it. Examples from a deployment::

    # (a) precision per station within 10 points of each other
    Requirement("precision", 10, unit="station")
    # (b) within each station, precision differs by at most 5 points between ethnicity x gender
    Requirement("precision", 5, unit="station", compare=("ethnicity", "gender"))
    # (c) recall within 10 points between ethnicities, per station and per object of search
    Requirement("recall", 10, unit="station", compare="ethnicity")
    Requirement("recall", 10, unit="object_of_search", compare="ethnicity")

Each unit gets one of four statuses. With fewer than two eligible groups it is **insufficient
data**. A gap within the bound is **met**. A gap over the bound is **not met** only when the
data support it: every pair of eligible groups is tested against "their difference is within
the bound" (:mod:`rudikit.fairness.significance`), the p-values of all pairs of all units of the
requirement are corrected together (Holm, or Benjamini-Hochberg with ``correction="fdr_bh"``),
and a unit is not met when one of its pairs stays below ``alpha`` after correction; a gap over
the bound without that support is **inconclusive**. The requirement takes the worst of its
units' statuses (:func:`rudikit.store.queries.fairness.combined_status`) and is ``passed``
only when that is "met".

Plain dataclasses: reading ``rudi.yaml`` into them is the caller's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rudikit.fairness.auc import ScoreIndex
from rudikit.fairness.counts import PROPORTIONS, RATE_METRICS, metrics_from_counts
from rudikit.fairness.group_metrics import cell_counts
from rudikit.fairness.groups import (
    MISSING_GROUP,
    attribute_name,
    compact,
    encode_groups,
    group_key,
)
from rudikit.fairness.inputs import available_columns, validate_fairness_inputs
from rudikit.fairness.selection import TieBreak, binarize
from rudikit.fairness.significance import (
    CORRECTION_NAMES,
    Correction,
    adjust,
    auc_difference_pvalue,
    auc_standard_error,
    check_alpha,
    check_correction,
    difference_pvalue,
)
from rudikit.store.queries.fairness import (
    INCONCLUSIVE,
    INSUFFICIENT,
    MET,
    NOT_MET,
    combined_status,
)

ACROSS_UNITS = "across units"
# the four verdicts, as the store's readers know them (rudikit.store.queries.fairness)
STATUS_MET, STATUS_NOT_MET = MET, NOT_MET
STATUS_INCONCLUSIVE, STATUS_INSUFFICIENT = INCONCLUSIVE, INSUFFICIENT

METRIC_ALIASES: dict[str, str] = {
    "recall": "tpr",
    "sensitivity": "tpr",
    "true_positive_rate": "tpr",
    "false_positive_rate": "fpr",
    "false_negative_rate": "fnr",
    "specificity": "tnr",
    "ppv": "precision",
    "selection_rate": "pprev",
    "auc": "roc_auc",
}

# Floating-point slack when comparing a gap with its limit (a gap of exactly 5 points passes).
_GAP_TOLERANCE = 1e-9


def _as_columns(value: str | Sequence[str] | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    cols = (value,) if isinstance(value, str) else tuple(value)
    if not cols or not all(isinstance(c, str) and c for c in cols):
        raise ValueError(f"{what} must be a column name or a list of column names, got {value!r}")
    return cols


@dataclass(frozen=True)
class Requirement:
    """A fairness requirement; see the module docstring for examples.

    ``metric``: a rate metric of :mod:`rudikit.fairness.group_metrics` (``precision``, ``tpr``,
    ``fpr``, ...; ``recall``, ``specificity``, ``selection_rate`` and ``auc`` are accepted
    aliases). ``unit``: column(s) defining the units (a tuple crosses them), or None for the
    whole population as one unit. ``compare``: column(s) whose (crossed) groups are compared
    within each unit, or None / ``"across units"`` to compare the units themselves.
    ``max_gap_pp``: the largest allowed ``max - min`` in percentage points. ``min_n``: the
    smallest denominator of the metric (e.g. flagged cases for precision, actual positives for
    recall) for a group or unit to be compared.
    """

    metric: str
    max_gap_pp: float
    unit: str | tuple[str, ...] | None = None
    compare: str | tuple[str, ...] | None = None
    min_n: int = 50
    name: str = ""

    def __post_init__(self) -> None:
        metric = METRIC_ALIASES.get(self.metric, self.metric)
        if metric not in RATE_METRICS:
            raise ValueError(
                f"requirement metric {self.metric!r} is unknown; choose from "
                f"{list(RATE_METRICS)} or aliases {list(METRIC_ALIASES)}"
            )
        object.__setattr__(self, "metric", metric)
        if not np.isfinite(self.max_gap_pp) or self.max_gap_pp < 0:
            raise ValueError(f"max_gap_pp must be a non-negative number, got {self.max_gap_pp!r}")
        if isinstance(self.min_n, bool) or int(self.min_n) != self.min_n or self.min_n < 0:
            raise ValueError(f"min_n must be a non-negative integer, got {self.min_n!r}")
        compare = None if self.compare == ACROSS_UNITS else self.compare
        unit = _as_columns(self.unit, "unit")
        compare_cols = _as_columns(compare, "compare")
        if unit is None and compare_cols is None:
            raise ValueError("a requirement needs a unit, attributes to compare, or both")
        if unit and compare_cols and set(unit) & set(compare_cols):
            raise ValueError(f"unit {unit} and compare {compare_cols} share columns")
        object.__setattr__(self, "unit", unit)
        object.__setattr__(self, "compare", compare_cols)
        if not self.name:
            object.__setattr__(self, "name", self.describe())

    @property
    def across_units(self) -> bool:
        """True when the units themselves are compared."""
        return self.compare is None

    def describe(self) -> str:
        """One-line description, e.g. ``precision gap <= 5 pp between ethnicity:gender per
        station``."""
        unit = ":".join(self.unit) if self.unit else None
        if self.compare is None:
            return f"{self.metric} gap <= {self.max_gap_pp:g} pp across {unit}"
        between = ":".join(self.compare)
        where = f" per {unit}" if unit else ""
        return f"{self.metric} gap <= {self.max_gap_pp:g} pp between {between}{where}"


@dataclass(frozen=True)
class UnitOutcome:
    """The comparison within one unit (or, across units, the one comparison of all units).

    ``n`` is the unit's rows; ``p_value`` the smallest p-value of its pairs of groups against
    the bound, ``p_adjusted`` the smallest after the requirement's correction (NaN when
    nothing was tested)."""

    unit: str
    status: str  # met, not met, inconclusive or insufficient data
    gap_pp: float
    n: int
    groups_compared: int
    highest_group: str | None = None
    highest_value: float = float("nan")
    lowest_group: str | None = None
    lowest_value: float = float("nan")
    excluded_groups: tuple[str, ...] = ()
    p_value: float = float("nan")
    p_adjusted: float = float("nan")


@dataclass(frozen=True)
class RequirementResult:
    """Outcome of one requirement. ``status`` is the worst of the units' statuses (not met,
    then inconclusive, then met; insufficient data when no unit could be compared); ``passed``
    only when it is "met". ``failing`` lists the units
    not met, ``inconclusive`` those over the bound without statistical support, ``skipped``
    the units (or, across units, the units left out) with insufficient data."""

    requirement: Requirement
    status: str
    units_met: int
    units_evaluated: int
    failing: tuple[UnitOutcome, ...]
    inconclusive: tuple[UnitOutcome, ...]
    skipped: tuple[UnitOutcome, ...]
    outcomes: tuple[UnitOutcome, ...] = field(repr=False)
    correction: str = "holm"
    alpha: float = 0.05

    @property
    def passed(self) -> bool:
        return self.status == STATUS_MET

    @property
    def evaluable(self) -> bool:
        return self.units_evaluated > 0

    @property
    def summary(self) -> str:
        req = self.requirement
        if not self.evaluable:
            return "insufficient data in every unit"
        skipped = f"; {len(self.skipped)} skipped for insufficient data" if self.skipped else ""
        corrected = f"{CORRECTION_NAMES[self.correction]}-corrected"
        if req.across_units:
            o = next(o for o in self.outcomes if o.status != STATUS_INSUFFICIENT)
            support = (f", {corrected} p = {o.p_adjusted:.2g}"
                       if o.status != STATUS_MET and np.isfinite(o.p_adjusted) else "")
            return (f"{o.status}: gap {o.gap_pp:.1f} pp across {o.groups_compared} units "
                    f"({o.highest_group} vs {o.lowest_group}{support}){skipped}")
        parts = [f"met in {self.units_met} of {self.units_evaluated} units"]
        for units, what in ((self.failing, "not met"), (self.inconclusive, "inconclusive")):
            if units:
                worst = max(units, key=lambda o: o.gap_pp)
                parts.append(f"{what} in {len(units)} (largest gap {worst.gap_pp:.1f} pp in "
                             f"{worst.unit}, {corrected} p = {worst.p_adjusted:.2g})")
        return f"{self.status}: " + ", ".join(parts) + skipped

    def to_frame(self) -> pd.DataFrame:
        """One row per unit outcome (evaluated and skipped)."""
        rows = [
            {"requirement": self.requirement.name, "metric": self.requirement.metric,
             "max_gap_pp": self.requirement.max_gap_pp, **o.__dict__,
             "excluded_groups": ", ".join(o.excluded_groups)}
            for o in self.outcomes
        ]
        return pd.DataFrame(rows)


def _basis(values: dict[str, np.ndarray], metric: str) -> np.ndarray:
    """The metric's own denominator per group, the one ``min_n`` applies to."""
    if metric == "roc_auc":
        return np.minimum(values["pos"], values["neg"])
    denom = PROPORTIONS[metric][1]
    return values["pp" if denom == "pp_total" else denom]


def _cell_metrics(
    codes: np.ndarray, n_groups: int, cell: _Rows, pp_total: float, metric: str,
    score_index: ScoreIndex | None,
) -> dict[str, np.ndarray]:
    counts = cell_counts(codes * 4 + cell.key, cell.pred, n_groups, cell.cases)
    values = metrics_from_counts(counts, pp_total)
    if metric == "roc_auc":
        assert score_index is not None
        values["roc_auc"] = score_index.auc(codes, n_groups)
    return values


@dataclass(frozen=True)
class _Rows:
    """Each row's label (``key = 2 * y``) and prediction: 0/1, or a top-k row tied at the cut
    counted by its expected membership (:func:`rudikit.fairness.selection.binarize`); and,
    for rows the database counted, how many cases each stands for (``cases``)."""

    key: np.ndarray
    pred: np.ndarray
    cases: np.ndarray | None = None

    def __len__(self) -> int:
        """The number of cases (not of rows)."""
        return len(self.key) if self.cases is None else int(self.cases.sum())

    def count(self, codes: np.ndarray, size: int) -> np.ndarray:
        """Cases per code ``0..size-1`` of the rows."""
        return np.bincount(codes, weights=self.cases, minlength=size).astype(np.int64)


@dataclass
class _Cells:
    """The metric of a set of groups with what its test needs: numerator and denominator of a
    proportion, or, for the ROC AUC, its standard error."""

    value: np.ndarray
    num: np.ndarray
    den: np.ndarray
    basis: np.ndarray
    se: np.ndarray | None

    @classmethod
    def of(cls, values: dict[str, np.ndarray], metric: str, pp_total: float) -> _Cells:
        basis = _basis(values, metric)
        if metric == "roc_auc":
            se = auc_standard_error(values["roc_auc"], values["pos"], values["neg"])
            return cls(values[metric], basis, basis, basis, se)
        cells, denom = PROPORTIONS[metric]
        num = sum(values[c] for c in cells)
        den = np.full(len(basis), pp_total) if denom == "pp_total" else values[denom]
        return cls(values[metric], np.asarray(num), np.asarray(den), basis, None)

    def take(self, rows: np.ndarray) -> _Cells:
        return _Cells(self.value[rows], self.num[rows], self.den[rows], self.basis[rows],
                      None if self.se is None else self.se[rows])


@dataclass
class _Comparison:
    """One unit's groups before the correction: its eligible groups' pairs and raw p-values."""

    label: str
    n: int
    cells: _Cells
    labels: np.ndarray
    pair_p: np.ndarray


def _pairs(cells: _Cells, idx: np.ndarray, bound: float) -> np.ndarray:
    """p-values of every pair of the eligible groups ``idx`` against ``|difference| <= bound``."""
    i, j = np.triu_indices(len(idx), 1)
    a, b = idx[i], idx[j]
    if cells.se is not None:
        return auc_difference_pvalue(cells.value[a], cells.se[a], cells.value[b], cells.se[b],
                                     bound)
    return difference_pvalue(cells.num[a], cells.den[a], cells.num[b], cells.den[b], bound)


def _prepare(label: str, cells: _Cells, labels: Sequence[str], n: int, req: Requirement
             ) -> _Comparison:
    ok = (cells.basis >= max(req.min_n, 1)) & ~np.isnan(cells.value)
    idx = np.flatnonzero(ok)
    return _Comparison(label, n, cells, np.asarray(labels, dtype=object),
                       _pairs(cells, idx, req.max_gap_pp / 100) if len(idx) >= 2
                       else np.empty(0))


def _outcome(c: _Comparison, adjusted: np.ndarray, req: Requirement, alpha: float
             ) -> UnitOutcome:
    ok = (c.cells.basis >= max(req.min_n, 1)) & ~np.isnan(c.cells.value)
    excluded = tuple(str(c.labels[i]) for i in np.flatnonzero(~ok))
    if ok.sum() < 2:
        return UnitOutcome(c.label, STATUS_INSUFFICIENT, float("nan"), c.n, int(ok.sum()),
                           excluded_groups=excluded)
    idx = np.flatnonzero(ok)
    values = c.cells.value
    hi = idx[np.argmax(values[idx])]
    lo = idx[np.argmin(values[idx])]
    gap = 100 * (values[hi] - values[lo])
    p_min = float(np.nanmin(c.pair_p)) if np.isfinite(c.pair_p).any() else float("nan")
    p_adj = float(np.nanmin(adjusted)) if np.isfinite(adjusted).any() else float("nan")
    if gap <= req.max_gap_pp + _GAP_TOLERANCE:
        status = STATUS_MET
    elif p_adj < alpha:
        status = STATUS_NOT_MET
    else:
        status = STATUS_INCONCLUSIVE
    return UnitOutcome(c.label, status, float(gap), c.n, int(ok.sum()), str(c.labels[hi]),
                       float(values[hi]), str(c.labels[lo]), float(values[lo]), excluded,
                       p_min, p_adj)


def _evaluate(
    frame: pd.DataFrame, req: Requirement, cell: _Rows, pp_total: float,
    score_index: ScoreIndex | None, missing_label: str,
    cache: dict[str, tuple[np.ndarray, list[str]]], correction: Correction, alpha: float,
) -> RequirementResult:
    for col in (req.unit or ()) + (req.compare or ()):
        if col not in frame.columns:
            raise ValueError(
                f"requirement {req.name!r}: unknown column {col!r}; "
                f"available: {available_columns(frame.columns)}"
            )
    comparisons: list[_Comparison] = []
    skipped: list[UnitOutcome] = []  # across units: the units left out
    unit_name = attribute_name(req.unit) if req.unit else ""
    if req.compare is None:
        assert req.unit is not None
        codes, labels = encode_groups(frame, req.unit, missing_label=missing_label, _cache=cache)
        values = _cell_metrics(codes, len(labels), cell, pp_total, req.metric, score_index)
        cells = _Cells.of(values, req.metric, pp_total)
        unit_labels = [group_key(unit_name, lab) for lab in labels]
        comparisons.append(_prepare(f"across {unit_name}", cells, unit_labels, len(cell), req))
        short = (cells.basis < max(req.min_n, 1)) | np.isnan(cells.value)
        skipped = [UnitOutcome(unit_labels[i], STATUS_INSUFFICIENT, float("nan"),
                               int(values["n"][i]), 0) for i in np.flatnonzero(short)]
    else:
        if req.unit is None:
            u_codes = np.zeros(len(cell.key), dtype=np.int64)
            u_labels = ["(all)"]
        else:
            u_codes, raw = encode_groups(frame, req.unit, missing_label=missing_label,
                                         _cache=cache)
            u_labels = [group_key(unit_name, lab) for lab in raw]
        c_codes, c_labels = encode_groups(frame, req.compare, missing_label=missing_label,
                                          _cache=cache)
        n_c = len(c_labels)
        codes, observed = compact(u_codes * n_c + c_codes, len(u_labels) * n_c)
        values = _cell_metrics(codes, len(observed), cell, pp_total, req.metric, score_index)
        cells = _Cells.of(values, req.metric, pp_total)
        cell_unit = observed // n_c
        cell_group = np.array(c_labels, dtype=object)[observed % n_c]
        unit_n = cell.count(u_codes, len(u_labels))
        order = np.argsort(cell_unit, kind="stable")
        bounds = np.searchsorted(cell_unit[order], np.arange(len(u_labels) + 1))
        for u, label in enumerate(u_labels):
            rows = order[bounds[u]:bounds[u + 1]]
            comparisons.append(_prepare(label, cells.take(rows), cell_group[rows],
                                        int(unit_n[u]), req))
    # one family per requirement: every pair of every unit
    sizes = np.cumsum([0] + [len(c.pair_p) for c in comparisons])
    adjusted = adjust(np.concatenate([c.pair_p for c in comparisons]), correction)
    outcomes = [_outcome(c, adjusted[sizes[k]:sizes[k + 1]], req, alpha)
                for k, c in enumerate(comparisons)]
    evaluated = [o for o in outcomes if o.status != STATUS_INSUFFICIENT]
    if req.compare is not None:
        skipped = [o for o in outcomes if o.status == STATUS_INSUFFICIENT]
    return RequirementResult(
        requirement=req,
        status=combined_status([o.status for o in evaluated]),
        units_met=sum(o.status == STATUS_MET for o in evaluated),
        units_evaluated=len(evaluated),
        failing=tuple(o for o in evaluated if o.status == STATUS_NOT_MET),
        inconclusive=tuple(o for o in evaluated if o.status == STATUS_INCONCLUSIVE),
        skipped=tuple(skipped),
        outcomes=tuple(outcomes + (skipped if req.compare is None else [])),
        correction=correction,
        alpha=alpha,
    )


def evaluate_requirements(
    frame: pd.DataFrame,
    label_col: str,
    score_or_pred: str,
    requirements: Sequence[Requirement],
    *,
    threshold: float | None = None,
    top_k: int | None = None,
    top_pct: float | None = None,
    tie_break: TieBreak = "expected",
    random_state: int | None = 0,
    missing_label: str = MISSING_GROUP,
    correction: Correction = "holm",
    alpha: float = 0.05,
    cases: str | None = None,
) -> list[RequirementResult]:
    """Evaluate every requirement on one set of predictions.

    ``score_or_pred`` is a score column turned into predictions with exactly one of
    ``threshold``, ``top_k`` or ``top_pct`` (one list over the whole frame, see
    :func:`rudikit.fairness.group_metrics.binarize`), or, with none of them, a column of 0/1
    predictions. ``correction`` (``"holm"`` or ``"fdr_bh"``) and ``alpha`` decide when a gap
    over its bound is "not met" rather than "inconclusive" (see the module docstring).
    Rows tied at the k-th score of a top-k list are counted by their expected membership
    (``tie_break="expected"``, places left / tied rows), as the audit and precision@k count
    them, so a verdict never depends on the order of the rows in the file. ``cases`` names a
    column of how many cases each row stands for (cases counted by the database per attribute
    values, label and 0/1 prediction; not with the ROC AUC, which needs every case's score).
    """
    check_correction(correction)
    check_alpha(alpha)
    if not isinstance(frame, pd.DataFrame):
        raise ValueError("frame must be a pandas DataFrame")
    for what, col in (("label_col", label_col), ("score_or_pred", score_or_pred)):
        if col not in frame.columns:
            raise ValueError(f"{what}: unknown column {col!r}; available: "
                             f"{available_columns(frame.columns)}")
    bad = [r for r in requirements if not isinstance(r, Requirement)]
    if bad:
        raise ValueError(f"requirements must be Requirement objects, got {type(bad[0]).__name__}")
    y = validate_fairness_inputs(frame[label_col],
                                 names={"y_true": f"label column {label_col!r}"}).y_true
    assert y is not None
    if threshold is None and top_k is None and top_pct is None:
        pred = validate_fairness_inputs(
            y_pred=frame[score_or_pred], names={"y_pred": f"prediction column {score_or_pred!r}"}
        ).y_pred
        assert pred is not None
        scores = pred.astype(np.float64)
    else:
        scores = validate_fairness_inputs(
            y_score=frame[score_or_pred], names={"y_score": f"score column {score_or_pred!r}"}
        ).y_score
        assert scores is not None
        pred = binarize(scores, threshold=threshold, top_k=top_k, top_pct=top_pct,
                        tie_break=tie_break, random_state=random_state)
    weights = None
    if cases is not None:
        if cases not in frame.columns:
            raise ValueError(f"cases: unknown column {cases!r}; available: "
                             f"{available_columns(frame.columns)}")
        if any(r.metric == "roc_auc" for r in requirements):
            raise ValueError("a roc_auc requirement needs every case's score: rows standing "
                             f"for several cases ({cases!r}) cannot give it")
        weights = frame[cases].to_numpy(dtype=np.int64)
    cell = _Rows(2 * y.astype(np.int64), pred, weights)
    pp_total = float(pred.sum() if weights is None else (pred * weights).sum())
    score_index = (
        ScoreIndex(y, scores) if any(r.metric == "roc_auc" for r in requirements) else None
    )
    cache: dict[str, tuple[np.ndarray, list[str]]] = {}
    return [
        _evaluate(frame, r, cell, pp_total, score_index, missing_label, cache, correction, alpha)
        for r in requirements
    ]
