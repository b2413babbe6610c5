"""Train/test splits: temporal (train on the past, test on the period after), random or
grouped (no person or officer on two sides), optionally with a validation partition, or read
from a column of the data (an earlier study's partition)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit

from rudikit.config import ColumnSplit, RandomSplit, TemporalSplit
from rudikit.data import MISSING_GROUP


class SplitError(ValueError):
    pass


@dataclass(frozen=True)
class SplitIndices:
    name: str
    train: np.ndarray  # positional indices into the frame
    test: np.ndarray
    train_start: pd.Timestamp | None = None
    train_end: pd.Timestamp | None = None
    test_start: pd.Timestamp | None = None
    test_end: pd.Timestamp | None = None
    validation: np.ndarray | None = None  # positional indices; None: choose on the test rows


def _utc(day: object) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def _span(dates: pd.Series, idx: np.ndarray) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    if dates is None or not len(idx):
        return None, None
    chosen = dates.iloc[idx]
    return chosen.min(), chosen.max()


def make_split(frame: pd.DataFrame, spec: TemporalSplit | RandomSplit | ColumnSplit,
               where: str, date_column: str | None = None) -> SplitIndices:
    """Indices of one split over ``frame`` (rows already filtered to the labelled population)."""
    validation_idx = None
    if isinstance(spec, ColumnSplit):
        train_idx, validation_idx, test_idx = _from_column(frame, spec, where)
        dates = (pd.to_datetime(frame[date_column], utc=True)
                 if date_column and date_column in frame.columns else None)
    elif isinstance(spec, TemporalSplit):
        if spec.date_column not in frame.columns:
            raise SplitError(f"{where}.date_column: no column {spec.date_column!r} in the data")
        dates = pd.to_datetime(frame[spec.date_column], utc=True)
        start = _utc(spec.test_start)
        # (pandas may hand back read-only arrays, so combine into new ones, never in place)
        train = (dates < start).to_numpy()
        if spec.train_start:
            train = train & (dates >= _utc(spec.train_start)).to_numpy()
        test = (dates >= start).to_numpy()
        if spec.test_end:
            test = test & (dates < _utc(spec.test_end)).to_numpy()
        span = f"{dates.min():%Y-%m-%d} to {dates.max():%Y-%m-%d}" if len(dates) else "no rows"
        if spec.validation_start:
            # [validation_start, test_start) is held out of training to choose models on
            held = (dates >= _utc(spec.validation_start)).to_numpy()
            validation_idx = np.flatnonzero(train & held)
            train = train & ~held
            if not len(validation_idx):
                raise SplitError(f"{where}.validation_start: no rows from "
                                 f"{spec.validation_start} to {spec.test_start} (the data "
                                 f"covers {span})")
        train_idx, test_idx = np.flatnonzero(train), np.flatnonzero(test)
        first = spec.validation_start or spec.test_start
        if not len(train_idx):
            key = "validation_start" if spec.validation_start else "test_start"
            raise SplitError(f"{where}.{key}: no training rows before {first} "
                             f"(the data covers {span})")
        if not len(test_idx):
            raise SplitError(f"{where}.test_start: no test rows from {spec.test_start} "
                             f"(the data covers {span})")
    else:
        n = len(frame)
        if n < 2:
            raise SplitError(f"{where}: need at least 2 rows to split, got {n}")
        groups = None
        if spec.group_column:
            if spec.group_column not in frame.columns:
                raise SplitError(f"{where}.group_column: no column {spec.group_column!r}")
            groups = frame[spec.group_column].astype("string").fillna(MISSING_GROUP).to_numpy()
        train_idx, test_idx = _hold_out(np.arange(n), groups, spec.test_size, spec.seed)
        if spec.validation_size:
            # a share of all rows, taken from what the test partition left
            rest = spec.validation_size / (1 - spec.test_size)
            train_idx, validation_idx = _hold_out(
                train_idx, None if groups is None else groups[train_idx], rest, spec.seed)
            if not len(train_idx) or not len(validation_idx):
                raise SplitError(f"{where}.validation_size: {n} rows are too few for train, "
                                 "validation and test partitions")
        dates = (pd.to_datetime(frame[date_column], utc=True)
                 if date_column and date_column in frame.columns else None)
    train_span, test_span = _span(dates, train_idx), _span(dates, test_idx)
    return SplitIndices(spec.name, train_idx, test_idx, *train_span, *test_span,
                        validation=validation_idx)


def _hold_out(rows: np.ndarray, groups: np.ndarray | None, size: float, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out) sorted subsets of ``rows``; whole groups go to one side."""
    if groups is None:
        kept, held = next(ShuffleSplit(n_splits=1, test_size=size, random_state=seed)
                          .split(rows))
    else:
        kept, held = next(GroupShuffleSplit(n_splits=1, test_size=size, random_state=seed)
                          .split(rows, groups=groups))
    return np.sort(rows[kept]), np.sort(rows[held])


def _from_column(frame: pd.DataFrame, spec: ColumnSplit, where: str
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(train, validation or None, test) positions named by ``spec.column``. Every labelled row
    must carry one of the listed values: a row silently left out would change the study being
    reproduced."""
    if spec.column not in frame.columns:
        raise SplitError(f"{where}.column: no column {spec.column!r} in the data")
    side = frame[spec.column].astype("string").str.strip()
    sides = {"train": spec.train, "validation": spec.validation, "test": spec.test}
    positions = {name: np.flatnonzero(side.isin(values).fillna(False).to_numpy())
                 for name, values in sides.items()}
    listed = [v for values in sides.values() for v in values]
    other = side[~side.isin(listed).fillna(False)].fillna(MISSING_GROUP)
    if len(other):
        counts = other.value_counts()
        shown = ", ".join(f"{v!r} ({n:,} rows)" for v, n in counts.head(5).items())
        raise SplitError(f"{where}.column: {len(other):,} rows of {spec.column!r} name no "
                         f"partition: {shown}; list each value under train, validation or test")
    for name in ("train", "test"):
        if not len(positions[name]):
            raise SplitError(f"{where}.{name}: no row of {spec.column!r} has the value "
                             f"{' or '.join(map(repr, sides[name]))}")
    if spec.group_column:
        _check_no_straddle(frame, spec, positions, where)
    validation = positions["validation"] if len(positions["validation"]) else None
    return positions["train"], validation, positions["test"]


def _check_no_straddle(frame: pd.DataFrame, spec: ColumnSplit,
                       positions: dict[str, np.ndarray], where: str) -> None:
    """Refuse a group (person, officer) on two sides, naming the first offenders."""
    if spec.group_column not in frame.columns:
        raise SplitError(f"{where}.group_column: no column {spec.group_column!r}")
    groups = frame[spec.group_column].astype("string").fillna(MISSING_GROUP).to_numpy()
    side_of = pd.Series(np.empty(len(frame), dtype=object))
    for name, idx in positions.items():
        side_of.iloc[idx] = name
    per_group = pd.DataFrame({"group": groups, "side": side_of}).groupby("group")["side"]
    spread = per_group.nunique()
    straddling = spread[spread > 1].index.tolist()
    if straddling:
        shown = ", ".join(
            f"{g!r} ({' and '.join(sorted(per_group.get_group(g).unique()))})"
            for g in straddling[:5])
        many = len(straddling) > 1
        raise SplitError(f"{where}.group_column: {len(straddling):,} value{'s' if many else ''} "
                         f"of {spec.group_column!r} appear{'' if many else 's'} in more than "
                         f"one partition, e.g. {shown}")
