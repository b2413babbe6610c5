"""Typed production inputs: one side table per deployed model, ``production_inputs_model_<id>``,
holding each production prediction's inputs as typed columns (text, float, epoch microseconds),
its score and its event time, so the monitor aggregates a window in the database instead of
parsing a JSON text per row in Python.

The JSON column of ``production_predictions`` stays (the service and the lists read it); the side
table is filled from it *by the database*, in the same transaction as each prediction write: a
row trigger on SQLite, a statement trigger with a transition table on PostgreSQL (which also
works on a parent partitioned by month). Every writer (the service's own PostgreSQL writer
included) is thereby covered without knowing about the side table.

``production_input_tables`` records each side table's inputs and time field; a table whose
record no longer matches what the monitor needs is rebuilt from the JSON rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.engine import Connection

from rudikit.store.tables import metadata

production_input_tables = Table(
    "production_input_tables",
    metadata,
    Column("model_id", ForeignKey("models.id"), primary_key=True, autoincrement=False),
    Column("table_name", String(63), nullable=False),
    Column("time_field", String(200)),  # the event time input (else when scored)
    Column("inputs", JSON, nullable=False),  # [[name, kind], ...], kind: text, number, time
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: Input kinds and the column type each is stored as.
KINDS = {"text": Text, "number": Float(53), "time": BigInteger}
#: Prefix of an input's column, so no input name can clash with the fixed columns.
PREFIX = "in."


@dataclass(frozen=True)
class InputSpec:
    """What a model's side table holds: ``(name, kind)`` per input and the event-time field."""

    inputs: tuple[tuple[str, str], ...]
    time_field: str | None

    @classmethod
    def of(cls, features: dict[str, Any], time_field: str | None,
           extra_text: list[str] = ()) -> InputSpec:
        """From a model group's features (``categorical``, ``boolean``, ``numeric``, the
        ``group_size`` count, ``datetime``), the project's time field and text columns the
        monitor groups by (segments, fairness columns)."""
        kinds: dict[str, str] = {}
        for name in [*features.get("categorical", []), *features.get("boolean", []),
                     *features.get("protected", []), *extra_text]:
            kinds.setdefault(name, "text")
        location = features.get("location") or {}
        counted = (features.get("group_size") or {}).get("column")  # a numeric input too
        for name in [*features.get("numeric", []), counted, location.get("latitude"),
                     location.get("longitude")]:
            if name:
                kinds[name] = "number"  # the coordinates feed the monitor's map too
        stamp = (features.get("datetime") or {}).get("column")
        for name in (stamp, time_field):
            if name:
                kinds[name] = "time"
        return cls(tuple(sorted(kinds.items())), time_field)

    def kind(self, name: str) -> str | None:
        return dict(self.inputs).get(name)


def table_name(model_id: int) -> str:
    return f"production_inputs_model_{int(model_id)}"


def side_table(model_id: int, spec: InputSpec) -> Table:
    """The side table of ``model_id`` (its own MetaData: not part of the store's schema)."""
    name = table_name(model_id)
    # keyed (on SQLite: stored) in event-time order, so a window is one range of the key
    return Table(name, MetaData(),
                 Column("event_us", BigInteger, primary_key=True, autoincrement=False),
                 Column("prediction_id", BigInteger, primary_key=True, autoincrement=False),
                 Column("score", Float(53), nullable=False),
                 *(Column(PREFIX + n, KINDS[k]) for n, k in spec.inputs),
                 sqlite_with_rowid=False)


# --- Typed values from the JSON text, as SQL over a row alias --------------------------------


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sqlite_value(row: str, name: str, kind: str) -> str:
    path = _lit('$."' + name.replace('"', '\\"') + '"')
    value, typ = f"json_extract({row}.features, {path})", f"json_type({row}.features, {path})"
    if kind == "text":  # booleans as the service writes them
        return (f"CASE {typ} WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
                f"ELSE CAST({value} AS TEXT) END")
    if kind == "number":  # numbers, booleans as 1/0, numeric text; anything else is missing
        return (f"CASE {typ} WHEN 'integer' THEN CAST({value} AS REAL) WHEN 'real' THEN {value} "
                f"WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 WHEN 'text' THEN CASE WHEN "
                f"trim({value}) GLOB '*[0-9]*' AND trim({value}) NOT GLOB '*[^0-9eE.+-]*' "
                f"THEN CAST(trim({value}) AS REAL) END END")
    # time: ISO 8601 text (zone offsets honoured), to the millisecond as SQLite keeps it
    return (f"CASE {typ} WHEN 'text' THEN CAST(round((julianday({value}) - 2440587.5) "
            "* 86400000.0) AS INTEGER) * 1000 END")


def _sqlite_created(row: str) -> str:
    """``created_at`` (``YYYY-MM-DD HH:MM:SS[.ffffff]`` UTC text) in exact microseconds."""
    return (f"CAST(round((julianday(substr({row}.created_at, 1, 19)) - 2440587.5) * 86400.0) "
            f"AS INTEGER) * 1000000 + CAST(substr({row}.created_at || '.000000', 21, 6) "
            "AS INTEGER)")


_PG_NUMBER = "'^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$'"
_PG_FUNCTIONS = """
CREATE OR REPLACE FUNCTION rudi_epoch_us(value text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE SET timezone TO 'UTC' AS $f$
BEGIN
    RETURN (extract(epoch FROM value::timestamptz) * 1000000)::bigint;
EXCEPTION WHEN others THEN
    RETURN NULL;  -- an unparseable time counts as missing, never loses the prediction
END $f$
"""


def _pg_value(row: str, name: str, kind: str) -> str:
    key = _lit(name)
    value, typ = f"({row}.features->>{key})", f"json_typeof({row}.features->{key})"
    if kind == "text":
        return value
    if kind == "number":
        return (f"CASE {typ} WHEN 'number' THEN {value}::float8 WHEN 'boolean' THEN CASE WHEN "
                f"{value}::boolean THEN 1.0 ELSE 0.0 END WHEN 'string' THEN CASE WHEN "
                f"trim({value}) ~ {_PG_NUMBER} THEN trim({value})::float8 END END")
    return (f"CASE WHEN {typ} = 'string' AND {value} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}' "
            f"THEN rudi_epoch_us({value}) END")


def _select_list(dialect: str, row: str, spec: InputSpec) -> str:
    postgres = dialect.startswith("postgres")
    value = _pg_value if postgres else _sqlite_value
    created = (f"(extract(epoch FROM {row}.created_at) * 1000000)::bigint" if postgres
               else _sqlite_created(row))
    event = created if spec.time_field is None else \
        f"coalesce({value(row, spec.time_field, 'time')}, {created})"
    return ", ".join([event, f"{row}.id", f"{row}.score",
                      *(value(row, n, k) for n, k in spec.inputs)])


def _column_list(conn: Connection, spec: InputSpec) -> str:
    quote = conn.dialect.identifier_preparer.quote
    return ", ".join(["event_us", "prediction_id", "score",
                      *(quote(PREFIX + n) for n, _ in spec.inputs)])


# --- Creating, filling and dropping ----------------------------------------------------------


def create_inputs_table(conn: Connection, model_id: int, spec: InputSpec) -> Table:
    """Create ``model_id``'s side table and its trigger, fill it from the stored JSON rows
    (in the caller's transaction) and record it; an older table of the model is replaced."""
    drop_inputs_table(conn, model_id)
    table = side_table(model_id, spec)
    table.create(conn)
    name, dialect = table_name(model_id), conn.dialect.name
    columns, model_id = _column_list(conn, spec), int(model_id)
    if dialect.startswith("postgres"):
        conn.exec_driver_sql(_PG_FUNCTIONS)
        conn.exec_driver_sql(
            f"CREATE FUNCTION {name}_fill() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN "
            f"INSERT INTO {name} ({columns}) SELECT {_select_list(dialect, 'r', spec)} "
            f"FROM new_rows r WHERE r.model_id = {model_id}; RETURN NULL; END $f$")
        conn.exec_driver_sql(
            f"CREATE TRIGGER {name}_fill AFTER INSERT ON production_predictions REFERENCING "
            f"NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {name}_fill()")
    else:
        conn.exec_driver_sql(
            f"CREATE TRIGGER {name}_fill AFTER INSERT ON production_predictions "
            f"WHEN NEW.model_id = {model_id} BEGIN INSERT INTO {name} ({columns}) "
            f"SELECT {_select_list(dialect, 'NEW', spec)}; END")
    conn.exec_driver_sql(f"INSERT INTO {name} ({columns}) SELECT "
                         f"{_select_list(dialect, 'p', spec)} FROM production_predictions p "
                         f"WHERE p.model_id = {model_id}")
    conn.execute(insert(production_input_tables).values(
        model_id=model_id, table_name=name, time_field=spec.time_field,
        inputs=[list(i) for i in spec.inputs], created_at=datetime.now(UTC)))
    return table


def drop_inputs_table(conn: Connection, model_id: int) -> None:
    """Drop ``model_id``'s side table, its trigger and its record (if any)."""
    name = table_name(model_id)
    if conn.dialect.name.startswith("postgres"):
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}_fill ON production_predictions")
        conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}_fill()")
    else:
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}_fill")
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    conn.execute(delete(production_input_tables)
                 .where(production_input_tables.c.model_id == int(model_id)))


def recorded_spec(conn: Connection, model_id: int) -> InputSpec | None:
    """The spec ``model_id``'s side table was built with, or None without one."""
    row = conn.execute(select(production_input_tables.c.inputs,
                              production_input_tables.c.time_field)
                       .where(production_input_tables.c.model_id == int(model_id))).first()
    return None if row is None else InputSpec(tuple((n, k) for n, k in row.inputs),
                                              row.time_field)


def ensure_inputs_table(conn: Connection, model_id: int, spec: InputSpec) -> Table:
    """``model_id``'s side table holding at least ``spec``'s inputs with its time field: the
    existing one when it does, else (re)built from the JSON rows."""
    have = recorded_spec(conn, model_id)
    if have is not None and have.time_field == spec.time_field \
            and set(spec.inputs) <= set(have.inputs):
        return side_table(model_id, have)
    if have is not None:  # keep what the older table held too
        merged = dict(have.inputs) | dict(spec.inputs)
        spec = InputSpec(tuple(sorted(merged.items())), spec.time_field)
    return create_inputs_table(conn, model_id, spec)


def spec_from_store(conn: Connection, model_id: int) -> InputSpec:
    """The spec of ``model_id`` as the store knows it: its group's features and, from its run's
    configuration, the time field and the monitor's segments and fairness columns."""
    from rudikit.store import tables as t

    row = conn.execute(select(t.model_groups.c.features, t.runs.c.config)
                       .join(t.models, t.models.c.model_group_id == t.model_groups.c.id)
                       .join(t.runs, t.runs.c.id == t.models.c.run_id)
                       .where(t.models.c.id == int(model_id))).one()
    config = row.config if isinstance(row.config, dict) else {}
    extra = [*(config.get("monitoring") or {}).get("segments", []),
             *(config.get("fairness") or {}).get("columns", [])]
    return InputSpec.of(row.features, (config.get("data") or {}).get("knowledge_date"),
                        [c for c in extra if isinstance(c, str)])

