"""Temporal experiments for an early intervention system: every model group trained and tested
on each timechop split, as a department would have retrained and used it.

For each split of :func:`rudikit.features.timechop.chop_time`:

* the training matrix is the as-of features (:func:`rudikit.features.asof.build_features`) of
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from lightgbm.basic import LightGBMError
from pydantic import Field, field_validator, model_validator
from sklearn.pipeline import Pipeline
from sqlalchemy.engine import Engine

from rudikit.evaluation.metrics import MetricValue, evaluate_scores
from rudikit.evaluation.stability import check_forest
from rudikit.features.asof import (
    DEFAULT_LABELS,
    DEFAULT_SPECS,
    DEFAULT_STATES,
    EventSpec,
    LabelSpec,
    build_features,
    build_labels,
    event_group_names,
)
from rudikit.features.timechop import (
    Split,
    Timechop,
    TimechopError,
    chop_time,
    parse_interval,
)
from rudikit.models.artefacts import save_artefact
from rudikit.models.audition import DEFAULT_RULES, RULES, Rule
from rudikit.models.estimators import (
    BinaryScorer,
    GridPoint,
    build_pipeline,
    check_grid,
    label_sample,
    make_encoder,
)
from rudikit.project import Features, Strict
from rudikit.store import results

ENTITY = "officer_uid"
BASELINE = "rank_by_feature"
ALGORITHMS = ("logistic_regression", "random_forest", "lightgbm", "rate_by_category", BASELINE)


class LeakageError(RuntimeError):
    """A training label window reaches into the test period."""


class TemporalError(ValueError):
    pass


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


# --- Configuration ---------------------------------------------------------------------------


class TemporalModel(Strict):
    """An algorithm and lists of hyperparameter values (every combination is a model group),
    as ``ModelSpec`` but also allowing the ``rank_by_feature`` baseline; ``name`` labels the
    groups in reports."""

    algorithm: str
    params: dict[str, list[Any]] = {}
    name: str | None = None

    @field_validator("algorithm")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {value!r} (known: {', '.join(ALGORITHMS)})")
        return value

    @field_validator("params", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        return value


class ConsecutiveLists(Strict):
    """Extra as-of dates after the last test date, scored by the last split's model, to measure
    how the list moves from one day, week and month to the next."""

    days: int = Field(14, ge=0)
    weeks: int = Field(12, ge=0)
    months: int = Field(3, ge=0)


class StabilitySettings(Strict):
    """List stability: the chosen model refitted with each seed (top-``k`` Jaccard), and the
    stability-vs-trees curve of ``algorithm`` (``random_forest``, ``extra_trees`` or
    ``lightgbm``) with ``params``, both on the last split's first test as-of date."""

    seeds: list[int] = Field([0, 1], min_length=2)  # stability is agreement between seeds
    algorithm: Literal["random_forest", "extra_trees", "lightgbm"] = "random_forest"
    n_estimators: list[Annotated[int, Field(ge=1)]] = [100, 300, 1000, 3000]
    params: dict[str, Any] = {}
    consecutive: ConsecutiveLists = ConsecutiveLists()

    @field_validator("params")
    @classmethod
    def _curve_owns(cls, value: dict[str, Any]) -> dict[str, Any]:
        taken = sorted({"n_estimators", "random_state", "seed", "warm_start"} & set(value))
        if taken:  # a forest would silently take the curve's own values instead
            raise ValueError(f"{', '.join(taken)}: set by the curve itself (n_estimators lists "
                             "the sizes, seeds the seeds)")
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"seeds must differ (a seed compared with itself always agrees), "
                             f"got {value}")
        return value


class SelectionRule(Strict):
    """An audition rule (:mod:`rudikit.models.audition`) and its parameter."""

    name: str
    param: float | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in RULES:
            raise ValueError(f"unknown selection rule {value!r} (known: {', '.join(RULES)})")
        return value


class Completeness(Strict):
    """When an event table's records became complete: before ``date`` it held only the groups
    in ``recorded_before`` (e.g. ``cat_excessive_force``), so counts of the other groups over
    windows that reach before ``date`` are missing (:class:`rudikit.features.asof.EventSpec`)."""

    date: date
    recorded_before: list[str] = []


class TemporalExperiment(Strict):
    """One EIS experiment: a label, its timechop, a model grid and how lists are judged.

    ``label`` names one of :data:`rudikit.features.asof.DEFAULT_LABELS` (``any_complaint``,
    ``sustained_complaint``, ``injury_use_of_force``); its window is the timechop's label
    timespan. ``test_from`` skips splits whose split time is earlier (their training history
    may still reach back to the timechop's start times). Every feature of the default as-of
    specs is used except ``exclude_features`` and names matching ``exclude_patterns`` (shell
    globs: ``"*_rate"`` drops every rate; a pattern starting with ``!`` takes back what earlier
    patterns dropped, as in ``.gitignore``, and the last pattern a name matches decides);
    ``categorical`` are categories, the rest numeric. Baselines (``rank_by_feature``) may rank
    by any prepared feature, excluded or not: the exclusions shape what the models learn from.
    ``complete_from`` declares, per event feature block (``cmp``, ``uof``, ``unit``), the day
    its source began to record every kind of event."""

    name: str = "eis"
    label: str
    timechop: Timechop
    test_from: date | None = None
    models: list[TemporalModel]
    categorical: list[str] = ["unit", "rank"]
    exclude_features: list[str] = []
    exclude_patterns: list[str] = []
    complete_from: dict[str, Completeness] = {}
    top_k: int = Field(100, ge=1)
    top_pct: list[Annotated[float, Field(gt=0, le=100)]] = [1.0, 5.0]
    bootstrap: int = Field(200, ge=0, le=10_000)
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: int = 0
    cool_off_days: int = Field(365, ge=0)
    importances: bool = True
    selection_rules: list[SelectionRule] = []
    stability: StabilitySettings = StabilitySettings()

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        names = [spec.name for spec in DEFAULT_LABELS]
        if value not in names:
            raise ValueError(f"unknown label {value!r} (known: {', '.join(names)})")
        return value

    @field_validator("complete_from")
    @classmethod
    def _completeness(cls, value: dict[str, Completeness]) -> dict[str, Completeness]:
        specs = {spec.name: spec for spec in DEFAULT_SPECS}
        for name, completeness in value.items():
            if name not in specs:
                raise ValueError(f"{name}: no event feature block of that name (known: "
                                 f"{', '.join(specs)})")
            groups = event_group_names(specs[name])
            for i, group in enumerate(completeness.recorded_before):
                if group not in groups:
                    raise ValueError(f"{name}.recorded_before[{i}]: no group {group!r} (groups: "
                                     f"{', '.join(groups)})")
        return value

    def event_specs(self) -> tuple[EventSpec, ...]:
        """The event feature blocks, with this experiment's completeness dates."""
        out = []
        for spec in DEFAULT_SPECS:
            done = self.complete_from.get(spec.name)
            if done is not None:
                spec = dataclasses.replace(spec, complete_from=done.date.isoformat(),
                                           complete_groups=tuple(done.recorded_before))
            out.append(spec)
        return tuple(out)

    @model_validator(mode="after")
    def _models(self) -> TemporalExperiment:
        if not self.models:
            raise ValueError("models: give at least one model")
        for key in ("training_label_timespans", "test_label_timespans"):
            for i, span in enumerate(getattr(self.timechop, key)):
                try:
                    label_months(span)  # the label builder counts whole months
                except TemporalError as exc:
                    raise ValueError(f"timechop.{key}[{i}]: {exc}") from None
        try:
            self.splits()
        except (TimechopError, TemporalError) as exc:
            raise ValueError(f"timechop: {exc}") from None
        return self

    def rules(self) -> list[Rule]:
        """The selection rules to audition (the default set when none are configured)."""
        if not self.selection_rules:
            return list(DEFAULT_RULES)
        return [Rule(r.name, r.param) for r in self.selection_rules]

    @property
    def label_spec(self) -> LabelSpec:
        return next(spec for spec in DEFAULT_LABELS if spec.name == self.label)

    def grid(self) -> list[tuple[GridPoint, str]]:
        """(grid point, display name) of every model group, in configuration order."""
        out = []
        for spec in self.models:
            keys = sorted(spec.params)
            for values in itertools.product(*(spec.params[k] for k in keys)):
                point = GridPoint(spec.algorithm, dict(zip(keys, values, strict=True)))
                out.append((point, spec.name or point.describe()))
        return out

    def splits(self) -> list[Split]:
        splits = chop_time(self.timechop)
        if self.test_from is not None:
            splits = [s for s in splits if s.split_time >= pd.Timestamp(self.test_from)]
        if not splits:
            raise TemporalError("no split left (check timechop and test_from)")
        return splits


def label_months(span: str) -> int:
    """A label timespan in whole months (``1year`` -> 12); the label builder counts months."""
    delta = parse_interval(span)
    if delta.days or delta.weeks:
        raise TemporalError(f"label timespan {span!r} must be whole months or years")
    return delta.years * 12 + delta.months


# --- Data: features, labels and matrices ------------------------------------------------------


@dataclass
class PreparedData:
    """Features for every as-of date an experiment needs, labels per label timespan, splits.
    ``feature_config`` is what the models learn from; ``available`` is every prepared feature
    (what a baseline may rank by)."""

    experiment: TemporalExperiment
    splits: list[Split]
    features: pd.DataFrame  # officer_uid, as_of_date, feature columns
    feature_config: Features
    labels: dict[str, pd.DataFrame]  # label timespan -> officer_uid, as_of_date, label
    available: Features
    seconds: dict[str, float] = field(default_factory=dict)

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
            extra_dates: Sequence[Any] = ()) -> PreparedData:
    """Features on every training and test as-of date of every split (plus ``extra_dates``),
    and the label for each label timespan used."""
    splits = experiment.splits()
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
    features = build_features(tables, every, experiment.event_specs(), DEFAULT_STATES,
                              cache_dir=cache_dir)
    seconds = {"features": time.perf_counter() - started}
    started = time.perf_counter()
    spec = experiment.label_spec
    labels = {span: build_labels(tables, sorted(dates),
                                 dataclasses.replace(spec, window_months=label_months(span)))
              for span in sorted(spans)}
    seconds["labels"] = time.perf_counter() - started
    columns = features.feature_columns
    everything = experiment.model_copy(update={"exclude_features": [], "exclude_patterns": []})
    return PreparedData(experiment, splits, features.frame, feature_config(columns, experiment),
                        labels, feature_config(columns, everything), seconds)


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
    delta = parse_interval(span)
    ends = {d: pd.Timestamp(pd.Timestamp(d).to_pydatetime() + delta)
            for d in rows["as_of_date"].unique()}
    label_end = rows["as_of_date"].map(ends).astype("datetime64[s]").rename("label_end")
    rows = pd.concat([rows, label_end], axis=1)
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


@dataclass
class TemporalResult:
    """What :func:`run_temporal` did. ``metrics``: one row per (model group, test as-of date)
    with precision in the top k and its interval; ``predictions``: every test score;
    ``matrices``: per split the keys and label windows of its train and test rows."""

    run_id: int
    experiment: TemporalExperiment
    groups: pd.DataFrame
    metrics: pd.DataFrame
    predictions: pd.DataFrame
    matrices: list[dict[str, Any]]
    data: PreparedData
    seconds: dict[str, float]

    def precision_table(self) -> pd.DataFrame:
        """Model groups x test as-of dates of precision in the top k, with the mean; baselines
        first."""
        table = self.metrics.pivot_table(index="model_group_id", columns="as_of_date",
                                         values="value")
        table.columns = [f"{pd.Timestamp(c):%Y-%m-%d}" for c in table.columns]
        table["mean"] = table.mean(axis=1)
        info = self.groups.set_index("model_group_id")[["name", "algorithm", "baseline"]]
        out = info.join(table, how="inner")
        return out.sort_values(["baseline", "mean"], ascending=[False, False])

    def split_metrics(self) -> pd.DataFrame:
        """One value per (model group, split): the mean over the split's test as-of dates, in
        the long format :func:`rudikit.models.audition.audition` reads (period = split time).
        With one test date per split it is ``metrics`` itself."""
        return (self.metrics.groupby(["model_group_id", "split_time"], as_index=False)["value"]
                .mean())

    def scores(self, model_group_id: int, as_of_date: Any) -> pd.Series:
        """entity -> score of one group's list on one test as-of date."""
        p = self.predictions
        rows = p[(p["model_group_id"] == model_group_id)
                 & (p["as_of_date"] == pd.Timestamp(as_of_date))]
        return pd.Series(rows["score"].to_numpy(), index=rows["entity_id"].to_numpy())

    def group(self, model_group_id: int) -> dict[str, Any]:
        row = self.groups[self.groups["model_group_id"] == model_group_id].iloc[0]
        return row.to_dict()


def _report(progress: Any, message: str, task: Any = None, advance: bool = False) -> None:
    if progress is None:
        return
    if hasattr(progress, "update") and task is not None:
        progress.update(task, description=message)
        if advance:
            progress.advance(task)
    elif callable(progress) and not advance:
        progress(message)


def _native_importances(pipeline: Pipeline, features: Features
                        ) -> list[tuple[str, str, float, float | None, float | None]]:
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


def evaluate_lists(test: pd.DataFrame, label: str, score: np.ndarray,
                   experiment: TemporalExperiment) -> tuple[list[MetricValue], pd.DataFrame]:
    """Evaluations to store, and one row per test as-of date (precision in the top k with its
    interval, ROC AUC, rows and positives)."""
    rows = []
    stored: list[MetricValue] = []
    dates = sorted(test["as_of_date"].unique())
    per_date = {}
    for when in dates:
        mask = (test["as_of_date"] == when).to_numpy()
        y = test.loc[mask, label].to_numpy()
        metrics = evaluate_scores(y, score[mask], thresholds=[], top_k=[experiment.top_k],
                                  top_pct=experiment.top_pct, bootstrap=experiment.bootstrap,
                                  confidence=experiment.confidence, seed=experiment.seed)
        per_date[pd.Timestamp(when)] = metrics
        by_key = {(m.metric, m.parameter): m for m in metrics}
        p = by_key[("precision_at_k", f"{experiment.top_k}_abs")]
        rows.append({"as_of_date": pd.Timestamp(when), "value": p.value, "lower": p.lower,
                     "upper": p.upper, "n": int(mask.sum()), "positives": int(y.sum()),
                     "roc_auc": by_key[("roc_auc", "")].value})
    if len(dates) == 1:
        stored = per_date[pd.Timestamp(dates[0])]
    else:
        for when, metrics in per_date.items():
            stored += [dataclasses.replace(m, parameter=f"{m.parameter}@{when:%Y-%m-%d}")
                       for m in metrics]
        first = per_date[pd.Timestamp(dates[0])]
        for m in first:
            values = [next(x.value for x in per_date[d] if (x.metric, x.parameter)
                           == (m.metric, m.parameter)) for d in per_date]
            stored.append(MetricValue(m.metric, m.parameter, float(np.nanmean(values)), None,
                                      None, len(test)))
    return stored, pd.DataFrame(rows)


def fit_and_score(point: GridPoint, features: Features, matrices: SplitMatrices, seed: int
                  ) -> tuple[Pipeline, np.ndarray, float]:
    """(fitted pipeline, test scores, fit seconds) of one grid point on one split; ``features``
    as :meth:`PreparedData.features_for` gives them."""
    pipeline, fit_params = build_temporal_pipeline(point, features, seed)
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
    score = pipeline.predict_proba(matrices.test[columns])[:, 1]
    return pipeline, score, seconds


def feature_digest(features: Features) -> str:
    return hashlib.sha256(json.dumps(features.model_dump(mode="json"), sort_keys=True)
                          .encode()).hexdigest()[:16]


def run_temporal(config: TemporalExperiment, tables: Mapping[str, pd.DataFrame], *,
                 engine: Engine, run_id: int, artefacts_dir: str | Path,
                 progress: Any = None, cache_dir: str | Path | None = None,
                 data: PreparedData | None = None) -> TemporalResult:
    """Fit every model group on every split, store each fit, return precision in the top k
    per (model group, test as-of date).

    ``progress`` is a rich ``Progress`` (a task is added) or a callable taking a message.
    ``data`` reuses features and labels from :func:`prepare` (else they are built here, cached
    in ``cache_dir``)."""
    started_all = time.perf_counter()
    data = data or prepare(config, tables, cache_dir=cache_dir)
    features = data.feature_config
    grid = config.grid()
    first = split_matrices(data, data.splits[0])
    y = first.train[first.label].to_numpy()
    try:
        check_grid(grid, features, first.train[features.input_columns], y,
                   build=lambda point, _: build_temporal_pipeline(point,
                                                                  data.features_for(point)))
    except ValueError as exc:
        raise TemporalError(f"temporal.models: {exc}") from None
    forest = config.stability
    if forest.n_estimators:  # the curve is drawn last: a typo there must not waste the grid
        sample = label_sample(y)
        X = make_encoder(features).fit_transform(first.train.iloc[sample][features.input_columns])
        try:
            check_forest(forest.algorithm, forest.params, X, y[sample])
        except ValueError as exc:
            raise TemporalError(f"temporal.stability.params: {exc}") from None
    feature_json = {**features.model_dump(mode="json", include={"categorical", "numeric"}),
                    "digest": feature_digest(features)}
    groups = []
    for point, name in grid:
        group_id = results.get_or_create_model_group(engine, config.name, point.algorithm,
                                                     point.params, feature_json, config.label)
        groups.append({"model_group_id": group_id, "name": name, "algorithm": point.algorithm,
                       "params": json.dumps(point.params, sort_keys=True, default=str),
                       "baseline": point.algorithm == BASELINE, "point": point})
    task = None
    if progress is not None and hasattr(progress, "add_task"):
        task = progress.add_task("temporal experiment", total=len(grid) * len(data.splits))
    metric_rows: list[dict[str, Any]] = []
    prediction_parts: list[pd.DataFrame] = []
    matrices_index: list[dict[str, Any]] = []
    fit_seconds = 0.0
    for split in data.splits:
        matrices = first if split is data.splits[0] else split_matrices(data, split)
        if matrices.test.empty:
            raise TemporalError(f"{split.name}: every test row is censored (the label window "
                                "runs past the data's end)")
        index = matrices.index()
        matrices_index.append({"split": split.name, "split_time": split.split_time,
                               "train": index["train"], "test": index["test"],
                               "censored_train": matrices.censored_train,
                               "censored_test": matrices.censored_test})
        entity = matrices.test[ENTITY].astype("string").to_numpy()
        as_of = matrices.test["as_of_date"].to_numpy()
        y_test = matrices.test[matrices.label].to_numpy()
        for group in groups:
            point = group["point"]
            _report(progress, f"{config.label} {split.name}: {group['name']}", task)
            pipeline, score, seconds = fit_and_score(point, data.features_for(point), matrices,
                                                     config.seed)
            fit_seconds += seconds
            stored, per_date = evaluate_lists(matrices.test, matrices.label, score, config)
            digest, path = save_artefact(pipeline, artefacts_dir)
            importances = (_native_importances(pipeline, features) if config.importances
                           else [])
            test_dates = matrices.test["as_of_date"]
            model_id = results.record_model(
                engine,
                results.FittedModel(
                    run_id, group["model_group_id"], split.name, len(matrices.train),
                    len(matrices.test),
                    (split.train.first_as_of_time, split.train.last_as_of_time),
                    (test_dates.min(), test_dates.max()), digest, str(path), seconds),
                entity_ids=entity, as_of=as_of, score=score, label=y_test, metrics=stored,
                importances=importances)
            per_date = per_date.assign(
                model_group_id=group["model_group_id"], name=group["name"],
                algorithm=point.algorithm, baseline=group["baseline"], model_id=model_id,
                split=split.name, split_time=split.split_time, train_rows=len(matrices.train),
                train_seconds=seconds)
            metric_rows += per_date.to_dict("records")
            prediction_parts.append(pd.DataFrame({
                "model_group_id": group["model_group_id"], "model_id": model_id,
                "split": split.name, "as_of_date": test_dates.to_numpy(), "entity_id": entity,
                "score": score, "label": y_test}))
            _report(progress, f"{config.label} {split.name}: {group['name']}", task,
                    advance=True)
    metrics = pd.DataFrame(metric_rows)
    order = ["model_group_id", "name", "algorithm", "baseline", "split", "split_time",
             "as_of_date", "model_id", "value", "lower", "upper", "n", "positives", "roc_auc",
             "train_rows", "train_seconds"]
    metrics = metrics[order]
    group_frame = pd.DataFrame([{k: v for k, v in g.items() if k != "point"} for g in groups])
    seconds = {**data.seconds, "fitting": fit_seconds,
               "total": time.perf_counter() - started_all}
    return TemporalResult(run_id, config, group_frame, metrics,
                          pd.concat(prediction_parts, ignore_index=True), matrices_index, data,
                          seconds)


def grid_point(result: TemporalResult, model_group_id: int) -> GridPoint:
    row = result.group(model_group_id)
    return GridPoint(row["algorithm"], json.loads(row["params"]))


def seed_lists(data: PreparedData, point: GridPoint, seeds: Sequence[int], *,
               split: Split | None = None, extra_dates: Sequence[Any] = (),
               progress: Callable[[str], None] | None = None
               ) -> tuple[dict[int, pd.Series], dict[pd.Timestamp, pd.Series]]:
    """Refit one grid point on one split (default: the last) with each seed; return the test
    list per seed (first test as-of date: entity -> score) and, for the first seed, the lists
    on ``extra_dates`` (which must be in ``data.features``)."""
    split = split or data.splits[-1]
    matrices = split_matrices(data, split)
    first = matrices.test["as_of_date"].min()
    test = matrices.test[matrices.test["as_of_date"] == first]
    by_seed: dict[int, pd.Series] = {}
    by_date: dict[pd.Timestamp, pd.Series] = {}
    for i, seed in enumerate(seeds):
        started = time.perf_counter()
        pipeline, score, _ = fit_and_score(point, data.features_for(point),
                                           dataclasses.replace(matrices, test=test), seed)
        columns = pipeline.named_steps["encode"].input_columns
        by_seed[seed] = pd.Series(score, index=test[ENTITY].astype("string").to_numpy())
        if progress:
            progress(f"{point.describe()} seed {seed}: {time.perf_counter() - started:.1f} s")
        if i == 0:
            for when in extra_dates:
                rows = data.features[data.features["as_of_date"] == pd.Timestamp(when)]
                if rows.empty:
                    raise TemporalError(f"no features for {pd.Timestamp(when):%Y-%m-%d}")
                by_date[pd.Timestamp(when)] = pd.Series(
                    pipeline.predict_proba(rows[columns])[:, 1],
                    index=rows[ENTITY].astype("string").to_numpy())
    return by_seed, by_date


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
    encoded as a numeric matrix, for :func:`rudikit.evaluation.stability.stability_vs_trees`."""
    split = split or data.splits[-1]
    matrices = split_matrices(data, split)
    first = matrices.test["as_of_date"].min()
    test = matrices.test[matrices.test["as_of_date"] == first].reset_index(drop=True)
    encoder = make_encoder(data.feature_config)
    columns = data.feature_config.input_columns
    X_train = encoder.fit_transform(matrices.train[columns]).astype(np.float32)
    X_test = encoder.transform(test[columns]).astype(np.float32)
    return X_train, matrices.train[matrices.label].to_numpy(), X_test, test
