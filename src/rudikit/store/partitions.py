"""Monthly partitions of the two tables that grow with use, on PostgreSQL.

``predictions`` is partitioned by ``as_of_date`` (a case project's undated predictions go to the
DEFAULT partition) and ``production_predictions`` by ``created_at``; migration 0013 converts
existing stores. A query bounded on the key reads only the months it names (plus DEFAULT), so a
monitor pass over a 30-day window costs the window, not the history. SQLite stores keep one
unpartitioned table each, with the same logical schema.

A row whose month has no partition lands in DEFAULT, still correct but read by every query;
so the months must exist before rows arrive: :func:`ensure_partitions` creates this month and
the next :data:`MONTHS_AHEAD` on every store open (every ``rudi`` command and the service's
start), and :func:`ensure_months` the months of the as-of dates a run is about to store. A
month created while DEFAULT holds rows of it takes those rows along.

PostgreSQL wants the partition key in every unique key of a partitioned table, so the
idempotency key ``observation_id`` (unique over all months) is kept unique by the unpartitioned
``production_observation_ids`` (``id``, ``observation_id``), filled by a trigger, which
``outcomes.prediction_id`` references.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

#: The partitioned tables and their partition keys.
PARTITION_KEYS = {"predictions": "as_of_date", "production_predictions": "created_at"}
#: How many months past the current one exist before their rows arrive.
MONTHS_AHEAD = 3
#: The unpartitioned table that keeps observation ids unique over all months.
OBSERVATION_IDS = "production_observation_ids"


def month_of(value: date | datetime) -> date:
    """The first day of ``value``'s month (UTC for aware times)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(UTC)
    return date(value.year, value.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def partition_name(table: str, month: date) -> str:
    """``predictions_p201401``: the table's partition of a month."""
    return f"{table}_p{month:%Y%m}"


def default_partition(table: str) -> str:
    return f"{table}_default"


def is_partitioned(conn: Connection, table: str) -> bool:
    """Whether ``table`` (in the connection's schema) is a partitioned PostgreSQL table."""
    if not conn.dialect.name.startswith("postgres"):
        return False
    return conn.execute(text("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(:t)"),
                        {"t": table}).scalar() is True


def partitions(conn: Connection, table: str) -> list[str]:
    """The names of ``table``'s partitions (DEFAULT included), sorted."""
    return sorted(conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:t)"), {"t": table}).scalars())


def _bound(month: date) -> str:
    return f"'{month.isoformat()} 00:00:00+00'"  # a UTC instant, whatever the session's zone


def create_default_partition(conn: Connection, table: str) -> None:
    conn.execute(text(f'CREATE TABLE IF NOT EXISTS "{default_partition(table)}" '
                      f'PARTITION OF "{table}" DEFAULT'))


def create_month_partitions(conn: Connection, table: str, months: Iterable[date]) -> list[str]:
    """Create the partitions of ``months`` that ``table`` lacks (in the caller's transaction);
    rows of such a month already in DEFAULT move into it. Returns the names created."""
    key = PARTITION_KEYS[table]
    # one creator at a time (two `rudi` processes opening the store together)
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": f"rudi:{table}"})
    existing = set(partitions(conn, table))
    default = default_partition(table)
    created = []
    for month in sorted({month_of(m) for m in months}):
        name = partition_name(table, month)
        if name in existing:
            continue
        lo, hi = _bound(month), _bound(next_month(month))
        in_month = f'"{key}" >= {lo} AND "{key}" < {hi}'
        stranded = default in existing and conn.execute(text(
            f'SELECT EXISTS (SELECT 1 FROM "{default}" WHERE {in_month})')).scalar()
        if stranded:  # attaching over rows DEFAULT holds is refused: move them first
            conn.execute(text(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS)'))
            conn.execute(text(f'WITH moved AS (DELETE FROM "{default}" WHERE {in_month} '
                              f'RETURNING *) INSERT INTO "{name}" SELECT * FROM moved'))
            conn.execute(text(f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" '
                              f"FOR VALUES FROM ({lo}) TO ({hi})"))
        else:
            conn.execute(text(f'CREATE TABLE "{name}" PARTITION OF "{table}" '
                              f"FOR VALUES FROM ({lo}) TO ({hi})"))
        created.append(name)
    return created


def coming_months(today: date, ahead: int = MONTHS_AHEAD) -> list[date]:
    """This month and the ``ahead`` after it."""
    months = [month_of(today)]
    for _ in range(ahead):
        months.append(next_month(months[-1]))
    return months


def ensure_partitions(engine: Engine, today: date | None = None) -> None:
    """On a partitioned PostgreSQL store: this month's and the next months' partitions of every
    partitioned table, created where missing (a no-op on SQLite and when all exist)."""
    if engine.dialect.name != "postgresql":
        return
    months = coming_months(today or datetime.now(UTC).date())
    for table in PARTITION_KEYS:
        ensure_months(engine, table, months)


def ensure_months(engine: Engine, table: str, values: Iterable[date | datetime | None]) -> None:
    """The partitions of the months of ``values`` (None values aside), created where missing,
    in a short transaction of its own: creating a partition locks the table, so it is not
    left to a long writer's transaction."""
    if engine.dialect.name != "postgresql":
        return
    months = {month_of(v) for v in values if v is not None}
    if not months:
        return
    names = {partition_name(table, m) for m in months}
    with engine.connect() as conn:
        missing = is_partitioned(conn, table) and not names <= set(partitions(conn, table))
    if missing:
        with engine.begin() as conn:
            create_month_partitions(conn, table, months)


#: The name of a partition (``<table>_pYYYYMM`` or ``<table>_default``).
PARTITION_NAME = re.compile(rf"^({'|'.join(PARTITION_KEYS)})_(p\d{{6}}|default)$")


def include_object(obj: Any, name: str | None, type_: str, reflected: bool,
                   compare_to: Any) -> bool:
    """Alembic autogenerate's filter: the partitions and ``production_observation_ids`` are
    made by migration 0013 and :func:`create_month_partitions`, not declared in the metadata,
    so a comparison with the metadata leaves them (and their indexes) out."""
    table = obj if type_ == "table" else getattr(obj, "table", None)
    table_name = name if type_ == "table" else getattr(table, "name", None)
    return not (reflected and table_name is not None and (
        table_name == OBSERVATION_IDS or PARTITION_NAME.match(table_name)))
