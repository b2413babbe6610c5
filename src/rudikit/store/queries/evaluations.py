"""Evaluations (metrics with intervals) and feature importances of fitted models."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from rudikit.store import tables as t
from rudikit.store.queries.common import Bind, connected, frame, mappings

#: The evaluation a model refit after the choice carries (``evaluation.selection.refit``,
#: :mod:`rudikit.run.refit`): its value is the id of the model it refits. A mitigated model
#: whose base is a refit carries it too (it scores with a model trained on the validation rows).
REFIT_OF = "refit_of_model"


def evaluations_of_models(bind: Bind, model_ids: list[int]) -> pd.DataFrame:
    """Every stored evaluation of these models."""
    return frame(bind, select(t.evaluations).where(t.evaluations.c.model_id.in_(model_ids)))


def evaluations_of_model(bind: Bind, model_id: int) -> Sequence[RowMapping]:
    """One model's evaluations, ordered by metric and parameter."""
    return mappings(bind, select(t.evaluations).where(t.evaluations.c.model_id == model_id)
                    .order_by(t.evaluations.c.metric, t.evaluations.c.parameter))


def metric_choices(bind: Bind) -> list[tuple[str, str]]:
    """Every (metric, parameter) pair evaluated in the store, sorted."""
    with connected(bind) as conn:
        return [(m, p) for m, p in conn.execute(
            select(t.evaluations.c.metric, t.evaluations.c.parameter).distinct()
            .order_by(t.evaluations.c.metric, t.evaluations.c.parameter)).all()]


def metric_values(bind: Bind, metric: str, parameter: str) -> pd.DataFrame:
    """model_id, value, lower and upper of one metric over every model."""
    return frame(bind, select(t.evaluations.c.model_id, t.evaluations.c.value,
                              t.evaluations.c.lower, t.evaluations.c.upper)
                 .where(t.evaluations.c.metric == metric,
                        t.evaluations.c.parameter == parameter))


def project_metric_history(bind: Bind, project: str, up_to_run_id: int, metric: str
                           ) -> pd.DataFrame:
    """One metric (any parameter) of every model of ``project`` fitted in runs up to
    ``up_to_run_id``, with the model's group, split, run and the run's start."""
    return frame(bind, select(
        t.evaluations.c.model_id, t.evaluations.c.parameter, t.evaluations.c.value,
        t.evaluations.c.lower, t.evaluations.c.upper, t.models.c.model_group_id,
        t.models.c.split, t.models.c.run_id, t.runs.c.started_at)
        .join(t.models, t.evaluations.c.model_id == t.models.c.id)
        .join(t.runs, t.models.c.run_id == t.runs.c.id)
        .where((t.runs.c.project == project) & (t.runs.c.id <= up_to_run_id)
               & (t.evaluations.c.metric == metric)))


def group_metric_history(bind: Bind, model_group_id: int, metric: str, parameter: str
                         ) -> pd.DataFrame:
    """One metric of every fit of a model group: run, split, run start, value and interval."""
    return frame(bind, select(
        t.models.c.run_id, t.models.c.split, t.runs.c.started_at, t.evaluations.c.value,
        t.evaluations.c.lower, t.evaluations.c.upper)
        .join(t.models, t.evaluations.c.model_id == t.models.c.id)
        .join(t.runs, t.models.c.run_id == t.runs.c.id)
        .where((t.models.c.model_group_id == model_group_id)
               & (t.evaluations.c.metric == metric) & (t.evaluations.c.parameter == parameter))
        .order_by(t.models.c.run_id, t.models.c.id))


def top_k_precision(bind: Bind, model_ids: list[int], k: int) -> pd.DataFrame:
    """Precision in the top ``k`` of these models: parameter ``<k>_abs`` or, per as-of date,
    ``<k>_abs@<date>``."""
    return frame(bind, select(t.evaluations).where(
        t.evaluations.c.model_id.in_(model_ids)
        & (t.evaluations.c.metric == "precision_at_k")
        & t.evaluations.c.parameter.like(f"{k}_abs%")))


def feature_importances(bind: Bind, model_ids: list[int]) -> pd.DataFrame:
    """The feature importances of these models, by model and rank."""
    return frame(bind, select(t.feature_importances)
                 .where(t.feature_importances.c.model_id.in_(model_ids))
                 .order_by(t.feature_importances.c.model_id, t.feature_importances.c.rank))
