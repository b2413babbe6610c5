"""Labels from declarative conditions (``label.positive_when`` / ``label.exclude_when``).

Conditions read literally: a missing value never meets ``equals``/``in`` (a search whose
outcome link was not recorded is not counted as linked) and always meets ``not_in``/
``not_equals`` (a missing outcome is not "no further action"). Add ``is_missing: false`` to a
column's conditions to require a recorded value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rudikit.config import Condition, Label


class LabelError(ValueError):
    pass


def _values(frame: pd.DataFrame, condition: Condition, where: str) -> pd.Series:
    if condition.column not in frame.columns:
        raise LabelError(f"{where}.column: no column {condition.column!r} in the data "
                         f"(columns: {', '.join(map(str, frame.columns))})")
    return frame[condition.column]


def _compare(values: pd.Series, target: object) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype) and isinstance(target, str):
        target = target.strip().lower() == "true"
    return (values == target).fillna(False).astype(bool)


def condition_mask(frame: pd.DataFrame, condition: Condition, where: str = "condition"
                   ) -> pd.Series:
    """Rows meeting one condition (a boolean Series, missing values never meeting it)."""
    values = _values(frame, condition, where)
    present = values.notna()
    if condition.is_missing is not None:
        return ~present if condition.is_missing else present
    if condition.equals is not None:
        return _compare(values, condition.equals)
    if condition.not_equals is not None:
        return ~_compare(values, condition.not_equals)
    if condition.isin is not None:
        return values.isin(condition.isin).fillna(False).astype(bool)
    return ~values.isin(condition.not_in or []).fillna(False).astype(bool)


def all_of(frame: pd.DataFrame, conditions: list[Condition], where: str) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for i, condition in enumerate(conditions):
        mask &= condition_mask(frame, condition, f"{where}[{i}]")
    return mask


def make_label(frame: pd.DataFrame, label: Label) -> tuple[np.ndarray, np.ndarray]:
    """(0/1 label per row, mask of rows kept); excluded rows are kept out of training and test."""
    positive = all_of(frame, label.positive_when, "label.positive_when")
    excluded = (all_of(frame, label.exclude_when, "label.exclude_when") if label.exclude_when
                else pd.Series(False, index=frame.index))
    return positive.to_numpy().astype(np.int8), (~excluded).to_numpy()
