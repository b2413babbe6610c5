"""Intervention lists and reviews, for ``GET /lists/{date}``, ``POST /reviews`` and the dashboard.

Where a list comes from depends on how the live deployment is used:

* request-scored (e.g. stop-and-search: the deployment has answered ``POST /predict``): the
  live deployment's ``production_predictions`` created that UTC day, ranked by score; the
  entity is the ``observation_id``;
* list-scored (a temporal project such as an early-intervention system in production): the
  ``production_lists`` that ``rudi score`` made, the officers eligible when it was scored, with
  their top reasons;
* batch-scored (a temporal project before ``rudi score``: nothing has been sent to
  ``/predict``): the deployed model group's stored ``predictions`` whose as-of date falls on
  that day, from the deployed model if it scored that date, else the group's newest model that
  did.

A review is about the flag on one list: its ``review_date`` is that list's date, so
:func:`rudikit.evaluation.stability.exclude_reviewed` keeps the entity off the lists of the
following ``cool_off_days`` (the same rule the EIS experiments use).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection, Engine

from rudikit.evaluation.stability import exclude_reviewed
from rudikit.service.errors import ApiError, ServiceError
from rudikit.service.schemas import ReviewIn
from rudikit.service.storage import utc
from rudikit.store.list_tables import load_reviews, record_review
from rudikit.store.queries import lists as lists_q
from rudikit.store.queries import predictions as predictions_q
from rudikit.store.queries import production as production_q
from rudikit.store.queries.production import live_deployment

PRODUCTION = "production_predictions"
LISTS = "production_lists"
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
    ``production_lists`` once ``rudi score`` made one, else ``predictions`` (the stored scores
    of a batch-scored project)."""
    if production_q.has_production_predictions(conn, live["id"]):
        return PRODUCTION
    return LISTS if lists_q.newest_production_list(conn) is not None else RESULTS


def _results_model(conn: Connection, live: Any, day: date) -> int | None:
    """The model whose stored predictions make the list of ``day``: the deployed one if it
    scored that day, else the group's newest model that did."""
    start, end = _day(day)
    ids = predictions_q.models_scoring(conn, live["model_group_id"], start, end)
    if not ids:
        return None
    return live["model_id"] if live["model_id"] in ids else max(ids)


def _scores(conn: Connection, live: Any, source: str, day: date) -> tuple[int | None,
                                                                         pd.DataFrame]:
    """(model id, entity_id/score frame) of everything scored for ``day``."""
    start, end = _day(day)
    if source == PRODUCTION:
        rows = production_q.production_scores(conn, live["id"], start, end)
        return live["model_id"], pd.DataFrame(rows, columns=["entity_id", "score"])
    if source == LISTS:
        made = lists_q.production_list_on(conn, None, start, end)
        if made is None:
            return None, pd.DataFrame(columns=["entity_id", "score", "reasons"])
        entries = lists_q.production_list_entries(conn, [made["id"]], listed_only=True)
        return made["model_id"], entries[["entity_id", "score", "reasons"]]
    model_id = _results_model(conn, live, day)
    rows = predictions_q.entity_scores(conn, model_id, start, end) \
        if model_id is not None else []
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
    reasons = (dict(zip(scores["entity_id"], scores["reasons"], strict=True))
               if "reasons" in scores else {})
    entries = [{"rank": int(r.rank), "original_rank": int(r.original_rank),
                "entity_id": str(r.entity_id), "score": float(r.score),
                "reasons": reasons.get(r.entity_id)}
               for r in top.itertuples(index=False)]
    return RankedList(day, source, k, cool_off_days, live["model_group_id"], model_id,
                      live["id"], len(scores), len(scores) - len(everyone), entries)


def list_dates(engine: Engine) -> tuple[str, list[date]]:
    """(source, the dates that have a list, newest first)."""
    with engine.connect() as conn:
        live = _live(conn)
        source = _source(conn, live)
        if source == PRODUCTION:
            stamps = production_q.production_span(conn, live["id"])
            first, last = (_utc_day(s) for s in stamps)
            # every day between the first and the last request: a quiet day has an empty list
            days = [last - timedelta(days=i) for i in range((last - first).days + 1)]
            return source, days[:MAX_DATES]
        if source == LISTS:
            stamps = lists_q.production_list_dates(conn, MAX_DATES)
        else:
            stamps = predictions_q.group_list_dates(conn, live["model_group_id"])
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
        prior = lists_q.prior_review(conn, review.entity_id, start, end)
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
    recorded = lists_q.review_time(engine, review_id)
    return {"id": review_id, "entity_id": review.entity_id, "list_date": review.list_date,
            "agreement": review.agreement, "decision": review.decision, "notes": notes or None,
            "reviewer": reviewer, "model_group_id": live["model_group_id"],
            "recorded_at": utc(recorded).isoformat()}
