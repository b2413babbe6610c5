"""Ranked lists of temporal projects: their stability, rank changes and supervisors' reviews."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Row, select

from rudikit.store.list_tables import entity_reviews, list_stability, rank_changes
from rudikit.store.queries.common import Bind, connected, frame, mappings

E = entity_reviews


def stability(bind: Bind, run_id: int) -> pd.DataFrame:
    """The list stability rows a run stored, in order."""
    return frame(bind, select(list_stability).where(list_stability.c.run_id == run_id)
                 .order_by(list_stability.c.id))


def changes(bind: Bind, run_id: int) -> pd.DataFrame:
    """The rank changes a run stored."""
    return frame(bind, select(rank_changes).where(rank_changes.c.run_id == run_id)
                 .order_by(rank_changes.c.id))


def reviews(bind: Bind, columns: tuple[str, ...]) -> list[Row[Any]]:
    """These columns of every stored review, in order."""
    with connected(bind) as conn:
        return list(conn.execute(select(*(E.c[c] for c in columns)).order_by(E.c.id)).all())


def reviews_between(bind: Bind, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Reviews of the lists dated in ``[start, end)``, newest first."""
    return [dict(r) for r in mappings(bind, select(E).where(
        E.c.review_date >= start, E.c.review_date < end).order_by(E.c.id.desc()))]


def prior_review(bind: Bind, entity_id: str, start: datetime, end: datetime) -> Row[Any] | None:
    """(reviewer, created_at) of a review of ``entity_id`` for a list in ``[start, end)``."""
    with connected(bind) as conn:
        return conn.execute(select(E.c.reviewer, E.c.created_at).where(
            E.c.entity_id == entity_id, E.c.review_date >= start, E.c.review_date < end)
        ).first()


def review_time(bind: Bind, review_id: int) -> datetime:
    """When review ``review_id`` was recorded."""
    with connected(bind) as conn:
        return conn.execute(select(E.c.created_at).where(E.c.id == review_id)).scalar_one()
