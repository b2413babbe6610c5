"""The model card's "Model details": what was fitted, from the store's record of the run and
its models (files, versions, seed, data snapshots), the algorithm in words and its inputs."""

from __future__ import annotations

from typing import Any

import pandas as pd

from rudikit.evaluation import display
from rudikit.reports.cards import (
    AnyProject,
    Bullets,
    Field,
    Section,
    Table,
    Text,
    answer,
)

ALGORITHMS = {
    "logistic_regression": "Logistic regression (a linear model of the log-odds)",
    "random_forest": "Random forest (an average of many decision trees)",
    "lightgbm": "Gradient-boosted decision trees (LightGBM)",
    "rate_by_category": "Baseline: the training success rate of one category",
    "score_column": "Baseline: an existing score used as it is",
    "rank_by_feature": "Baseline: ranking by one feature",
}


def _algorithm(group: dict[str, Any]) -> str:
    name = group["algorithm"]
    if name.startswith("mitigated_"):
        base = name.removeprefix("mitigated_")
        return (f"Per-group decision thresholds on the scores of model group "
                f"{group['hyperparameters'].get('base_model_group')} "
                f"({ALGORITHMS.get(base, base)}), chosen to meet a fairness constraint")
    return ALGORITHMS.get(name, name)


def details_section(project: AnyProject, group: dict[str, Any], run: dict[str, Any],
                    models: pd.DataFrame, snapshots: pd.DataFrame) -> Section:
    files = Table(["Split", "Model id", "Train rows", "Artefact file (named by its SHA-256)"],
                  [[m["split"], str(m["id"]), display.count(m["train_rows"]),
                    m["artefact_path"]]
                   for _, m in models.iterrows()])
    data = "; ".join(f"snapshot {s['id']} of {s['source']} (SHA-256 {s['checksum'][:16]}...)"
                     for _, s in snapshots.iterrows()) or "no snapshot recorded"
    libraries = ", ".join(f"{k} {v}" for k, v in (run["library_versions"] or {}).items())
    params = display.settings(group["hyperparameters"]) or "defaults"
    features = group["features"] or {}
    inputs = [f"{kind}: {', '.join(features.get(kind) or [])}"
              for kind in ("categorical", "boolean", "numeric") if features.get(kind)]
    if features.get("datetime"):
        inputs.append(f"datetime: {features['datetime']['column']} "
                      f"({', '.join(features['datetime']['parts'])})")
    if grouped := features.get("group_size"):
        inputs.append(f"group size: {grouped['column']} (rows with the same "
                      f"{', '.join(grouped['by'])}; 1 when a request leaves it out)")
    return Section("Model details", [
        Field("Senior responsible officer", answer(
            project.rationale.team.senior_responsible_officer,
            "rationale.team.senior_responsible_officer")),
        Field("File names", [files]),
        Field("Date and version", [Text(
            f"Model group {group['id']} (key {group['group_key'][:12]}...), first fitted "
            f"{display.day(group['created_at'])}. This card reports run {run['id']} of "
            f"{display.day(run['started_at'])}: configuration {run['config_hash']}, rudikit "
            f"{run['code_version']}, seed {run['seed']}. Data: {data}."),
            Text(f"Libraries: {libraries}.")]),
        Field("Type of model", [Text(f"{_algorithm(group)}; hyperparameters: {params}; label "
                                     f"`{group['label']}`.")]),
        Field("Inputs", [Bullets(inputs)] if inputs else [Text("No input columns recorded.")]),
    ])
