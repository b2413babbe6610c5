"""Temporal experiments for an early intervention system: every model group trained and tested
on each timechop split, as a department would have retrained and used it.

For each split of :func:`rudikit.config.timechop.chop_time`:

* the training matrix is the as-of features (:func:`rudikit.features.asof.build.build_features`) of
  every active officer on each training as-of date, joined to the label read in the window
  ``[as_of, as_of + training_label_timespan)``; censored rows (window past the data's end) are
  dropped. Every training window ends by the split time, the first test as-of date, and the
  runner refuses to fit if one does not (:class:`LeakageError`): no training label overlaps the
  test period;
* the test matrix is the same for the test as-of dates (rows whose test window is censored
  are not scored);
* every model group of the grid (``expand_grid`` of the model specs; ``unit`` and ``rank``
  categorical, every other feature numeric) is fitted and scores the test officers; the model,
  its predictions (with ``as_of_date``), its evaluations (``precision_at_k@100_abs`` with a
  bootstrap interval, ROC AUC, ...) and native importances go to the results store.

Two single-feature baselines stand next to the models: ``rank_by_feature`` ranks officers by
one feature (last year's complaint count, last year's use-of-force count), ties broken by
further features. A model that does not beat them is not worth deploying.

When a split has several test as-of dates, evaluations are computed per date (each date is one
list) and stored with the date appended to the parameter (``100_abs@2014-04-01``); the plain
``100_abs`` row is then the mean over the dates (no interval).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import pandas as pd
from lightgbm.basic import LightGBMError
from sklearn.pipeline import Pipeline

from rudikit.config import (
    BASELINE,
    ConsecutiveLists,
    Features,
    TemporalError,
    TemporalExperiment,
    label_months,
)
from rudikit.config.timechop import Split, label_end
from rudikit.data.event_tables import ENTITY
from rudikit.features.asof.build import build_features
from rudikit.features.asof.defaults import DEFAULT_LABELS, DEFAULT_STATES, event_specs
from rudikit.features.asof.labels import build_labels
from rudikit.features.asof.specs import LabelSpec
from rudikit.models.audition import DEFAULT_RULES, Rule
from rudikit.models.ensemble import with_defaults
from rudikit.models.estimators import (
    BinaryScorer,
    GridPoint,
    build_pipeline,
    limit_jobs,
    make_encoder,
    predict_scores,
)


class LeakageError(RuntimeError):
    """A training label window reaches into the test period."""


# --- The baseline ----------------------------------------------------------------------------


class FeatureRankClassifier(BinaryScorer):
    """Baseline: rank by one input column (e.g. complaints in the past year), ties broken by
    further columns. Learns nothing.

    The score is ``0.5 + arctan(v) / pi`` of ``v = x0 + sum_j 0.5**j * t_j / (1 + |t_j|)``: in
    (0, 1) and increasing in the column; each tie-breaker moves ``v`` by less than half a unit,
    so for count features the order is lexicographic (column first, then the first
    tie-breaker). Scores are an order, not probabilities. Missing values count as 0.
    """

    def __init__(self, column_index: int = 0, tie_break_indices: Sequence[int] = ()):
        self.column_index = column_index
        self.tie_break_indices = tie_break_indices

    def _columns(self) -> list[int]:
        return [self.column_index, *self.tie_break_indices]

    def decision_function(self, X: Any) -> np.ndarray:
        return self._value(self._checked(X))

    def _value(self, X: np.ndarray) -> np.ndarray:
        X = np.nan_to_num(X, nan=0.0)
        value = X[:, self.column_index].copy()
        for j, index in enumerate(self.tie_break_indices, start=1):
            t = X[:, index]
            value += 0.5 ** j * t / (1 + np.abs(t))
        return value

    def _score(self, X: np.ndarray) -> np.ndarray:
        return 0.5 + np.arctan(self._value(X)) / np.pi


def build_temporal_pipeline(point: GridPoint, features: Features, seed: int = 0
                            ) -> tuple[Pipeline, dict[str, Any]]:
    """:func:`rudikit.models.estimators.build_pipeline`, plus the ``rank_by_feature`` baseline
    (params ``column`` and optional ``tie_break``: a column or list of columns, each one of
    ``features.numeric``). The baseline's pipeline reads only its own columns."""
    if point.algorithm != BASELINE:
        return build_pipeline(point, features, seed)
    params = dict(point.params)
    column = params.pop("column", None)
    ties = params.pop("tie_break", [])
    ties = [ties] if isinstance(ties, str) else list(ties or [])
    if params:
        raise ValueError(f"{BASELINE}: unknown parameter(s) {', '.join(sorted(params))}")
    for name in [column, *ties]:
        if name not in features.numeric:
            raise ValueError(f"{BASELINE}: {name!r} is not a numeric feature")
    model = FeatureRankClassifier(0, tuple(range(1, len(ties) + 1)))
    own = Features(numeric=list(dict.fromkeys([column, *ties])))
    return Pipeline([("encode", make_encoder(own)), ("model", model)]), {}


# --- What the temporal section describes ---------------------------------------------------


def experiment_grid(experiment: TemporalExperiment) -> list[tuple[GridPoint, str]]:
    """(grid point, display name) of every model group, in configuration order."""
    out = []
    for spec in experiment.models:
        if spec.search is not None or spec.algorithm == "ensemble":
            continue  # trials: the search's (rudikit.run.temporal); ensembles: after the grid
        keys = sorted(spec.params)
        for values in itertools.product(*(spec.params[k] for k in keys)):
            point = GridPoint(spec.algorithm, dict(zip(keys, values, strict=True)))
            out.append((point, spec.name or point.describe()))
    return out


def ensemble_grid(experiment: TemporalExperiment) -> list[tuple[GridPoint, str]]:
    """(grid point, display name) of every ensemble model group, its parameters as stored
    (:func:`rudikit.models.ensemble.with_defaults`); built after the grid's fits."""
    out = []
    for spec in experiment.models:
        if spec.algorithm != "ensemble":
            continue
        keys = sorted(spec.params)
        for values in itertools.product(*(spec.params[k] for k in keys)):
            point = GridPoint("ensemble", with_defaults(dict(zip(keys, values, strict=True))))
            out.append((point, spec.name or point.describe()))
    return out


def selection_rules(experiment: TemporalExperiment) -> list[Rule]:
    """The selection rules to audition (the default set when none are configured)."""
    if not experiment.selection_rules:
        return list(DEFAULT_RULES)
    return [Rule(r.name, r.param) for r in experiment.selection_rules]


def label_spec(experiment: TemporalExperiment) -> LabelSpec:
    """The as-of label the experiment names."""
    return next(spec for spec in DEFAULT_LABELS if spec.name == experiment.label)


# --- Data: features, labels and matrices ------------------------------------------------------


@dataclass
class PreparedData:
    """Features for every as-of date an experiment needs, labels per label timespan, splits.
    ``feature_config`` is what the models learn from; ``available`` is every prepared feature
    (what a baseline may rank by); ``table_columns`` names the features each source table
    gives (to refit a model without one)."""

    experiment: TemporalExperiment
    splits: list[Split]
    features: pd.DataFrame  # officer_uid, as_of_date, feature columns
    feature_config: Features
    labels: dict[str, pd.DataFrame]  # label timespan -> officer_uid, as_of_date, label
    available: Features
    seconds: dict[str, float] = field(default_factory=dict)
    table_columns: dict[str, list[str]] = field(default_factory=dict)

    @property
    def label_name(self) -> str:
        return self.experiment.label

    def features_for(self, point: GridPoint) -> Features:
        """The features a grid point is built with: every prepared one for a baseline, the
        experiment's (after exclusions) for a model."""
        return self.available if point.algorithm == BASELINE else self.feature_config


def _excluded_by_patterns(name: str, patterns: Sequence[str]) -> bool:
    """Whether shell-glob ``patterns`` drop ``name``; ``!pattern`` takes it back; the last
    matching pattern decides."""
    dropped = False
    for pattern in patterns:
        keep = pattern.startswith("!")
        if fnmatch.fnmatchcase(name, pattern[1:] if keep else pattern):
            dropped = not keep
    return dropped


def feature_config(columns: Sequence[str], experiment: TemporalExperiment) -> Features:
    problems = [f"temporal.{key}[{i}]: no feature {name!r}"
                for key in ("categorical", "exclude_features")
                for i, name in enumerate(getattr(experiment, key)) if name not in columns]
    problems += [f"temporal.exclude_patterns[{i}]: {pattern!r} matches no feature"
                 for i, pattern in enumerate(experiment.exclude_patterns)
                 if not fnmatch.filter(columns, pattern.removeprefix("!"))]
    if problems:  # a misspelt category would silently become an all-missing numeric column
        raise TemporalError("; ".join(problems))
    excluded = set(experiment.exclude_features)
    usable = [c for c in columns if c not in excluded
              and not _excluded_by_patterns(c, experiment.exclude_patterns)]
    categorical = [c for c in experiment.categorical if c in usable]
    numeric = [c for c in usable if c not in categorical]
    return Features(categorical=categorical, numeric=numeric)


def prepare(experiment: TemporalExperiment, tables: Mapping[str, pd.DataFrame], *,
            cache_dir: str | Path | None = None,
            extra_dates: Sequence[Any] = (), splits: Sequence[Split] | None = None
            ) -> PreparedData:
    """Features on every training and test as-of date of every split (the experiment's, or
    ``splits``, e.g. a retraining's), plus ``extra_dates``, and the label for each label
    timespan used."""
    splits = list(experiment.splits() if splits is None else splits)
    dates: set[pd.Timestamp] = set()
    spans: set[str] = set()
    for split in splits:
        dates.update(split.train.as_of_dates)
        spans.add(split.train.label_timespan)
        for test in split.tests:
            dates.update(test.as_of_dates)
            spans.add(test.label_timespan)
    started = time.perf_counter()
    every = sorted(dates | {pd.Timestamp(d) for d in extra_dates})
    features = build_features(tables, every, event_specs(experiment.complete_from), DEFAULT_STATES,
                              cache_dir=cache_dir)
    seconds = {"features": time.perf_counter() - started}
    started = time.perf_counter()
    spec = label_spec(experiment)
    labels = {span: build_labels(tables, sorted(dates),
                                 dataclasses.replace(spec, window_months=label_months(span)))
              for span in sorted(spans)}
    seconds["labels"] = time.perf_counter() - started
    columns = features.feature_columns
    everything = experiment.model_copy(update={"exclude_features": [], "exclude_patterns": []})
    return PreparedData(experiment, splits, features.frame, feature_config(columns, experiment),
                        labels, feature_config(columns, everything), seconds,
                        features.table_columns())


@dataclass
class SplitMatrices:
    """One split's training and test rows: keys, features and the label, with each row's label
    window end (``label_end``)."""

    split: Split
    train: pd.DataFrame
    test: pd.DataFrame
    label: str
    censored_train: int
    censored_test: int

    def check_no_overlap(self) -> None:
        """Every training label window ends by the first test as-of date."""
        test_start = self.test["as_of_date"].min() if len(self.test) else self.split.split_time
        test_start = min(test_start, self.split.split_time)
        late = self.train[self.train["label_end"] > test_start]
        if len(late):
            row = late.iloc[0]
            raise LeakageError(
                f"{self.split.name}: training row ({row[ENTITY]}, {row['as_of_date']:%Y-%m-%d}) "
                f"has a label window ending {row['label_end']:%Y-%m-%d}, after the test period "
                f"starts ({test_start:%Y-%m-%d})")

    def index(self) -> dict[str, pd.DataFrame]:
        """The keys and label windows only (what tests and reports need), features dropped."""
        cols = [ENTITY, "as_of_date", "label_end", self.label]
        return {"train": self.train[cols].copy(), "test": self.test[cols].copy()}


def _with_labels(features: pd.DataFrame, labels: pd.DataFrame, dates: Sequence[pd.Timestamp],
                 span: str, label: str) -> tuple[pd.DataFrame, int]:
    rows = features[features["as_of_date"].isin(list(dates))]
    rows = rows.merge(labels, on=[ENTITY, "as_of_date"], how="left", validate="one_to_one")
    censored = int(rows[label].isna().sum())
    rows = rows[rows[label].notna()].reset_index(drop=True)
    ends = {d: label_end(d, span) for d in rows["as_of_date"].unique()}
    closes = rows["as_of_date"].map(ends).astype("datetime64[s]").rename("label_end")
    rows = pd.concat([rows, closes], axis=1)
    rows[label] = rows[label].astype(int)
    return rows, censored


def split_matrices(data: PreparedData, split: Split, test_index: int = 0) -> SplitMatrices:
    """The training and test matrices of one split (censored rows dropped), checked for
    leakage."""
    label = data.label_name
    test = split.tests[test_index]
    train_span = split.train.label_timespan
    train_rows, censored_train = _with_labels(data.features, data.labels[train_span],
                                              split.train.as_of_dates, train_span, label)
    test_rows, censored_test = _with_labels(data.features, data.labels[test.label_timespan],
                                            test.as_of_dates, test.label_timespan, label)
    matrices = SplitMatrices(split, train_rows, test_rows, label, censored_train, censored_test)
    matrices.check_no_overlap()
    return matrices


# --- Running ----------------------------------------------------------------------------------


def native_importances(pipeline: Pipeline, features: Features
                        ) -> list[tuple[str, str, float, float | None, float | None]]:
    """Each model input's share of the model's own importance (LightGBM gain, forest
    impurity); none for models without one, or whose inputs are not ``features``."""
    model = pipeline.named_steps["model"]
    names = [*features.categorical, *features.boolean, *features.numeric]
    if hasattr(model, "booster_"):
        values = model.booster_.feature_importance(importance_type="gain").astype(float)
        method = "lightgbm_gain"
    elif hasattr(model, "feature_importances_"):
        values = np.asarray(model.feature_importances_, dtype=float)
        method = "impurity"
    else:
        return []
    if len(values) != len(names):
        return []
    total = values.sum()
    values = values / total if total > 0 else values
    return [(n, method, float(v), None, None) for n, v in zip(names, values, strict=True)]


def fit_and_score(point: GridPoint, features: Features, matrices: SplitMatrices, seed: int,
                  threads: int | None = None) -> tuple[Pipeline, np.ndarray, float]:
    """(fitted pipeline, test scores, fit seconds) of one grid point on one split; ``features``
    as :meth:`PreparedData.features_for` gives them; ``threads``: the most a fit may use (an
    executor task's share of the cores)."""
    pipeline, fit_params = build_temporal_pipeline(point, features, seed)
    limit_jobs(pipeline, threads)
    columns = pipeline.named_steps["encode"].input_columns
    y = matrices.train[matrices.label].to_numpy()
    if len(np.unique(y)) < 2:
        raise TemporalError(f"{matrices.split.name}: training rows have one label value only")
    started = time.perf_counter()
    try:
        pipeline.fit(matrices.train[columns], y, **fit_params)
    except LightGBMError as exc:  # not a ValueError: it would end the command in a traceback
        raise TemporalError(f"{matrices.split.name}: {point.describe()}: {exc}") from None
    seconds = time.perf_counter() - started
    return pipeline, predict_scores(pipeline, matrices.test[columns]), seconds


def feature_digest(features: Features) -> str:
    return hashlib.sha256(json.dumps(features.model_dump(mode="json"), sort_keys=True)
                          .encode()).hexdigest()[:16]


T = TypeVar("T")

#: Runs ``fn(*call, threads=...)`` for each call and yields the results in order: an executor
#: (:func:`rudikit.run.execution.ordered_results`) or, by default, one after another here.
RunEach = Callable[[Callable[..., Any], Sequence[Sequence[Any]]], Iterable[Any]]


def one_after_another(fn: Callable[..., Any], calls: Sequence[Sequence[Any]]) -> Iterator[Any]:
    """The default :data:`RunEach`: every call here, in turn."""
    return (fn(*call, threads=None) for call in calls)


def any_task(fn: Callable[..., Any], *args: Any, threads: int | None = None) -> Any:
    """``fn(*args)``: the task function of a batch that mixes several kinds of task (each
    call names its own function)."""
    return fn(*args, threads=threads)


@dataclass
class Planned(Generic[T]):
    """A step's tasks planned apart from running them, so that a caller can run several
    steps' tasks in one batch (each batch ends with workers idle while its last tasks run):
    ``calls`` of ``fn``, each with its expected cost (which orders the tasks, nothing else),
    and ``collect``, which turns the calls' results, given in order, into the step's value."""

    fn: Callable[..., Any]
    calls: list[tuple[Any, ...]]
    costs: list[float]
    collect: Callable[[Iterator[Any]], T]

    def run(self, run_each: RunEach = one_after_another) -> T:
        """The step's tasks alone, through ``run_each``."""
        return self.collect(iter(run_each(self.fn, self.calls)))


def consecutive_dates(start: Any, settings: ConsecutiveLists) -> list[pd.Timestamp]:
    """As-of dates for list-stability monitoring after ``start`` (the last test date): monthly
    for ``months`` months, weekly for ``weeks`` weeks (not past the last monthly date) and daily
    for the ``days`` days that end on the last date, so a list on that last date has an
    earlier list one day, one week, one month and one quarter back (the union, sorted)."""
    begin = pd.Timestamp(start)
    end = begin + pd.DateOffset(months=settings.months)
    dates = {begin, end}
    dates.update(begin + pd.DateOffset(months=i) for i in range(1, settings.months + 1))
    dates.update(d for d in (begin + pd.DateOffset(weeks=i) for i in range(1, settings.weeks + 1))
                 if d <= end)
    dates.update(d for d in (end - pd.DateOffset(days=i) for i in range(1, settings.days + 1))
                 if d >= begin)
    return sorted(dates)


def training_matrix(data: PreparedData, split: Split | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """(X_train, y_train, X_test, test rows) of a split (default: the last; first test date)
    encoded as a numeric matrix, for :func:`rudikit.evaluation.stability.trees_tasks`."""
    split = split or data.splits[-1]
    matrices = split_matrices(data, split)
    first = matrices.test["as_of_date"].min()
    test = matrices.test[matrices.test["as_of_date"] == first].reset_index(drop=True)
    encoder = make_encoder(data.feature_config)
    columns = data.feature_config.input_columns
    X_train = encoder.fit_transform(matrices.train[columns]).astype(np.float32)
    X_test = encoder.transform(test[columns]).astype(np.float32)
    return X_train, matrices.train[matrices.label].to_numpy(), X_test, test
