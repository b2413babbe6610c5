"""The production rehearsal of ``rudi demo``: which model goes live, at which threshold, and on
which day the replayed month is judged.

``rudi demo`` runs the rehearsal's steps (deploy, replay, monitor, retrain) as the commands of
those names, so a user sees exactly what the commands show; the decisions live here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from rudikit.service.deploy import Deployment, deploy

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from rudikit.config import Project


def deploy_chosen(engine: Engine, project: Project, model_group_id: int, model_id: int,
                  by: str) -> Deployment:
    """Put the model a run chose live at the project's fairness operating point (0.5 when the
    project sets none), so the rehearsal monitors the decisions the audit judged."""
    at = project.fairness.at.threshold
    threshold = at if at is not None else 0.5
    return deploy(engine, model_group_id, model_id=model_id, threshold=threshold, by=by,
                  reason=f"rudi demo: the model the run chose, at threshold {threshold:g} (the "
                         "fairness operating point)")


def judging_day(month: str) -> str:
    """The first day after a replayed ``YYYY-MM`` month (``YYYY-MM-DD``): monitoring and
    retraining as of that day see the whole month and its outcomes."""
    return (pd.Timestamp(f"{month}-01") + pd.offsets.MonthBegin(1)).strftime("%Y-%m-%d")
