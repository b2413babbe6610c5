"""The whole file: a case :class:`Project` or a :class:`TemporalProject`, and how it is read.

Sections follow the RUDI stages: ``rationale`` (why, for whom, at what risk), ``data`` and
``label`` (unification), ``features``/``splits``/``models``/``evaluation`` (development),
``fairness`` and ``monitoring`` (implementation); ``execution`` says where a run's fits are
computed (this machine's cores or a Dask cluster) and changes no result. Every model forbids
unknown keys, so a typo is an error that names its key path rather than a silently ignored
setting.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from rudikit.config.base import (
    PROJECT_FILE,
    ProjectError,
    Strict,
    format_validation_error,
    project_file,
    read_yaml,
)
from rudikit.config.data import EVENT_SOURCE_KINDS, Data, Label
from rudikit.config.development import CaseSplit, Evaluation, Explain, Features, ModelSpec
from rudikit.config.execution import Execution
from rudikit.config.fairness import Fairness
from rudikit.config.monitoring import Monitoring
from rudikit.config.production import ListSchedule
from rudikit.config.rationale import Governance, Rationale
from rudikit.config.review import Review
from rudikit.config.service import ServiceOptions
from rudikit.config.temporal import TemporalExperiment

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
    execution: Execution = Execution()
    service: ServiceOptions = ServiceOptions()
    review: Review = Review()

    def config_hash(self) -> str:
        """A stable hash of the whole configuration, stored with every run; ``execution`` is
        left out (where the fits ran changes no result)."""
        payload = json.dumps(self.model_dump(mode="json", by_alias=True,
                                             exclude={"execution"}), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


#: What a split of each kind needs for a validation partition (the key to add).
_VALIDATION_KEY = {"temporal": "validation_start (a date before test_start)",
                   "column": "the values naming validation rows"}


class Project(ProjectBase):
    """A project whose rows are cases (a search, a person at a decision date): a label from
    columns, features, splits and a model grid."""

    label: Label
    features: Features
    splits: list[CaseSplit] = Field(min_length=1)
    models: list[ModelSpec] = Field(min_length=1)
    evaluation: Evaluation = Evaluation()
    explain: Explain = Explain()

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
        if self.evaluation.selection.require_fairness:
            if not self.fairness.requirements:
                raise ValueError("evaluation.selection.require_fairness: fairness.requirements "
                                 "is empty, so there is nothing to require")
            split = next(s for s in self.splits if s.name == (wanted or names[0]))
            if not split.has_validation:
                raise ValueError(
                    f"evaluation.selection.require_fairness: split {split.name!r} has no "
                    "validation partition, and the requirements must be checked on validation "
                    "rows, never on the test rows; add "
                    + _VALIDATION_KEY.get(split.kind, "validation_size")
                    + f" to split {split.name!r}")
        split = next(s for s in self.splits if s.name == (wanted or names[0]))
        if self.evaluation.selection.refit != "none" and not split.has_validation:
            raise ValueError(
                f"evaluation.selection.refit: split {split.name!r} has no validation "
                "partition, so there is nothing to refit on (the group would be chosen on the "
                "test rows); add " + _VALIDATION_KEY.get(split.kind, "validation_size")
                + f" to split {split.name!r}, or set refit: none")
        for i, spec in enumerate(self.models):
            if spec.search is not None and not split.has_validation:
                # refused rather than carving validation rows out of training: the split's
                # training rows stay those every other model group is fitted on
                raise ValueError(
                    f"models[{i}].search: the selection split {split.name!r} has no validation "
                    "partition, and search trials are scored on validation rows, never on the "
                    "test rows; add " + _VALIDATION_KEY.get(split.kind, "validation_size")
                    + f" to split {split.name!r}")
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
    judged over time: the ``temporal`` section (:class:`rudikit.config.temporal.
    TemporalExperiment`) replaces label, features, splits, models and evaluation, and the data
    is one event-table source (``chicago_cpdb`` or ``event_tables``)."""

    temporal: TemporalExperiment
    production: ListSchedule = ListSchedule()

    @model_validator(mode="after")
    def _event_source(self) -> TemporalProject:
        kinds = [s.kind for s in self.data.sources]
        if len(kinds) != 1 or kinds[0] not in EVENT_SOURCE_KINDS:
            raise ValueError("data.sources: a temporal project reads exactly one source of kind "
                             f"{' or '.join(EVENT_SOURCE_KINDS)} (got {', '.join(kinds)})")
        if self.temporal.selection.require_fairness and not self.fairness.requirements:
            raise ValueError("temporal.selection.require_fairness: fairness.requirements is "
                             "empty, so there is nothing to require")
        return self

    @property
    def selection_split(self) -> str:
        """Models are chosen for the last split (the one a force would deploy)."""
        return self.temporal.splits()[-1].name


def parse_project(data: Any, source: str = PROJECT_FILE) -> Project | TemporalProject:
    """A :class:`TemporalProject` when the file has a ``temporal`` section, else a
    :class:`Project`."""
    if not isinstance(data, dict):
        raise ProjectError(source, ["(top level): expected a mapping of sections"])
    kind: type[Project | TemporalProject] = TemporalProject if "temporal" in data else Project
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        raise ProjectError(source, format_validation_error(exc)) from None


def load_project(path: str | Path) -> Project | TemporalProject:
    """Read and validate ``rudi.yaml`` (a file, or the project folder that holds it)."""
    file = project_file(path)
    if not file.exists():
        raise ProjectError(str(file), [f"no {PROJECT_FILE} here; create one with `rudi init`"])
    return parse_project(read_yaml(file), str(file))
