"""The monitor's figures as aggregates of a model's typed production inputs
(:mod:`rudikit.store.production_inputs`), computed by the database over the window's rows, so a
pass reads counts of the window's rows rather than the rows: the drift bucket counts of every
input (one row back, and one short grouped query per datetime input for its parts) and the
cases grouped by coordinates and outcome for the map. What needs each case's score is read as
the window's columns, never as JSON: the window's scores (the KS test) and its labelled cases'
day, segment and fairness columns, score and outcome (realised performance, precision@k per
period, fairness).

The window is a half-open interval of event times in epoch microseconds, ``(lo, hi]``, on the
side table's indexed ``event_us``: the exact window, not a wider one filtered afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Select, Table, and_, case, func, literal_column, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
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
    it. No-op elsewhere."""
    if conn.dialect.name.startswith("postgres"):
        conn.exec_driver_sql("SET LOCAL random_page_cost = 1.1")


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


def labelled_cases(conn: Connection, table: Table, columns: list[str], lo: int, hi: int
                   ) -> pd.DataFrame:
    """The window's cases with an outcome (the realised performance per segment and period and
    the fairness counts are computed on these): ``day`` (event day, UTC, epoch days),
    ``columns`` (inputs), ``score`` and ``outcome``, in no order."""
    keys = [(table.c.event_us // _DAY_US).label("day"),
            *(table.c[PREFIX + c].label(c) for c in columns), table.c.score,
            pt.outcomes.c.outcome]
    return _frame(driver_rows(conn, labelled_window(select(*keys), table, lo, hi)),
                  ["day", *columns, "score", "outcome"])


def labelled_window(query: Select, table: Table, lo: int, hi: int) -> Select:
    """``query`` over the window's cases with an outcome: the side table's window ``(lo, hi]``
    on ``event_us`` joined to ``outcomes`` by :class:`_LookupJoin`, which reads each window
    row's outcome by the outcomes' key, so a pass reads the window's outcomes whatever the size
    of the outcome history. Every query over labelled cases is built on this one join."""
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
