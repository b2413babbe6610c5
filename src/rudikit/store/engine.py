"""Opening the results store: SQLite in the project by default, PostgreSQL by URL.

The schema is created and upgraded by Alembic on open, so every store a user touches is at the
version the code expects.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from rudikit.store.partitions import ensure_partitions

MIGRATIONS = Path(__file__).parent / "migrations"
DATABASE_URL_ENV = "RUDI_DATABASE_URL"


def default_url(project_dir: str | Path) -> str:
    """``RUDI_DATABASE_URL`` if set, else ``<project>/.rudi/rudi.db``."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    path = Path(project_dir).resolve() / ".rudi" / "rudi.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def store_project_dir(engine: Engine) -> Path | None:
    """The project folder of a store at its default place (``<project>/.rudi/rudi.db``, the
    inverse of :func:`default_url`); None for any other store (PostgreSQL, another file)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = Path(url.database).resolve()
    return path.parent.parent if path.parent.name == ".rudi" else None


def normalise_url(url: str) -> str:
    """Plain ``postgresql://`` URLs use psycopg 3, the driver rudikit installs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def create_store_engine(url: str, schema: str | None = None) -> Engine:
    """An engine for the store. ``schema`` (PostgreSQL only) isolates a store inside one database,
    which the tests use to run in parallel on one server."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    connect_args = {"options": f"-csearch_path={schema}"} if schema else {}
    engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    if schema:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    return engine


def upgrade(engine: Engine) -> None:
    """Bring the store to the newest schema (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_store(url: str | None = None, project_dir: str | Path = ".",
               schema: str | None = None) -> Engine:
    """Open (creating or upgrading as needed) the results store."""
    engine = create_store_engine(url or default_url(project_dir), schema=schema)
    upgrade(engine)
    ensure_partitions(engine)  # the coming months exist before their rows arrive
    return engine
