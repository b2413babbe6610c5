"""Ranked lists of temporal projects: their stability, rank changes and supervisors' reviews."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Row, exists, select
from sqlalchemy.engine import RowMapping

from rudikit.store.list_tables import (
    entity_reviews,
    list_stability,
    production_list_entries,
    production_lists,
    rank_changes,
)
from rudikit.store.queries.common import Bind, connected, frame, mappings

E = entity_reviews
L = production_lists
LE = production_list_entries


def stability(bind: Bind, run_id: int) -> pd.DataFrame:
    """The list stability rows a run stored, in order."""
    return frame(bind, select(list_stability).where(list_stability.c.run_id == run_id)
                 .order_by(list_stability.c.id))


def changes(bind: Bind, run_id: int, *, top: int | None = None) -> pd.DataFrame:
    """The rank changes a run stored (``top``: only those of the officers ranked ``top`` or
    higher on their list, what the report reads of every officer's rows)."""
    query = select(rank_changes).where(rank_changes.c.run_id == run_id)
    if top is not None:
        query = query.where(rank_changes.c.rank <= top)
    return frame(bind, query.order_by(rank_changes.c.id))


def _in_force() -> Any:
    """Reviews no later review corrects."""
    later = E.alias("later")
    return ~exists().where(later.c.supersedes == E.c.id)


def reviews(bind: Bind, columns: tuple[str, ...], *, current: bool = False) -> list[Row[Any]]:
    """These columns of every stored review (``current``: of those in force, a corrected
    review left out), in order."""
    query = select(*(E.c[c] for c in columns))
    if current:
        query = query.where(_in_force())
    with connected(bind) as conn:
        return list(conn.execute(query.order_by(E.c.id)).all())


def reviews_between(bind: Bind, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Reviews of the lists dated in ``[start, end)``, corrected ones included (each row's
    ``supersedes`` says which it corrects), newest first."""
    return [dict(r) for r in mappings(bind, select(E).where(
        E.c.review_date >= start, E.c.review_date < end).order_by(E.c.id.desc()))]


def prior_review(bind: Bind, entity_id: str, start: datetime, end: datetime
                 ) -> RowMapping | None:
    """The review in force of ``entity_id`` for a list in ``[start, end)``, if any."""
    with connected(bind) as conn:
        return conn.execute(select(E).where(
            E.c.entity_id == entity_id, E.c.review_date >= start, E.c.review_date < end,
            _in_force()).order_by(E.c.id.desc()).limit(1)).mappings().first()


def review(bind: Bind, review_id: int) -> RowMapping | None:
    """Review ``review_id`` and the id of the review that corrects it (``corrected_by``)."""
    later = E.alias("later")
    with connected(bind) as conn:
        return conn.execute(select(E, later.c.id.label("corrected_by")).outerjoin(
            later, later.c.supersedes == E.c.id).where(E.c.id == review_id)
        ).mappings().one_or_none()


def review_time(bind: Bind, review_id: int) -> datetime:
    """When review ``review_id`` was recorded."""
    with connected(bind) as conn:
        return conn.execute(select(E.c.created_at).where(E.c.id == review_id)).scalar_one()


# --- Production lists (``rudi score``) ---------------------------------------------------------


def production_list_headers(bind: Bind, project: str) -> pd.DataFrame:
    """Every production list of ``project`` (one row per as-of date, oldest first)."""
    return frame(bind, select(L).where(L.c.project == project).order_by(L.c.as_of_date),
                 keep_columns=True)


def production_list_on(bind: Bind, project: str | None, start: datetime, end: datetime
                       ) -> dict[str, Any] | None:
    """The production list dated in ``[start, end)`` (of ``project``, else of any), if any."""
    query = select(L).where(L.c.as_of_date >= start, L.c.as_of_date < end)
    if project is not None:
        query = query.where(L.c.project == project)
    rows = mappings(bind, query.order_by(L.c.id))
    return dict(rows[0]) if rows else None


def newest_production_list(bind: Bind) -> dict[str, Any] | None:
    """The newest production list of any project in the store (what the dashboard shows)."""
    rows = mappings(bind, select(L).order_by(L.c.as_of_date.desc()).limit(1))
    return dict(rows[0]) if rows else None


def production_list_dates(bind: Bind, limit: int) -> list[datetime]:
    """The dates that have a production list, newest first."""
    with connected(bind) as conn:
        return list(conn.execute(select(L.c.as_of_date).order_by(L.c.as_of_date.desc())
                                 .limit(limit)).scalars())


def production_list_entries(bind: Bind, list_ids: list[int], *, listed_only: bool = False
                            ) -> pd.DataFrame:
    """list_id, entity_id, score, rank_all, rank, reviewed_on and reasons of the lists'
    officers; ``listed_only``: those with a rank after the cool-off."""
    query = select(LE.c.list_id, LE.c.entity_id, LE.c.score, LE.c.rank_all, LE.c.rank,
                   LE.c.reviewed_on, LE.c.reasons).where(LE.c.list_id.in_(list_ids))
    if listed_only:
        query = query.where(LE.c.rank.is_not(None))
    return frame(bind, query.order_by(LE.c.list_id, LE.c.rank_all), keep_columns=True)


def production_list_scores(bind: Bind, list_ids: list[int]) -> pd.DataFrame:
    """list_id, entity_id, score, rank_all and rank of the lists' officers (without their
    reasons, whose JSON is most of the cost of reading many lists)."""
    return frame(bind, select(LE.c.list_id, LE.c.entity_id, LE.c.score, LE.c.rank_all,
                              LE.c.rank).where(LE.c.list_id.in_(list_ids))
                 .order_by(LE.c.list_id, LE.c.rank_all), keep_columns=True)


def production_rank_changes(bind: Bind, list_id: int) -> pd.DataFrame:
    """The rank changes stored with one production list."""
    return frame(bind, select(rank_changes).where(rank_changes.c.list_id == list_id)
                 .order_by(rank_changes.c.id), keep_columns=True)
