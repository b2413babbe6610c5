"""The group size of each row (``features.group_size``): how many loaded rows share its values
of the ``by`` columns, e.g. the people searched together at one place and time. Computed from
the rows when they are loaded, before any split: it reads no outcome, only what was recorded
with the search, so no label leaks from a later or unresolved row."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def group_sizes(frame: pd.DataFrame, by: Sequence[str]) -> np.ndarray:
    """The number of rows of ``frame`` with the same values of ``by`` as each row, as floats. A
    missing value equals another missing value of its column (a force without coordinates
    groups by its other columns), and values are compared as loaded (a time to the minute
    groups the minute)."""
    if not len(frame):
        return np.zeros(0)
    codes = [pd.factorize(frame[c], use_na_sentinel=False)[0] for c in by]
    _, inverse, counts = np.unique(np.column_stack(codes), axis=0, return_inverse=True,
                                   return_counts=True)
    return counts[inverse.ravel()].astype(float)


def with_group_size(frame: pd.DataFrame, by: Sequence[str], column: str) -> pd.DataFrame:
    """``frame`` with the ``column`` of :func:`group_sizes` added (no other column copied);
    as it was when a ``by`` column is missing (the project check names it by key)."""
    if column in frame.columns:
        raise ValueError(f"features.group_size.column: the data already has a column named "
                         f"{column!r}; name the count apart (group_size.column)")
    if any(c not in frame.columns for c in by):
        return frame
    return frame.assign(**{column: group_sizes(frame, by)})
