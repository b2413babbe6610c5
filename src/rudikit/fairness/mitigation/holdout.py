"""Judge mitigation where it is used: requirement verdicts and gaps of thresholded decisions on
the fitting rows and, separately, on held-out rows.

Thresholds fitted to a gap on some rows meet that gap there by construction; the figure that
matters is the gap on rows the thresholds never saw (validation-fitted thresholds on the test
rows). :func:`judge` evaluates the requirements on one set of rows and their decisions only,
with the largest unit's gap and a Newcombe interval for it (the difference between that unit's
highest and lowest group, :func:`statsmodels.stats.proportion.confint_proportions_2indep`;
it does not allow for the pair having been picked as the extremes, so it is a little narrow);
:func:`side_by_side` puts the fitting-row and held-out figures in one table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import confint_proportions_2indep

from rudikit.fairness.counts import PROPORTIONS
from rudikit.fairness.groups import MISSING_GROUP, attribute_name, group_key
from rudikit.fairness.mitigation.rates import encode_groups
from rudikit.fairness.requirements import (
    STATUS_INSUFFICIENT,
    Requirement,
    RequirementResult,
    UnitOutcome,
    evaluate_requirements,
)
from rudikit.fairness.significance import Correction

_LABEL, _PRED = "__label__", "__decision__"
_CELLS = {"tn": 0, "fp": 1, "fn": 2, "tp": 3}  # cell = 2 * label + decision
_DENOMINATOR_CELLS = {"n": ("tn", "fp", "fn", "tp"), "pos": ("fn", "tp"), "neg": ("tn", "fp"),
                      "pp": ("fp", "tp"), "pn": ("tn", "fn")}


@dataclass(frozen=True)
class Judged:
    """One requirement on one set of rows: its verdict and the largest unit gap (points)."""

    result: RequirementResult
    rows: int
    gap_pp: float
    lower_pp: float
    upper_pp: float
    unit: str | None

    @property
    def status(self) -> str:
        return self.result.status


def _labels(frame: pd.DataFrame, columns: Sequence[str], keyed: bool = False) -> np.ndarray:
    """Each row's group label; ``keyed``: as ``attribute=group`` (:func:`group_key`), built
    once per group, not once per row."""
    codes, names, _ = encode_groups(frame[list(columns)].reset_index(drop=True)
                                    .astype("string").fillna(MISSING_GROUP), len(frame))
    if keyed:
        names = [group_key(attribute_name(columns), g) for g in names]
    return np.asarray(names, dtype=object)[codes]


def _pair_counts(frame: pd.DataFrame, cell: np.ndarray, req: Requirement, outcome: UnitOutcome
                 ) -> tuple[int, int, int, int] | None:
    """Numerator and denominator of the outcome's highest and lowest group."""
    if req.metric not in PROPORTIONS or PROPORTIONS[req.metric][1] == "pp_total":
        return None
    num_cells, den = PROPORTIONS[req.metric]
    unit_cols = list(req.unit or ())
    if req.compare is None:
        group = _labels(frame, unit_cols, keyed=True)
        in_unit = np.ones(len(frame), dtype=bool)
    else:
        group = _labels(frame, req.compare)
        if unit_cols:
            in_unit = _labels(frame, unit_cols, keyed=True) == outcome.unit
        else:
            in_unit = np.ones(len(frame), dtype=bool)
    counts = []
    for g in (outcome.highest_group, outcome.lowest_group):
        mine = cell[in_unit & (group == g)]
        num = int(np.isin(mine, [_CELLS[c] for c in num_cells]).sum())
        total = int(np.isin(mine, [_CELLS[c] for c in _DENOMINATOR_CELLS[den]]).sum())
        counts += [num, total]
    return counts[0], counts[1], counts[2], counts[3]


def judge(frame: pd.DataFrame, y: np.ndarray, decisions: np.ndarray,
          requirements: Sequence[Requirement], *, correction: Correction = "holm",
          alpha: float = 0.05, confidence: float = 0.95) -> list[Judged]:
    """Every requirement's verdict for these 0/1 decisions on these rows, with the largest
    unit gap and its interval (NaN when no unit could be compared)."""
    rows = frame.reset_index(drop=True).copy()
    y = np.asarray(y, dtype=np.int64)
    d = np.asarray(decisions, dtype=np.int64)
    rows[_LABEL], rows[_PRED] = y, d
    results = evaluate_requirements(rows, _LABEL, _PRED, list(requirements),
                                    correction=correction, alpha=alpha)
    cell = 2 * y + d
    out = []
    for result in results:
        evaluated = [o for o in result.outcomes if o.status != STATUS_INSUFFICIENT
                     and np.isfinite(o.gap_pp)]
        if not evaluated:
            out.append(Judged(result, len(y), np.nan, np.nan, np.nan, None))
            continue
        worst = max(evaluated, key=lambda o: o.gap_pp)
        lower = upper = np.nan
        counts = _pair_counts(rows, cell, result.requirement, worst)
        if counts is not None and counts[1] > 0 and counts[3] > 0:
            lower, upper = confint_proportions_2indep(*counts, method="newcomb", compare="diff",
                                                      alpha=1 - confidence)
        out.append(Judged(result, len(y), worst.gap_pp, 100 * float(lower), 100 * float(upper),
                          worst.unit))
    return out


def side_by_side(fitting: Sequence[Judged], held_out: Sequence[Judged]) -> pd.DataFrame:
    """One row per requirement: the bound, the verdict and gap on the fitting rows, and the
    verdict, gap and interval on the held-out rows."""
    rows = []
    for fit, held in zip(fitting, held_out, strict=True):
        req = fit.result.requirement
        rows.append({
            "requirement": req.name, "max_gap_pp": req.max_gap_pp,
            "fitting_status": fit.status, "fitting_gap_pp": fit.gap_pp,
            "fitting_rows": fit.rows,
            "held_out_status": held.status, "held_out_gap_pp": held.gap_pp,
            "held_out_lower_pp": held.lower_pp, "held_out_upper_pp": held.upper_pp,
            "held_out_rows": held.rows, "held_out_unit": held.unit,
        })
    return pd.DataFrame(rows)
