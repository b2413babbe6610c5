"""The one input validator of the fairness code.

Every fairness entry point (group metrics, audits, requirements, list simulation, summary
measures, mitigation) checks its outcomes, predictions, scores and groups here, so the same
mistake gets the same error wherever it is made. Each error starts with the name of the
argument as the caller knows it (``"y_pred: ..."``, ``"label column 'y': ..."``,
``"scores: ..."``), then says what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

ARGUMENTS = ("y_true", "y_pred", "y_score", "groups")


def one_dimensional(values: object, name: str) -> np.ndarray:
    """``values`` as a 1-D numpy array (pandas nullable numbers as float64 with NaN); a
    DataFrame or a 2-D array is an error naming ``name``."""
    if values is None:
        raise ValueError(f"{name}: must not be None")
    if isinstance(values, pd.DataFrame):
        raise ValueError(f"{name}: must be one-dimensional, got a DataFrame")
    if isinstance(values, pd.Series | pd.Index | pd.api.extensions.ExtensionArray):
        dtype = values.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            return np.asarray(values)
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            return np.asarray(values.to_numpy(dtype="float64", na_value=np.nan))
        arr = np.asarray(values, dtype=object)
    else:
        arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name}: must be one-dimensional, got shape {arr.shape}")
    return arr


def check_binary(values: object, name: str = "y_true") -> np.ndarray:
    """Return ``values`` as an int8 array of 0/1, or raise a ValueError naming ``name``.

    Accepts booleans, integers and floats equal to 0 or 1. Missing values are an error: a case
    with unknown outcome (or prediction) cannot be placed in a confusion matrix.
    """
    arr = one_dimensional(values, name)
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if arr.dtype.kind in "iu" and (len(arr) == 0 or (arr.min() >= 0 and arr.max() <= 1)):
        return arr.astype(np.int8, copy=False)
    if arr.dtype.kind not in "iuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            examples = pd.unique(pd.Series(arr[:1000], dtype=object))[:5]
            raise ValueError(
                f"{name}: must be binary (0/1); found non-numeric values such as "
                f"{[str(v) for v in examples]}"
            ) from None
    if arr.dtype.kind == "f":
        missing = int(np.isnan(arr).sum())
        if missing:
            raise ValueError(f"{name}: has {missing} missing value(s); it must be 0/1 for every "
                             "row")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        examples = np.unique(arr[bad])[:5].tolist()
        raise ValueError(f"{name}: must be binary (0/1); found value(s) {examples}")
    return arr.astype(np.int8)


def check_scores(values: object, name: str = "y_score") -> np.ndarray:
    """Return ``values`` as a finite float64 array, or raise a ValueError naming ``name``."""
    arr = one_dimensional(values, name)
    if arr.dtype.kind not in "iufb":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: must be numeric") from None
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int((~finite).sum())
        raise ValueError(f"{name}: has {bad} missing or infinite value(s)")
    return arr


def check_length(name: str, n_rows: int, reference: str, n: int) -> None:
    """Raise naming ``name`` when it has ``n_rows`` rows and ``reference`` has ``n``."""
    if n_rows != n:
        raise ValueError(f"{name}: has {n_rows} rows, {reference} has {n} rows")


def available_columns(columns: Sequence[object], limit: int = 25) -> str:
    """Column names for an error message (the first ``limit`` of them)."""
    names = [str(c) for c in columns]
    more = f" ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


@dataclass(frozen=True)
class FairnessInputs:
    """Validated inputs: 0/1 outcomes and predictions as int8, scores as finite float64 (each
    None when not given), and the common number of rows."""

    y_true: np.ndarray | None
    y_pred: np.ndarray | None
    y_score: np.ndarray | None
    n: int


def validate_fairness_inputs(
    y_true: object | None = None,
    y_pred: object | None = None,
    y_score: object | None = None,
    *,
    groups: object | None = None,
    names: Mapping[str, str] | None = None,
    min_rows: int = 0,
) -> FairnessInputs:
    """Check whichever of outcomes, predictions, scores and groups are given, and that they
    have the same number of rows.

    ``y_true`` and ``y_pred`` must be 0/1 without missing values; ``y_score`` numeric and
    finite; ``groups`` anything with a length (a column, a frame of attribute columns). Errors
    name each argument as ``names`` maps it (e.g. ``{"y_score": "scores"}`` or
    ``{"y_true": "label column 'y'"}``; default: the parameter name). Lengths are compared with
    the first argument given, in the order ``y_score``, ``y_true``, ``y_pred``, ``groups``;
    ``min_rows`` is the fewest rows accepted.
    """
    names = dict(names or {})
    unknown = set(names) - set(ARGUMENTS)
    if unknown:
        raise ValueError(f"names: unknown argument(s) {sorted(unknown)}; choose from {ARGUMENTS}")

    def named(argument: str) -> str:
        return names.get(argument, argument)

    score = None if y_score is None else check_scores(y_score, named("y_score"))
    true = None if y_true is None else check_binary(y_true, named("y_true"))
    pred = None if y_pred is None else check_binary(y_pred, named("y_pred"))
    lengths = [(a, len(v)) for a, v in (("y_score", score), ("y_true", true), ("y_pred", pred))
               if v is not None]
    if groups is not None:
        lengths.append(("groups", len(groups)))  # type: ignore[arg-type]
    if not lengths:
        raise ValueError("give at least one of y_true, y_pred, y_score and groups")
    first, n = lengths[0]
    for argument, rows in lengths[1:]:
        check_length(named(argument), rows, named(first), n)
    if n < min_rows:
        raise ValueError(f"{named(first)}: must contain at least {min_rows} row(s), got {n}")
    return FairnessInputs(true, pred, score, n)
