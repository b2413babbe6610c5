"""predictions and production_predictions partitioned by month (PostgreSQL)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 09:00:00

On PostgreSQL each table is converted with its rows (renamed, a partitioned table created like
it, the rows copied, the old one dropped; the id sequence carries over): ``predictions`` by
``as_of_date``, ``production_predictions`` by ``created_at``, with a DEFAULT partition, one
partition per month holding rows and the coming months (:mod:`rudikit.store.partitions`).
The unique ``observation_id`` and the target of ``outcomes.prediction_id`` move to the
unpartitioned ``production_observation_ids``, filled by a trigger (a partitioned table's unique
keys must hold the partition key). SQLite is left as it is.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from rudikit.store.partitions import (
    OBSERVATION_IDS,
    PARTITION_KEYS,
    coming_months,
    create_default_partition,
    create_month_partitions,
)

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

OLD = "{}_unpartitioned"
# a partitioned table's indexes, created on the parent (each partition gets its own)
INDEXES = {
    "predictions": {"ix_predictions_model_rank": "model_id, rank_abs"},
    "production_predictions": {
        "ix_production_predictions_request_id": "request_id",
        "ix_production_predictions_model_created": "model_id, created_at",
        # the service's replay look-up, once the unique constraint's index is gone
        "ix_production_predictions_observation_id": "observation_id",
    },
}
ADDED_INDEX = "ix_production_predictions_observation_id"
# (name, definition) of each table's key. as_of_date is null for a case project's predictions,
# so it cannot be in a primary key; NULLS NOT DISTINCT keeps an undated id unique all the same
KEYS = {
    "predictions": ("predictions_id_as_of_date_key", "UNIQUE NULLS NOT DISTINCT (id, as_of_date)"),
    "production_predictions": ("production_predictions_pkey", "PRIMARY KEY (id, created_at)"),
}
FOREIGN_KEYS = {
    "predictions": {"model_id": "models"},
    "production_predictions": {"request_id": "requests", "deployment_id": "deployed_models",
                               "model_id": "models"},
}
# the unpartitioned tables' constraints whose index names the new tables take
OLD_CONSTRAINTS = {
    "predictions": ["predictions_pkey"],
    "production_predictions": ["production_predictions_pkey",
                               "uq_production_predictions_observation_id"],
}


def _execute(sql: str) -> sa.engine.CursorResult:
    return op.get_bind().execute(sa.text(sql))


def _outcomes_fk() -> str:
    """The name of outcomes' foreign key on prediction_id."""
    return _execute("SELECT conname FROM pg_constraint WHERE conrelid = 'outcomes'::regclass "
                    "AND contype = 'f' AND conkey = ARRAY[(SELECT attnum FROM pg_attribute "
                    "WHERE attrelid = 'outcomes'::regclass AND attname = 'prediction_id')]"
                    ).scalar_one()


def _constrain(table: str, indexes: dict[str, str]) -> None:
    for column, target in FOREIGN_KEYS[table].items():
        _execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_{column}_fkey FOREIGN KEY "
                 f"({column}) REFERENCES {target} (id)")
    for name, columns in indexes.items():
        _execute(f"CREATE INDEX {name} ON {table} ({columns})")


def _partition(table: str, key: str) -> str:
    """Replace ``table`` by a partitioned copy holding its rows (the old one is left, renamed,
    for the caller to drop); returns the id sequence's name."""
    old = OLD.format(table)
    sequence = _execute(f"SELECT pg_get_serial_sequence('{table}', 'id')").scalar_one()
    _execute(f"ALTER SEQUENCE {sequence} OWNED BY NONE")  # else dropped with the old table
    _execute(f"ALTER TABLE {table} RENAME TO {old}")
    for name in OLD_CONSTRAINTS[table]:
        _execute(f"ALTER TABLE {old} DROP CONSTRAINT {name}")
    for name in INDEXES[table]:
        _execute(f"DROP INDEX IF EXISTS {name}")
    _execute(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS) "
             f"PARTITION BY RANGE ({key})")
    create_default_partition(op.get_bind(), table)
    stored = _execute(f"SELECT DISTINCT date_trunc('month', {key} AT TIME ZONE 'UTC')::date "
                      f"FROM {old} WHERE {key} IS NOT NULL").scalars().all()
    create_month_partitions(op.get_bind(), table,
                            [*stored, *coming_months(datetime.now(UTC).date())])
    _execute(f"INSERT INTO {table} SELECT * FROM {old}")
    name, definition = KEYS[table]
    _execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    _constrain(table, INDEXES[table])
    return sequence


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    version = int(_execute("SHOW server_version_num").scalar_one())
    if version < 150000:
        raise RuntimeError(f"rudikit's PostgreSQL store needs PostgreSQL 15 or newer (this "
                           f"server is version {version // 10000}): migration 0013 "
                           "partitions the prediction tables with keys only 15 has")
    _execute("LOCK TABLE predictions, production_predictions, outcomes IN ACCESS EXCLUSIVE MODE")
    _execute(f"ALTER TABLE outcomes DROP CONSTRAINT {_outcomes_fk()}")
    sequences = {table: _partition(table, key) for table, key in PARTITION_KEYS.items()}
    _execute(f"CREATE TABLE {OBSERVATION_IDS} (id BIGINT PRIMARY KEY, observation_id "
             f"VARCHAR(200) NOT NULL CONSTRAINT uq_{OBSERVATION_IDS}_observation_id UNIQUE)")
    _execute(f"INSERT INTO {OBSERVATION_IDS} (id, observation_id) SELECT id, observation_id "
             f"FROM {OLD.format('production_predictions')}")
    # a statement-level trigger: a batch of predictions costs one insert of its ids
    _execute(f"""CREATE FUNCTION {OBSERVATION_IDS}_insert() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN INSERT INTO {OBSERVATION_IDS} (id, observation_id)
                SELECT id, observation_id FROM new_rows; RETURN NULL; END $$""")
    _execute(f"CREATE TRIGGER {OBSERVATION_IDS}_insert AFTER INSERT ON production_predictions "
             f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
             f"EXECUTE FUNCTION {OBSERVATION_IDS}_insert()")
    _execute(f"ALTER TABLE outcomes ADD CONSTRAINT outcomes_prediction_id_fkey FOREIGN KEY "
             f"(prediction_id) REFERENCES {OBSERVATION_IDS} (id)")
    for table, sequence in sequences.items():
        _execute(f"DROP TABLE {OLD.format(table)}")
        _execute(f"ALTER SEQUENCE {sequence} OWNED BY {table}.id")
    _execute(f"ANALYZE predictions, production_predictions, {OBSERVATION_IDS}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _execute(f"ALTER TABLE outcomes DROP CONSTRAINT {_outcomes_fk()}")
    _execute(f"DROP TRIGGER {OBSERVATION_IDS}_insert ON production_predictions")
    _execute(f"DROP FUNCTION {OBSERVATION_IDS}_insert()")
    _execute(f"DROP TABLE {OBSERVATION_IDS}")
    for table in PARTITION_KEYS:
        old = OLD.format(table)
        sequence = _execute(f"SELECT pg_get_serial_sequence('{table}', 'id')").scalar_one()
        _execute(f"ALTER SEQUENCE {sequence} OWNED BY NONE")
        _execute(f"ALTER TABLE {table} RENAME TO {old}")
        _execute(f"ALTER TABLE {old} DROP CONSTRAINT {KEYS[table][0]}")
        for name in INDEXES[table]:
            _execute(f"DROP INDEX {name}")
        _execute(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS)")
        _execute(f"INSERT INTO {table} SELECT * FROM {old}")
        _execute(f"DROP TABLE {old}")  # its partitions with it
        _execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (id)")
        _execute(f"ALTER SEQUENCE {sequence} OWNED BY {table}.id")
        _constrain(table, {k: v for k, v in INDEXES[table].items() if k != ADDED_INDEX})
    _execute("ALTER TABLE production_predictions ADD CONSTRAINT "
             "uq_production_predictions_observation_id UNIQUE (observation_id)")
    _execute("ALTER TABLE outcomes ADD CONSTRAINT outcomes_prediction_id_fkey FOREIGN KEY "
             "(prediction_id) REFERENCES production_predictions (id)")
