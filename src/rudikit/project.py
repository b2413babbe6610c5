"""The project file, ``rudi.yaml``: one declarative description of a model's whole life.

Sections follow the RUDI stages: ``rationale`` (why, for whom, at what risk), ``data`` and
``label`` (unification), ``features``/``splits``/``models``/``evaluation`` (development),
``fairness`` and ``monitoring`` (implementation). Every model forbids unknown keys, so a typo
is an error that names its key path rather than a silently ignored setting.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if TYPE_CHECKING:  # imports this module; resolved on first use by _temporal_project_class
    from rudikit.models.temporal import TemporalExperiment

PROJECT_FILE = "rudi.yaml"


class ProjectError(Exception):
    """A problem with the project file; ``problems`` holds one "key.path: message" per problem."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- Rationale -------------------------------------------------------------------------------


class Team(Strict):
    senior_responsible_officer: str = ""
    data_engineers: list[str] = []
    data_scientists: list[str] = []
    domain_experts: list[str] = []
    validators: list[str] = []
    governance_experts: list[str] = []
    succession_plan: str = ""


class Rationale(Strict):
    """The RUDI conceptualisation and business-case templates."""

    problem: str = ""
    proposed_solution: str = ""
    aim: str = ""
    target_population: str = ""
    key_definitions: str = ""
    mechanism: str = ""
    further_assessment: str = ""
    action_and_resources: str = ""
    legal_and_ethical_fit: str = ""
    evidence_base: str = ""
    why_algorithmic: str = ""
    force_priorities: str = ""
    desired_outcomes: list[str] = []
    undesired_outcomes: list[str] = []
    intended_use: str = ""
    inappropriate_use: str = ""
    model_design: str = ""
    data_features_rationale: str = ""
    analysis_plan: str = ""
    inclusion_exclusion: str = ""
    storing_and_sharing: str = ""
    users_and_training: str = ""
    decision_making: str = ""
    cost_of_false_positive: str = ""
    cost_of_false_negative: str = ""
    evaluation_plan: str = ""
    costs_and_resources: str = ""
    changes_and_tradeoffs: list[str] = []
    team: Team = Team()


#: Fields that must be filled before ``rudi run`` trains anything (the conceptualisation template:
#: "we suggest you do not proceed any further until you can complete the above table"), plus the
#: harms fields without which no fairness review can be meaningful.
REQUIRED_RATIONALE = (
    "problem",
    "proposed_solution",
    "aim",
    "target_population",
    "key_definitions",
    "mechanism",
    "further_assessment",
    "action_and_resources",
    "legal_and_ethical_fit",
    "evidence_base",
    "intended_use",
    "inappropriate_use",
    "undesired_outcomes",
    "cost_of_false_positive",
    "cost_of_false_negative",
    "team.senior_responsible_officer",
)


def missing_rationale(rationale: Rationale) -> list[str]:
    """Required rationale fields that are empty, as key paths (``rationale.problem``)."""
    missing = []
    for path in REQUIRED_RATIONALE:
        value: Any = rationale
        for part in path.split("."):
            value = getattr(value, part)
        if not (value.strip() if isinstance(value, str) else value):
            missing.append(f"rationale.{path}")
    return missing


# --- Data ------------------------------------------------------------------------------------

SourceKind = Literal["police_uk_archive", "police_uk_api", "police_uk_api_csv",
                     "police_uk_api_json", "csv", "parquet", "compas", "synthetic_stop_search",
                     "chicago_cpdb", "event_tables"]

#: Source kinds that hold per-officer event tables (complaints, uses of force, unit and rank
#: history) rather than one row per case: only a project with a ``temporal`` section reads them.
EVENT_SOURCE_KINDS = ("chicago_cpdb", "event_tables")


class Source(Strict):
    name: str
    kind: SourceKind
    path: str | None = None
    force: str | None = None  # police.uk API files carry no force; say which it is
    forces: list[str] | None = None  # keep only these forces (archive)
    months: list[str] | None = None  # keep only these YYYY-MM months (archive)
    fallback: Literal["synthetic_stop_search"] | None = None  # used when ``path`` is absent
    seed: int = 0  # for synthetic sources
    rows_per_month: int | None = Field(None, ge=10)  # for synthetic sources; None: realistic
    options: dict[str, Any] = {}  # passed to the kind's table builder (e.g. compas: label)

    @field_validator("months")
    @classmethod
    def _months(cls, value: list[str] | None) -> list[str] | None:
        for month in value or []:
            if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
                raise ValueError(f"month {month!r} is not YYYY-MM")
        return value

    @model_validator(mode="after")
    def _path_needed(self) -> Source:
        if self.kind == "police_uk_api":  # downloaded into the cache; ``path`` overrides it
            if not self.force or not self.months:
                raise ValueError("source kind 'police_uk_api' needs 'force' and 'months'")
            return self
        if self.kind != "synthetic_stop_search" and not self.path:
            raise ValueError(f"source kind {self.kind!r} needs a 'path'")
        if self.kind in ("police_uk_api_csv", "police_uk_api_json") and not self.force:
            raise ValueError(f"source kind {self.kind!r} needs 'force' (the API files carry none)")
        return self


class Data(Strict):
    sources: list[Source] = Field(min_length=1)
    entity_id: str = "record_id"
    knowledge_date: str = "datetime"

    @field_validator("sources")
    @classmethod
    def _unique(cls, value: list[Source]) -> list[Source]:
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {', '.join(dupes)}")
        return value


# --- Label -----------------------------------------------------------------------------------


class Condition(Strict):
    """One test on a column; a row meets a list of conditions when it meets all of them."""

    column: str
    equals: Any = None
    not_equals: Any = None
    isin: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None
    is_missing: bool | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [k for k in ("equals", "not_equals", "isin", "not_in", "is_missing")
                 if getattr(self, k) is not None]
        if len(tests) != 1:
            raise ValueError("give exactly one of equals, not_equals, in, not_in, is_missing "
                             f"(got {len(tests)})")
        return self


class Label(Strict):
    name: str = "label"
    positive_when: list[Condition] = Field(min_length=1)
    exclude_when: list[Condition] = []
    description: str = ""


# --- Features --------------------------------------------------------------------------------

DatetimePart = Literal["hour", "weekday", "month", "day", "is_weekend", "is_night"]


class DatetimeFeatures(Strict):
    column: str
    parts: list[DatetimePart] = ["hour", "weekday"]


class Features(Strict):
    categorical: list[str] = []
    numeric: list[str] = []
    boolean: list[str] = []
    datetime: DatetimeFeatures | None = None
    protected: list[str] = []  # kept for auditing even when not used as model inputs

    @model_validator(mode="after")
    def _some(self) -> Features:
        if not (self.categorical or self.numeric or self.boolean or self.datetime):
            raise ValueError("no features: list at least one categorical, numeric, boolean or "
                             "datetime feature")
        columns = self.categorical + self.numeric + self.boolean
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        if dupes:
            raise ValueError(f"columns listed under two feature kinds: {', '.join(dupes)}")
        return self

    @property
    def input_columns(self) -> list[str]:
        cols = self.categorical + self.boolean + self.numeric
        return cols + ([self.datetime.column] if self.datetime else [])

    def resolve(self, columns: list[str]) -> tuple[Features, list[str]]:
        """Expand glob patterns (``token_*``) against the data's columns, in data order.
        Returns the resolved features and key-path problems (a pattern matching nothing, a
        column that is not there)."""
        problems: list[str] = []
        resolved: dict[str, list[str]] = {}
        for kind in ("categorical", "numeric", "boolean"):
            out: list[str] = []
            for i, name in enumerate(getattr(self, kind)):
                if any(ch in name for ch in "*?["):
                    hits = [c for c in columns if fnmatch.fnmatchcase(c, name)]
                    if not hits:
                        problems.append(f"features.{kind}[{i}]: pattern {name!r} matches no "
                                        "column in the data")
                    out += hits
                elif name not in columns:
                    problems.append(f"features.{kind}[{i}]: no column {name!r} in the data")
                else:
                    out.append(name)
            resolved[kind] = list(dict.fromkeys(out))
        if self.datetime and self.datetime.column not in columns:
            problems.append(f"features.datetime.column: no column {self.datetime.column!r} "
                            "in the data")
        return self.model_copy(update=resolved), problems


# --- Splits ----------------------------------------------------------------------------------


class TemporalSplit(Strict):
    """Train on everything before ``test_start`` (optionally from ``train_start``); test on
    ``[test_start, test_end)``."""

    name: str
    kind: Literal["temporal"]
    date_column: str = "datetime"
    test_start: date
    test_end: date | None = None
    train_start: date | None = None

    @model_validator(mode="after")
    def _order(self) -> TemporalSplit:
        if self.test_end and self.test_end <= self.test_start:
            raise ValueError("test_end must be after test_start")
        if self.train_start and self.train_start >= self.test_start:
            raise ValueError("train_start must be before test_start")
        return self


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


Split = Annotated[TemporalSplit | RandomSplit, Field(discriminator="kind")]


# --- Models and evaluation -------------------------------------------------------------------

Algorithm = Literal["logistic_regression", "random_forest", "lightgbm", "rate_by_category",
                    "score_column"]


class ModelSpec(Strict):
    """An algorithm and lists of hyperparameter values; every combination is a model group.
    ``add_categorical`` adds columns for this spec only (e.g. a with-race experiment);
    ``score_column`` uses an existing score (e.g. COMPAS's decile) as a baseline."""

    algorithm: Algorithm
    params: dict[str, list[Any]] = {}
    add_categorical: list[str] = []
    selectable: bool = True  # false: an experiment or baseline, evaluated but never chosen

    @field_validator("params", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        return value


class Selection(Strict):
    metric: str = "roc_auc"
    split: str | None = None  # default: the first split
    require_fairness: bool = False


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


# --- Fairness and monitoring (filled by later stages; parsed and stored here) ----------------


class OperatingPoint(Strict):
    """Where decisions are made: a score threshold, a top-k list or a top-% list (exactly one)."""

    threshold: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=1)
    top_pct: float | None = Field(None, gt=0, le=100)

    @model_validator(mode="after")
    def _one(self) -> OperatingPoint:
        given = [k for k in ("threshold", "top_k", "top_pct") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of threshold, top_k, top_pct (got {len(given)})")
        return self

    def kwargs(self) -> dict[str, float | int]:
        return {k: v for k, v in self.model_dump().items() if v is not None}

    def label(self) -> str:
        (key, value), = self.kwargs().items()
        return f"{key}={value:g}"


class FairnessRequirement(Strict):
    """A bound on the largest gap (max - min, percentage points) of a metric between groups:
    the units themselves (``compare`` empty), or the ``compare`` groups within each unit."""

    name: str = ""
    metric: str
    max_gap_pp: float = Field(gt=0)
    unit: list[str] | str | None = None
    compare: list[str] | str | None = None
    min_size: int = Field(50, ge=0)

    @model_validator(mode="after")
    def _something_to_compare(self) -> FairnessRequirement:
        if not self.unit and not self.compare:
            raise ValueError("give a 'unit', attributes to 'compare', or both")
        return self


Constraint = Literal["demographic_parity", "equal_opportunity", "equalized_odds"]
Objective = Literal["accuracy", "balanced_accuracy", "f1", "precision_at_k", "recall_at_k"]


class Mitigation(Strict):
    """Per-group thresholds on the chosen model's scores (a new model group)."""

    attributes: list[str] = Field(min_length=1)
    constraint: Constraint = "demographic_parity"
    objective: Objective = "accuracy"
    tolerance: float = Field(0.05, ge=0, le=1)
    min_group_size: int = Field(50, ge=1)
    frontier: list[float] = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 1.0]


class Fairness(Strict):
    attributes: list[str] = []
    intersections: list[list[str]] = []
    reference_groups: dict[str, str] = {}
    min_group_size: int = Field(50, ge=1)
    at: OperatingPoint = OperatingPoint(threshold=0.5)
    requirements: list[FairnessRequirement] = []
    mitigation: Mitigation | None = None

    @property
    def columns(self) -> list[str]:
        """Every data column the fairness stage reads, in first-use order."""
        cols: list[str] = list(self.attributes)
        for group in self.intersections:
            cols += group
        for r in self.requirements:
            for part in (r.unit, r.compare):
                cols += [part] if isinstance(part, str) else list(part or [])
        if self.mitigation:
            cols += self.mitigation.attributes
        return list(dict.fromkeys(cols))


class SourceExpectation(Strict):
    """What a healthy input source looks like: how fresh its newest record is and how many rows
    each period holds. Row-count bounds not given are learned from the source's own history."""

    max_staleness_days: int | None = Field(None, ge=0)
    period: Literal["month", "week", "day"] = "month"
    row_count_bounds: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SourceExpectation:
        if self.row_count_bounds and self.row_count_bounds[0] > self.row_count_bounds[1]:
            raise ValueError("row_count_bounds must be [low, high] with low <= high")
        return self


class StabilityBounds(Strict):
    """List stability between consecutive lists: Jaccard of the top ``k`` and Spearman rank
    correlation. The lower bound comes from the values' own history (the low ``quantiles`` of
    it less ``tolerance``, once ``min_history`` values exist), or from ``jaccard_min`` /
    ``spearman_min`` when set. A list identical to the one before, when no earlier pair was,
    is flagged too: the inputs may have stopped updating."""

    k: int = Field(100, ge=1)
    period: Literal["day", "week", "month"] = "week"
    quantiles: tuple[float, float] = (5.0, 95.0)
    min_history: int = Field(8, ge=2)
    tolerance: float = Field(0.05, ge=0)  # how far below the learned band a value must fall
    jaccard_min: float | None = Field(None, ge=0, le=1)
    spearman_min: float | None = Field(None, ge=-1, le=1)


class Retraining(Strict):
    """Champion against challenger on the newest production outcomes (the same holdout for both):
    the challenger is promoted only if ``metric`` is no more than ``max_drop`` below the
    champion's and every fairness requirement passes."""

    holdout_days: int = Field(30, ge=1)
    metric: Literal["roc_auc", "average_precision", "precision", "recall", "f1"] = "roc_auc"
    max_drop: float = Field(0.0, ge=0)
    min_outcomes: int = Field(200, ge=1)


class Monitoring(Strict):
    """Thresholds that raise alerts (`rudi monitor`) and the retraining policy (`rudi retrain`)."""

    window_days: int = Field(30, ge=1)
    psi_warning: float = Field(0.1, gt=0)
    psi_critical: float = Field(0.25, gt=0)
    min_window_rows: int = Field(100, ge=1)
    precision_drop_pp: float = Field(10.0, gt=0)
    min_outcomes: int = Field(50, ge=1)
    segments: list[str] = []
    performance_period: Literal["day", "week", "month"] = "week"
    sources: dict[str, SourceExpectation] = {}
    stability: StabilityBounds = StabilityBounds()
    retraining: Retraining = Retraining()
    webhook_url: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Monitoring:
        if self.psi_warning >= self.psi_critical:
            raise ValueError("psi_warning must be below psi_critical")
        return self


# --- Governance (the documentation the data and model cards need) ---------------------------


class Governance(Strict):
    """Answers the RUDI data and model card templates ask for that no other section holds:
    who owns and governs the data, what each variable means, why each source and threshold was
    chosen, the known risks and how the model is kept up to date. Every field is optional; a
    card shows an empty one as "not provided" with the key to fill."""

    data_owner: str = ""
    data_governance_plan: str = ""
    keywords: list[str] = []
    source_reasons: dict[str, str] = {}  # source name -> why it was included
    variables: dict[str, str] = {}  # column -> what it means
    missing_data: str = ""  # nature and causes of missing values, how they are handled
    data_cleaning: str = ""
    evaluation_data: str = ""  # which data trains and tests the model, and why
    group_rationale: str = ""  # why the audited groups were chosen and how they are defined
    known_missing_groups: str = ""
    audit_scope: str = ""  # relevant attributes not audited, and why
    metric_rationale: str = ""
    threshold_rationale: str = ""
    risks: dict[str, str] = {}  # risk -> how it is mitigated
    expected_changes: str = ""  # population or recording changes that may shift the data
    update_triggers: str = ""  # what triggers an update, at which thresholds
    maintenance_owner: str = ""
    communication: str = ""  # how changes are communicated, and to whom


# --- The whole file --------------------------------------------------------------------------


class ProjectBase(Strict):
    """The sections every project has, whatever kind of model it develops."""

    name: str = Field(min_length=1)
    description: str = ""
    rationale: Rationale = Rationale()
    data: Data
    fairness: Fairness = Fairness()
    monitoring: Monitoring = Monitoring()
    governance: Governance = Governance()

    def config_hash(self) -> str:
        """A stable hash of the whole configuration, stored with every run."""
        payload = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


class Project(ProjectBase):
    """A project whose rows are cases (a search, a person at a decision date): a label from
    columns, features, splits and a model grid."""

    label: Label
    features: Features
    splits: list[Split] = Field(min_length=1)
    models: list[ModelSpec] = Field(min_length=1)
    evaluation: Evaluation = Evaluation()

    @model_validator(mode="after")
    def _cross_refs(self) -> Project:
        names = [s.name for s in self.splits]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"splits: names must be unique; repeated: {', '.join(dupes)}")
        wanted = self.evaluation.selection.split
        if wanted and wanted not in names:
            raise ValueError(f"evaluation.selection.split: no split named {wanted!r} "
                             f"(splits: {', '.join(names)})")
        for i, source in enumerate(self.data.sources):
            if source.kind in EVENT_SOURCE_KINDS:
                raise ValueError(f"data.sources[{i}].kind: {source.kind!r} holds event tables, "
                                 "which only a project with a 'temporal' section can read")
        return self

    @property
    def selection_split(self) -> str:
        return self.evaluation.selection.split or self.splits[0].name


class TemporalProject(ProjectBase):
    """A project that ranks entities (officers) on as-of dates from event histories, trained and
    judged over time: the ``temporal`` section (:class:`rudikit.models.temporal.
    TemporalExperiment`) replaces label, features, splits, models and evaluation, and the data
    is one event-table source (``chicago_cpdb`` or ``event_tables``)."""

    temporal: TemporalExperiment

    @model_validator(mode="after")
    def _event_source(self) -> TemporalProject:
        kinds = [s.kind for s in self.data.sources]
        if len(kinds) != 1 or kinds[0] not in EVENT_SOURCE_KINDS:
            raise ValueError("data.sources: a temporal project reads exactly one source of kind "
                             f"{' or '.join(EVENT_SOURCE_KINDS)} (got {', '.join(kinds)})")
        return self

    @property
    def selection_split(self) -> str:
        """Models are chosen for the last split (the one a force would deploy)."""
        return self.temporal.splits()[-1].name


def _temporal_project_class() -> type[TemporalProject]:
    """:class:`TemporalProject` with its section type resolved. The experiment's classes import
    this module (and scikit-learn), so they are loaded only when a temporal project is read."""
    if not TemporalProject.__pydantic_complete__:
        from rudikit.models.temporal import TemporalExperiment

        TemporalProject.model_rebuild(
            _types_namespace={"TemporalExperiment": TemporalExperiment})
    return TemporalProject


def _key_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("TemporalSplit", "RandomSplit") or (
                i and isinstance(loc[i - 1], int)
                and str(item).startswith(("temporal", "random", "group"))):
            continue  # discriminated-union tags (after a list index) say nothing to a user
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"unknown kind {error.get('input')!r}; expected temporal, random or group"
    if kind == "literal_error":
        return f"{error['msg'].lower()}, got {error.get('input')!r}"
    msg = error["msg"]
    msg = msg.removeprefix("Value error, ")
    if error.get("input") is not None and kind.endswith(("_type", "_parsing")):
        msg += f", got {error['input']!r}"
    return msg


def format_validation_error(exc: ValidationError) -> list[str]:
    return [f"{_key_path(e['loc'])}: {_describe(e)}" for e in exc.errors()]


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``, except that a date-shaped value that is no date (``2016-02-30``,
    ``2000-13-01``) stays text, so the schema reports it with its key path instead of PyYAML
    raising a bare ValueError."""


def _timestamp(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)  # type: ignore[arg-type]
    except ValueError:
        return loader.construct_scalar(node)  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def expand_env(text: str) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` so paths and secrets can come from the
    environment instead of the file."""
    return _ENV.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), text)


def parse_project(data: Any, source: str = PROJECT_FILE) -> Project | TemporalProject:
    """A :class:`TemporalProject` when the file has a ``temporal`` section, else a
    :class:`Project`."""
    if not isinstance(data, dict):
        raise ProjectError(source, ["(top level): expected a mapping of sections"])
    kind: type[Project | TemporalProject] = (
        _temporal_project_class() if "temporal" in data else Project)
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        raise ProjectError(source, format_validation_error(exc)) from None


def project_file(path: str | Path) -> Path:
    path = Path(path)
    return path / PROJECT_FILE if path.is_dir() else path


def load_project(path: str | Path) -> Project | TemporalProject:
    """Read and validate ``rudi.yaml`` (a file, or the project folder that holds it)."""
    file = project_file(path)
    if not file.exists():
        raise ProjectError(str(file), [f"no {PROJECT_FILE} here; create one with `rudi init`"])
    try:
        data = yaml.load(expand_env(file.read_text(encoding="utf-8")), Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ProjectError(str(file), [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]
                           ) from None
    return parse_project(data, str(file))
