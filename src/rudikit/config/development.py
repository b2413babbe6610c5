"""The development sections of a case project: ``features``, ``splits``, ``models`` and
``evaluation`` (with how the model is selected)."""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from rudikit.config.base import GridParams, Strict

# --- Features --------------------------------------------------------------------------------

DatetimePart = Literal["hour", "weekday", "month", "day", "is_weekend", "is_night"]


class DatetimeFeatures(Strict):
    column: str
    parts: list[DatetimePart] = ["hour", "weekday"]


class LocationFeatures(Strict):
    """Where a row happened, as categories (:mod:`rudikit.features.location`): the H3 cell
    (Uber's hexagonal grid) at ``h3_resolution`` and the nearest town of at least
    ``town_min_population`` people, each value seen on fewer than ``min_count`` training rows
    folded into "other"; rows without coordinates are "missing"."""

    latitude: str = "latitude"
    longitude: str = "longitude"
    h3_resolution: int | None = Field(6, ge=0, le=15)  # null: no cell feature
    town: bool = True
    town_min_population: int = Field(10_000, ge=0)  # smaller places are villages, not towns
    min_count: int = Field(200, ge=1)

    @model_validator(mode="after")
    def _some(self) -> LocationFeatures:
        if self.h3_resolution is None and not self.town:
            raise ValueError("no location feature: set h3_resolution (0 to 15) or town: true")
        if self.latitude == self.longitude:
            raise ValueError(f"latitude and longitude name the same column {self.latitude!r}")
        return self

    @property
    def columns(self) -> list[str]:
        return [self.latitude, self.longitude]


class GroupSize(Strict):
    """How many rows were recorded together, e.g. people searched together: the number of
    rows sharing the values of ``by`` (a missing value is a value of its own, so a force that
    publishes no coordinates groups by its other columns), a numeric feature named
    ``column`` computed when the rows are loaded (:func:`rudikit.data.group_size.
    group_sizes`). It reads no outcome. In the service it is an optional field that defaults
    to 1 (the officer knows how many people are searched together)."""

    by: list[str] = Field(min_length=1)
    column: str = "group_size"

    @field_validator("by")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        dupes = sorted(c for c, n in Counter(value).items() if n > 1)
        if dupes:
            raise ValueError(f"columns listed twice: {', '.join(dupes)}")
        return value


class Features(Strict):
    categorical: list[str] = []
    numeric: list[str] = []
    boolean: list[str] = []
    datetime: DatetimeFeatures | None = None
    location: LocationFeatures | None = None
    group_size: GroupSize | None = None
    protected: list[str] = []  # kept for auditing even when not used as model inputs

    @model_validator(mode="after")
    def _some(self) -> Features:
        if not (self.categorical or self.numeric or self.boolean or self.datetime
                or self.location or self.group_size):
            raise ValueError("no features: list at least one categorical, numeric, boolean, "
                             "datetime, location or group_size feature")
        columns = self.categorical + self.numeric + self.boolean
        dupes = sorted(c for c, n in Counter(columns).items() if n > 1)
        if dupes:
            raise ValueError(f"columns listed under two feature kinds: {', '.join(dupes)}")
        if self.group_size and self.group_size.column in columns + self.group_size.by:
            raise ValueError(f"group_size.column: {self.group_size.column!r} is also listed "
                             "as another feature or in group_size.by; name the count apart")
        return self

    @property
    def numeric_inputs(self) -> list[str]:
        """The numeric columns the model reads: ``numeric`` and the group size's count."""
        return self.numeric + ([self.group_size.column] if self.group_size else [])

    @property
    def input_columns(self) -> list[str]:
        cols = self.categorical + self.boolean + self.numeric_inputs
        cols += [self.datetime.column] if self.datetime else []
        # coordinates read only by the location features are inputs too (the service needs them)
        return cols + [c for c in (self.location.columns if self.location else [])
                       if c not in cols]

    def resolve(self, columns: list[str]) -> tuple[Features, list[str]]:
        """Expand glob patterns (``token_*``) against the data's columns, in data order.
        Returns the resolved features and key-path problems (a pattern matching nothing, a
        column that is not there)."""
        problems: list[str] = []
        resolved: dict[str, list[str]] = {}
        present = set(columns)  # one lookup per listed name: linear in a wide source's columns
        # the group size's count is added to the loaded rows; a pattern does not take it again
        counted = self.group_size.column if self.group_size else None
        for kind in ("categorical", "numeric", "boolean"):
            out: list[str] = []
            for i, name in enumerate(getattr(self, kind)):
                if any(ch in name for ch in "*?["):
                    # one compiled pattern over the columns (fnmatchcase per column re-checks
                    # its cache and normalises each name): linear, and fast at 2,000 columns
                    match = re.compile(fnmatch.translate(name)).match
                    hits = [c for c in columns if match(c) and c != counted]
                    if not hits:
                        problems.append(f"features.{kind}[{i}]: pattern {name!r} matches no "
                                        "column in the data")
                    out += hits
                elif name not in present:
                    problems.append(f"features.{kind}[{i}]: no column {name!r} in the data")
                else:
                    out.append(name)
            resolved[kind] = list(dict.fromkeys(out))
        kind_of: dict[str, str] = {}  # a column is one kind of input (a pattern may reach two)
        for kind in ("categorical", "numeric", "boolean"):
            for column in resolved[kind]:
                if column in kind_of and kind_of[column] != kind:
                    problems.append(f"features.{kind}: column {column!r} is also in "
                                    f"features.{kind_of[column]}; a column is read as one kind "
                                    "(narrow the pattern)")
                kind_of.setdefault(column, kind)
        if self.datetime and self.datetime.column not in present:
            problems.append(f"features.datetime.column: no column {self.datetime.column!r} "
                            "in the data")
        for key in ("latitude", "longitude"):
            column = getattr(self.location, key) if self.location else None
            if column is not None and column not in present:
                problems.append(f"features.location.{key}: no column {column!r} in the data")
        for i, column in enumerate(self.group_size.by if self.group_size else []):
            if column not in present:
                problems.append(f"features.group_size.by[{i}]: no column {column!r} in the "
                                "data")
        return self.model_copy(update=resolved), problems


# --- Splits ----------------------------------------------------------------------------------


class TemporalSplit(Strict):
    """Train on everything before ``test_start`` (optionally from ``train_start``); test on
    ``[test_start, test_end)``. ``validation_start`` holds ``[validation_start, test_start)``
    out of training as a validation partition: models are chosen on it, so the test rows give
    unbiased final figures (and ``evaluation.selection.require_fairness`` needs it)."""

    name: str
    kind: Literal["temporal"]
    date_column: str = "datetime"
    test_start: date
    test_end: date | None = None
    train_start: date | None = None
    validation_start: date | None = None

    @model_validator(mode="after")
    def _order(self) -> TemporalSplit:
        if self.test_end and self.test_end <= self.test_start:
            raise ValueError("test_end must be after test_start")
        if self.train_start and self.train_start >= self.test_start:
            raise ValueError("train_start must be before test_start")
        if self.validation_start and self.validation_start >= self.test_start:
            raise ValueError("validation_start must be before test_start")
        if self.validation_start and self.train_start \
                and self.train_start >= self.validation_start:
            raise ValueError("train_start must be before validation_start")
        return self

    @property
    def has_validation(self) -> bool:
        return self.validation_start is not None


class RandomSplit(Strict):
    """A random hold-out; with ``group_column`` no group (person, officer) straddles the
    partitions. ``validation_size`` (a share of all rows, like ``test_size``) adds a validation
    partition: models are chosen on it, so the test rows give unbiased final figures."""

    name: str
    kind: Literal["random", "group"]
    test_size: float = Field(0.2, gt=0, lt=1)
    validation_size: float | None = Field(None, gt=0, lt=1)
    group_column: str | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _group(self) -> RandomSplit:
        if self.kind == "group" and not self.group_column:
            raise ValueError("a group split needs 'group_column'")
        if self.validation_size and self.validation_size + self.test_size >= 1:
            raise ValueError(f"validation_size + test_size must be below 1 to leave training "
                             f"rows (got {self.validation_size:g} + {self.test_size:g})")
        return self

    @property
    def has_validation(self) -> bool:
        return bool(self.validation_size)


class ColumnSplit(Strict):
    """Bring your own partition: a column of the data says each row's side, so a team can
    reproduce an earlier study's exact split. The values naming each side are listed (by
    default ``train``, ``validation``, ``test``); with ``group_column`` the run refuses a group
    (person, officer) found on two sides."""

    name: str
    kind: Literal["column"]
    column: str
    train: list[str] = Field(["train"], min_length=1)
    validation: list[str] = ["validation"]
    test: list[str] = Field(["test"], min_length=1)
    group_column: str | None = None

    @model_validator(mode="after")
    def _disjoint(self) -> ColumnSplit:
        sides = {"train": self.train, "validation": self.validation, "test": self.test}
        seen: dict[str, str] = {}
        for side, values in sides.items():
            for value in values:
                if value in seen:
                    raise ValueError(f"value {value!r} is listed under both {seen[value]} and "
                                     f"{side}")
                seen[value] = side
        return self

    @property
    def has_validation(self) -> bool:
        """Whether values name validation rows (whether the data holds any, the run checks)."""
        return bool(self.validation)


CaseSplit = Annotated[TemporalSplit | RandomSplit | ColumnSplit, Field(discriminator="kind")]


# --- Models and evaluation -------------------------------------------------------------------

Algorithm = Literal["logistic_regression", "random_forest", "lightgbm", "rate_by_category",
                    "score_column", "ensemble"]


class Search(Strict):
    """A hyperparameter search over a model spec's ranges (:mod:`rudikit.models.search`):
    ``trials`` settings proposed by optuna's TPE sampler seeded with ``seed`` (so a rerun
    proposes the same ones; the first ``startup_trials`` at random), stopping early after
    ``timeout_minutes``. Each trial is scored on
    the selection split's validation rows, never its test rows, and becomes a model group."""

    method: Literal["optuna"] = "optuna"
    trials: int = Field(20, ge=1, le=2000)
    timeout_minutes: float | None = Field(None, gt=0)
    seed: int = 0
    startup_trials: int = Field(10, ge=1)  # random trials before TPE models the scores


@dataclass(frozen=True)
class SearchRange:
    """A numeric range to search: ``{int: [4, 63], log: true}`` or ``{float: [0.005, 0.2],
    log: true}`` (``step`` optional, not with ``log``)."""

    kind: Literal["int", "float"]
    low: float
    high: float
    log: bool = False
    step: float | None = None


_RANGE_KEYS = {"int", "float", "log", "step"}


def search_range(key: str, values: list[Any]) -> SearchRange | None:
    """The range ``values`` (one parameter's list) gives, None for plain values; a ValueError
    naming ``key`` for a malformed one."""
    if not any(isinstance(v, dict) for v in values):
        return None
    if len(values) != 1:
        raise ValueError(f"{key}: a range must be the parameter's only value, not one of a list")
    spec = values[0]
    unknown = sorted(set(spec) - _RANGE_KEYS)
    if unknown:
        raise ValueError(f"{key}: unknown range key(s) {', '.join(map(str, unknown))} "
                         "(expected int or float, and optionally log, step)")
    kinds = [k for k in ("int", "float") if k in spec]
    if len(kinds) != 1:
        raise ValueError(f"{key}: a range needs exactly one of 'int' or 'float', e.g. "
                         "{int: [4, 63]}")
    kind = kinds[0]
    bounds = spec[kind]
    if (not isinstance(bounds, list) or len(bounds) != 2
            or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)):
        raise ValueError(f"{key}.{kind}: expected two numbers [low, high], got {bounds!r}")
    low, high = bounds
    if kind == "int" and not all(float(b).is_integer() for b in bounds):
        raise ValueError(f"{key}.int: bounds must be whole numbers, got {bounds!r}")
    if low >= high:
        raise ValueError(f"{key}.{kind}: low ({low}) must be below high ({high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"{key}.log: expected true or false, got {log!r}")
    if log and low <= 0:
        raise ValueError(f"{key}.{kind}: a log range needs low > 0, got {low}")
    step = spec.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int | float)
                             or step <= 0):
        raise ValueError(f"{key}.step: expected a positive number, got {step!r}")
    if step is not None and log:
        raise ValueError(f"{key}.step: optuna cannot combine step with log")
    return SearchRange(kind, low, high, log, step)


def check_search_params(params: dict[str, list[Any]], search: Search | None) -> None:
    """Refuse ranges without ``search``, malformed ranges, choices optuna cannot suggest, and
    a search with nothing to search: ValueErrors naming ``params.<name>``."""
    searched = []
    for name, values in params.items():
        key = f"params.{name}"
        if search_range(key, values) is not None or len(values) > 1:
            searched.append(name)
        if search is None and any(isinstance(v, dict) for v in values):
            raise ValueError(f"{key}: a range needs 'search' on this model (e.g. search: "
                             "{method: optuna, trials: 40})")
        if search is not None and len(values) > 1:
            for j, v in enumerate(values):
                if not (v is None or isinstance(v, str | int | float | bool)):
                    raise ValueError(f"{key}[{j}]: a searched choice must be a number, text, "
                                     f"true/false or null, got {v!r}")
    if search is not None and not searched:
        raise ValueError("search: no parameter to search; give a range (e.g. num_leaves: "
                         "{int: [4, 63], log: true}) or a list of choices in params")


class ModelSpec(Strict):
    """An algorithm and lists of hyperparameter values; every combination is a model group.
    ``add_categorical`` adds columns for this spec only (e.g. a with-race experiment);
    ``score_column`` uses an existing score (e.g. COMPAS's decile) as a baseline;
    ``ensemble`` averages the best groups of the grid (:mod:`rudikit.models.ensemble`). With
    ``search``, params may hold ranges (:func:`search_range`) and a list is a categorical
    choice; every trial of the search is a model group."""

    algorithm: Algorithm
    params: GridParams = {}
    add_categorical: list[str] = []
    selectable: bool = True  # false: an experiment or baseline, evaluated but never chosen
    search: Search | None = None

    @model_validator(mode="after")
    def _ranges(self) -> ModelSpec:
        check_search_params(self.params, self.search)
        return self


class Selection(Strict):
    """How the model group is chosen: the best ``metric`` on ``split``'s validation rows (its
    test rows when it has none). ``require_fairness``: only among the groups that meet every
    fairness requirement on the validation rows (the split must have them); when none does,
    the run says so and falls back to the plain best (:func:`rudikit.run.selection.
    select_best`).

    ``refit: train_and_validation``: once the group is chosen on the validation rows, it is
    fitted again with the same hyperparameters on the training and validation rows (an
    ensemble: each member, then the ensemble of the refit members), and that refit model is
    the one selected, audited, explained and deployed; its figures are on the same held-out
    test rows. The validation rows are the newest before the test period, and a model that
    never trains on them loses them. It needs a validation partition on the selection split
    (the choice is never made on the test rows). Case projects only: a temporal project's
    model for each split is already trained up to its split time."""

    metric: str = "roc_auc"
    split: str | None = None  # default: the first split
    require_fairness: bool = False
    refit: Literal["none", "train_and_validation"] = "none"


ReasonRows = Literal["top_k", "flagged", "all"]


class Explain(Strict):
    """Which test rows of the chosen model get their per-row reasons stored. A person reads
    reasons for the rows on a list or flagged, so those are stored by default; storing every
    row's reasons was the slowest step of a large run and the largest table of its store.

    ``store_reasons``: ``top_k``, the rows within the largest list the project evaluates
    (``evaluation.top_k``/``top_pct``, ``fairness.at``; at least :attr:`MIN_LIST` rows);
    ``flagged``, the rows at or above the decision threshold (``fairness.at.threshold``, else
    the lowest of ``evaluation.thresholds``); ``all``, every test row. ``sample`` adds that
    many other test rows, drawn with ``evaluation.seed``, so low scores can be read too."""

    MIN_LIST: ClassVar[int] = 100

    store_reasons: list[ReasonRows] = Field(default_factory=lambda: ["top_k", "flagged"],
                                            min_length=1)
    sample: int = Field(0, ge=0)

    @field_validator("store_reasons", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Evaluation(Strict):
    thresholds: list[float] = [0.5]
    top_k: list[int] = [100]
    top_pct: list[float] = [10.0]
    bootstrap: int = Field(500, ge=0, le=10_000)
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: int = 0
    selection: Selection = Selection()

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: list[float]) -> list[float]:
        for t in value:
            if not 0 <= t <= 1:
                raise ValueError(f"threshold {t} is outside [0, 1]")
        return value

    @field_validator("top_pct")
    @classmethod
    def _pct(cls, value: list[float]) -> list[float]:
        for p in value:
            if not 0 < p <= 100:
                raise ValueError(f"top_pct {p} is outside (0, 100]")
        return value

    @field_validator("top_k")
    @classmethod
    def _k(cls, value: list[int]) -> list[int]:
        for k in value:
            if k < 1:
                raise ValueError(f"top_k {k} must be at least 1")
        return value

