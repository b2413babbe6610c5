"""Deployments and what the service stored: requests, production predictions, outcomes and
the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Row, bindparam, func, select, text
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.elements import TextClause

from rudikit.store import production_tables as pt
from rudikit.store import tables as t
from rudikit.store.production_inputs import recorded_spec, side_table
from rudikit.store.queries.common import Bind, connected, mappings

D, P = pt.deployed_models, pt.production_predictions
#: The columns of :func:`deployments` rows (a deployment and its group's algorithm).
DEPLOYMENT_COLUMNS = [*D.c.keys(), "algorithm"]
#: The columns of :func:`retrain_decisions` rows.
AUDIT_COLUMNS = list(pt.audit_log.c.keys())
#: The audit-log actions of retraining decisions (promotions, rejections, roll-backs).
RETRAIN_ACTIONS = ("retrain_promoted", "retrain_rejected", "rollback")


def live_deployment(conn: Connection) -> RowMapping | None:
    """The live deployment row, or None (read in the caller's transaction)."""
    return conn.execute(select(D).where(D.c.live.is_(True))).mappings().one_or_none()


def previous_deployment(bind: Bind, deployment_id: int) -> RowMapping | None:
    """The deployment made just before ``deployment_id``, or None."""
    with connected(bind) as conn:
        return conn.execute(select(D).where(D.c.id < deployment_id)
                            .order_by(D.c.id.desc()).limit(1)).mappings().one_or_none()


def deployments(bind: Bind) -> list[dict[str, Any]]:
    """Every deployment with its model group's algorithm, newest first."""
    groups = t.model_groups
    return [dict(r) for r in mappings(bind, select(D, groups.c.algorithm)
                                      .join(groups, groups.c.id == D.c.model_group_id)
                                      .order_by(D.c.id.desc()))]


def deployed_model_ids(bind: Bind) -> list[int]:
    """The models of every deployment there has been, ascending, once each."""
    with connected(bind) as conn:
        return sorted(set(conn.execute(select(D.c.model_id)).scalars()))


def retrain_decisions(bind: Bind) -> list[RowMapping]:
    """Audit-log entries of retraining decisions, newest first."""
    return list(mappings(bind, select(pt.audit_log).where(pt.audit_log.c.action.in_(
        RETRAIN_ACTIONS)).order_by(pt.audit_log.c.id.desc())))


def has_production_predictions(bind: Bind, deployment_id: int) -> bool:
    """Whether the deployment has scored any request."""
    with connected(bind) as conn:
        return conn.execute(select(P.c.id).where(P.c.deployment_id == deployment_id).limit(1)
                            ).first() is not None


def production_scores(bind: Bind, deployment_id: int, start: datetime, end: datetime
                      ) -> list[Row[Any]]:
    """(observation_id, score) of what the deployment scored in ``[start, end)``."""
    with connected(bind) as conn:
        return list(conn.execute(select(P.c.observation_id, P.c.score).where(
            P.c.deployment_id == deployment_id, P.c.created_at >= start, P.c.created_at < end)
        ).all())


def production_span(bind: Bind, deployment_id: int) -> tuple[datetime | None, datetime | None]:
    """When the deployment scored its first and its last request."""
    with connected(bind) as conn:
        first, last = conn.execute(select(func.min(P.c.created_at), func.max(P.c.created_at))
                                   .where(P.c.deployment_id == deployment_id)).one()
    return first, last


# The newest event time: the time input when it parses (its zone offset honoured), else when the
# case was scored; in epoch seconds, computed by the database over every stored prediction.
_NEWEST = {
    "sqlite": "SELECT (max(coalesce(julianday(json_extract(features, :path)), "
              "julianday(created_at))) - 2440587.5) * 86400.0",
    "postgresql": "SELECT extract(epoch from max(coalesce(CASE WHEN (features->>:field) "
                  "~ '^\\d{4}-\\d{2}-\\d{2}' THEN (features->>:field)::timestamptz END, "
                  "created_at)))",
}


def newest_case_time(bind: Bind, model_ids: list[int], time_field: str | None
                     ) -> datetime | None:
    """When the newest production case of these models happened (UTC): its ``time_field``
    input when given and parseable, else when it was scored, as the monitor's window counts
    it; None without predictions."""
    if not model_ids:
        return None
    with connected(bind) as conn:
        typed = [(m, spec) for m in model_ids
                 if (spec := recorded_spec(conn, m)) is not None and spec.time_field == time_field]
        if len(typed) == len(model_ids):  # each model's typed inputs: one indexed max each
            newest_us = [conn.execute(select(func.max(side_table(m, spec).c.event_us))).scalar()
                         for m, spec in typed]
            found = [us for us in newest_us if us is not None]
            return datetime.fromtimestamp(max(found) / 1e6, UTC) if found else None
        if time_field:
            sql = _NEWEST["postgresql" if conn.dialect.name.startswith("postgres") else "sqlite"]
            query = text(f"{sql} FROM production_predictions WHERE model_id IN :models"
                         ).bindparams(bindparam("models", expanding=True))
            seconds = conn.execute(query, {"models": model_ids, "field": time_field,
                                           "path": f'$."{time_field}"'}).scalar()
        else:
            newest = conn.execute(select(func.max(P.c.created_at))
                                  .where(P.c.model_id.in_(model_ids))).scalar()
            return None if newest is None else (
                newest if newest.tzinfo else newest.replace(tzinfo=UTC)).astimezone(UTC)
    # to the millisecond: SQLite's Julian days carry no finer time
    return None if seconds is None else datetime.fromtimestamp(round(float(seconds), 3), UTC)


# The UTC day a case happened: its time input when it parses (its zone offset honoured), else
# the day it was scored; raw SQL, as :func:`newest_case_time`, since the time is inside the JSON.
_CASE_DAY = {
    "sqlite": "coalesce(date(json_extract(features, :path)), date(created_at))",
    "postgresql": "coalesce(CASE WHEN (features->>:field) ~ '^\\d{4}-\\d{2}-\\d{2}' THEN "
                  "CAST(timezone('UTC', CAST(features->>:field AS timestamptz)) AS date) END, "
                  "CAST(timezone('UTC', created_at) AS date))",
}


def _case_day(conn: Connection) -> str:
    return _CASE_DAY["postgresql" if conn.dialect.name.startswith("postgres") else "sqlite"]


def case_day_scores(bind: Bind, deployment_id: int, time_field: str, day: date
                    ) -> list[Row[Any]]:
    """(observation_id, score) of the deployment's cases that happened on ``day`` (UTC), by
    their ``time_field`` input (else the day they were scored)."""
    with connected(bind) as conn:
        return list(conn.execute(text(
            f"SELECT observation_id, score FROM production_predictions WHERE deployment_id = "
            f":deployment AND {_case_day(conn)} = :day"), {
                "deployment": deployment_id, "field": time_field,
                "path": f'$."{time_field}"',
                "day": day if conn.dialect.name.startswith("postgres") else day.isoformat(),
            }).all())


def case_days(bind: Bind, deployment_id: int, time_field: str, limit: int) -> list[date]:
    """The days (UTC) the deployment's scored cases happened on, newest first."""
    with connected(bind) as conn:
        rows = conn.execute(text(
            f"SELECT DISTINCT {_case_day(conn)} AS day FROM production_predictions "
            "WHERE deployment_id = :deployment ORDER BY day DESC LIMIT :limit"), {
                "deployment": deployment_id, "field": time_field,
                "path": f'$."{time_field}"', "limit": limit}).scalars().all()
    return [d if isinstance(d, date) else date.fromisoformat(str(d)) for d in rows]


def reported_outcomes(bind: Bind, observation_ids: list[str]) -> dict[str, int]:
    """observation_id -> the outcome reported for it (0 or 1), of those reported."""
    with connected(bind) as conn:
        return {r.observation_id: int(r.outcome) for r in conn.execute(
            select(pt.outcomes.c.observation_id, pt.outcomes.c.outcome)
            .where(pt.outcomes.c.observation_id.in_(observation_ids)))}


def production_features(bind: Bind, observation_ids: list[str]) -> dict[str, Any]:
    """observation_id -> the stored inputs of these scored observations."""
    with connected(bind) as conn:
        return {r.observation_id: r.features for r in conn.execute(
            select(P.c.observation_id, P.c.features)
            .where(P.c.observation_id.in_(observation_ids)))}


def stored_prediction(bind: Bind, key: str, fields: tuple[str, ...]) -> RowMapping | None:
    """A production prediction by observation id, else by the id of a request that scored one
    observation: ``fields``, its features, outcome and ``outcome_recorded_at``."""
    query = select(*(P.c[f] for f in fields), P.c.features, pt.outcomes.c.outcome,
                   pt.outcomes.c.recorded_at.label("outcome_recorded_at")
                   ).outerjoin(pt.outcomes, pt.outcomes.c.prediction_id == P.c.id)
    with connected(bind) as conn:
        row = conn.execute(query.where(P.c.observation_id == key)).mappings().one_or_none()
        if row is None:
            rows = conn.execute(query.where(P.c.request_id == key).limit(2)).mappings().all()
            row = rows[0] if len(rows) == 1 else None
    return row


def traffic_totals(bind: Bind) -> dict[str, int]:
    """How many requests, production predictions and outcomes are stored."""
    with connected(bind) as conn:
        return {name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in (("requests", pt.requests), ("predictions", P),
                                    ("outcomes", pt.outcomes))}


def flagged_count(bind: Bind) -> int:
    """How many production predictions flagged their case (decision true)."""
    with connected(bind) as conn:
        return conn.execute(select(func.count()).where(P.c.decision.is_(True))).scalar_one()


def last_request_time(bind: Bind) -> datetime | None:
    """When the newest request was received, or None."""
    with connected(bind) as conn:
        return conn.execute(select(func.max(pt.requests.c.received_at))).scalar_one()


def daily_traffic(bind: Bind, since: datetime) -> dict[str, dict[str, int]]:
    """Per day (``YYYY-MM-DD``) since ``since``: requests, predictions and outcomes."""
    columns = {"requests": pt.requests.c.received_at, "predictions": P.c.created_at,
               "outcomes": pt.outcomes.c.recorded_at}
    with connected(bind) as conn:
        series = {}
        for name, column in columns.items():
            day = func.date(column)
            series[name] = {str(d): int(n) for d, n in conn.execute(
                select(day, func.count()).where(column >= since).group_by(day))}
    return series


#: How far the database's window reaches past the monitor's on either side: the database
#: parses event times its own way (SQLite to the millisecond), the exact window is then applied
#: to the rows read (:func:`rudikit.monitoring.production.read_predictions`).
WINDOW_MARGIN = timedelta(days=1)

# A case's event time (its time input when it parses, else when it was scored) inside a window:
# SQLite compares Julian days, PostgreSQL timestamps. A case is scored after it happened (the
# clocks may differ by the margin), so a timed window also bounds created_at from below: a
# partitioned PostgreSQL store then skips the months before the window.
_IN_WINDOW = {
    "sqlite": ("coalesce(julianday(json_extract(p.features, :path)), julianday(p.created_at)) "
               "BETWEEN :lo AND :hi AND julianday(p.created_at) >= :lo",
               "julianday(p.created_at) BETWEEN :lo AND :hi"),
    "postgresql": ("coalesce(CASE WHEN (p.features->>:field) ~ '^\\d{4}-\\d{2}-\\d{2}' THEN "
                   "(p.features->>:field)::timestamptz END, p.created_at) BETWEEN :lo AND :hi "
                   "AND p.created_at >= :lo",
                   "p.created_at BETWEEN :lo AND :hi"),
}


@dataclass(frozen=True)
class CaseWindow:
    """The cases whose event time (the ``time_field`` input, else when scored) falls in
    ``[start, end]``, widened by :data:`WINDOW_MARGIN`: a predicate of the query, so a pass
    reads the window, not the history."""

    time_field: str | None
    start: datetime
    end: datetime

    def sql(self, dialect: str) -> str:
        timed, scored = _IN_WINDOW["postgresql" if dialect.startswith("postgres") else "sqlite"]
        return timed if self.time_field else scored

    def params(self, dialect: str) -> dict[str, Any]:
        lo, hi = self.start - WINDOW_MARGIN, self.end + WINDOW_MARGIN
        if dialect.startswith("postgres"):
            bounds: dict[str, Any] = {"lo": lo, "hi": hi}
        else:  # Julian days
            bounds = {"lo": lo.timestamp() / 86400 + 2440587.5,
                      "hi": hi.timestamp() / 86400 + 2440587.5}
        if self.time_field:
            bounds |= {"field": self.time_field, "path": f'$."{self.time_field}"'}
        return bounds


def prediction_id_range(bind: Bind, model_ids: list[int], window: CaseWindow | None = None
                        ) -> tuple[int, int]:
    """(lowest id - 1, highest id) of these models' production predictions (in ``window``);
    (-1, 0) for none, so ``lo < id <= hi`` covers them all."""
    with connected(bind) as conn:
        if window is None:
            lo, hi = conn.execute(select(func.min(P.c.id), func.max(P.c.id))
                                  .where(P.c.model_id.in_(model_ids))).one()
        else:
            dialect = conn.dialect.name
            lo, hi = conn.execute(text(
                "SELECT min(p.id), max(p.id) FROM production_predictions p WHERE p.model_id "
                f"IN :models AND {window.sql(dialect)}").bindparams(
                bindparam("models", expanding=True)),
                {"models": model_ids, **window.params(dialect)}).one()
    return (lo or 0) - 1, hi or 0


# One JSON object per prediction; the stored inputs go in as the nested object "f" (so an empty
# or odd input object can never break the line), observation ids are quoted by the database.
# SQLite writes a REAL into text with 15 significant digits; printf's 17 keep every bit of a
# score (15 moved tied scores across a drift bucket's edge).
_ROW = {
    "sqlite": ("""'{"i":' || p.id || ',"o":' || json_quote(p.observation_id)
               || ',"s":' || printf('%!.17g', p.score) || ',"d":' || p.decision
               || ',"y":' || coalesce(o.outcome, 'null')
               || ',"c":' || ((julianday(p.created_at) - 2440587.5) * 86400.0)
               || ',"f":' || p.features || '}'""", "group_concat({row}, char(10))"),
    "postgresql": ("""'{"i":' || p.id || ',"o":' || to_json(p.observation_id)::text
                   || ',"s":' || p.score || ',"d":' || p.decision::int
                   || ',"y":' || coalesce(o.outcome::text, 'null')
                   || ',"c":' || extract(epoch from p.created_at)
                   || ',"f":' || p.features::text || '}'""",
                   "string_agg({row}, E'\\n')"),
}


@cache
def _chunk_query(dialect: str, window: str) -> TextClause:
    """The text of a chunk is built by the database: raw SQL, one query per dialect."""
    row, aggregate = _ROW["postgresql" if dialect.startswith("postgres") else "sqlite"]
    return text(f"SELECT {aggregate.format(row=row)} FROM production_predictions p "
                "LEFT JOIN outcomes o ON o.prediction_id = p.id "
                f"WHERE p.id > :lo_id AND p.id <= :hi_id AND p.model_id IN :models{window}"
                ).bindparams(bindparam("models", expanding=True))


def prediction_chunk(conn: Connection, model_ids: list[int], lo: int, hi: int,
                     window: CaseWindow | None = None) -> str | None:
    """Production predictions of these models with ``lo < id <= hi`` (in ``window``) as JSON
    lines (i=id, o=observation, s=score, d=decision, y=outcome, c=epoch seconds, f=inputs)."""
    dialect = conn.dialect.name
    where = "" if window is None else f" AND {window.sql(dialect)}"
    params = {} if window is None else window.params(dialect)
    return conn.execute(_chunk_query(dialect, where),
                        {"lo_id": lo, "hi_id": hi, "models": model_ids, **params}).scalar()
