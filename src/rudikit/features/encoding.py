"""Turning rows into a numeric matrix, the same way in training and in serving.

Categories become integer codes learned at fit time; a missing value or a category never seen
in training becomes NaN, which every rudikit estimator accepts. So missing values and new
categories are normal input, never a crash (a deployed model once broke because a null arrived
in a column the pipeline expected as text). ``encode_records`` is the serving fast path: plain
dicts to a float array with precomputed lookups, no DataFrame per request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone

from rudikit.data.validation import FALSE_TEXT, TRUE_TEXT
from rudikit.features.location import LocationEncoder

DATETIME_PARTS = ("hour", "weekday", "month", "day", "is_weekend", "is_night")


def _bool_value(value: Any) -> float:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return np.nan
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value != 0)
    text = str(value).strip().lower()
    return 1.0 if text in TRUE_TEXT else 0.0 if text in FALSE_TEXT else np.nan


def _by_distinct(values: pd.Series, value: Callable[[Any], float]) -> np.ndarray:
    """``value`` of each row as floats, computed once per distinct value (a column of
    millions of rows holds a handful); a missing value is NaN. Not
    :func:`rudikit.data.validation.parse_by_distinct`, which reads a loaded file's text: here
    the typed value counts (the number 2 is true; as the text "2" it would be missing) and a
    bool column is not turned into strings first (that made it ~12x slower on a million rows)."""
    codes, distinct = pd.factorize(values)
    return np.array([*(value(v) for v in distinct), np.nan], dtype=float)[codes]


def datetime_part_values(stamps: pd.Series, parts: Sequence[str]) -> list[np.ndarray]:
    """Each datetime part as floats (NaN where the time is missing): the one definition the
    encoder and the drift monitor share."""
    out = []
    for part in parts:
        if part == "hour":
            values = stamps.dt.hour
        elif part == "weekday":
            values = stamps.dt.day_of_week
        elif part == "month":
            values = stamps.dt.month
        elif part == "day":
            values = stamps.dt.day
        elif part == "is_weekend":
            values = stamps.dt.day_of_week >= 5
        else:  # is_night: 22:00 to 05:59
            values = (stamps.dt.hour >= 22) | (stamps.dt.hour < 6)
        out.append(values.astype("Float64").to_numpy(dtype=float, na_value=np.nan))
    return out


def compact_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each text column of repeated values as a categorical of the same
    strings: a code of 1-2 bytes per row instead of the text, so the copies a run makes of its
    model inputs (each split's rows, the rows sent to worker processes) stay small at millions
    of rows. The encoder reads a categorical exactly as the text (``astype("string")`` gives
    the same values), so model outputs do not change. Other columns are returned as they are,
    and so is a column of mostly distinct values (an identifier): as a categorical it would
    be larger than the text, and making it sorts every value."""
    text = _text_columns(frame)
    return frame.astype(dict.fromkeys(text, "category")) if text else frame


def compact_text_in_place(frame: pd.DataFrame) -> dict[str, Any]:
    """:func:`compact_text` on ``frame`` itself, for a frame other objects hold too (a loaded
    source the data card reads at the end of a run): a copy would leave the text alive.
    Returns the dtypes the compacted columns had, to give a copy of some of them back as text
    (``astype``)."""
    text = {column: frame[column].dtype for column in _text_columns(frame)}
    for column in text:
        frame[column] = frame[column].astype("category")
    return text


def repeats_enough(values: pd.Series) -> bool:
    """Whether a column is worth a categorical: its distinct values are at most half its
    rows (else the categories are larger than the text)."""
    return 2 * values.nunique() <= len(values)


def _text_columns(frame: pd.DataFrame) -> list[str]:
    """The text columns :func:`compact_text` makes categoricals (:func:`repeats_enough`)."""
    return [c for c in frame.columns
            if (isinstance(frame[c].dtype, pd.StringDtype) or (
                frame[c].dtype == object
                and pd.api.types.infer_dtype(frame[c], skipna=True) in ("string", "empty")))
            and repeats_enough(frame[c])]


class TabularEncoder(TransformerMixin, BaseEstimator):
    """Encode categorical, boolean, numeric and datetime columns into a float matrix.

    Output columns, in order: ``categorical`` (codes), the ``location`` categories (codes of
    ``h3_cell``, ``town``: :mod:`rudikit.features.location`), ``boolean`` (0/1), ``numeric``,
    then ``<datetime>_<part>`` for each datetime part.
    """

    # what a pipeline saved before location features existed reads (it set neither)
    location: LocationEncoder | None = None
    location_: LocationEncoder | None = None
    defaults: Mapping[str, float] | None = None  # ... nor defaults (below)

    def __init__(self, categorical: Sequence[str] = (), boolean: Sequence[str] = (),
                 numeric: Sequence[str] = (), datetime: str | None = None,
                 datetime_parts: Sequence[str] = ("hour", "weekday"),
                 location: LocationEncoder | None = None,
                 defaults: Mapping[str, float] | None = None):
        self.categorical = categorical
        self.boolean = boolean
        self.numeric = numeric
        self.datetime = datetime
        self.datetime_parts = datetime_parts
        self.location = location
        # numeric column -> the value the service scores when a request leaves it out or null
        # (a group size: 1); training rows always hold the column
        self.defaults = defaults

    @property
    def input_columns(self) -> list[str]:
        cols = [*self.categorical, *self.boolean, *self.numeric]
        cols += [self.datetime] if self.datetime else []
        return cols + self.coordinate_columns

    @property
    def coordinate_columns(self) -> list[str]:
        """The coordinates the location features read that are no other feature's input."""
        plain = {*self.categorical, *self.boolean, *self.numeric, self.datetime}
        return [c for c in (self.location.columns if self.location else []) if c not in plain]

    @property
    def categorical_outputs(self) -> list[str]:
        """The output columns holding category codes, in order (known before fitting)."""
        return [*self.categorical, *(self.location.names if self.location else [])]

    def _check_columns(self, frame: pd.DataFrame) -> None:
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise ValueError(f"missing feature columns: {', '.join(missing)}")

    def fit(self, X: pd.DataFrame, y: Any = None) -> TabularEncoder:
        self._check_columns(X)
        unknown = [p for p in self.datetime_parts if p not in DATETIME_PARTS]
        if unknown:
            raise ValueError(f"unknown datetime parts: {', '.join(unknown)}")
        # most frequent first, so codes are stable and small for common values
        self.categories_ = {
            c: [str(v) for v in X[c].dropna().astype(str).value_counts().index]
            for c in self.categorical
        }
        self.location_ = None
        if self.location is not None:
            clash = [n for n in self.location.names if n in X.columns]
            if clash:
                raise ValueError(f"features.location: the data already has a column named "
                                 f"{clash[0]!r}, the name of a location feature")
            self.location_ = clone(self.location).fit(X)
            places = self.location_.transform(X)
            self.categories_ |= {c: list(places[c].value_counts().index) for c in places}
        self.lookup_ = {c: {v: i for i, v in enumerate(cats)}
                        for c, cats in self.categories_.items()}
        names = [*self.categorical_outputs, *self.boolean, *self.numeric]
        names += [f"{self.datetime}_{p}" for p in self.datetime_parts] if self.datetime else []
        self.feature_names_out_ = np.array(names, dtype=object)
        self.categorical_indices_ = list(range(len(self.categorical_outputs)))
        self.n_features_out_ = len(names)
        return self

    def output_positions(self) -> dict[str, list[int]]:
        """Input column -> the output columns it becomes (one each; a datetime column, one
        per part). A location category (``town``) counts as an input column of its own: an
        explanation names the town, not the coordinates it came from."""
        plain = [*self.categorical_outputs, *self.boolean, *self.numeric]
        out = {c: [i] for i, c in enumerate(plain)}
        if self.datetime:
            out[self.datetime] = list(range(len(plain), len(plain) + len(self.datetime_parts)))
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self.feature_names_out_

    def readable_values(self, X: pd.DataFrame) -> pd.DataFrame:
        """Each row's value of every :meth:`output_positions` column, as a person reads it:
        the input as given, a location category as its text ("Leeds", "other")."""
        values = X[[c for c in self.output_positions() if c in X.columns]]
        values = values.reset_index(drop=True)
        if self.location_ is not None:
            places = self.location_.transform(X).reset_index(drop=True)
            values = pd.concat([values, places], axis=1)
        return values[list(self.output_positions())]

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        self._check_columns(X)
        columns: list[np.ndarray] = []
        for c in self.categorical:
            codes = X[c].astype("string").map(self.lookup_[c], na_action="ignore")
            columns.append(pd.to_numeric(codes, errors="coerce").to_numpy(dtype=float,
                                                                          na_value=np.nan))
        if self.location_ is not None:
            places = self.location_.transform(X)
            for c in self.location_.names:
                lookup = self.lookup_[c]
                columns.append(_by_distinct(places[c], lambda v, lookup=lookup: lookup.get(
                    v, np.nan)))
        for c in self.boolean:
            columns.append(_by_distinct(X[c], _bool_value))
        if self.numeric:
            block = X[list(self.numeric)]
            try:  # one conversion for the whole block when every column is numeric already
                columns += list(block.to_numpy(dtype=float, na_value=np.nan).T)
            except (TypeError, ValueError):
                for c in self.numeric:
                    columns.append(pd.to_numeric(X[c], errors="coerce").astype(
                        "Float64").to_numpy(dtype=float, na_value=np.nan))
        if self.datetime:
            stamps = pd.to_datetime(X[self.datetime], errors="coerce", utc=True)
            columns += datetime_part_values(stamps, self.datetime_parts)
        if not columns:
            return np.empty((len(X), 0))
        return np.column_stack(columns)

    def encode_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Plain dicts (e.g. parsed JSON requests) to the same matrix as :meth:`transform`."""
        out = np.full((len(records), self.n_features_out_), np.nan)
        n_cat, n_bool = len(self.categorical_outputs), len(self.boolean)
        location = self.location_
        for i, record in enumerate(records):
            for j, c in enumerate(self.categorical):
                value = record.get(c)
                if value is not None:
                    code = self.lookup_[c].get(str(value))
                    if code is not None:
                        out[i, j] = code
            if location is not None:
                places = location.record(record.get(location.latitude),
                                         record.get(location.longitude))
                for j, (c, value) in enumerate(zip(location.names, places, strict=True)):
                    out[i, len(self.categorical) + j] = self.lookup_[c].get(value, np.nan)
            for j, c in enumerate(self.boolean):
                out[i, n_cat + j] = _bool_value(record.get(c))
            for j, c in enumerate(self.numeric):
                value = record.get(c)
                if value is not None:
                    with contextlib.suppress(TypeError, ValueError):  # not a number: missing
                        out[i, n_cat + n_bool + j] = float(value)
        if self.datetime:
            stamps = pd.to_datetime(pd.Series([r.get(self.datetime) for r in records]),
                                    errors="coerce", utc=True, format="ISO8601")
            start = n_cat + n_bool + len(self.numeric)
            for j, values in enumerate(datetime_part_values(stamps, self.datetime_parts)):
                out[:, start + j] = values
        return out
