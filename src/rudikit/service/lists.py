"""Intervention lists and reviews, for ``GET /lists/{date}``, ``POST /reviews`` and the dashboard.

Where a list comes from depends on how the live deployment is used:

* request-scored (e.g. stop-and-search: the deployment has answered ``POST /predict``): the
  live deployment's ``production_predictions`` of the cases that happened that UTC day (by the
  project's ``data.knowledge_date`` input, else the day they were scored), ranked by score;
  the entity is the ``observation_id``;
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
from sqlalchemy.exc import IntegrityError

from rudikit.evaluation.stability import exclude_reviewed
from rudikit.service import list_details as details
from rudikit.service.errors import ApiError, ServiceError
from rudikit.service.list_details import ListContext
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
#: List size and cool-off when neither the request nor a production list gives them.
DEFAULT_K = 100
DEFAULT_COOL_OFF_DAYS = 365


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
    decisions: list[dict[str, str]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)

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


def _scores(conn: Connection, live: Any, source: str, day: date, time_field: str | None
            ) -> tuple[int | None, pd.DataFrame, int | None]:
    """(model id, entity_id/score frame, production list id) of everything scored for
    ``day``."""
    start, end = _day(day)
    if source == PRODUCTION:
        rows = (production_q.case_day_scores(conn, live["id"], time_field, day) if time_field
                else production_q.production_scores(conn, live["id"], start, end))
        return live["model_id"], pd.DataFrame(rows, columns=["entity_id", "score"]), None
    if source == LISTS:
        made = lists_q.production_list_on(conn, None, start, end)
        if made is None:
            return None, pd.DataFrame(columns=["entity_id", "score", "reasons"]), None
        entries = lists_q.production_list_entries(conn, [made["id"]], listed_only=True)
        return made["model_id"], entries[["entity_id", "score", "reasons"]], made["id"]
    model_id = _results_model(conn, live, day)
    rows = predictions_q.entity_scores(conn, model_id, start, end) \
        if model_id is not None else []
    return model_id, pd.DataFrame(rows, columns=["entity_id", "score"]), None


def ranked_list(engine: Engine, day: date, k: int | None, cool_off_days: int | None,
                context: ListContext) -> RankedList:
    """The top ``k`` of ``day`` without entities reviewed within ``cool_off_days`` (None: as
    the production list of that day was made, else :data:`DEFAULT_K` and
    :data:`DEFAULT_COOL_OFF_DAYS`), each with what a reviewer needs (:func:`describe`), the
    project's decisions and the alerts on the list's model group."""
    project = context.project
    with engine.connect() as conn:
        live = _live(conn)
        source = _source(conn, live)
        model_id, scores, list_id = _scores(conn, live, source, day, project.time_field)
        made = lists_q.production_list_on(conn, None, *_day(day)) if list_id else None
    k = k if k is not None else int(made["k"]) if made else DEFAULT_K
    cool_off_days = (cool_off_days if cool_off_days is not None else
                     int(made["cool_off_days"]) if made else DEFAULT_COOL_OFF_DAYS)
    everyone = exclude_reviewed(scores, load_reviews(engine), pd.Timestamp(day), cool_off_days)
    top = everyone.head(k)
    reasons = (dict(zip(scores["entity_id"], scores["reasons"], strict=True))
               if "reasons" in scores else {})
    entries = [{"rank": int(r.rank), "original_rank": int(r.original_rank),
                "entity_id": str(r.entity_id), "score": float(r.score),
                "reasons": reasons.get(r.entity_id)}
               for r in top.itertuples(index=False)]
    describe(engine, context, source, day, model_id, list_id, entries)
    return RankedList(day, source, k, cool_off_days, live["model_group_id"], model_id,
                      live["id"], len(scores), len(scores) - len(everyone), entries,
                      [{"key": key, "label": label} for key, label in project.decisions.items()],
                      details.list_alerts(engine, live["model_group_id"]))


def describe(engine: Engine, context: ListContext, source: str, day: date,
             model_id: int | None, list_id: int | None, entries: list[dict[str, Any]]) -> None:
    """Add to each entry its reasons in words, history, previous rank and outcome."""
    project = context.project
    ids = [e["entity_id"] for e in entries]
    history: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    previous: dict[str, Any] = {}
    outcomes: dict[str, Any] = {}
    if source == LISTS and ids:
        tables = context.event_tables()
        if tables is not None:
            history = details.officer_history(tables, ids, day)
            if project.project is not None and project.kind == "temporal":
                outcomes = details.officer_outcomes(project.project, tables,  # type: ignore[arg-type]
                                                    ids, day)
        if list_id is not None:
            previous = details.previous_ranks(engine, list_id)
    elif source == PRODUCTION and ids:
        stored = production_q.production_features(engine, ids)
        fields = {o: details.case_fields(f, project.review.labels) for o, f in stored.items()}
        explained = details.case_reasons(context.served() if context.served else None,
                                         model_id, stored)
        for entry in entries:
            entry["reasons"] = explained.get(entry["entity_id"])
        outcomes = details.case_outcomes(engine, project.project, ids)  # type: ignore[arg-type]
    elif source == RESULTS and ids and model_id is not None:
        start, end = _day(day)
        stored = predictions_q.reasons(engine, model_id, ids)
        if len(stored):
            stored = stored[stored["as_of_date"].isna() | (pd.to_datetime(
                stored["as_of_date"], utc=True).dt.date == day)]
            for entry in entries:
                mine = stored[stored["entity_id"] == entry["entity_id"]]
                entry["reasons"] = [{"feature": r.feature, "contribution": float(r.contribution),
                                     "value": r.value} for r in mine.itertuples()] or None
        labels = predictions_q.entity_labels(engine, model_id, start, end, ids)
        outcomes = {e: {"known": True, "value": v, "text": f"outcome: {'yes' if v else 'no'}"}
                    for e, v in labels.items()}
    for entry in entries:
        entity = entry["entity_id"]
        entry["reasons"] = details.labelled_reasons(entry.get("reasons"), project)
        entry["history"] = history.get(entity)
        entry["fields"] = fields.get(entity)
        entry["previous_rank"] = previous.get(entity)
        entry["outcome"] = outcomes.get(entity)


def list_dates(engine: Engine, context: ListContext) -> tuple[str, list[date]]:
    """(source, the dates that have a list, newest first)."""
    time_field = context.project.time_field
    with engine.connect() as conn:
        live = _live(conn)
        source = _source(conn, live)
        if source == PRODUCTION and time_field:
            return source, production_q.case_days(conn, live["id"], time_field, MAX_DATES)
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


def _problem(status: int, message: str, field_name: str, msg: str, kind: str) -> ApiError:
    return ApiError(status, message, [{"field": field_name, "loc": ["body", field_name],
                                       "msg": msg, "type": kind}])


def record(engine: Engine, review: ReviewIn, reviewer: str, context: ListContext
           ) -> dict[str, Any]:
    """Store a review of an entity scored for ``review.list_date``, or a correction of one
    (``review.corrects``: a new row that supersedes it; the corrected row is kept). 422 for a
    decision the project does not offer, 404 if the entity was not scored then (or the review
    to correct is not of it), 409 if it was already reviewed for that list (or the review to
    correct was corrected already)."""
    decisions = context.project.decisions
    if review.decision not in decisions:
        raise _problem(422, f"decision: {review.decision!r} is not a decision of this project "
                            f"(one of {', '.join(decisions)}; rudi.yaml review.decisions)",
                       "decision", "not one of the project's decisions", "enum")
    start, end = _day(review.list_date)
    with engine.connect() as conn:
        live = _live(conn)
        source = _source(conn, live)
        _, scores, _ = _scores(conn, live, source, review.list_date, context.project.time_field)
        prior = lists_q.prior_review(conn, review.entity_id, start, end)
        target = lists_q.review(conn, review.corrects) if review.corrects else None
    if review.entity_id not in set(scores["entity_id"]):
        raise _problem(404, f"entity_id {review.entity_id!r} is not on the list of "
                            f"{review.list_date} (nothing the deployed model scored for that "
                            "date has this id)", "entity_id", "not on the list of that date",
                       "not_found")
    if review.corrects is None and prior is not None:
        raise _problem(409, f"entity_id {review.entity_id!r} was already reviewed for the list "
                            f"of {review.list_date} by {prior['reviewer']} (review "
                            f"{prior['id']}); nothing was stored. To correct that review, send "
                            f"corrects: {prior['id']}", "entity_id",
                       "already reviewed for this list", "conflict")
    if review.corrects is not None:
        if target is None or target["entity_id"] != review.entity_id \
                or _utc_day(target["review_date"]) != review.list_date:
            raise _problem(404, f"corrects: review {review.corrects} is not a review of "
                                f"{review.entity_id!r} on the list of {review.list_date}",
                           "corrects", "no such review of this entity and list", "not_found")
        if target["corrected_by"] is not None:
            raise _problem(409, f"corrects: review {review.corrects} was already corrected by "
                                f"review {target['corrected_by']}; correct that one",
                           "corrects", "already corrected", "conflict")
    notes = review.notes.strip() if review.notes else None
    try:
        review_id = record_review(engine, review.entity_id, start, reviewer=reviewer,
                                  outcome=review.decision, agreement=review.agreement,
                                  notes=notes or None, model_group_id=live["model_group_id"],
                                  supersedes=review.corrects)
    except IntegrityError:  # a concurrent correction of the same review was stored first
        raise _problem(409, f"corrects: review {review.corrects} was corrected by another "
                            "reviewer a moment ago; reload and correct that one", "corrects",
                       "already corrected", "conflict") from None
    recorded = lists_q.review_time(engine, review_id)
    return {"id": review_id, "entity_id": review.entity_id, "list_date": review.list_date,
            "agreement": review.agreement, "decision": review.decision,
            "decision_label": decisions[review.decision], "notes": notes or None,
            "reviewer": reviewer, "model_group_id": live["model_group_id"],
            "supersedes": review.corrects, "recorded_at": utc(recorded).isoformat()}
