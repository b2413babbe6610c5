"""Monthly partitions on PostgreSQL (migration 0013, ``rudikit.store.partitions``): an existing
store is converted with its rows and keys, months are created before their rows arrive, and
every window query of the monitor and the dashboard reads only the window's months (checked
by ``EXPLAIN``; the queries to check are listed once, in :data:`WINDOW_QUERIES`), and the
monitor's window queries of a model's typed inputs (``production_inputs_model_<id>``, not
partitioned) read the window by the side table's key, not the whole table, and its outcomes by
the outcomes' key, one window row at a time, not the whole outcome history."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from conftest import deployed_parents
from sqlalchemy import Table, event, insert, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from rudikit.monitoring.production import read_predictions
from rudikit.store import partitions, queries, results
from rudikit.store.engine import MIGRATIONS, create_store_engine, open_store
from rudikit.store.production_inputs import InputSpec, ensure_inputs_table, table_name
from rudikit.store.production_tables import outcomes
from rudikit.store.queries import monitor_counts as mc
from rudikit.store.queries import predictions as pq
from rudikit.store.queries import production as prq
from rudikit.store.queries.production import WINDOW_MARGIN, CaseWindow

ON_POSTGRES = pytest.mark.parametrize("store", ["postgres"], indirect=True)

MONTHS = [date(2025, m, 1) for m in range(1, 13)]  # the history: one year
END = datetime(2025, 12, 15, tzinfo=UTC)
START = END - timedelta(days=30)  # the 30-day window


def _migrate(engine: Engine, revision: str, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def _fill(engine: Engine, ids: dict[str, int], per_day: int = 4) -> None:
    """``per_day`` production predictions (with a time input a few hours before scoring) and
    test predictions per day of :data:`MONTHS`, plus undated (case) predictions."""
    params = {"lo": datetime(2025, 1, 1, tzinfo=UTC), "hi": datetime(2026, 1, 1, tzinfo=UTC),
              "n": per_day, **ids}
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO production_predictions (observation_id, request_id, deployment_id, "
            "model_id, features, payload_hash, score, threshold, decision, created_at) "
            "SELECT 'o' || d || '-' || k, 'r1', :deployment, :model, json_build_object("
            "'when', to_char(d - interval '3 hours', 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), 'x', k, "
            "'y', k % 3), "
            "'h', k / (:n + 1.0), 0.5, k / (:n + 1.0) >= 0.5, d FROM generate_series("
            "CAST(:lo AS timestamptz), CAST(:hi AS timestamptz) - interval '1 day', "
            "interval '1 day') d, generate_series(1, :n) k"), params)
        conn.execute(text(
            "INSERT INTO predictions (model_id, entity_id, as_of_date, score, label, rank_abs, "
            "rank_pct) SELECT :model, 'e' || k, d, k / (:n + 1.0), k % 2, k, k / (:n + 1.0) "
            "FROM generate_series(CAST(:lo AS timestamptz), CAST(:hi AS timestamptz) - "
            "interval '1 day', interval '1 day') d, generate_series(1, :n) k"), params)
        conn.execute(text(
            "INSERT INTO predictions (model_id, entity_id, score, label, rank_abs, rank_pct) "
            "SELECT :model, 'case' || k, 0.5, 1, k, 0.5 FROM generate_series(1, :n) k"), params)
        conn.execute(text("ANALYZE predictions, production_predictions"))


def _where(conn: Any, table: str) -> dict[str, int]:
    """Rows per partition of ``table``."""
    return {name: n for name, n in conn.execute(text(
        f"SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1"))}


@ON_POSTGRES
def test_an_existing_store_is_converted_with_its_rows_and_keys(store) -> None:
    url, schema = store
    engine = create_store_engine(url, schema=schema)
    _migrate(engine, "0012")
    ids = deployed_parents(engine, END)
    _fill(engine, ids, per_day=2)
    with engine.begin() as conn:
        before = {table: conn.execute(text(f"SELECT * FROM {table} ORDER BY id")).all()
                  for table in partitions.PARTITION_KEYS}
        first = conn.execute(text("SELECT min(id) FROM production_predictions")).scalar_one()
        conn.execute(insert(outcomes).values(prediction_id=first, observation_id="x",
                                             outcome=1, token_id=ids["token"],
                                             recorded_at=END))
    _migrate(engine, "head")
    with engine.begin() as conn:
        for table, rows in before.items():
            assert partitions.is_partitioned(conn, table)
            assert conn.execute(text(f"SELECT * FROM {table} ORDER BY id")).all() == rows
        placed = _where(conn, "production_predictions")
        assert placed == {partitions.partition_name("production_predictions", m):
                          2 * (date(2025 + m.month // 12, m.month % 12 + 1, 1) - m).days
                          for m in MONTHS}
        assert _where(conn, "predictions")["predictions_default"] == 2  # the undated ones
        # the id sequence carries on, and observation ids stay unique over all months
        newest = conn.execute(text("SELECT max(id) FROM production_predictions")).scalar_one()
        added = conn.execute(text(
            "INSERT INTO production_predictions (observation_id, request_id, deployment_id, "
            "model_id, features, payload_hash, score, threshold, decision, created_at) VALUES "
            "('new', 'r1', :deployment, :model, '{}', 'h', 0.1, 0.5, false, now()) "
            "RETURNING id"), ids).scalar_one()
        assert added > newest
    with pytest.raises(IntegrityError, match="production_observation_ids"), \
            engine.begin() as conn:  # an observation stored in January, again in December
        conn.execute(text(
            "INSERT INTO production_predictions (observation_id, request_id, deployment_id, "
            "model_id, features, payload_hash, score, threshold, decision, created_at) "
            "SELECT observation_id, request_id, deployment_id, model_id, features, "
            "payload_hash, score, threshold, decision, created_at + interval '11 months' "
            "FROM production_predictions WHERE id = :first"), {"first": first})
    with pytest.raises(IntegrityError, match="outcomes_prediction_id_fkey"), \
            engine.begin() as conn:
        conn.execute(insert(outcomes).values(prediction_id=10**9, observation_id="y",
                                             outcome=1, token_id=ids["token"],
                                             recorded_at=END))
    _migrate(engine, "0012", down=True)  # and back, rows and keys as they were
    with engine.begin() as conn:
        for table, rows in before.items():
            assert not partitions.is_partitioned(conn, table)
            assert conn.execute(text(f"SELECT * FROM {table} WHERE observation_id IS "
                                     "DISTINCT FROM 'new' ORDER BY id" if table ==
                                     "production_predictions" else
                                     f"SELECT * FROM {table} ORDER BY id")).all() == rows
    engine.dispose()


@ON_POSTGRES
def test_months_exist_before_rows_arrive_and_a_late_month_takes_its_rows_along(store) -> None:
    url, schema = store
    engine = open_store(url, schema=schema)
    this_month = partitions.month_of(datetime.now(UTC))
    with engine.connect() as conn:
        names = partitions.partitions(conn, "production_predictions")
    assert names == sorted(["production_predictions_default"] + [
        partitions.partition_name("production_predictions", m)
        for m in partitions.coming_months(this_month)])
    ids = deployed_parents(engine, END)
    _fill(engine, ids, per_day=1)  # 2025: no partitions yet, so all in DEFAULT
    with engine.connect() as conn:
        assert _where(conn, "production_predictions") == {
            "production_predictions_default": 365}
    partitions.ensure_months(engine, "production_predictions", [date(2025, 2, 10)])
    with engine.connect() as conn:
        assert _where(conn, "production_predictions") == {
            "production_predictions_default": 365 - 28, "production_predictions_p202502": 28}
        assert conn.execute(text("SELECT count(*) FROM production_predictions")).scalar() == 365
    # a run storing as-of dates gets their months first
    model = results.record_model(
        engine, results.FittedModel(1, 1, "s", 1, 2, (None, None), (None, None), "h", "x", 0.0),
        entity_ids=["a", "b"], as_of=[datetime(2031, 5, 1), datetime(2031, 6, 1)],
        score=[0.2, 0.9], label=[0, 1], metrics=[], importances=[])
    with engine.connect() as conn:
        assert {"predictions_p203105", "predictions_p203106"} <= set(_where(conn, "predictions"))
        assert conn.execute(text("SELECT count(*) FROM predictions WHERE model_id = :m"),
                            {"m": model}).scalar() == 2
    engine.dispose()


def _read_all(engine: Engine, ids: dict[str, int], time_field: str | None) -> None:
    for _ in read_predictions(engine, [ids["model"]], time_field=time_field, start=START,
                              end=END):
        pass


def _chunk(engine: Engine, ids: dict[str, int]) -> None:
    with engine.connect() as conn:
        prq.prediction_chunk(conn, [ids["model"]], 0, 10**9, CaseWindow(None, START, END))


#: The model's typed inputs (its side table) in :func:`_fill`'s rows, timed by ``when``.
INPUTS = InputSpec((("when", "time"), ("x", "number"), ("y", "number")), "when")
#: Drift buckets of a number and of a datetime part (one aggregate and one grouped query).
DRIFT = {"x": mc.Buckets("x", edges=(6.5, 12.5)),
         "when.hour": mc.Buckets("when", tuple(str(h) for h in range(24)), part="hour")}


def _counted(query: Callable[[Connection, Table, int, int], Any]
             ) -> Callable[[Engine, dict[str, int]], Any]:
    """``query`` of the model's typed inputs over the 30-day window, as a monitor pass runs it
    (``monitoring.monitor._count_window``: the table, then the window on one connection)."""
    def run(engine: Engine, ids: dict[str, int]) -> None:
        with engine.begin() as conn:
            table = ensure_inputs_table(conn, ids["model"], INPUTS)
        with engine.connect() as conn:
            mc.read_windows(conn)
            query(conn, table, mc.epoch_us(START), mc.epoch_us(END))
    return run


def _labelled_figures(conn: Connection, table: Table, lo: int, hi: int) -> None:
    """The window's labelled cases read once (the one statement of them that reads the typed
    inputs and the outcomes), then every aggregate of a pass over them."""
    with mc.labelled_cases(conn, table, ["x", "y"], lo, hi) as cases:
        for column in (None, "x"):
            mc.performance_counts(conn, cases, column, 0.5, 10)
        for period in ("week", "month"):
            mc.period_counts(conn, cases, period, 0.5, 10)
        mc.roc_curve_points(conn, cases)
        mc.labelled_counts(conn, cases, ["x", "y"], threshold=0.5)


#: The window queries of the monitor (``read_predictions`` runs ``prediction_id_range`` and
#: ``prediction_chunk``; a pass reads the model's typed inputs with those of
#: ``monitor_counts``), the service's lists and the dashboard, each run with the 30-day
#: window; ``True`` when the query bounds the window on both sides (else from below only:
#: later, empty months may be read). A new window query belongs here:
#: :func:`test_every_window_query_is_checked` finds those that are not.
WINDOW_QUERIES: dict[str, tuple[Callable[[Engine, dict[str, int]], Any], bool]] = {
    "read_predictions (scored)": (lambda e, ids: _read_all(e, ids, None), True),
    "read_predictions (timed)": (lambda e, ids: _read_all(e, ids, "when"), False),
    "prediction_id_range": (lambda e, ids: prq.prediction_id_range(
        e, [ids["model"]], CaseWindow("when", START, END)), False),
    "prediction_chunk": (lambda e, ids: _chunk(e, ids), True),
    "production_scores": (lambda e, ids: prq.production_scores(
        e, ids["deployment"], START, END), True),
    "daily_traffic": (lambda e, ids: prq.daily_traffic(e, START), False),
    "models_scoring": (lambda e, ids: pq.models_scoring(e, ids["group"], START, END), True),
    "entity_scores": (lambda e, ids: pq.entity_scores(e, ids["model"], START, END), True),
    "entity_labels": (lambda e, ids: pq.entity_labels(
        e, ids["model"], START, END, ["e1", "e2"]), True),
    "drift_counts": (_counted(lambda c, tb, lo, hi: mc.drift_counts(c, tb, DRIFT, lo, hi)), True),
    "window_scores": (_counted(mc.window_scores), True),
    "labelled_window": (_counted(lambda c, tb, lo, hi: c.execute(mc.labelled_window(
        select(tb.c.score), tb, lo, hi)).all()), True),
    "labelled_cases": (_counted(_labelled_figures), True),
    "coordinate_counts": (_counted(
        lambda c, tb, lo, hi: mc.coordinate_counts(c, tb, "x", "y", lo, hi)), True),
}
#: The window queries of the typed inputs that read the window's outcomes.
READ_OUTCOMES = {"labelled_window", "labelled_cases"}
#: Queries with a time argument that read more than a window, and why.
NOT_WINDOWED = {
    "case_day_scores": "a day of cases by their time input: scored any time after (service "
                       "lists; not bounded yet)",
    "group_lists": "every list of a model group up to a date (the monitor's list history)",
}


def _plans(engine: Engine, run: Callable[[Engine, dict[str, int]], Any],
           ids: dict[str, int]) -> list[dict[str, Any]]:
    """The ``EXPLAIN`` of every statement ``run`` sends that reads a partitioned table or the
    model's typed inputs, made on its connection right after it was sent, so the settings of
    its transaction (:func:`monitor_counts.read_windows`) plan it as they planned it."""
    names = [*partitions.PARTITION_KEYS, table_name(ids["model"])]
    plans: list[dict[str, Any]] = []

    def explain(conn, cursor, statement, parameters, context, many):  # type: ignore[no-untyped-def]
        if any(name in statement for name in names):
            with cursor.connection.cursor() as own:
                # the query a table is created as (it exists now: EXPLAIN of the CREATE fails)
                query = re.sub(r"^CREATE TEMPORARY TABLE \S+ AS ", "", statement)
                own.execute(f"EXPLAIN (FORMAT JSON) {query}", parameters)
                plans.append(own.fetchone()[0][0]["Plan"])

    event.listen(engine, "after_cursor_execute", explain)
    try:
        run(engine, ids)
    finally:
        event.remove(engine, "after_cursor_execute", explain)
    assert plans, "the query sent no statement to a partitioned table or the typed inputs"
    return plans


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


#: Predictions a day in :func:`year_of_rows`: a year of them makes the model's typed inputs a
#: table of ~80 pages (not in event-time order, so reading by the key is no cheaper than it
#: would be in production), which the planner reads whole (``Seq Scan``, estimated 2.5 times
#: dearer) for a 30-day window when no index serves the window.
PER_DAY = 24


@pytest.fixture
def year_of_rows(store) -> Iterator[tuple[Engine, dict[str, int]]]:
    """A year of :data:`PER_DAY` predictions a day (the model's typed inputs filled as a
    deployed model's are, by the trigger), an outcome for every other production case, and
    the planner's statistics of them all."""
    url, schema = store
    engine = open_store(url, schema=schema)
    for table in partitions.PARTITION_KEYS:
        partitions.ensure_months(engine, table, MONTHS)
    ids = deployed_parents(engine, END)
    with engine.begin() as conn:
        ensure_inputs_table(conn, ids["model"], INPUTS)
    _fill(engine, ids, per_day=PER_DAY)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO outcomes (prediction_id, observation_id, outcome, token_id, "
            "recorded_at) SELECT id, observation_id, (id % 3 = 0)::int, :token, created_at + "
            "interval '1 day' FROM production_predictions WHERE id % 2 = 0"), ids)
        conn.execute(text(f"ANALYZE outcomes, {table_name(ids['model'])}"))
    yield engine, ids
    engine.dispose()



@ON_POSTGRES
@pytest.mark.parametrize("name", list(WINDOW_QUERIES))
def test_a_window_query_reads_only_the_windows_months(year_of_rows, name: str) -> None:
    """Of a partitioned table, only the window's months are read; the model's typed inputs
    are read by their key, the window being the key's range (not every row, filtered), and
    the outcomes by theirs, one lookup per window row (not every outcome ever recorded, which
    a hash join of the window with the outcomes reads)."""
    engine, ids = year_of_rows
    run, bounded_above = WINDOW_QUERIES[name]
    first = partitions.month_of(START - WINDOW_MARGIN)
    last = partitions.month_of(END + WINDOW_MARGIN)
    inputs = table_name(ids["model"])
    for plan in _plans(engine, run, ids):
        nodes = list(_nodes(plan))
        read = {n["Relation Name"] for n in nodes
                if partitions.PARTITION_NAME.match(n.get("Relation Name", ""))}
        typed = [n for n in nodes if n.get("Relation Name") == inputs]
        if name in READ_OUTCOMES:
            reads = [n for n in nodes if n.get("Relation Name") == "outcomes"]
            assert reads and all(n["Node Type"] in ("Index Scan", "Index Only Scan")
                                 and n["Index Name"] == "uq_outcomes_prediction_id"
                                 and "prediction_id = " in n["Index Cond"] for n in reads), \
                f"{name} reads outcomes other than by their key per window row: {plan}"
        if typed:
            assert all(n["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")
                       for n in typed), f"{name} reads all of {inputs}: {plan}"
            keyed = [n for n in nodes if n.get("Index Name") == f"{inputs}_pkey"]
            assert keyed and all("event_us" in n.get("Index Cond", "") for n in keyed), \
                f"{name} does not read the window by {inputs}'s key: {plan}"
        if typed and not read:
            continue
        months = {date(int(r[-6:-2]), int(r[-2:]), 1) for r in read if not r.endswith("default")}
        assert months, f"{name} read no month: {read}"
        assert min(months) >= first, f"{name} read months before the window: {sorted(read)}"
        if bounded_above:
            assert max(months) <= last, f"{name} read months after the window: {sorted(read)}"
        assert first in months or last in months


@ON_POSTGRES
def test_a_pass_reads_its_labelled_window_once(year_of_rows) -> None:
    """Of the statements of a pass's figures of its labelled cases, only the one building
    them reads the model's typed inputs (and, with them, the outcomes)."""
    engine, ids = year_of_rows
    plans = _plans(engine, WINDOW_QUERIES["labelled_cases"][0], ids)
    assert len(plans) == 1, plans


def test_every_window_query_is_checked() -> None:
    """A store query module reading a partitioned table or the models' typed inputs has each
    of its queries taking a window or a time bound (the typed inputs' ``lo``/``hi`` event
    times too) in :data:`WINDOW_QUERIES`, or says in :data:`NOT_WINDOWED` why it reads more."""
    bounds = {"window", "start", "end", "since", "until", "day", "lo", "hi", "after", "before"}
    history = [*partitions.PARTITION_KEYS, "production_inputs"]
    checked = {name.split(" ")[0] for name in WINDOW_QUERIES} | set(NOT_WINDOWED)
    found_any: set[str] = set()
    for found in pkgutil.iter_modules(queries.__path__):
        module = importlib.import_module(f"{queries.__name__}.{found.name}")
        if not any(name in inspect.getsource(module) for name in history):
            continue
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ == module.__name__ and not name.startswith("_") and \
                    bounds & set(inspect.signature(function).parameters):
                assert name in checked, f"{module.__name__}.{name} is not in WINDOW_QUERIES"
                found_any.add(name)
    assert found_any >= {"prediction_chunk", "window_scores"}  # the check sees both kinds
