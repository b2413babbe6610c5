"""The fairness section of a temporal run's report: how each model group's yearly lists fall
on groups of officers, and whether the project's requirements held on each list date.

Read back from the stored audits (one per model and list date, selection ``top_k=100@date``),
so the section shows exactly what the run stored.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from sqlalchemy.engine import Engine

from rudikit.evaluation.display import metric_name
from rudikit.reports.page import PALETTE
from rudikit.store.queries import fairness as fairness_q

#: The audit metrics a list's section shows, by the names rudi.yaml's requirements use.
SHOWN = {m: metric_name(m) for m in ("pprev", "precision", "tpr")}


def _list_date(selection: pd.Series) -> pd.Series:
    return selection.str.split("@").str[-1]


def list_fairness(engine: Engine, run_id: int, models: pd.DataFrame) -> dict[str, Any] | None:
    """Requirement verdicts of every model group per list date, and the chosen group's audit
    (share listed, precision and recall per group and date); None when nothing was audited.
    ``models``: the run's models with ``name`` and ``selected`` (as the report has them)."""
    requirements = fairness_q.run_requirements(engine, run_id)
    chosen = models[models["selected"]]
    group = int(chosen["model_group_id"].iloc[0]) if len(chosen) else None
    ids = models.loc[models["model_group_id"] == group, "id"].tolist() if group else []
    audits = fairness_q.audits(engine, ids) if ids else pd.DataFrame()
    if len(audits):
        audits = audits[audits["metric"].isin(list(SHOWN))]
    if not len(requirements) and not len(audits):
        return None
    verdicts: list[dict[str, Any]] = []
    dates: list[str] = []
    if len(requirements):
        requirements["date"] = _list_date(requirements["selection"])
        dates = sorted(requirements["date"].unique())
        names = models.drop_duplicates("model_group_id").set_index("model_group_id")["name"]
        requirements["group"] = requirements["model_id"].map(models.set_index("id")
                                                             ["model_group_id"])
        for (group_id, name), part in requirements.groupby(["group", "name"], sort=False):
            by_date = part.set_index("date")
            statuses = pd.Series([fairness_q.requirement_status(r) for r in
                                  part.to_dict("records")], index=by_date.index)
            verdicts.append({
                "model_group_id": int(group_id), "requirement": name,
                "group_name": names.get(group_id, f"group {group_id}"), "chosen": group_id == group,
                "cells": [{"status": statuses.loc[d], "summary": by_date.loc[d, "summary"]}
                          if d in by_date.index
                          else None for d in dates]})
    table: list[dict[str, Any]] = []
    if len(audits):
        audits["date"] = _list_date(audits["selection"])
        audits["shown"] = audits["metric"].map(SHOWN)
        table = audits.sort_values(["attribute", "group_value", "metric", "date"]).to_dict(
            "records")
    return {"dates": dates, "verdicts": verdicts, "audit": table, "chosen_group": group}


def list_fairness_figure(audit: list[dict[str, Any]]) -> go.Figure | None:
    """Share of each group's officers on the chosen group's list, per list date and attribute:
    one marker per (group, date), not joined, since each date is another split's model."""
    frame = pd.DataFrame(audit)
    if not len(frame):
        return None
    frame = frame[frame["metric"] == "pprev"]
    if not len(frame):
        return None
    figure = go.Figure()
    for i, ((attribute, value), part) in enumerate(frame.groupby(["attribute", "group_value"])):
        figure.add_trace(go.Scatter(
            x=part["date"], y=100 * part["value"], mode="markers",
            name=f"{attribute}: {value}", marker={"color": PALETTE[i % len(PALETTE)], "size": 9},
            error_y={"type": "data", "symmetric": False,
                     "array": 100 * (part["upper"] - part["value"]),
                     "arrayminus": 100 * (part["value"] - part["lower"])}
            if part["lower"].notna().all() else None))
    figure.update_layout(title="Share of each group's officers on the chosen model's list",
                         xaxis_title="list date", yaxis_title="officers listed (%)",
                         xaxis={"type": "category"}, height=420)
    return figure
