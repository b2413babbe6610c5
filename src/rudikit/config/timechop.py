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

The splits are computed here, in the config package, because the project file is validated with
them: a timechop that leaves no split is refused when ``rudi.yaml`` is read, not mid-run.
:mod:`rudikit.features.timechop` tabulates and draws them.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from dateutil.relativedelta import relativedelta
from pydantic import ValidationInfo, field_validator, model_validator

from rudikit.config.base import Strict

if TYPE_CHECKING:
    import pandas as pd


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


def stamp(value: date | datetime) -> pd.Timestamp:
    """A day as a pandas timestamp (midnight). pandas is imported here, on first use, so that
    reading a project file does not load it."""
    import pandas as pd

    return pd.Timestamp(value).normalize()


def label_end(as_of: date | datetime, span: str) -> pd.Timestamp:
    """When the label window of a list made on ``as_of`` closes (``span``: the label
    timespan): a list is known only once this has passed, so nothing chosen before it may read
    its labels."""
    import pandas as pd

    return pd.Timestamp(pd.Timestamp(as_of).to_pydatetime() + parse_interval(span))


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
        return [(d, stamp(d.to_pydatetime() + span)) for d in self.as_of_dates]


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
        out.append(stamp(current))
        current = current - step
    return out[::-1]


def _walk_forward(start: pd.Timestamp, limit: pd.Timestamp, step: relativedelta
                  ) -> list[pd.Timestamp]:
    """``start`` always, then ``start + step, ...`` while before ``limit``."""
    out, current = [start], start.to_pydatetime() + step
    while current < limit.to_pydatetime():
        out.append(stamp(current))
        current = current + step
    return out


def split_times(chop: Timechop, training_label_timespan: str, test_label_timespan: str,
                test_duration: str) -> list[pd.Timestamp]:
    """Train/test boundaries for one combination of timespans and test duration."""
    last_test_label_time = (stamp(chop.label_end_time).to_pydatetime()
                            - parse_interval(test_label_timespan))
    if last_test_label_time > stamp(chop.feature_end_time).to_pydatetime():
        raise TimechopError(
            f"label_end_time - test_label_timespan ({last_test_label_time:%Y-%m-%d}) is after "
            f"feature_end_time ({chop.feature_end_time}): the last test as-of date would have "
            "no features")
    earliest = (stamp(max(chop.feature_start_time, chop.label_start_time)).to_pydatetime()
                + parse_interval(training_label_timespan))
    last = last_test_label_time - parse_interval(test_duration)
    if last < earliest:
        raise TimechopError(
            f"no split fits: the last split time ({last:%Y-%m-%d}) is before the earliest "
            f"possible one ({earliest:%Y-%m-%d} = start + training_label_timespan "
            f"{training_label_timespan})")
    return _walk_back(stamp(last), stamp(earliest),
                      parse_interval(chop.model_update_frequency))


def train_matrix(chop: Timechop, split_time: pd.Timestamp, train_span: str, frequency: str,
                 history: str) -> Matrix:
    """The training as-of dates of a split at ``split_time``: walking back from
    ``split_time - train_span`` by ``frequency`` for ``history``, no earlier than the start
    times, so every label window ends by ``split_time`` (what retraining reuses)."""
    start_limit = stamp(max(chop.label_start_time, chop.feature_start_time))
    last_train = stamp(split_time.to_pydatetime() - parse_interval(train_span))
    first_train = stamp(last_train.to_pydatetime() - parse_interval(history))
    first_train = max(first_train, start_limit)
    train_dates = _walk_back(last_train, first_train, parse_interval(frequency))
    if not train_dates:
        raise TimechopError(f"split {split_time:%Y-%m-%d}: no training as-of date")
    return Matrix(tuple(train_dates), train_span, frequency, split_time,
                  max_training_history=history)


def chop_time(chop: Timechop) -> list[Split]:
    """All splits of a configuration, in triage's order: per (training label timespan, test
    label timespan, test duration), per (training frequency, max history), per split time."""
    splits: list[Split] = []
    for train_span, test_span, duration in itertools.product(
            chop.training_label_timespans, chop.test_label_timespans, chop.test_durations):
        times = split_times(chop, train_span, test_span, duration)
        for frequency, history in itertools.product(chop.training_as_of_date_frequencies,
                                                    chop.max_training_histories):
            for split_time in times:
                train = train_matrix(chop, split_time, train_span, frequency, history)
                limit = stamp(split_time.to_pydatetime() + parse_interval(duration))
                tests = []
                for test_frequency in chop.test_as_of_date_frequencies:
                    dates = _walk_forward(split_time, limit, parse_interval(test_frequency))
                    end = stamp(dates[-1].to_pydatetime() + parse_interval(test_span))
                    tests.append(Matrix(tuple(dates), test_span, test_frequency, end,
                                        test_duration=duration))
                splits.append(Split(len(splits), split_time, train, tuple(tests)))
    return splits
