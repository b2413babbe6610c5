"""Stored test predictions of fitted models and their per-prediction reasons."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Row, select

from rudikit.store import tables as t
from rudikit.store.queries.common import Bind, connected, driver_chunks, frame

P, M, R = t.predictions, t.models, t.individual_importances


#: Model ids in one IN list (a run of a large grid over many splits can hold more models than a
#: PostgreSQL statement may have parameters).
IDS_PER_QUERY = 10_000


def scores_frame(bind: Bind, model_ids: list[int], chunk: int = 100_000) -> pd.DataFrame:
    """model_id, score and label (NaN where unknown) of every stored prediction of these
    models, as typed columns made ``chunk`` rows at a time: a mapping per prediction held at
    once cost 0.4 GB for the 1.3M test predictions of a million-row run, the typed columns 24
    bytes a row (the PostgreSQL and MariaDB drivers still receive the whole result at once, in
    their own compact form; only SQLite reads it in chunks). No order: callers that need one
    sort."""
    columns = ["model_id", "score", "label"]
    with connected(bind) as conn:
        # the ids a query at a time: PostgreSQL's driver takes at most 65,535 parameters
        parts = [pd.DataFrame.from_records(rows, columns=columns)
                 for start in range(0, len(model_ids), IDS_PER_QUERY)
                 for rows in driver_chunks(conn, select(P.c.model_id, P.c.score, P.c.label).where(
                     P.c.model_id.in_(model_ids[start:start + IDS_PER_QUERY])), chunk)]
    typed = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    # a chunk whose labels are all NULL comes back as objects: one dtype whatever the chunks
    return typed.astype({"model_id": np.int64, "score": np.float64, "label": np.float64})


def model_predictions(bind: Bind, model_id: int) -> pd.DataFrame:
    """entity_id, as_of_date, score and label of a model's stored predictions."""
    return frame(bind, select(P.c.entity_id, P.c.as_of_date, P.c.score, P.c.label)
                 .where(P.c.model_id == model_id))


def top_predictions(bind: Bind, model_id: int, rows: int) -> pd.DataFrame:
    """The ``rows`` highest-ranked predictions of a model (entity, date, score, label,
    rank)."""
    return frame(bind, select(P.c.entity_id, P.c.as_of_date, P.c.score, P.c.label, P.c.rank_abs)
                 .where(P.c.model_id == model_id)
                 .order_by(P.c.rank_abs, P.c.id).limit(rows))


def reasons(bind: Bind, model_id: int, entity_ids: list[str] | None = None) -> pd.DataFrame:
    """A model's stored per-prediction reasons (of these entities when given), by rank."""
    query = select(R).where(R.c.model_id == model_id)
    if entity_ids is not None:
        query = query.where(R.c.entity_id.in_(entity_ids))
    return frame(bind, query.order_by(R.c.rank, R.c.id))


def group_lists(bind: Bind, model_group_id: int, *, until: datetime | None = None,
                not_splits: Sequence[str] = ()) -> list[Row[Any]]:
    """(as_of_date, entity_id, score, model_id) of every dated prediction of a model group's
    models (as of ``until`` or before), leaving out the models fitted on ``not_splits`` (a
    case project's test predictions are dated by their case, not lists)."""
    query = (select(P.c.as_of_date, P.c.entity_id, P.c.score, P.c.model_id)
             .join(M, M.c.id == P.c.model_id)
             .where(M.c.model_group_id == model_group_id, P.c.as_of_date.is_not(None)))
    if until is not None:
        query = query.where(P.c.as_of_date <= until)
    if not_splits:
        query = query.where(M.c.split.not_in(list(not_splits)))
    with connected(bind) as conn:
        return list(conn.execute(query).all())


def group_list_dates(bind: Bind, model_group_id: int) -> list[datetime]:
    """The distinct as-of dates a model group's models scored."""
    with connected(bind) as conn:
        return list(conn.execute(select(P.c.as_of_date).distinct()
                                 .join(M, M.c.id == P.c.model_id)
                                 .where(M.c.model_group_id == model_group_id,
                                        P.c.as_of_date.is_not(None))).scalars().all())


def models_scoring(bind: Bind, model_group_id: int, start: datetime, end: datetime
                   ) -> list[int]:
    """The models of a group with predictions as of a date in ``[start, end)``."""
    with connected(bind) as conn:
        return list(conn.execute(select(P.c.model_id).distinct()
                                 .join(M, M.c.id == P.c.model_id)
                                 .where(M.c.model_group_id == model_group_id,
                                        P.c.as_of_date >= start, P.c.as_of_date < end)
                                 ).scalars().all())


def entity_scores(bind: Bind, model_id: int, start: datetime, end: datetime) -> list[Row[Any]]:
    """(entity_id, score) of a model's predictions as of a date in ``[start, end)``."""
    with connected(bind) as conn:
        return list(conn.execute(select(P.c.entity_id, P.c.score).where(
            P.c.model_id == model_id, P.c.as_of_date >= start, P.c.as_of_date < end)).all())


def entity_labels(bind: Bind, model_id: int, start: datetime, end: datetime,
                  entity_ids: list[str]) -> dict[str, int]:
    """entity_id -> the stored label of a model's prediction as of a date in ``[start, end)``,
    of these entities (those with a label)."""
    with connected(bind) as conn:
        return {str(r.entity_id): int(r.label) for r in conn.execute(
            select(P.c.entity_id, P.c.label).where(
                P.c.model_id == model_id, P.c.as_of_date >= start, P.c.as_of_date < end,
                P.c.entity_id.in_(entity_ids), P.c.label.is_not(None)))}
