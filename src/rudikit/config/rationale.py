"""The ``rationale`` section (the RUDI conceptualisation and business-case templates) and
``governance`` (what the data and model cards ask for that no other section holds)."""

from __future__ import annotations

from typing import Any

from rudikit.config.base import Strict


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

