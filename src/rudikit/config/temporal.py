"""The ``temporal`` section of an early intervention project: the label, its timechop, the model
grid and how lists are judged (:class:`TemporalExperiment`).

The names it checks against are constants here, so reading a project file loads no feature or
model code: :data:`TEMPORAL_LABELS` are the names of
``rudikit.features.asof.defaults.DEFAULT_LABELS``, :data:`SELECTION_RULES` those of
``rudikit.models.audition.RULES`` (a test keeps each pair equal). Checks that need the feature
specs themselves (``complete_from`` block and group names) run where the specs are built,
:func:`rudikit.features.asof.defaults.event_specs`, which ``rudi validate`` calls too.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from rudikit.config.base import GridParams, Strict
from rudikit.config.development import Search, check_search_params
from rudikit.config.timechop import Split, Timechop, TimechopError, chop_time, parse_interval, stamp

#: The single-feature baseline a temporal grid may hold next to real models.
BASELINE = "rank_by_feature"
TEMPORAL_ALGORITHMS = ("logistic_regression", "random_forest", "lightgbm", "rate_by_category",
                       BASELINE, "ensemble")
#: The as-of labels of :mod:`rudikit.features.asof` (``DEFAULT_LABELS``), by name.
TEMPORAL_LABELS = ("any_complaint", "sustained_complaint", "injury_use_of_force")
#: The audition rules of :mod:`rudikit.models.audition` (``RULES``), by name.
SELECTION_RULES = ("best_current_value", "best_average_value", "lowest_metric_variance",
                   "best_avg_var_penalized", "best_avg_recency_weight", "most_frequent_best_dist")
#: The event tables the default as-of features read (``rudikit.features.asof``: the tables of
#: ``DEFAULT_STATES`` and ``DEFAULT_SPECS``): the data sources a list can be refitted without.
FeatureTable = Literal["complaints", "use_of_force", "unit_history", "rank_history"]
FEATURE_TABLES: tuple[str, ...] = get_args(FeatureTable)


class TemporalError(ValueError):
    pass


class TemporalModel(Strict):
    """An algorithm and lists of hyperparameter values (every combination is a model group),
    as ``ModelSpec`` but also allowing the ``rank_by_feature`` baseline; ``name`` labels the
    groups in reports. ``ensemble`` (``members``, ``method``) combines, on each split, the
    groups the audition rule ranks best over the earlier splits (:mod:`rudikit.run.
    ensembles`)."""

    algorithm: str
    params: GridParams = {}
    name: str | None = None
    search: Search | None = None  # trials scored on the splits before the last

    @model_validator(mode="after")
    def _ranges(self) -> TemporalModel:
        check_search_params(self.params, self.search)
        return self

    @field_validator("algorithm")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in TEMPORAL_ALGORITHMS:
            raise ValueError(f"unknown algorithm {value!r} "
                             f"(known: {', '.join(TEMPORAL_ALGORITHMS)})")
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
    ``lightgbm``) with ``params``, both on the last split's first test as-of date.

    A model without randomness gives every seed the same list, so the chosen model is also
    refitted under the perturbations a department asks about: on ``resamples`` bootstrap
    resamples of the training officers, and without each event table of ``drop_sources``."""

    seeds: list[int] = Field([0, 1], min_length=2)  # stability is agreement between seeds
    algorithm: Literal["random_forest", "extra_trees", "lightgbm"] = "random_forest"
    n_estimators: list[Annotated[int, Field(ge=1)]] = [100, 300, 1000, 3000]
    params: dict[str, Any] = {}
    consecutive: ConsecutiveLists = ConsecutiveLists()
    resamples: int = Field(3, ge=0, le=100)
    drop_sources: list[FeatureTable] = list(FEATURE_TABLES)  # type: ignore[arg-type]

    @field_validator("drop_sources")
    @classmethod
    def _once(cls, value: list[str]) -> list[str]:
        twice = sorted({s for s in value if value.count(s) > 1})
        if twice:  # the same refit twice would only cost time
            raise ValueError(f"{', '.join(twice)} listed twice")
        return value

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
        if value not in SELECTION_RULES:
            raise ValueError(f"unknown selection rule {value!r} "
                             f"(known: {', '.join(SELECTION_RULES)})")
        return value


class TemporalSelection(Strict):
    """``require_fairness``: the audition chooses only among the model groups that meet every
    fairness requirement on the lists of the audition splits (every split but the last, whose
    test dates give the final figures); when none does, the run says so and the plain audition
    decides (:func:`rudikit.run.selection.fairness_gate`)."""

    require_fairness: bool = False

    @model_validator(mode="before")
    @classmethod
    def _no_refit(cls, data: Any) -> Any:
        """Refit after choice is a case project's (``evaluation.selection.refit``): said, not
        just refused; ``refit: none`` says what a temporal project does anyway."""
        if isinstance(data, dict) and "refit" in data:
            if data["refit"] == "none":
                return {k: v for k, v in data.items() if k != "refit"}
            raise ValueError("refit: train_and_validation is for case projects only (their "
                             "evaluation.selection.refit): a temporal project's model for each "
                             "split is already trained on everything known by its split time")
        return data


class Completeness(Strict):
    """When an event table's records became complete: before ``date`` it held only the groups
    in ``recorded_before`` (e.g. ``cat_excessive_force``), so counts of the other groups over
    windows that reach before ``date`` are missing
    (:class:`rudikit.features.asof.specs.EventSpec`)."""

    date: date
    recorded_before: list[str] = []


class TemporalExperiment(Strict):
    """One EIS experiment: a label, its timechop, a model grid and how lists are judged.

    ``label`` names one of :data:`TEMPORAL_LABELS` (``any_complaint``,
    ``sustained_complaint``, ``injury_use_of_force``); its window is the timechop's label
    timespan. ``test_from`` skips splits whose split time is earlier (their training history
    may still reach back to the timechop's start times). Every feature of the default as-of
    specs is used except ``exclude_features`` and names matching ``exclude_patterns`` (shell
    globs: ``"*_rate"`` drops every rate; a pattern starting with ``!`` takes back what earlier
    patterns dropped, as in ``.gitignore``, and the last pattern a name matches decides);
    ``categorical`` are categories, the rest numeric. Baselines (``rank_by_feature``) may rank
    by any prepared feature, excluded or not: the exclusions shape what the models learn from.
    ``complete_from`` declares, per event feature block (``cmp``, ``uof``, ``unit``), the day
    its source began to record every kind of event (checked against the feature specs by
    :func:`rudikit.features.asof.defaults.event_specs`). The grid, the audition rules and the
    event specs that this section describes are built in :mod:`rudikit.models.temporal`."""

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
    selection: TemporalSelection = TemporalSelection()
    stability: StabilitySettings = StabilitySettings()

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        if value not in TEMPORAL_LABELS:
            raise ValueError(f"unknown label {value!r} (known: {', '.join(TEMPORAL_LABELS)})")
        return value

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
            splits = self.splits()
        except (TimechopError, TemporalError) as exc:
            raise ValueError(f"timechop: {exc}") from None
        if self.selection.require_fairness and len(splits) < 2:
            raise ValueError("selection.require_fairness: the timechop gives one split, so the "
                             "requirements could only be checked on its test dates; they are "
                             "checked on the earlier (audition) splits, so give at least two")
        return self

    def splits(self) -> list[Split]:
        """The timechop's splits from ``test_from`` on (at least one, else TemporalError)."""
        splits = chop_time(self.timechop)
        if self.test_from is not None:
            splits = [s for s in splits if s.split_time >= stamp(self.test_from)]
        if not splits:
            raise TemporalError("no split left (check timechop and test_from)")
        return splits


def label_months(span: str) -> int:
    """A label timespan in whole months (``1year`` -> 12); the label builder counts months."""
    delta = parse_interval(span)
    if delta.days or delta.weeks:
        raise TemporalError(f"label timespan {span!r} must be whole months or years")
    return delta.years * 12 + delta.months
