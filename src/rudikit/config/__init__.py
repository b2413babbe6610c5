"""The project file, ``rudi.yaml``: one declarative description of a model's whole life, one
module per section. This package imports no other rudikit package (nor pandas on import), so
reading and validating a project loads no feature or model code."""

from rudikit.config.base import (
    PROJECT_FILE,
    ProjectError,
    Strict,
    did_you_mean,
    format_validation_error,
    project_file,
)
from rudikit.config.data import EVENT_SOURCE_KINDS, Condition, Data, Label, Source, SourceKind
from rudikit.config.development import (
    CaseSplit,
    ColumnSplit,
    DatetimeFeatures,
    Evaluation,
    Explain,
    Features,
    GroupSize,
    LocationFeatures,
    ModelSpec,
    RandomSplit,
    Search,
    SearchRange,
    Selection,
    TemporalSplit,
    search_range,
)
from rudikit.config.execution import SCHEDULER_VARIABLE, Execution
from rudikit.config.fairness import Fairness, FairnessRequirement, Mitigation, OperatingPoint
from rudikit.config.monitoring import Monitoring, Retraining, SourceExpectation, StabilityBounds
from rudikit.config.production import ListSchedule
from rudikit.config.project import (
    Project,
    ProjectBase,
    TemporalProject,
    load_project,
    parse_project,
)
from rudikit.config.rationale import (
    REQUIRED_RATIONALE,
    Governance,
    Rationale,
    Team,
    missing_rationale,
)
from rudikit.config.review import Review
from rudikit.config.service import ServiceOptions
from rudikit.config.temporal import (
    BASELINE,
    FEATURE_TABLES,
    SELECTION_RULES,
    TEMPORAL_ALGORITHMS,
    TEMPORAL_LABELS,
    Completeness,
    ConsecutiveLists,
    SelectionRule,
    StabilitySettings,
    TemporalError,
    TemporalExperiment,
    TemporalModel,
    label_months,
)
from rudikit.config.timechop import Timechop, TimechopError, parse_interval

__all__ = [
    "did_you_mean",
    "BASELINE", "EVENT_SOURCE_KINDS", "FEATURE_TABLES", "PROJECT_FILE", "REQUIRED_RATIONALE",
    "SELECTION_RULES", "ServiceOptions", "TEMPORAL_ALGORITHMS", "TEMPORAL_LABELS", "CaseSplit",
    "ColumnSplit", "Completeness", "Condition", "ConsecutiveLists", "Execution",
    "SCHEDULER_VARIABLE", "ListSchedule", "Data", "DatetimeFeatures", "Evaluation", "Explain",
    "GroupSize",
    "LocationFeatures",
    "Fairness", "FairnessRequirement", "Features", "Governance", "Label", "Mitigation", "ModelSpec",
    "Monitoring", "OperatingPoint", "Project", "ProjectBase", "ProjectError", "RandomSplit",
    "Rationale", "Retraining", "Review", "Search", "SearchRange", "Selection", "SelectionRule",
    "Source", "SourceExpectation", "SourceKind", "StabilityBounds", "StabilitySettings", "Strict",
    "Team", "TemporalError",
    "TemporalExperiment", "TemporalModel", "TemporalProject", "TemporalSplit", "Timechop",
    "TimechopError", "missing_rationale",
    "format_validation_error", "label_months", "load_project", "parse_interval",
    "parse_project", "project_file", "search_range",
]
