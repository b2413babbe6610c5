"""Fairness audits (group metrics and disparities) and requirement verdicts."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from rudikit.store import tables as t
from rudikit.store.queries.common import Bind, frame, mappings
from rudikit.store.queries.runs import MODEL_COLUMNS


def audits(bind: Bind, model_ids: list[int]) -> pd.DataFrame:
    """The fairness audit rows of these models, in stored order."""
    return frame(bind, select(t.fairness_audits).where(t.fairness_audits.c.model_id.in_(model_ids))
                 .order_by(t.fairness_audits.c.id))


def requirements(bind: Bind, model_ids: list[int]) -> Sequence[RowMapping]:
    """The requirement verdicts of these models, in stored order."""
    return mappings(bind, select(t.fairness_requirements)
                    .where(t.fairness_requirements.c.model_id.in_(model_ids))
                    .order_by(t.fairness_requirements.c.id))


def run_requirements(bind: Bind, run_id: int) -> pd.DataFrame:
    """The requirement verdicts of every model of one run, in stored order."""
    return frame(bind, select(t.fairness_requirements)
                 .join(t.models, t.models.c.id == t.fairness_requirements.c.model_id)
                 .where(t.models.c.run_id == run_id).order_by(t.fairness_requirements.c.id))


def audited_models(bind: Bind) -> list[dict[str, object]]:
    """Models with a fairness audit (dashboard columns), newest first."""
    audited = select(t.fairness_audits.c.model_id).distinct().scalar_subquery()
    return [dict(r) for r in mappings(
        bind, select(*MODEL_COLUMNS)
        .join(t.model_groups, t.model_groups.c.id == t.models.c.model_group_id)
        .where(t.models.c.id.in_(audited)).order_by(t.models.c.id.desc()))]
