"""Intervention lists and reviews, for ``GET /lists/{date}``, ``POST /reviews`` and the dashboard.

Where a list comes from depends on how the live deployment is used:

* request-scored (e.g. stop-and-search: the deployment has answered ``POST /predict``): the
  live deployment's ``production_predictions`` created that UTC day, ranked by score; the
  entity is the ``observation_id``;
* batch-scored (a temporal project such as an early-intervention system: nothing has been
  sent to ``/predict``): the deployed model group's stored ``predictions`` whose as-of date
  falls on that day, from the deployed model if it scored that date, else the group's newest
  model that did.

A review is about the flag on one list: its ``review_date`` is that list's date, so
:func:`rudikit.evaluation.stability.exclude_reviewed` keeps the entity off the lists of the
following ``cool_off_days`` (the same rule the EIS experiments use).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection, Engine

from rudikit.evaluation.stability import exclude_reviewed
from rudikit.service.deploy import live_deployment
from rudikit.service.errors import ApiError, ServiceError
from rudikit.service.schemas import ReviewIn
from rudikit.service.storage import utc
from rudikit.store import tables as t
from rudikit.store.list_tables import entity_reviews, load_reviews, record_review
from rudikit.store.production_tables import production_predictions as P

PRODUCTION = "production_predictions"
RESULTS = "predictions"
#: How many list dates the dashboard offers.
MAX_DATES = 400


@dataclass
class RankedList:
    date: date
    source: str
    k: int
    cool_off_days: int
    model_group_id: int
    model_id: int | None
    deployment_id: int
    candidates: int
    reviewed_excluded: int
    entries: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def _day(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _utc_day(stamp: datetime) -> date:
    return utc(stamp).astimezone(UTC).date()


def _live(conn: Connection) -> Any:
    live = live_deployment(conn)
    if live is None:
        raise ServiceError("no model is deployed in this store, so there is no list")
    return live


def _source(conn: Connection, live: Any) -> str:
    """``production_predictions`` once the live deployment has scored requests, else
    ``predictions`` (the stored scores of a batch-scored project)."""
    scored = conn.execute(select(P.c.id).where(P.c.deployment_id == live["id"]).limit(1)
                          ).first()
    return PRODUCTION if scored is not None else RESULTS


def _results_model(conn: Connection, live: Any, day: date) -> int | None:
    """The model whose stored predictions make the list of ``day``: the deployed one if it
    scored that day, else the group's newest model that did."""
    start, end = _day(day)
    ids = conn.execute(
        select(t.predictions.c.model_id).distinct()
        .join(t.models, t.models.c.id == t.predictions.c.model_id)
        .where(t.models.c.model_group_id == live["model_group_id"],
               t.predictions.c.as_of_date >= start, t.predictions.c.as_of_date < end)
    ).scalars().all()
    if not ids:
        return None
    return live["model_id"] if live["model_id"] in ids else max(ids)


def _scores(conn: Connection, live: Any, source: str, day: date) -> tuple[int | None,
                                                                         pd.DataFrame]:
    """(model id, entity_id/score frame) of everything scored for ``day``."""
    start, end = _day(day)
    if source == PRODUCTION:
        rows = conn.execute(select(P.c.observation_id, P.c.score).where(
            P.c.deployment_id == live["id"], P.c.created_at >= start, P.c.created_at < end)
        ).all()
        return live["model_id"], pd.DataFrame(rows, columns=["entity_id", "score"])
    model_id = _results_model(conn, live, day)
    rows = conn.execute(select(t.predictions.c.entity_id, t.predictions.c.score).where(
        t.predictions.c.model_id == model_id, t.predictions.c.as_of_date >= start,
        t.predictions.c.as_of_date < end)).all() if model_id is not None else []
    return model_id, pd.DataFrame(rows, columns=["entity_id", "score"])


def ranked_list(engine: Engine, day: date, k: int = 100, cool_off_days: int = 365
                ) -> RankedList:
    """The top ``k`` of ``day`` without entities reviewed within the cool-off period."""
    with engine.connect() as conn:
        live = _live(conn)
        source = _source(conn, live)
        model_id, scores = _scores(conn, live, source, day)
    everyone = exclude_reviewed(scores, load_reviews(engine), pd.Timestamp(day), cool_off_days)
    top = everyone.head(k)
    entries = [{"rank": int(r.rank), "original_rank": int(r.original_rank),
                "entity_id": str(r.entity_id), "score": float(r.score)}
               for r in top.itertuples(index=False)]
    return RankedList(day, source, k, cool_off_days, live["model_group_id"], model_id,
                      live["id"], len(scores), len(scores) - len(everyone), entries)


def list_dates(engine: Engine) -> tuple[str, list[date]]:
    """(source, the dates that have a list, newest first)."""
    with engine.connect() as conn:
        live = _live(conn)
        source = _source(conn, live)
        if source == PRODUCTION:
            stamps = conn.execute(select(func.min(P.c.created_at), func.max(P.c.created_at))
                                  .where(P.c.deployment_id == live["id"])).one()
            first, last = (_utc_day(s) for s in stamps)
            # every day between the first and the last request: a quiet day has an empty list
            days = [last - timedelta(days=i) for i in range((last - first).days + 1)]
            return source, days[:MAX_DATES]
        stamps = conn.execute(
            select(t.predictions.c.as_of_date).distinct()
            .join(t.models, t.models.c.id == t.predictions.c.model_id)
            .where(t.models.c.model_group_id == live["model_group_id"],
                   t.predictions.c.as_of_date.is_not(None))).scalars().all()
    days = sorted({_utc_day(s) for s in stamps}, reverse=True)
    return source, days[:MAX_DATES]


def record(engine: Engine, review: ReviewIn, reviewer: str) -> dict[str, Any]:
    """Store a review of an entity scored for ``review.list_date``; 404 if it was not scored
    then, 409 if it was already reviewed for that list."""
    start, end = _day(review.list_date)
    with engine.connect() as conn:
        live = _live(conn)
        source = _source(conn, live)
        _, scores = _scores(conn, live, source, review.list_date)
        prior = conn.execute(select(entity_reviews.c.reviewer, entity_reviews.c.created_at)
                             .where(and_(entity_reviews.c.entity_id == review.entity_id,
                                         entity_reviews.c.review_date >= start,
                                         entity_reviews.c.review_date < end))).first()
    if review.entity_id not in set(scores["entity_id"]):
        raise ApiError(404, f"entity_id {review.entity_id!r} is not on the list of "
                            f"{review.list_date} (nothing the deployed model scored for that "
                            "date has this id)", [{
                                "field": "entity_id", "loc": ["body", "entity_id"],
                                "msg": "not on the list of that date", "type": "not_found"}])
    if prior is not None:
        raise ApiError(409, f"entity_id {review.entity_id!r} was already reviewed for the list "
                            f"of {review.list_date} by {prior.reviewer}; nothing was stored", [{
                                "field": "entity_id", "loc": ["body", "entity_id"],
                                "msg": "already reviewed for this list", "type": "conflict"}])
    notes = review.notes.strip() if review.notes else None
    review_id = record_review(engine, review.entity_id, start, reviewer=reviewer,
                              outcome=review.decision, agreement=review.agreement,
                              notes=notes or None, model_group_id=live["model_group_id"])
    with engine.connect() as conn:
        recorded = conn.execute(select(entity_reviews.c.created_at).where(
            entity_reviews.c.id == review_id)).scalar_one()
    return {"id": review_id, "entity_id": review.entity_id, "list_date": review.list_date,
            "agreement": review.agreement, "decision": review.decision, "notes": notes or None,
            "reviewer": reviewer, "model_group_id": live["model_group_id"],
            "recorded_at": utc(recorded).isoformat()}
