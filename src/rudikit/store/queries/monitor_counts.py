"""The monitor's figures as aggregates of a model's typed production inputs
(:mod:`rudikit.store.production_inputs`), computed by the database over the window's rows, so a
pass reads counts of the window's rows rather than the rows: the drift bucket counts of every
input (one row back, and one short grouped query per datetime input for its parts), the
cases grouped by coordinates and outcome for the map, and the figures of the cases with an
outcome: the confusion matrix at the threshold, the ROC AUC (Mann-Whitney, from the cases
grouped by score and cumulated in window functions), the average precision and precision@k
(ties at the cut at their expected value), overall, per segment and per period, the ROC
curve's points, and the fairness counts per group, decision and outcome. Only the window's
scores (the KS test) come back one per case, and, for a ``roc_auc`` fairness requirement, the
labelled cases counted per group and score (nearly one row per case: the statistic needs each
score).

The window is a half-open interval of event times in epoch microseconds, ``(lo, hi]``, on the
side table's indexed ``event_us``: the exact window, not a wider one filtered afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    Select,
    Table,
    and_,
    case,
    cast,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import DropTable
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement, ColumnElement
from sqlalchemy.sql.selectable import Join

from rudikit.store import production_tables as pt
from rudikit.store.production_inputs import PREFIX
from rudikit.store.queries.common import driver_rows

_DAY_US, _HOUR_US = 86_400_000_000, 3_600_000_000


def epoch_us(value: datetime) -> int:
    """``value`` (naive means UTC) in whole microseconds since the epoch."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class Buckets:
    """How one drift feature is bucketed: by ``categories`` (then "other", then missing) or by
    numeric ``edges`` (``len(edges) + 1`` intervals, then missing). ``source`` is the input (or
    ``score``), ``part`` a datetime part of it (``hour``...)."""

    source: str
    categories: tuple[str, ...] | None = None
    edges: tuple[float, ...] = ()
    part: str | None = None


def _part(conn: Connection, stamp: ColumnElement, part: str) -> ColumnElement:
    """A datetime part of epoch microseconds, as the encoder computes it (UTC; Monday is 0;
    ``is_weekend``/``is_night`` are 0, not missing, for a missing time)."""
    hour = (stamp // _HOUR_US) % 24
    weekday = (stamp // _DAY_US + 3) % 7  # 1970-01-01 was a Thursday
    if part == "hour":
        return hour
    if part == "weekday":
        return weekday
    if part == "is_weekend":
        return func.coalesce(case((weekday >= 5, 1), (weekday < 5, 0)), 0)
    if part == "is_night":
        return func.coalesce(case((hour >= 22, 1), (hour < 22, case((hour < 6, 1), else_=0))),
                             0)
    if conn.dialect.name.startswith("postgres"):
        field = {"month": "month", "day": "day"}[part]
        return func.cast(func.extract(field, func.timezone("UTC", func.to_timestamp(
            stamp / 1_000_000.0))), literal_column("integer"))
    fmt = {"month": "%m", "day": "%d"}[part]
    return func.cast(func.strftime(fmt, stamp // 1_000_000, "unixepoch"),
                     literal_column("INTEGER"))


def read_windows(conn: Connection) -> None:
    """Let PostgreSQL read a window through the side table's key for the rest of ``conn``'s
    transaction: with the default cost of a random page (4, a spinning disk) it estimates a
    window of a tenth of the rows dearer by the key than by reading the whole table, which took
    three times as long at 10M rows with the table in event-time order, as a service writes
    it. JIT compilation is off for the same transaction: the outcomes looked up per window
    row (:func:`labelled_window`) make the estimate high enough to switch JIT inlining on,
    which added 0.12-0.16 s to each of a pass's queries (1.24 s against 0.91 s for the
    labelled join at 822k window rows). No-op elsewhere."""
    if conn.dialect.name.startswith("postgres"):
        conn.exec_driver_sql("SET LOCAL random_page_cost = 1.1")
        conn.exec_driver_sql("SET LOCAL jit = off")


def _value(conn: Connection, table: Table, rule: Buckets) -> ColumnElement:
    value = table.c.score if rule.source == "score" else table.c[PREFIX + rule.source]
    return _part(conn, value, rule.part) if rule.part else value


def _categories(rule: Buckets) -> list[object | None]:
    """The rule's categories as the column holds them (a datetime part's "13" as 13; a text
    that is no whole number matches no part)."""
    cats: list[object | None] = list(rule.categories or ())
    if rule.part:
        cats = [int(c) if c.lstrip("-").isdigit() else None for c in cats]
    return cats


def _bucket_of(rule: Buckets) -> Callable[[object], int]:
    """The bucket of a value of a categorical rule: its category (the first that matches),
    else "other", else (no value) missing."""
    cats = _categories(rule)
    index: dict[object, int] = {}
    for i, c in enumerate(cats):
        if c is not None:
            index.setdefault(c, i)
    return lambda value: len(cats) + 1 if value is None else index.get(value, len(cats))


def drift_counts(conn: Connection, table: Table, rules: dict[str, Buckets], lo: int, hi: int
                 ) -> tuple[int, dict[str, list[int]]]:
    """The window's prediction count and, per feature, its count per bucket.

    One aggregate query counts every input with one comparison per category or edge and row
    (a bucket between two edges is the difference of two counts below an edge, "other" and
    missing what the categories and the non-missing count leave), and one grouped query per
    datetime input counts its parts (hour, weekday...), computed once per row instead of once
    per category."""
    window = and_(table.c.event_us > lo, table.c.event_us <= hi)
    plain = {name: rule for name, rule in rules.items() if not rule.part}
    sums: list[ColumnElement] = []
    for rule in plain.values():
        value = _value(conn, table, rule)
        tests = ([value == c for c in _categories(rule) if c is not None]
                 if rule.categories is not None else [value < e for e in rule.edges])
        sums += [func.count().filter(t) for t in tests] + [func.count(value)]
    row = conn.execute(select(func.count(), *sums).where(window)).one()
    n, values, out = int(row[0]), iter(int(v or 0) for v in row[1:]), {}
    for name, rule in plain.items():
        if rule.categories is not None:  # per category, "other", missing
            counts = [0 if c is None else next(values) for c in _categories(rule)]
        else:  # per interval (below the first edge, between two, from the last), missing
            below = [next(values) for _ in rule.edges]
            counts = [b - a for a, b in zip([0, *below], below, strict=False)]
        present = next(values)
        out[name] = ([*counts, present - sum(counts), n - present]
                     if rule.categories is not None or rule.edges else [present, n - present])
    by_source: dict[str, dict[str, Buckets]] = {}
    for name, rule in rules.items():
        if rule.part:
            by_source.setdefault(rule.source, {})[name] = rule
    for parts in by_source.values():
        keys = [_value(conn, table, rule) for rule in parts.values()]
        grouped = conn.execute(select(*keys, func.count()).where(window).group_by(*keys)).all()
        for i, (name, rule) in enumerate(parts.items()):
            counts, bucket = [0] * (len(rule.categories or ()) + 2), _bucket_of(rule)
            for group in grouped:
                counts[bucket(group[i])] += int(group[-1])
            out[name] = counts
    return n, {name: out[name] for name in rules}


def window_scores(conn: Connection, table: Table, lo: int, hi: int) -> np.ndarray:
    """The window's scores (for the KS test and the score's drift buckets), in no order: a
    model's scores are nearly all distinct, so grouping them would sort the window to save
    nothing."""
    query = select(table.c.score).where(table.c.event_us > lo, table.c.event_us <= hi)
    rows = driver_rows(conn, query)
    return np.array(rows, dtype=float).reshape(-1)


#: The most points of the stored ROC curve (:func:`roc_curve_points`).
ROC_POINTS = 200


def _ranked(conn: Connection, cases: Table, keys: dict[str, ColumnElement], threshold: float,
            k: int) -> pd.DataFrame:
    """Per group of ``keys`` (one group without keys), what the realised figures are computed
    from, over the window's labelled ``cases`` (:func:`labelled_cases`) grouped by (keys,
    score) and cumulated from the
    highest score down: ``n``, ``pos``, ``tp`` and ``fp`` at ``score >= threshold``,
    ``u_minus`` (``sum pos * (2 * cum_neg - neg)`` per score, so that the Mann-Whitney
    ``2U = 2 * pos * neg - u_minus``, in integers), ``ap_sum`` (``sum pos * cum_pos / cum_n``
    per score: the average precision times ``pos``, scikit-learn's definition) and
    ``tp_at_k`` (the positives expected among the ``min(k, n)`` highest scores, the tie group
    at the cut counted by its expected value)."""
    # the keys labelled by position: an input may be named as any label below ("n", "score")
    labels = [f"k{i}" for i in range(len(keys))]
    grouped = select(
        *(v.label(name) for name, v in zip(labels, keys.values(), strict=True)),
        cases.c.score.label("score"), func.sum(cases.c.outcome).label("pos"),
        func.count().label("n")).group_by(*keys.values(), cases.c.score).subquery("scored")
    part = [grouped.c[name] for name in labels]
    down = {"partition_by": part or None, "order_by": grouped.c.score.desc(), "rows": (None, 0)}
    cum = select(*part, grouped.c.score, grouped.c.pos, grouped.c.n,
                 func.sum(grouped.c.n).over(**down).label("cum_n"),
                 func.sum(grouped.c.pos).over(**down).label("cum_pos"),
                 func.sum(grouped.c.n).over(partition_by=part or None).label("total")
                 ).subquery("cumulated")
    neg, cum_neg = cum.c.n - cum.c.pos, cum.c.cum_n - cum.c.cum_pos
    size = case((cum.c.total < k, cum.c.total), else_=k)  # min(k, the group's cases)
    flagged = cum.c.score >= threshold
    query = select(
        *(cum.c[name] for name in labels), func.sum(cum.c.n), func.sum(cum.c.pos),
        func.sum(case((flagged, cum.c.pos), else_=0)), func.sum(case((flagged, neg), else_=0)),
        func.sum(cum.c.pos * (2 * cum_neg - neg)),
        func.sum(cast(cum.c.pos, Float) * cast(cum.c.cum_pos, Float)
                 / cast(cum.c.cum_n, Float)),
        func.sum(case((cum.c.cum_n <= size, cast(cum.c.pos, Float)),
                      (cum.c.cum_n - cum.c.n < size,
                       cast(cum.c.pos, Float) * cast(size - (cum.c.cum_n - cum.c.n), Float)
                       / cast(cum.c.n, Float)), else_=0.0)),
    ).group_by(*(cum.c[name] for name in labels))
    frame = _frame(driver_rows(conn, query), [*(["key"] if keys else []), "n", "pos", "tp",
                                               "fp", "u_minus", "ap_sum", "tp_at_k"])
    ints = ["n", "pos", "tp", "fp", "u_minus"]  # the sums of no case (no keys) are NULL
    frame[ints] = frame[ints].fillna(0).astype(np.int64)
    frame[["ap_sum", "tp_at_k"]] = frame[["ap_sum", "tp_at_k"]].fillna(0.0).astype(float)
    return frame


def performance_counts(conn: Connection, cases: Table, column: str | None, threshold: float,
                       k: int) -> pd.DataFrame:
    """The window's labelled cases' figures (:func:`_ranked`) overall (``column`` None: one
    row) or per value of the input ``column`` (``key``, missing as None)."""
    keys = {} if column is None else {"key": cases.c[PREFIX + column]}
    return _ranked(conn, cases, keys, threshold, k)


def period_counts(conn: Connection, cases: Table, period: str, threshold: float, k: int
                  ) -> pd.DataFrame:
    """The window's labelled cases' figures (:func:`_ranked`) per calendar ``period`` of their
    event time (UTC): ``key`` is the period's first day in epoch days (``day``; ``week``,
    its Monday) or the number ``yyyymm`` (``month``)."""
    day = cases.c.event_us // _DAY_US
    if period == "day":
        key = day
    elif period == "week":
        key = day - (day + 3) % 7  # 1970-01-01 was a Thursday
    elif period == "month":  # as the number yyyymm
        seconds = day * 86_400
        text = (func.to_char(func.timezone("UTC", func.to_timestamp(seconds)), "YYYYMM")
                if conn.dialect.name.startswith("postgres")
                else func.strftime("%Y%m", seconds, "unixepoch"))
        key = cast(text, Integer)
    else:
        raise ValueError(f"period must be day, week or month, got {period!r}")
    return _ranked(conn, cases, {"key": key}, threshold, k)


def roc_curve_points(conn: Connection, cases: Table) -> pd.DataFrame:
    """The window's ROC curve as scikit-learn's ``roc_curve(drop_intermediate=True)`` draws
    it, thinned to :data:`ROC_POINTS` evenly spaced of its points (as
    :func:`rudikit.monitoring.performance.roc_of` stores it), computed by the database:
    ``fps``, ``tps`` and ``score`` of the chosen corners (the curve's points after the
    first, (0, 0)) plus ``neg`` and ``pos``, the window's negatives and positives. A corner
    is a distinct score (descending) where the cumulative counts change direction (a non-zero
    second difference), or the first or last.
    Of the ``m`` points (with (0, 0)), point ``j`` is kept when ``m <= 200`` or
    ``round(i * (m - 1) / 199) == j`` for an ``i`` in 0..199: no ``i * (m - 1) / 199`` is
    ever halfway (199 is prime), so the test is exact in integers."""
    grouped = select(cases.c.score.label("score"), func.sum(cases.c.outcome).label("pos"),
                     func.count().label("n")).group_by(cases.c.score).subquery("scored")
    down = {"order_by": grouped.c.score.desc(), "rows": (None, 0)}
    cum = select(grouped.c.score, func.sum(grouped.c.pos).over(**down).label("tps"),
                 (func.sum(grouped.c.n).over(**down) - func.sum(grouped.c.pos).over(**down))
                 .label("fps")).subquery("cumulated")
    order = {"order_by": cum.c.score.desc()}

    def bend(c: ColumnElement) -> ColumnElement:
        return func.lead(c).over(**order) - 2 * c + func.lag(c).over(**order)

    corners = select(cum.c.score, cum.c.tps, cum.c.fps,
                     func.lag(cum.c.score).over(**order).label("before"),
                     func.lead(cum.c.score).over(**order).label("after"),
                     bend(cum.c.fps).label("bend_f"), bend(cum.c.tps).label("bend_t")
                     ).subquery("corners")
    kept = select(corners.c.score, corners.c.tps, corners.c.fps,
                  func.row_number().over(order_by=corners.c.score.desc()).label("j"),
                  (func.count().over() + 1).label("m"),
                  func.max(corners.c.tps).over().label("pos"),
                  func.max(corners.c.fps).over().label("neg")).where(
        (corners.c.before.is_(None)) | (corners.c.after.is_(None)) | (corners.c.bend_f != 0)
        | (corners.c.bend_t != 0)).subquery("kept")
    last = ROC_POINTS - 1
    low, high, d = last * (2 * kept.c.j - 1), last * (2 * kept.c.j + 1), 2 * (kept.c.m - 1)
    query = select(kept.c.fps, kept.c.tps, kept.c.score, kept.c.neg, kept.c.pos).where(
        (kept.c.m <= ROC_POINTS) | ((low // d + 1) * d < high)).order_by(kept.c.j)
    frame = _frame(driver_rows(conn, query), ["fps", "tps", "score", "neg", "pos"])
    frame[["fps", "tps", "neg", "pos"]] = frame[["fps", "tps", "neg", "pos"]].astype(np.int64)
    return frame.astype({"score": float})


#: The columns of :func:`labelled_counts` beside the inputs', named so no input can share them.
OUTCOME, FLAGGED, SCORE, CASES = "__outcome__", "__flagged__", "__score__", "__cases__"


def labelled_counts(conn: Connection, cases: Table, columns: list[str],
                    threshold: float | None = None, scores: bool = False) -> pd.DataFrame:
    """The window's labelled cases counted per value of the inputs ``columns`` (named as the
    inputs, missing as None) and :data:`OUTCOME`, and per :data:`FLAGGED`
    (``score >= threshold``) with a ``threshold``, per :data:`SCORE` with ``scores``:
    :data:`CASES` cases each (the fairness counts; the map's outcomes per point)."""
    keys = [cases.c[PREFIX + c] for c in columns]
    names = [*columns, OUTCOME]
    keys.append(cases.c.outcome)
    if threshold is not None:
        keys.append(case((cases.c.score >= threshold, 1), else_=0))
        names.append(FLAGGED)
    if scores:
        keys.append(cases.c.score)
        names.append(SCORE)
    # labelled by position: an input may be named as any fixed label ("n", "outcome")
    labelled = [key.label(f"k{i}") for i, key in enumerate(keys)]
    query = select(*labelled, func.count().label("cases")).group_by(*keys)
    frame = _frame(driver_rows(conn, query), [*names, CASES])
    return frame.astype({CASES: np.int64, OUTCOME: np.int64})


#: The temporary table of a pass's labelled cases (:func:`labelled_cases`), one per connection.
LABELLED = "monitor_labelled_cases"


@contextmanager
def labelled_cases(conn: Connection, table: Table, columns: list[str], lo: int, hi: int
                   ) -> Iterator[Table]:
    """The window's cases with an outcome (:func:`labelled_window`), read once into a
    temporary table of ``conn`` for the block: ``event_us``, ``score``, ``outcome`` and the
    inputs ``columns``, named as in ``table``. A pass's figures are several aggregates of these
    cases (overall, per segment and period, the ROC curve, fairness, the map); each re-reading
    the window and looking up its outcomes took 0.8 s at 411k labelled cases on PostgreSQL.
    A temporary table is the session's own, so a pass still writes none of the store's
    tables. It is dropped after the block, and first if a failed block left it on the
    connection (on PostgreSQL its transaction's rollback drops it; SQLite creates a table
    outside the driver's transaction, so it outlives one)."""
    # in the session's own schema, so no table of the store's schema can be meant
    temp = "pg_temp" if conn.dialect.name.startswith("postgres") else "temp"
    cases = Table(LABELLED, MetaData(), Column("event_us", table.c.event_us.type),
                  Column("score", table.c.score.type),
                  Column("outcome", pt.outcomes.c.outcome.type),
                  *(Column(PREFIX + c, table.c[PREFIX + c].type) for c in columns), schema=temp)
    query = labelled_window(select(table.c.event_us, table.c.score, pt.outcomes.c.outcome,
                                   *(table.c[PREFIX + c] for c in columns)), table, lo, hi)
    conn.execute(DropTable(cases, if_exists=True))
    conn.execute(_CreateTemporary(cases, query))
    yield cases
    conn.execute(DropTable(cases))


class _CreateTemporary(Executable, ClauseElement):
    """``CREATE TEMPORARY TABLE ... AS query`` (SQLAlchemy 2.0 has no construct for it)."""

    inherit_cache = False

    def __init__(self, table: Table, query: Select) -> None:
        self.table, self.query = table, query


@compiles(_CreateTemporary)
def _create_temporary(create: _CreateTemporary, compiler: SQLCompiler, **kw: Any) -> str:
    name = compiler.preparer.format_table(create.table)
    return f"CREATE TEMPORARY TABLE {name} AS {compiler.process(create.query, **kw)}"


def labelled_window(query: Select, table: Table, lo: int, hi: int) -> Select:
    """``query`` over the window's cases with an outcome: the side table's window ``(lo, hi]``
    on ``event_us`` joined to ``outcomes`` by :class:`_LookupJoin`, which reads each window
    row's outcome by the outcomes' key, so a pass reads the window's outcomes whatever the size
    of the outcome history. A pass reads it once, into :func:`labelled_cases`."""
    out = pt.outcomes
    return (query.select_from(_LookupJoin(table, out, out.c.prediction_id == table.c.prediction_id))
            .where(table.c.event_us > lo, table.c.event_us <= hi))


class _LookupJoin(Join):
    """A join of a window to ``outcomes`` that reads each outcome by its key.

    SQLite joins that way (a loop over the window probing the outcomes' unique
    ``prediction_id``). PostgreSQL plans the plain join as a hash join over every outcome ever
    recorded, pricing the probes at ten times that, so its cost grows with the history
    (bench/labelled_window.py, 411k labelled cases: 0.36 s at 1.25M outcomes, 0.76 s at 5M,
    the probes 0.8 s at both). There the outcomes are a ``LATERAL`` subquery of the window
    row, named ``outcomes`` so the query's columns of that table read it; ``OFFSET 0`` keeps
    the planner from turning it back into the join."""

    inherit_cache = True


@compiles(_LookupJoin, "postgresql")
def _lookup_join(join: _LookupJoin, compiler: SQLCompiler, **kw: Any) -> str:
    out = pt.outcomes
    lookup = (select(out).where(out.c.prediction_id == join.left.c.prediction_id)
              .correlate(join.left).offset(literal_column("0")).lateral(out.name))
    return compiler.process(join.left.join(lookup, true()), **kw)


def coordinate_counts(conn: Connection, table: Table, latitude: str, longitude: str, lo: int,
                      hi: int) -> pd.DataFrame:
    """The window's cases with coordinates, counted per point (police coordinates are snapped
    to a few thousand map points): ``latitude``, ``longitude`` (named as the inputs), ``n``.
    Their outcomes come with the labelled cases, so the window is joined to the outcomes once."""
    keys = [table.c[PREFIX + latitude].label(latitude),
            table.c[PREFIX + longitude].label(longitude)]
    query = (select(*keys, func.count().label("n"))
             .where(table.c.event_us > lo, table.c.event_us <= hi, keys[0].is_not(None),
                    keys[1].is_not(None)).group_by(*keys))
    return _frame(driver_rows(conn, query), [latitude, longitude, "n"])


def _frame(rows: Sequence[Sequence[object]], columns: list[str]) -> pd.DataFrame:
    """The driver's rows (tuples) as a frame."""
    return pd.DataFrame.from_records(list(rows), columns=columns)
