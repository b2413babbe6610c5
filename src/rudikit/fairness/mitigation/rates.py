"""Groups, per-group rates and the achieved fairness gap of 0/1 decisions (mitigation).

Groups are one label per row or a frame of attribute columns combined into intersections,
labelled by the convention of :mod:`rudikit.fairness.groups`. Distinct values that print the
same (``1`` and ``"1"``) are one group, and groups are numbered in order of their labels, which
fixes the order the search visits them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from rudikit.fairness.groups import MISSING_GROUP, join_group
from rudikit.fairness.inputs import check_length, validate_fairness_inputs

OBJECTIVES = ("accuracy", "balanced_accuracy", "f1", "precision_at_k", "recall_at_k")
FIXED_K_OBJECTIVES = ("precision_at_k", "recall_at_k")
CONSTRAINTS = ("demographic_parity", "equal_opportunity", "equalized_odds", "precision_parity",
               "fpr_parity")
GAPS = ("max_pairwise", "mean_to_overall")

_CONSTRAINT_ALIASES = {"equalised_odds": "equalized_odds", "equal_odds": "equalized_odds"}
DIMS = {
    "demographic_parity": ("sr",),
    "equal_opportunity": ("tpr",),
    "equalized_odds": ("tpr", "fpr"),
    "precision_parity": ("ppv",),
    "fpr_parity": ("fpr",),
}
"""The rates each constraint equalises."""


def encode_groups(groups: Any, n: int) -> tuple[np.ndarray, list[str], list[str] | None]:
    """Integer codes per row, their string labels, and the attribute columns (if a frame).

    A DataFrame (or 2-D array) of attributes is combined into intersectional cells labelled
    ``"value:value"`` (:func:`rudikit.fairness.groups.join_group`); a 1-D input is labelled
    ``str(value)``. Missing values form their own group, labelled ``"(missing)"``.
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
        values = groups.to_numpy() if isinstance(groups, pd.Series) else np.asarray(groups)
        if values.ndim != 1:
            raise ValueError(f"groups: must be one label per row or a DataFrame of attribute "
                             f"columns, got shape {values.shape}")
        parts = [pd.Series(values)]
    check_length("groups", len(parts[0]), "scores", n)
    codes_per_col, names_per_col = [], []
    for part in parts:
        codes, uniques = pd.factorize(part, use_na_sentinel=False)
        names = [MISSING_GROUP if _is_missing(u) else str(u) for u in uniques]
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
            join_group(names_per_col[j][combos[j][i]] for j in range(len(columns)))
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

    Use it to see the cell names that appear in ``thresholds_`` (``"Black:F"``).
    """
    n = len(groups)
    codes, names, _ = encode_groups(groups, n)
    return np.asarray(names, dtype=object)[codes]



def group_rates(y: Any, decisions: Any, groups: Any) -> pd.DataFrame:
    """Per-group n, positives, selected, selection rate, TPR, FPR and precision of 0/1
    decisions."""
    inputs = validate_fairness_inputs(y, decisions, names={"y_true": "y", "y_pred": "decisions"})
    yy, d = inputs.y_true, inputs.y_pred
    assert yy is not None and d is not None
    codes, names, _ = encode_groups(groups, inputs.n)
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
                "precision": np.where(sel > 0, tp / sel, np.nan),
            },
            index=pd.Index(names, name="group"),
        )
    return frame


def gap_from_rates(
    rates: pd.DataFrame, overall: dict[str, float], constraint: str, gap: str
) -> float:
    """Largest gap over the constraint's rate columns (NaN rates are ignored)."""
    columns = {"sr": "selection_rate", "tpr": "tpr", "fpr": "fpr", "ppv": "precision"}
    worst = 0.0
    for dim in DIMS[constraint]:
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
    constraint = check_choice("constraint", constraint, CONSTRAINTS)
    gap = check_choice("gap", gap, GAPS)
    rates = group_rates(y, decisions, groups)
    d = np.asarray(decisions, dtype=float)
    yy = np.asarray(y, dtype=float)
    overall = {
        "sr": float(d.mean()),
        "tpr": float((d * yy).sum() / max(yy.sum(), 1)),
        "fpr": float((d * (1 - yy)).sum() / max((1 - yy).sum(), 1)),
        "ppv": float((d * yy).sum() / max(d.sum(), 1)),
    }
    return gap_from_rates(rates[rates["n"] >= min_group_size], overall, constraint, gap)


def check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed`` (constraint aliases resolved), else an error naming
    ``name``."""
    if name == "constraint" and isinstance(value, str):
        value = _CONSTRAINT_ALIASES.get(value, value)
    if value not in allowed:
        raise ValueError(f"{name}: unknown value {value!r}; choose one of {list(allowed)}")
    return str(value)
