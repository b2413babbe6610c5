"""Connection handling and row shapes shared by the query modules."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
from sqlalchemy import Select
from sqlalchemy.engine import Connection, Engine, RowMapping

#: What a query function reads through: an open connection (inside the caller's transaction)
#: or an engine (a connection of its own).
Bind = Engine | Connection


@contextmanager
def connected(bind: Bind) -> Iterator[Connection]:
    """The caller's connection as is, or a fresh one from an engine, closed afterwards."""
    if isinstance(bind, Connection):
        yield bind
        return
    with bind.connect() as conn:
        yield conn


def mappings(bind: Bind, query: Any) -> Sequence[RowMapping]:
    """Every row of ``query`` as a mapping."""
    with connected(bind) as conn:
        return conn.execute(query).mappings().all()


def frame(bind: Bind, query: Any, *, keep_columns: bool = False) -> pd.DataFrame:
    """``query`` as a frame; ``keep_columns`` gives an empty result its columns too."""
    with connected(bind) as conn:
        result = conn.execute(query)
        rows = result.mappings().all()
        return pd.DataFrame(rows, columns=list(result.keys())) if keep_columns \
            else pd.DataFrame(rows)


def driver_rows(conn: Connection, query: Select) -> list[tuple[Any, ...]]:
    """Every row of ``query`` as the database driver returns them: for a million rows
    SQLAlchemy's result rows cost twice the query (for columns that need no conversion)."""
    return [row for part in _driver_parts(conn, query, None) for row in part]


def driver_chunks(conn: Connection, query: Select, chunk: int) -> Iterator[list[tuple[Any, ...]]]:
    """:func:`driver_rows` at most ``chunk`` rows at a time, so a caller turns each part into
    typed columns before the next is fetched."""
    return _driver_parts(conn, query, chunk)


def _driver_parts(conn: Connection, query: Select,
                  chunk: int | None) -> Iterator[list[tuple[Any, ...]]]:
    # SQLAlchemy executes (its parameter handling: IN lists, dates on SQLite...), the rows are
    # read from the driver's cursor as plain tuples
    result = conn.execute(query)
    cursor = result.cursor
    try:
        if chunk is None:
            yield cursor.fetchall()
            return
        while rows := cursor.fetchmany(chunk):
            yield rows
    finally:
        result.close()
