"""The model card's sections on use and oversight: "Intended use" (the rationale's answers,
the group's selection status, its fairness requirement verdicts and every deployment with any
waiver of the deploy gate), "Risks" and "Maintenance" (governance answers and the safeguards and
monitoring settings they rest on)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from rudikit.config import Project
from rudikit.evaluation import display
from rudikit.reports.cards import (
    AnyProject,
    Bullets,
    Field,
    NotProvided,
    Part,
    Section,
    Table,
    Text,
    answer,
)
from rudikit.store.queries import fairness as fairness_q


def status_parts(main: pd.Series | None, statuses: list[fairness_q.RequirementStatus],
                 deployments: list[dict[str, Any]]) -> list[Part]:
    """The fairness requirement verdicts of the reported model and every deployment of the
    group, with any waiver of the deploy gate: who gave it, why and what it overrode."""
    parts: list[Part] = []
    if main is not None and statuses:
        parts.append(Text(f"Fairness requirements of model {main['id']} (split "
                          f"{main['split']!r}): {fairness_q.status_counts(statuses)}."))
        parts.append(Table(["Requirement", "Status", "Result"],
                           [[s.name, s.status, s.summary] for s in statuses]))
    for d in deployments:
        state = "live" if d["live"] else f"retired {display.day(d['retired_at'])}"
        parts.append(Text(f"Deployment {d['id']} ({state}): model {d['model_id']} at "
                          f"threshold {d['threshold']:g}, deployed by {d['deployed_by']} on "
                          f"{display.day(d['deployed_at'])}: {d['reason']}."))
        if d["waiver"]:
            w = d["waiver"]
            parts.append(Text(f"WAIVER of the deploy gate by {w['by']}: {w['reason']}. "
                              "Waived:"))
            parts.append(Bullets(list(w["failing"])))
    return parts


def use_section(project: AnyProject, models: pd.DataFrame, chosen: int | None,
                status: list[Part]) -> Section:
    r = project.rationale
    appropriate = answer(r.intended_use, "rationale.intended_use")
    if r.target_population.strip():
        appropriate.append(Text("Target population: " + r.target_population))
    picked = models[models["selected"]]
    if len(picked):
        picked_status = Text(f"Chosen in this run: {picked.iloc[0]['selection_reason']}.")
    elif chosen is not None:
        picked_status = Text(f"Not chosen in this run; model group {chosen} was.")
    else:
        picked_status = Text("No model was chosen in this run.")
    return Section("Intended use", [
        Field("Aim", answer(r.aim, "rationale.aim")),
        Field("Who will use the output", answer(r.users_and_training,
                                                "rationale.users_and_training")),
        Field("Appropriate cases", appropriate),
        Field("Inappropriate cases", answer(r.inappropriate_use, "rationale.inappropriate_use")),
        Field("Status of this model group", [picked_status, *status]),
    ])


def risks_section(project: AnyProject) -> Section:
    r, risks = project.rationale, project.governance.risks
    present: list[Part] = []
    if r.undesired_outcomes:
        present.append(Bullets(list(r.undesired_outcomes)))
    for label, text in (("Harm of a false positive", r.cost_of_false_positive),
                        ("Harm of a false negative", r.cost_of_false_negative)):
        if text.strip():
            present.append(Text(f"{label}: {text}"))
    if not present:
        present = [NotProvided("rationale.undesired_outcomes")]
    mitigations: list[Part] = ([Table(["Risk", "Mitigation"], [[k, v] for k, v in risks.items()])]
                               if risks else [NotProvided("governance.risks")])
    safeguards = []
    if project.fairness.requirements:
        safeguards.append(f"{len(project.fairness.requirements)} fairness requirement(s) checked "
                          "on every model")
    if (project.evaluation.selection.require_fairness if isinstance(project, Project)
            else project.temporal.selection.require_fairness):
        safeguards.append("the chosen model group is the best among those meeting every "
                          "fairness requirement on the rows selection reads (never the test "
                          "rows); when none does, the plain best is chosen and the run says so")
    if project.fairness.mitigation:
        safeguards.append("per-group threshold mitigation on the chosen model")
    if safeguards:
        mitigations.append(Text("Built into development: " + "; ".join(safeguards) + "."))
    return Section("Risks", [
        Field("Risks in using the model (who is affected, how likely, how severe)", present),
        Field("Risk mitigation strategies used during development", mitigations),
    ])


def maintenance_section(project: AnyProject) -> Section:
    g, m = project.governance, project.monitoring
    triggers = answer(g.update_triggers, "governance.update_triggers")
    triggers.append(Bullets([
        f"input drift: population stability index above {m.psi_warning:g} (warning) or "
        f"{m.psi_critical:g} (critical) over {m.window_days} days",
        f"realised precision more than {m.precision_drop_pp:g} points below the test "
        f"precision, once {m.min_outcomes} outcomes are known",
        f"list stability: the top {m.stability.k} of consecutive {m.stability.period}ly lists",
        f"retraining: a challenger replaces the champion only if its {m.retraining.metric} is "
        f"at most {m.retraining.max_drop:g} lower on the newest {m.retraining.holdout_days} "
        "days of outcomes and every fairness requirement passes",
    ]))
    owner = answer(g.maintenance_owner, "governance.maintenance_owner")
    owner += answer(g.communication, "governance.communication")
    return Section("Maintenance", [
        Field("Known or expected changes in the population or in data collection",
              answer(g.expected_changes, "governance.expected_changes")),
        Field("What triggers an update, and at which thresholds (monitoring settings)",
              triggers),
        Field("Who updates the model, and how changes are communicated", owner),
    ])
