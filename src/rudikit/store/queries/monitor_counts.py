"""The monitor's figures as aggregates of a model's typed production inputs
(:mod:`rudikit.store.production_inputs`), computed by the database over the window's rows, so a
pass reads counts, not rows: the drift bucket counts of every input (one row back), the window's
score distribution (score, count), and the labelled cases grouped by day, segment and fairness
columns, score and outcome (the confusion matrices, precision@k per period and fairness counts
are sums over these groups).

The window is a half-open interval of event times in epoch microseconds, ``(lo, hi]``, on the
side table's indexed ``event_us``: the exact window, not a wider one filtered afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import Table, and_, case, false, func, literal_column, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from rudikit.store import production_tables as pt
from rudikit.store.production_inputs import PREFIX

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


def _bucket_conditions(conn: Connection, table: Table, rule: Buckets) -> list[ColumnElement]:
    value = table.c.score if rule.source == "score" else table.c[PREFIX + rule.source]
    if rule.part:
        value = _part(conn, value, rule.part)
    if rule.categories is not None:
        cats: list[object | None] = list(rule.categories)
        if rule.part:  # parts are whole numbers; their categories are their text ("13")
            cats = [int(c) if c.lstrip("-").isdigit() else None for c in rule.categories]
        known = [c for c in cats if c is not None]
        conds = [false() if c is None else value == c for c in cats]
        return [*conds, and_(value.is_not(None), value.not_in(known)), value.is_(None)]
    edges = list(rule.edges)
    if not edges:
        return [value.is_not(None), value.is_(None)]
    conds = [value < edges[0]]
    conds += [and_(value >= a, value < b) for a, b in zip(edges, edges[1:], strict=False)]
    return [*conds, value >= edges[-1], value.is_(None)]


def drift_counts(conn: Connection, table: Table, rules: dict[str, Buckets], lo: int, hi: int
                 ) -> tuple[int, dict[str, list[int]]]:
    """The window's prediction count and, per feature, its count per bucket: one aggregate
    query, one row back."""
    window = and_(table.c.event_us > lo, table.c.event_us <= hi)
    conditions = {name: _bucket_conditions(conn, table, rule) for name, rule in rules.items()}
    sums = [func.sum(case((cond, 1), else_=0)) for conds in conditions.values()
            for cond in conds]
    row = conn.execute(select(func.count(), *sums).where(window)).one()
    n, values, out = int(row[0]), [int(v or 0) for v in row[1:]], {}
    for name, conds in conditions.items():
        out[name], values = values[:len(conds)], values[len(conds):]
    return n, out


def score_distribution(conn: Connection, table: Table, lo: int, hi: int) -> pd.DataFrame:
    """The window's distinct scores and how many predictions had each (``score``, ``n``)."""
    query = (select(table.c.score, func.count().label("n"))
             .where(table.c.event_us > lo, table.c.event_us <= hi).group_by(table.c.score))
    return _frame(conn.execute(query).all(), ["score", "n"])


def labelled_groups(conn: Connection, table: Table, columns: list[str], lo: int, hi: int
                    ) -> pd.DataFrame:
    """The window's cases with an outcome, grouped by event day (UTC, epoch days), ``columns``
    (inputs), score and outcome: ``day``, the columns, ``score``, ``outcome``, ``n``."""
    out = pt.outcomes
    day = (table.c.event_us // _DAY_US).label("day")
    keys = [day, *(table.c[PREFIX + c].label(c) for c in columns), table.c.score,
            out.c.outcome]
    query = (select(*keys, func.count().label("n"))
             .select_from(table.join(out, out.c.prediction_id == table.c.prediction_id))
             .where(table.c.event_us > lo, table.c.event_us <= hi).group_by(*keys))
    return _frame(conn.execute(query).all(), ["day", *columns, "score", "outcome", "n"])


def coordinate_groups(conn: Connection, table: Table, latitude: str, longitude: str, lo: int,
                      hi: int) -> pd.DataFrame:
    """The window's cases grouped by their coordinates and outcome (missing until known), for
    the monitor's map: ``latitude``, ``longitude`` (named as the inputs), ``outcome``, ``n``."""
    out = pt.outcomes
    keys = [table.c[PREFIX + latitude].label(latitude),
            table.c[PREFIX + longitude].label(longitude), out.c.outcome]
    query = (select(*keys, func.count().label("n"))
             .select_from(table.outerjoin(out, out.c.prediction_id == table.c.prediction_id))
             .where(table.c.event_us > lo, table.c.event_us <= hi).group_by(*keys))
    return _frame(conn.execute(query).all(), [latitude, longitude, "outcome", "n"])


def _frame(rows: Sequence[Sequence[object]], columns: list[str]) -> pd.DataFrame:
    """Rows as a frame built column by column: pandas builds one from SQLAlchemy rows cell by
    cell (seconds for a few hundred thousand groups, most of a pass at 3M predictions)."""
    values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    return pd.DataFrame({name: list(v) for name, v in zip(columns, values, strict=True)})
