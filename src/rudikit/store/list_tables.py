"""Early intervention list tables: how stable the lists are, how officers move on them, and the
reviews that keep an officer off the list for a cool-off period.

Defined on the results store's ``metadata`` (migration 0004), and written like the rest of the
store: one transaction per call, rows only ever inserted.

* ``list_stability``: one value per run, kind (``seeds``: two seeds of one model group on one
  date, ``details`` naming the group's sources of randomness; ``bootstrap`` and
  ``drop_source``: the group refitted on a resample of the training officers or without one
  source table, against its own list; ``consecutive``: a list against the one before it;
  ``trees``: two seeds at a number of trees), parameter (what was varied, e.g.
  ``n_estimators=1000``, ``source=complaints`` or the two dates) and metric (``jaccard``,
  ``spearman``, ``precision_at_k``);
* ``rank_changes``: DSaPP's ``time_delta``: an officer's rank on a list date against the nearest
  earlier list at least a day / week / month / quarter / year before;
* ``entity_reviews``: supervisor reviews of flagged officers (DSaPP's ``review_audit``);
* ``production_lists`` and ``production_list_entries`` (migration 0007): the lists ``rudi
  score`` makes from fresh data with the deployed model, one per project and as-of date; every
  active officer's score and rank, the rank after the cool-off, and the top reasons of the
  listed ones. Rank changes of a production list carry its ``list_id`` instead of a run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from rudikit.store.results import bulk_insert
from rudikit.store.tables import BigId, metadata

list_stability = Table(
    "list_stability",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", ForeignKey("runs.id"), nullable=False, index=True),
    Column("model_group_id", ForeignKey("model_groups.id")),
    Column("kind", String(20), nullable=False),  # seeds, bootstrap, drop_source, consecutive..
    Column("algorithm", String(100)),
    Column("parameter", String(200), nullable=False),  # "n_estimators=1000", "2014-01-01/..."
    Column("as_of_date", DateTime(timezone=True)),
    Column("k", Integer, nullable=False),
    Column("metric", String(50), nullable=False),  # jaccard, spearman, precision_at_k
    Column("value", Float),
    Column("details", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

rank_changes = Table(
    "rank_changes",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("run_id", ForeignKey("runs.id")),  # a development run's lists, or
    Column("list_id", ForeignKey("production_lists.id")),  # a production list
    Column("model_group_id", ForeignKey("model_groups.id")),
    Column("entity_id", String(200), nullable=False),
    Column("as_of_date", DateTime(timezone=True), nullable=False),
    Column("horizon", String(20), nullable=False),  # day, week, month, quarter, year
    Column("rank", Integer, nullable=False),
    Column("previous_date", DateTime(timezone=True)),
    Column("previous_rank", Integer),
    Column("change", Integer),  # previous_rank - rank: positive = moved up the list
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_rank_changes_run_date", "run_id", "as_of_date"),
    Index("ix_rank_changes_list", "list_id"),
)

entity_reviews = Table(
    "entity_reviews",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("entity_id", String(200), nullable=False, index=True),
    Column("review_date", DateTime(timezone=True), nullable=False),
    Column("model_group_id", ForeignKey("model_groups.id")),
    Column("reviewer", String(200), nullable=False),
    Column("outcome", String(50), nullable=False),  # the decision: no_action, training, ...
    Column("agreement", String(20)),  # with the flag: agree, disagree, unsure
    Column("notes", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # the review this one corrects (migration 0010): the earlier row is kept unchanged
    Column("supersedes", ForeignKey("entity_reviews.id",
                                    name="fk_entity_reviews_supersedes")),
    UniqueConstraint("supersedes", name="uq_entity_reviews_supersedes"),
)

production_lists = Table(
    "production_lists",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project", String(200), nullable=False),
    Column("deployment_id", ForeignKey("deployed_models.id"), nullable=False),
    Column("model_id", ForeignKey("models.id"), nullable=False),
    Column("model_group_id", ForeignKey("model_groups.id"), nullable=False),
    Column("as_of_date", DateTime(timezone=True), nullable=False),
    Column("k", Integer, nullable=False),
    Column("cool_off_days", Integer, nullable=False),
    Column("scored", Integer, nullable=False),  # active officers scored
    Column("excluded", Integer, nullable=False),  # of them, in their cool-off after a review
    Column("data_checksum", String(64), nullable=False),  # of the event tables read
    Column("newest_record", DateTime(timezone=True)),
    Column("scored_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("project", "as_of_date", name="uq_production_lists_project_date"),
)

production_list_entries = Table(
    "production_list_entries",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("list_id", ForeignKey("production_lists.id"), nullable=False),
    Column("entity_id", String(200), nullable=False),
    Column("score", Float, nullable=False),
    Column("rank_all", Integer, nullable=False),  # among every officer scored
    Column("rank", Integer),  # after the cool-off; None while the officer is in it
    Column("reviewed_on", DateTime(timezone=True)),  # the review that keeps the officer off
    Column("reasons", JSON),  # the top reasons of a listed officer
    Index("ix_production_list_entries_list_rank", "list_id", "rank"),
)

LIST_TABLES = (list_stability, rank_changes, entity_reviews, production_lists,
               production_list_entries)


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(value: Any) -> datetime | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return None
    return pd.Timestamp(value).to_pydatetime()


def _int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def record_list_stability(engine: Engine, run_id: int, rows: pd.DataFrame | list[dict[str, Any]]
                          ) -> int:
    """Insert stability values; each row needs ``kind``, ``parameter``, ``k``, ``metric`` and
    ``value`` (``model_group_id``, ``algorithm``, ``as_of_date``, ``details`` optional).
    Returns the number of rows written."""
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
    created = _now()
    values = [{
        "run_id": run_id, "model_group_id": _int(r.get("model_group_id")),
        "kind": str(r["kind"]), "algorithm": r.get("algorithm"),
        "parameter": str(r["parameter"]), "as_of_date": _ts(r.get("as_of_date")),
        "k": int(r["k"]), "metric": str(r["metric"]), "value": _float(r["value"]),
        "details": r.get("details"), "created_at": created,
    } for r in records]
    if values:
        with engine.begin() as conn:
            conn.execute(insert(list_stability), values)
    return len(values)


def _datetimes(values: pd.Series) -> list[datetime | None]:
    """:func:`_ts` of a whole column: one conversion, not a Timestamp per row."""
    stamps = pd.to_datetime(values)
    return [None if pd.isna(v) else v for v in stamps.dt.to_pydatetime()]


def _ints(values: pd.Series) -> list[int | None]:
    """:func:`_int` of a whole column."""
    return [None if v != v else int(v) for v in values.to_numpy(dtype=float).tolist()]


def _rank_change_rows(changes: pd.DataFrame, model_group_id: int | None, *,
                      run_id: int | None = None, list_id: int | None = None
                      ) -> dict[str, list[Any]]:
    """The rows to insert, column by column, for :func:`rudikit.store.results.bulk_insert`
    (a list's tens of thousands of rank changes converted value by value, and inserted a
    parameter dict per row, took seconds of the run's serial part)."""
    if not len(changes):  # possibly without columns: nothing moved
        return {}
    count = len(changes)
    return {
        "run_id": [run_id] * count, "list_id": [list_id] * count,
        "model_group_id": [model_group_id] * count, "created_at": [_now()] * count,
        "entity_id": changes["entity_id"].astype(str).tolist(),
        "as_of_date": _datetimes(changes["as_of_date"]),
        "horizon": changes["horizon"].astype(str).tolist(),
        "rank": [int(v) for v in changes["rank"].tolist()],
        "previous_date": _datetimes(changes["previous_date"]),
        "previous_rank": _ints(changes["previous_rank"]),
        "change": _ints(changes["change"]),
    }


def record_rank_changes(engine: Engine, run_id: int, changes: pd.DataFrame,
                        model_group_id: int | None = None) -> int:
    """Insert the output of :func:`rudikit.evaluation.stability.rank_changes`."""
    with engine.begin() as conn:
        return bulk_insert(conn, rank_changes, _rank_change_rows(changes, model_group_id,
                                                                 run_id=run_id))


def record_production_list(engine: Engine, header: dict[str, Any], entries: pd.DataFrame,
                           changes: pd.DataFrame) -> int | None:
    """Store one production list in one transaction: the ``header`` row (the columns of
    ``production_lists`` but ``id``/``created_at``), every scored officer (``entity_id``,
    ``score``, ``rank_all``, ``rank``, ``reviewed_on``, ``reasons``) and the listed officers'
    rank changes. Returns the list id, or None when the project already has a list on that
    date (a concurrent ``rudi score`` stored it first; nothing is stored twice)."""
    created = _now()
    try:
        with engine.begin() as conn:
            list_id = conn.execute(insert(production_lists).values(
                **header, created_at=created).returning(production_lists.c.id)).scalar_one()
            rows = [{"list_id": list_id, "entity_id": str(r["entity_id"]),
                     "score": float(r["score"]), "rank_all": int(r["rank_all"]),
                     "rank": _int(r["rank"]), "reviewed_on": _ts(r["reviewed_on"]),
                     "reasons": r["reasons"] if isinstance(r["reasons"], list) else None}
                    for r in entries.to_dict("records")]
            for start in range(0, len(rows), 20_000):
                conn.execute(insert(production_list_entries), rows[start:start + 20_000])
            bulk_insert(conn, rank_changes,
                        _rank_change_rows(changes, header["model_group_id"], list_id=list_id))
    except IntegrityError:
        with engine.connect() as conn:
            taken = conn.execute(select(production_lists.c.id).where(
                production_lists.c.project == header["project"],
                production_lists.c.as_of_date == header["as_of_date"])).first()
        if taken is None:
            raise
        return None
    return list_id


def record_review(engine: Engine, entity_id: str, review_date: Any, *, reviewer: str,
                  outcome: str, notes: str | None = None, model_group_id: int | None = None,
                  agreement: str | None = None, supersedes: int | None = None) -> int:
    """Store one supervisor review of a flagged officer: ``outcome`` is the decision taken,
    ``agreement`` whether the reviewer agreed with the flag (agree, disagree, unsure);
    ``supersedes``: the id of the review this one corrects (kept unchanged). A review already
    corrected raises IntegrityError (a review is corrected once)."""
    with engine.begin() as conn:
        return conn.execute(insert(entity_reviews).values(
            entity_id=str(entity_id), review_date=_ts(review_date), reviewer=reviewer,
            outcome=outcome, agreement=agreement, notes=notes, model_group_id=model_group_id,
            created_at=_now(), supersedes=supersedes,
        ).returning(entity_reviews.c.id)).scalar_one()


REVIEW_COLUMNS = ("id", "entity_id", "review_date", "reviewer", "outcome", "agreement", "notes",
                  "model_group_id", "created_at", "supersedes")


def load_reviews(engine: Engine) -> pd.DataFrame:
    """Every review in force (entity_id, review_date, reviewer, outcome, agreement, notes, ...;
    a corrected review is replaced by its correction) with naive UTC review dates, for
    :func:`rudikit.evaluation.stability.exclude_reviewed`."""
    from rudikit.store.queries.lists import reviews  # the queries import these tables

    frame = pd.DataFrame(reviews(engine, REVIEW_COLUMNS, current=True),
                         columns=list(REVIEW_COLUMNS))
    dates = pd.to_datetime(frame["review_date"], utc=True)
    frame["review_date"] = dates.dt.tz_convert(None)
    return frame
