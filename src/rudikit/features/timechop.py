"""Temporal cross-validation in the manner of triage's timechop.

An early intervention model is retrained every ``model_update_frequency`` and used until the
next retraining, so it is evaluated the same way: a series of splits, each training on as-of
dates whose label windows have closed by the split time and testing on the as-of dates that
follow. The parameters and their meaning are triage's (``feature_start_time`` to
``test_label_timespans``), so a triage experiment's temporal config reads here unchanged:

* split times walk back from ``label_end_time - test_label_timespan - test_duration`` by
  ``model_update_frequency`` while at least one training label fits after
  ``max(feature_start_time, label_start_time)``;
* the training as-of dates of a split walk back from ``split - training_label_timespan`` by
  the training frequency, no further than ``max_training_history`` nor the start times, so
  every training label window ``[as_of, as_of + timespan)`` ends by the split time: no
  label in training overlaps the test period;
* the test as-of dates walk forward from the split time by the test frequency while before
  ``split + test_duration`` (the split time itself always included).

Every combination of the list-valued parameters gives its own series of splits. Intervals
are written as in triage: ``1year``, ``6 months``, ``3month``, ``2y``, ``1w``, ``7days``
(``m`` alone is refused: triage reads it as minutes, which no as-of date can use).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd
from dateutil.relativedelta import relativedelta
from pydantic import ValidationInfo, field_validator, model_validator

from rudikit.project import Strict


class TimechopError(ValueError):
    pass


_INTERVAL = re.compile(r"^\s*(\d+)\s*([A-Za-z]+)\s*$")
_UNITS = {
    "year": "years", "years": "years", "y": "years",
    "month": "months", "months": "months", "mon": "months", "mons": "months",
    "week": "weeks", "weeks": "weeks", "w": "weeks",
    "day": "days", "days": "days", "d": "days",
}


def parse_interval(text: str) -> relativedelta:
    """``"6month"`` -> ``relativedelta(months=6)``; days, weeks, months and years only."""
    match = _INTERVAL.match(str(text))
    if not match:
        raise TimechopError(f"interval {text!r} is not '<number> <unit>' (e.g. '6month')")
    value, unit = int(match.group(1)), match.group(2).lower()
    if unit not in _UNITS:
        raise TimechopError(f"interval {text!r}: unit {unit!r} is not one of year, month, "
                            "week, day (as-of dates are days; 'm' is ambiguous, write 'month')")
    return relativedelta(**{_UNITS[unit]: value})


def _positive(delta: relativedelta, what: str) -> relativedelta:
    probe = datetime(2000, 1, 1)
    if probe + delta <= probe:
        raise TimechopError(f"{what} must be a positive interval")
    return delta


def _stamp(value: date | datetime) -> pd.Timestamp:
    return pd.Timestamp(value).normalize()


class Timechop(Strict):
    """triage's temporal configuration; list-valued fields also accept one value."""

    feature_start_time: date
    feature_end_time: date
    label_start_time: date
    label_end_time: date
    model_update_frequency: str
    training_as_of_date_frequencies: list[str]
    max_training_histories: list[str]
    training_label_timespans: list[str]
    test_as_of_date_frequencies: list[str]
    test_durations: list[str]
    test_label_timespans: list[str]

    @field_validator("training_as_of_date_frequencies", "max_training_histories",
                     "training_label_timespans", "test_as_of_date_frequencies",
                     "test_durations", "test_label_timespans", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("model_update_frequency")
    @classmethod
    def _frequency(cls, value: str) -> str:
        _positive(parse_interval(value), f"model_update_frequency ({value!r})")
        return value

    @field_validator("training_as_of_date_frequencies", "test_as_of_date_frequencies")
    @classmethod
    def _frequencies(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one frequency")
        for item in value:
            _positive(parse_interval(item), f"an as-of date frequency ({item!r})")
        return value

    @field_validator("max_training_histories", "training_label_timespans", "test_durations",
                     "test_label_timespans")
    @classmethod
    def _intervals(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if not value:
            raise ValueError("give at least one interval")
        for item in value:
            delta = parse_interval(item)
            if info.field_name in ("training_label_timespans", "test_label_timespans"):
                _positive(delta, f"a label timespan ({item!r})")  # an empty window labels no one
        return value

    @model_validator(mode="after")
    def _order(self) -> Timechop:
        if self.feature_start_time > self.feature_end_time:
            raise ValueError("feature_start_time is after feature_end_time")
        if self.label_start_time > self.label_end_time:
            raise ValueError("label_start_time is after label_end_time")
        return self


@dataclass(frozen=True)
class Matrix:
    """The as-of dates of one train or test matrix and the label timespan read after each."""

    as_of_dates: tuple[pd.Timestamp, ...]
    label_timespan: str
    as_of_date_frequency: str
    matrix_info_end_time: pd.Timestamp  # every label window ends by this time
    max_training_history: str | None = None  # training matrices only
    test_duration: str | None = None  # test matrices only

    @property
    def first_as_of_time(self) -> pd.Timestamp:
        return self.as_of_dates[0]

    @property
    def last_as_of_time(self) -> pd.Timestamp:
        return self.as_of_dates[-1]

    def label_windows(self) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """``[as_of, as_of + label_timespan)`` for each as-of date."""
        span = parse_interval(self.label_timespan)
        return [(d, _stamp(d.to_pydatetime() + span)) for d in self.as_of_dates]


@dataclass(frozen=True)
class Split:
    """One train/test split: train on ``train``, evaluate on each of ``tests``."""

    index: int
    split_time: pd.Timestamp  # last training label ends here; first test as-of date
    train: Matrix
    tests: tuple[Matrix, ...]

    @property
    def name(self) -> str:
        return f"split_{self.index}_{self.split_time:%Y-%m-%d}"

    @property
    def test(self) -> Matrix:
        return self.tests[0]


def _walk_back(end: pd.Timestamp, start: pd.Timestamp, step: relativedelta
               ) -> list[pd.Timestamp]:
    """``end, end - step, end - 2 step, ...`` (stepping one at a time, as triage does) while
    not before ``start``; returned in time order."""
    out, current = [], end.to_pydatetime()
    while current >= start.to_pydatetime():
        out.append(_stamp(current))
        current = current - step
    return out[::-1]


def _walk_forward(start: pd.Timestamp, limit: pd.Timestamp, step: relativedelta
                  ) -> list[pd.Timestamp]:
    """``start`` always, then ``start + step, ...`` while before ``limit``."""
    out, current = [start], start.to_pydatetime() + step
    while current < limit.to_pydatetime():
        out.append(_stamp(current))
        current = current + step
    return out


def split_times(chop: Timechop, training_label_timespan: str, test_label_timespan: str,
                test_duration: str) -> list[pd.Timestamp]:
    """Train/test boundaries for one combination of timespans and test duration."""
    last_test_label_time = (_stamp(chop.label_end_time).to_pydatetime()
                            - parse_interval(test_label_timespan))
    if last_test_label_time > _stamp(chop.feature_end_time).to_pydatetime():
        raise TimechopError(
            f"label_end_time - test_label_timespan ({last_test_label_time:%Y-%m-%d}) is after "
            f"feature_end_time ({chop.feature_end_time}): the last test as-of date would have "
            "no features")
    earliest = (_stamp(max(chop.feature_start_time, chop.label_start_time)).to_pydatetime()
                + parse_interval(training_label_timespan))
    last = last_test_label_time - parse_interval(test_duration)
    if last < earliest:
        raise TimechopError(
            f"no split fits: the last split time ({last:%Y-%m-%d}) is before the earliest "
            f"possible one ({earliest:%Y-%m-%d} = start + training_label_timespan "
            f"{training_label_timespan})")
    return _walk_back(_stamp(last), _stamp(earliest),
                      parse_interval(chop.model_update_frequency))


def chop_time(chop: Timechop) -> list[Split]:
    """All splits of a configuration, in triage's order: per (training label timespan, test
    label timespan, test duration), per (training frequency, max history), per split time."""
    splits: list[Split] = []
    start_limit = _stamp(max(chop.label_start_time, chop.feature_start_time))
    for train_span, test_span, duration in itertools.product(
            chop.training_label_timespans, chop.test_label_timespans, chop.test_durations):
        times = split_times(chop, train_span, test_span, duration)
        for frequency, history in itertools.product(chop.training_as_of_date_frequencies,
                                                    chop.max_training_histories):
            for split_time in times:
                last_train = _stamp(split_time.to_pydatetime() - parse_interval(train_span))
                first_train = _stamp(last_train.to_pydatetime() - parse_interval(history))
                first_train = max(first_train, start_limit)
                train_dates = _walk_back(last_train, first_train, parse_interval(frequency))
                if not train_dates:
                    raise TimechopError(f"split {split_time:%Y-%m-%d}: no training as-of date")
                train = Matrix(tuple(train_dates), train_span, frequency, split_time,
                               max_training_history=history)
                limit = _stamp(split_time.to_pydatetime() + parse_interval(duration))
                tests = []
                for test_frequency in chop.test_as_of_date_frequencies:
                    dates = _walk_forward(split_time, limit, parse_interval(test_frequency))
                    end = _stamp(dates[-1].to_pydatetime() + parse_interval(test_span))
                    tests.append(Matrix(tuple(dates), test_span, test_frequency, end,
                                        test_duration=duration))
                splits.append(Split(len(splits), split_time, train, tuple(tests)))
    return splits


def splits_table(splits: Sequence[Split]) -> pd.DataFrame:
    """One row per split: its boundary and the span and count of its train and test dates."""
    return pd.DataFrame([{
        "split": s.name, "split_time": s.split_time,
        "train_first": s.train.first_as_of_time, "train_last": s.train.last_as_of_time,
        "train_as_of_dates": len(s.train.as_of_dates),
        "train_label_timespan": s.train.label_timespan,
        "test_first": s.test.first_as_of_time, "test_last": s.test.last_as_of_time,
        "test_as_of_dates": len(s.test.as_of_dates),
        "test_label_end": s.test.matrix_info_end_time,
    } for s in splits])


def plot_splits(splits: Sequence[Split], chop: Timechop | None = None,
                title: str = "Temporal cross-validation splits") -> Any:
    """A plotly figure of the splits: one band per split, each training (blue) and test
    (orange) as-of date a dot with its label window drawn as a line after it, and the split
    time dashed; with ``chop``, the feature and label time limits too."""
    import plotly.graph_objects as go

    fig = go.Figure()
    styles = {"train": ("#1f77b4", 0.08, 0.42), "test": ("#ff7f0e", -0.42, -0.08)}
    for kind, (color, low, high) in styles.items():
        lx: list[Any] = []
        ly: list[Any] = []
        dx: list[Any] = []
        dy: list[Any] = []
        text: list[str] = []
        for row, split in enumerate(splits):
            matrices = [split.train] if kind == "train" else list(split.tests)
            for matrix in matrices:
                windows = matrix.label_windows()
                n = len(windows)
                for k, (begin, end) in enumerate(windows):
                    y = row + low + (high - low) * (k + 0.5) / n
                    lx += [begin, end, None]
                    ly += [y, y, None]
                    dx.append(begin)
                    dy.append(y)
                    text.append(f"{split.name}<br>{kind} as-of {begin:%Y-%m-%d}<br>"
                                f"label window to {end:%Y-%m-%d} ({matrix.label_timespan})")
        fig.add_trace(go.Scatter(x=lx, y=ly, mode="lines", name=f"{kind} label windows",
                                 line={"color": color, "width": 2}, opacity=0.5,
                                 hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=dx, y=dy, mode="markers", name=f"{kind} as-of dates",
                                 marker={"color": color, "size": 5}, text=text,
                                 hoverinfo="text"))
    for row, split in enumerate(splits):
        fig.add_shape(type="line", x0=split.split_time, x1=split.split_time, y0=row - 0.48,
                      y1=row + 0.48, line={"color": "black", "dash": "dash", "width": 1})
    if chop is not None:
        limits: dict[pd.Timestamp, list[str]] = {}
        for label, value in (("feature start", chop.feature_start_time),
                             ("feature end", chop.feature_end_time),
                             ("label start", chop.label_start_time),
                             ("label end", chop.label_end_time)):
            limits.setdefault(_stamp(value), []).append(label)
        for when, labels in limits.items():
            fig.add_vline(x=when, line={"color": "grey", "dash": "dot", "width": 1},
                          annotation_text=" / ".join(labels), annotation_position="top")
    fig.update_layout(
        title=title, xaxis_title="date", height=max(300, 90 * len(splits) + 150),
        yaxis={"tickmode": "array", "tickvals": list(range(len(splits))),
               "ticktext": [f"{s.name}" for s in splits], "autorange": "reversed"},
        legend={"orientation": "h", "y": -0.15}, template="plotly_white",
    )
    return fig
