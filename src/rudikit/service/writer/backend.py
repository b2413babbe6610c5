"""The writer's interface to a store driver, and the backend for a store.

The hot path talks to the drivers directly (sqlite3; asyncpg for PostgreSQL) rather than
through SQLAlchemy: per statement that is several times cheaper, and a writer thread was
measured to lose more to GIL hand-offs with the event loop than it saved.
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from rudikit.service.writer.postgres import PostgresBackend
from rudikit.service.writer.sqlite import SqliteBackend


def _driver_errors(asyncpg_name: str) -> tuple[type[Exception], ...]:
    errors: list[type[Exception]] = [sqlite3.IntegrityError]
    with contextlib.suppress(ImportError):
        import asyncpg

        errors.append(getattr(asyncpg.exceptions, asyncpg_name))
    return tuple(errors)


#: a unique key taken by a concurrent writer (another lane or worker): retried, not an error
CONCURRENT_WRITE_ERRORS = _driver_errors("IntegrityConstraintViolationError")
#: an observation_id (or request id) already stored: the optimistic insert gives way
DUPLICATE_KEY_ERRORS = _driver_errors("UniqueViolationError")


class WriterBackend(Protocol):
    """One connection of the writer (a lane). ``begin`` opens a group, ``finish`` inserts its
    requests and predictions and commits; ``reset`` rolls back whatever is open and
    ``discard`` undoes a failed statement. The look-ups run inside the open group."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def reset(self) -> None: ...

    async def discard(self) -> None: ...

    async def begin(self, transaction: bool = True) -> None: ...

    async def finish(self, requests: list[dict[str, Any]], predictions: list[dict[str, Any]]
                     ) -> None: ...

    async def by_observation(self, ids: list[str]) -> list[dict[str, Any]]: ...

    async def by_request(self, request_id: str) -> list[dict[str, Any]]: ...

    async def outcome_of(self, prediction_id: int) -> tuple[int, datetime] | None: ...

    async def insert_outcome(self, row: dict[str, Any]) -> None: ...


def make_backend(engine: Engine, schema: str | None = None, durable: bool = True
                 ) -> WriterBackend:
    """The hot-path driver for the store ``engine`` points at."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database or ":memory:"
        return SqliteBackend(str(Path(database).resolve()) if database != ":memory:"
                             else database, durable)
    if url.get_backend_name() == "postgresql":
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresBackend(dsn, schema)
    raise ValueError(f"the service supports SQLite and PostgreSQL stores, not {url.drivername}")
