"""Alembic environment: runs on the connection rudikit hands over (see ``store.engine.upgrade``),
or on ``sqlalchemy.url`` when Alembic is called from its own command line."""

from alembic import context
from sqlalchemy import engine_from_config, pool

import rudikit.store.list_tables  # noqa: F401
import rudikit.store.monitoring_tables  # noqa: F401
import rudikit.store.production_tables  # noqa: F401
from rudikit.store.partitions import include_object
from rudikit.store.tables import metadata

config = context.config
target_metadata = metadata


def run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite",
                      include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = engine_from_config(config.get_section(config.config_ini_section, {}),
                                prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        run(conn)
