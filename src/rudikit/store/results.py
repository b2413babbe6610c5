"""Writing development results. Each function is one transaction: a model and everything known
about it when it is stored (predictions, evaluations, importances, fairness audits, ensemble
members) land together or not at all, so a crash never leaves a model without its audit or an
ensemble without its members."""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Table, insert, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from rudikit import __version__
from rudikit.evaluation.metrics import MetricValue
from rudikit.store import tables as t
from rudikit.store.partitions import ensure_months
from rudikit.store.queries.runs import model_group_id, report_payload

LIBRARIES = ("numpy", "pandas", "scikit-learn", "lightgbm", "skops", "sqlalchemy", "fairlearn")


def now() -> datetime:
    return datetime.now(UTC)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _ts(value: Any) -> datetime | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return None
    return pd.Timestamp(value).to_pydatetime()


def start_run(engine: Engine, project: str, config_hash: str, config: dict[str, Any],
              seed: int, data_origin: str) -> int:
    with engine.begin() as conn:
        return conn.execute(insert(t.runs).values(
            project=project, config_hash=config_hash, config=config, code_version=__version__,
            library_versions=library_versions(), seed=seed, data_origin=data_origin,
            status="running", started_at=now(),
        ).returning(t.runs.c.id)).scalar_one()


def finish_run(engine: Engine, run_id: int, status: str, error: str | None = None,
               report_path: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(
            status=status, error=error, report_path=report_path, finished_at=now()))


@dataclass
class RecordedRun:
    """A run being recorded: its id, and :meth:`finish` to mark it finished before the work
    that must see the final status (reports) is done."""

    engine: Engine
    id: int
    finished: bool = False

    def finish(self) -> None:
        finish_run(self.engine, self.id, "finished")
        self.finished = True


@contextmanager
def run(engine: Engine, project: str, config_hash: str, config: dict[str, Any], seed: int,
        data_origin: str) -> Iterator[RecordedRun]:
    """The one start/finish/failure block of every run (development, retraining, backtests):
    a failure inside marks the run failed with the error, and whatever was stored before it
    stays as it was; leaving normally marks it finished (if :meth:`RecordedRun.finish` has not
    already)."""
    record = RecordedRun(engine, start_run(engine, project, config_hash, config, seed,
                                           data_origin))
    try:
        yield record
    except BaseException as exc:
        finish_run(engine, record.id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    if not record.finished:
        record.finish()


def set_report_path(engine: Engine, run_id: int, report_path: str) -> None:
    """Where the run's report was written (after the run is marked finished, so the report
    shows the run's final status)."""
    with engine.begin() as conn:
        conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(report_path=report_path))


def record_snapshot(engine: Engine, run_id: int, *, source: str, kind: str, location: str,
                    files: int, rows: int, bad_rows: int, warnings: int, checksum: str,
                    min_date: Any, max_date: Any,
                    profiles: list[dict[str, Any]] | None = None) -> int:
    """One snapshot row and its columns' profiles (:mod:`rudikit.data.profile`), together."""
    with engine.begin() as conn:
        snapshot_id = conn.execute(insert(t.data_snapshots).values(
            run_id=run_id, source=source, kind=kind, location=location, files=files, rows=rows,
            bad_rows=bad_rows, warnings=warnings, checksum=checksum, min_date=_ts(min_date),
            max_date=_ts(max_date), created_at=now(),
        ).returning(t.data_snapshots.c.id)).scalar_one()
        if profiles:
            conn.execute(insert(t.snapshot_profiles),
                         [{"snapshot_id": snapshot_id, **p} for p in profiles])
        return snapshot_id


def freeze_report(engine: Engine, run_id: int, kind: str, payload: dict[str, Any]
                  ) -> dict[str, Any]:
    """Store what run ``run_id``'s report shows, once: the first payload stored wins (a
    second writer, racing, gets the stored one back), so a report never changes after it was
    first written."""
    try:
        with engine.begin() as conn:
            conn.execute(insert(t.report_payloads).values(
                run_id=run_id, kind=kind, payload=payload, code_version=__version__,
                created_at=now()))
    except IntegrityError:
        pass
    stored = report_payload(engine, run_id, kind)
    assert stored is not None  # just written, or written by the racing writer
    return stored


def group_key(project: str, algorithm: str, hyperparameters: dict[str, Any],
              features: dict[str, Any], label: str) -> str:
    payload = json.dumps([project, algorithm, hyperparameters, features, label], sort_keys=True,
                         default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def get_or_create_model_group(engine: Engine, project: str, algorithm: str,
                              hyperparameters: dict[str, Any], features: dict[str, Any],
                              label: str) -> int:
    """Model groups are shared across runs: the same configuration is the same group."""
    key = group_key(project, algorithm, hyperparameters, features, label)
    with engine.begin() as conn:
        found = model_group_id(conn, key)
        if found is not None:
            return found
        return conn.execute(insert(t.model_groups).values(
            group_key=key, project=project, algorithm=algorithm,
            hyperparameters=hyperparameters, features=features, label=label, created_at=now(),
        ).returning(t.model_groups.c.id)).scalar_one()


@dataclass
class FittedModel:
    run_id: int
    model_group_id: int
    split: str
    train_rows: int
    test_rows: int
    train_span: tuple[Any, Any]
    test_span: tuple[Any, Any]
    artefact_hash: str
    artefact_path: str
    train_seconds: float


def ranks(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank 1 = highest score; tied scores share the best rank of their run ("min")."""
    rank = pd.Series(score).rank(method="min", ascending=False).to_numpy(dtype=int)
    return rank, rank / max(len(score), 1)


def _insert_many(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 20_000):
        conn.execute(insert(table), rows[start:start + 20_000])


#: Rows of a large write (a fit's test predictions, the chosen model's reasons) made into
#: Python values at a time by :func:`insert_in_parts`, each part written before the next is
#: made, all in the caller's transaction: at 5M rows a fit's 1.67M predictions made at once
#: were about 0.7 GB of Python objects in the driver.
CHUNK_ROWS = 100_000

#: Rows per ``executemany`` on SQLite: one statement per batch, all in the caller's transaction.
BATCH_ROWS = 50_000


def bulk_insert(conn: Connection, table: Table, columns: Mapping[str, Sequence[Any]]) -> int:
    """Write many rows (one list of plain Python values per column) in the caller's transaction,
    as ``insert(table)`` would store them, without a dict per row: PostgreSQL through psycopg's
    ``COPY ... FROM STDIN``, SQLite through the driver's ``executemany`` of tuples in large
    batches (values pass each column type's bind processor, e.g. datetimes to SQLite's text).
    Hand-written because SQLAlchemy has no COPY, and its executemany builds and processes a
    parameter dict per row (the slowest part of storing a million predictions). Returns the
    number of rows written."""
    names = list(columns)
    count = len(columns[names[0]]) if names else 0
    if count == 0:
        return 0
    dialect = conn.dialect
    quote = dialect.identifier_preparer
    target = f"{quote.format_table(table)} ({', '.join(quote.quote(c) for c in names)})"
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        with conn.connection.cursor() as cursor, \
                cursor.copy(f"COPY {target} FROM STDIN") as copy:
            for row in zip(*columns.values(), strict=True):
                copy.write_row(row)
        return count
    if dialect.name != "sqlite":  # another driver: SQLAlchemy's own executemany
        _insert_many(conn, table, [dict(zip(names, row, strict=True))
                                   for row in zip(*columns.values(), strict=True)])
        return count
    processed = []
    for name in names:
        process = dialect.type_descriptor(table.c[name].type).bind_processor(dialect)
        processed.append(columns[name] if process is None else [process(v) for v in columns[name]])
    statement = f"INSERT INTO {target} VALUES ({', '.join('?' * len(names))})"
    rows = list(zip(*processed, strict=True))
    for start in range(0, count, BATCH_ROWS):
        conn.exec_driver_sql(statement, rows[start:start + BATCH_ROWS])
    return count


def insert_in_parts(conn: Connection, table: Table, count: int,
                    columns: Callable[[slice], Mapping[str, Sequence[Any]]]) -> int:
    """Write ``count`` rows with :func:`bulk_insert`, :data:`CHUNK_ROWS` at a time:
    ``columns(part)`` makes the Python values of the rows in the slice ``part`` only, so a
    large write never holds all its rows as Python objects. Returns ``count``."""
    for start in range(0, count, CHUNK_ROWS):
        bulk_insert(conn, table, columns(slice(start, start + CHUNK_ROWS)))
    return count


def timestamps(values: np.ndarray | None, count: int) -> list[datetime | None]:
    """Dates as the store's datetimes (None for missing; all None without ``values``)."""
    if values is None:
        return [None] * count
    stamps = pd.DatetimeIndex(values).to_pydatetime()
    return [None if d is pd.NaT else d for d in stamps]


Importance = tuple[str, str, float, float | None, float | None]
"""(feature, method, importance, standard deviation, p-value)."""


@dataclass(frozen=True)
class Audit:
    """One operating point's (or list date's) fairness audit of a model: its disparities (tidy
    per attribute, group and metric; None when only requirements were checked) and its
    requirement results (:class:`rudikit.fairness.requirements.RequirementResult`)."""

    selection: str
    disparities: pd.DataFrame | None
    requirement_results: Sequence[Any]


@dataclass(frozen=True)
class Members:
    """The stored models an ensemble combines, in its order, and how they were chosen."""

    model_ids: Sequence[int]
    chosen_by: str


def record_model(engine: Engine, model: FittedModel, *, entity_ids: np.ndarray,
                 as_of: np.ndarray | None, score: np.ndarray, label: np.ndarray,
                 metrics: list[MetricValue], importances: list[Importance],
                 audits: Sequence[Audit] = (), members: Members | None = None) -> int:
    """Store a fitted model with its test predictions, evaluations, feature importances,
    fairness ``audits`` and, for an ensemble, its ``members``, in one transaction. A missing
    ``label`` (NaN) is stored as unknown: a retraining's refit scores a date whose outcomes
    have not happened yet."""
    created = now()
    rank_abs, rank_pct = ranks(score)
    scores, labels = np.asarray(score, dtype=float), np.asarray(label, dtype=float)
    if as_of is not None:
        ensure_months(engine, t.predictions.name,
                      timestamps(pd.DatetimeIndex(as_of).unique().to_numpy(), 0))
    with engine.begin() as conn:
        model_id = conn.execute(insert(t.models).values(
            run_id=model.run_id, model_group_id=model.model_group_id, split=model.split,
            train_rows=model.train_rows, test_rows=model.test_rows,
            train_start=_ts(model.train_span[0]), train_end=_ts(model.train_span[1]),
            test_start=_ts(model.test_span[0]), test_end=_ts(model.test_span[1]),
            artefact_hash=model.artefact_hash, artefact_path=model.artefact_path,
            train_seconds=model.train_seconds, selected=False, created_at=created,
        ).returning(t.models.c.id)).scalar_one()
        insert_in_parts(conn, t.predictions, len(scores), lambda part: {
            "model_id": [model_id] * len(scores[part]),
            "entity_id": [str(e) for e in entity_ids[part]],
            "as_of_date": timestamps(None if as_of is None else as_of[part], len(scores[part])),
            "score": scores[part].tolist(),
            "label": [None if np.isnan(y) else int(y) for y in labels[part].tolist()],
            "rank_abs": rank_abs[part].tolist(), "rank_pct": rank_pct[part].tolist()})
        _insert_evaluations(conn, model_id, [*metrics, MetricValue(
            "train_seconds", "", model.train_seconds, None, None, model.train_rows)], created)
        _insert_importances(conn, model_id, importances)
        for audit in audits:
            _insert_audit(conn, model_id, audit, created)
        if members is not None:
            _insert_members(conn, model_id, members)
    return model_id


def record_evaluations(engine: Engine, model_id: int, metrics: list[MetricValue]) -> None:
    """Add evaluations to a stored model in one transaction (what is learnt about a model
    after it was stored, e.g. its training rows per map cell)."""
    with engine.begin() as conn:
        _insert_evaluations(conn, model_id, metrics, now())


def _insert_evaluations(conn: Connection, model_id: int, metrics: Sequence[MetricValue],
                        created: datetime) -> None:
    rows = [(m.metric, m.parameter, m.value, m.lower, m.upper, m.n) for m in metrics]
    bulk_insert(conn, t.evaluations, {
        "model_id": [model_id] * len(rows),
        **{name: [plain(r[i]) for r in rows] for i, name in enumerate(
            ("metric", "parameter", "value", "lower", "upper", "n"))},
        "created_at": [created] * len(rows)})


def _insert_importances(conn: Connection, model_id: int, importances: list[Importance]) -> None:
    order = sorted(importances, key=lambda r: -r[2])
    _insert_many(conn, t.feature_importances, [
        {"model_id": model_id, "feature": f, "method": method, "importance": imp,
         "std": std, "p_value": p, "rank": i + 1}
        for i, (f, method, imp, std, p) in enumerate(order)
    ])


def _insert_audit(conn: Connection, model_id: int, audit: Audit, created: datetime) -> None:
    """One audit's disparities and requirement results, in the caller's transaction."""
    selection, disparities = audit.selection, audit.disparities
    if disparities is not None and len(disparities):
        _insert_many(conn, t.fairness_audits, [
            {"model_id": model_id, "selection": selection, "attribute": r["attribute"],
             "group_value": r["group"], "metric": r["metric"],
             **{k: plain(r.get(k)) for k in ("value", "lower", "upper", "numerator",
                                             "denominator", "reference_group",
                                             "disparity_ratio", "difference_pp",
                                             "p_value", "p_adjusted", "fair")},
             "n": int(r["n"]), "status": r["status"], "created_at": created}
            for r in disparities.to_dict("records")])
    for result in audit.requirement_results:
        req = result.requirement
        outcomes = [{k: plain(v) for k, v in o.__dict__.items()
                     if k != "excluded_groups"} | {"excluded_groups": list(o.excluded_groups)}
                    for o in result.outcomes]
        conn.execute(insert(t.fairness_requirements).values(
            model_id=model_id, selection=selection, name=req.name, metric=req.metric,
            max_gap_pp=float(req.max_gap_pp), passed=bool(result.passed),
            units_met=int(result.units_met), units_evaluated=int(result.units_evaluated),
            summary=result.summary, outcomes=outcomes, created_at=created))


def _insert_members(conn: Connection, ensemble_model_id: int, members: Members) -> None:
    _insert_many(conn, t.ensemble_members, [
        {"ensemble_model_id": ensemble_model_id, "member_model_id": int(member),
         "position": i, "chosen_by": members.chosen_by[:200]}
        for i, member in enumerate(members.model_ids)])


def record_importances(engine: Engine, model_id: int, importances: list[Importance]) -> None:
    """Store a model's feature importances (ranked by importance) in one transaction."""
    with engine.begin() as conn:
        _insert_importances(conn, model_id, importances)


def record_individual_importances(engine: Engine, model_id: int, method: str,
                                  entity_ids: np.ndarray, as_of: np.ndarray | None,
                                  reasons: pd.DataFrame) -> int:
    """Store the top reasons behind a model's predictions in one transaction. ``reasons`` has
    ``row`` (position in ``entity_ids``), ``feature``, ``contribution``, ``value``, ``rank``
    (:func:`rudikit.explain.top_reasons`). Returns the number of rows written."""
    rows = reasons["row"].to_numpy()
    entity = np.asarray(entity_ids)[rows]
    dates = None if as_of is None else np.asarray(as_of)[rows]
    feature, value = reasons["feature"].to_numpy(), reasons["value"].to_numpy()
    contribution = reasons["contribution"].to_numpy(dtype=float)
    rank = reasons["rank"].to_numpy(dtype=int)
    with engine.begin() as conn:
        return insert_in_parts(conn, t.individual_importances, len(rows), lambda part: {
            "model_id": [model_id] * len(rank[part]),
            "entity_id": [str(e) for e in entity[part]],
            "as_of_date": timestamps(None if dates is None else dates[part], len(rank[part])),
            "feature": feature[part].tolist(), "method": [method] * len(rank[part]),
            "contribution": contribution[part].tolist(),
            # pandas' text columns hold a missing value as NaN: stored as NULL, never 'NaN'
            "value": [plain(v) for v in value[part].tolist()],
            "rank": rank[part].tolist()})


def mark_selected(engine: Engine, model_id: int, reason: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(t.models).where(t.models.c.id == model_id).values(
            selected=True, selection_reason=reason))


def plain(value: Any) -> Any:
    """A value fit for a JSON or numeric column: numpy scalars become Python ones, containers
    are converted throughout, and missing or non-finite numbers (NaN, inf, pd.NA) become None.
    The one converter the store, the audit and the monitor use."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
