"""Benchmark: the join under the monitor's labelled-case queries (the window's cases with an
outcome, :func:`rudikit.store.queries.monitor_counts.labelled_window`) against the size of the
outcome history, on SQLite and PostgreSQL.

Set-up (not timed, kept between runs: the SQLite store under ``--workdir``, the PostgreSQL
one in the schema ``--schema``): a store with one deployed model whose typed inputs (a time
``when``, a number ``x``, a text ``seg``) are filled by the trigger from ``--rows`` production
predictions written in event-time order, as a service writes them, evenly over ``--days``
days; an outcome for every other one. The monitored window is the last 30 days, so
``--rows 10000000 --days 365`` and ``--rows 2500000 --days 91`` have the same window (822k
cases, 411k with an outcome) and histories of 5M and 1.25M outcomes.

Timed (best of ``--repeat``, interleaved, one connection each with
:func:`monitor_counts.read_windows` as a pass sets it):

* lookup: ``labelled_window`` as it is (each window row's outcome looked up by the outcomes'
  key);
* join: the same query with the join it had before (commit f6ee3f1: the window joined to
  ``outcomes``), which PostgreSQL plans as a hash join over every outcome;

each as the labelled cases fetched (segment, score, outcome: what the monitor read before its
figures became aggregates) and as counts per ``seg`` of the same join (an aggregate built on
``labelled_window``, as the monitor's are: the database's part alone).

With each, how the plan reads ``outcomes`` (PostgreSQL ``EXPLAIN``, SQLite ``EXPLAIN QUERY
PLAN``). Run (under ``flock /work/bench.lock``)::

    PYTHONPATH=src .venv/bin/python bench/labelled_window.py [--rows 10000000] [--days 365]
        [--repeat 3] [--workdir DIR] [--postgres postgresql://postgres@127.0.0.1:5432/test]
        [--schema rudi_bench_labelled]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Select, Table, func, select, text
from sqlalchemy.engine import Engine

from rudikit.store import partitions
from rudikit.store import production_tables as pt
from rudikit.store.engine import create_store_engine, open_store
from rudikit.store.production_inputs import PREFIX, InputSpec, ensure_inputs_table
from rudikit.store.queries import monitor_counts as mc

END = datetime(2020, 3, 1, tzinfo=UTC)
INPUTS = InputSpec((("seg", "text"), ("when", "time"), ("x", "number")), "when")
STEP = 1_000_000  # rows per statement and transaction


def _joined(query: Select, table: Table, lo: int, hi: int) -> Select:
    """``labelled_window`` as it was (commit f6ee3f1): the window joined to ``outcomes``."""
    out = pt.outcomes
    return (query.select_from(table.join(out, out.c.prediction_id == table.c.prediction_id))
            .where(table.c.event_us > lo, table.c.event_us <= hi))


def _batches(rows: int) -> Iterator[tuple[int, int]]:
    for begin in range(1, rows + 1, STEP):
        yield begin, min(rows, begin + STEP - 1)


_FILL_SQLITE = """
WITH RECURSIVE n(i) AS (SELECT :a UNION ALL SELECT i + 1 FROM n WHERE i < :b)
INSERT INTO production_predictions (id, observation_id, request_id, deployment_id, model_id,
    features, payload_hash, score, threshold, decision, created_at)
SELECT i, 'o' || i, 'r1', :deployment, :model, json_object('when', strftime(
       '%Y-%m-%dT%H:%M:%S+00:00', :end - (:rows - i) * :gap, 'unixepoch'), 'x', i % 13,
       'seg', 'seg' || (i % 5)), 'h', ((i * 48271) % 1000) / 1000.0, 0.5,
       ((i * 48271) % 1000) >= 500, strftime('%Y-%m-%d %H:%M:%S.000000',
       :end - (:rows - i) * :gap + 60, 'unixepoch') FROM n"""
_FILL_POSTGRES = """
INSERT INTO production_predictions (id, observation_id, request_id, deployment_id, model_id,
    features, payload_hash, score, threshold, decision, created_at)
SELECT i, 'o' || i, 'r1', :deployment, :model, json_build_object('when', to_char(
       to_timestamp(:end - (:rows - i) * :gap) AT TIME ZONE 'UTC',
       'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'), 'x', i % 13, 'seg', 'seg' || (i % 5)), 'h',
       ((i * 48271) % 1000) / 1000.0, 0.5, ((i * 48271) % 1000) >= 500,
       to_timestamp(:end - (:rows - i) * :gap + 60)
FROM generate_series(CAST(:a AS bigint), CAST(:b AS bigint)) AS i"""
_OUTCOMES = """
INSERT INTO outcomes (prediction_id, observation_id, outcome, token_id, recorded_at)
SELECT id, observation_id, CASE WHEN id % 3 = 0 THEN 1 ELSE 0 END, :token, created_at
FROM production_predictions WHERE id % 2 = 0 AND id BETWEEN :a AND :b"""


def _fill(engine: Engine, rows: int, days: int) -> dict[str, int]:
    """The store's rows (once per ``rows`` and ``days``): predictions in event-time order, an
    outcome for every other one."""
    postgres = engine.dialect.name.startswith("postgres")
    for table in partitions.PARTITION_KEYS:  # the history's months, as a live store has them
        partitions.ensure_months(engine, table, [
            date(y, m, 1) for y in range(END.year - days // 365 - 1, END.year + 1)
            for m in range(1, 13)])
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import deployed_parents  # the tests' set-up of a live deployment

    ids = deployed_parents(engine, END)
    with engine.begin() as conn:
        ensure_inputs_table(conn, ids["model"], INPUTS)
    ids = {k: ids[k] for k in ("model", "token", "deployment")}
    gap = days * 86_400 / rows
    params = {"end": int(END.timestamp()), "rows": rows, "gap": gap, **ids}
    for a, b in _batches(rows):
        with engine.begin() as conn:
            conn.execute(text(_FILL_POSTGRES if postgres else _FILL_SQLITE),
                         {**params, "a": a, "b": b})
            conn.execute(text(_OUTCOMES), {**params, "a": a, "b": b})
        print(f"  set-up: {b:,} of {rows:,} predictions written", flush=True)
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    return ids


def _store(args: argparse.Namespace) -> tuple[Engine, dict[str, int]]:
    """The store for ``args``, filled unless it already holds their rows: what it holds is
    recorded with it (a file beside the SQLite store, the PostgreSQL schema's comment)."""
    wanted = {"rows": args.rows, "days": args.days}
    if args.postgres:
        server = create_store_engine(args.postgres)  # no store of its own
        with server.begin() as conn:
            kept = json.loads(conn.execute(text(
                "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace "
                "WHERE nspname = :s"), {"s": args.schema}).scalar() or "{}")
            if kept.get("fill") != wanted:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {args.schema} CASCADE; "
                                  f"CREATE SCHEMA {args.schema}"))
        engine = open_store(args.postgres, schema=args.schema)
    else:
        db, marker = args.workdir / "rudi.db", args.workdir / "rudi.db.json"
        kept = json.loads(marker.read_text()) if marker.exists() else {}
        if kept.get("fill") != wanted:
            for suffix in ("", "-wal", "-shm", ".json"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
        engine = open_store(f"sqlite:///{db}")
    if kept.get("fill") == wanted:
        return engine, kept["ids"]
    ids = _fill(engine, args.rows, args.days)
    record = json.dumps({"fill": wanted, "ids": ids})
    if args.postgres:
        with server.begin() as conn:
            conn.execute(text(f"COMMENT ON SCHEMA {args.schema} IS '{record}'"))
        server.dispose()
    else:
        marker.write_text(record)
    return engine, ids


def _outcome_reads(engine: Engine, table: Table, lo: int, hi: int) -> str:
    """How the plan of the labelled cases reads ``outcomes``."""
    query = mc.labelled_window(select(table.c.score, pt.outcomes.c.outcome), table, lo, hi)
    with engine.connect() as conn:
        mc.read_windows(conn)
        compiled = query.compile(conn)
        sql, params = str(compiled), compiled.params
        if compiled.positiontup:
            params = tuple(params[k] for k in compiled.positiontup)
        if conn.dialect.name.startswith("postgres"):
            plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}", params).scalar_one()

            def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
                yield node
                for child in node.get("Plans", []):
                    yield from nodes(child)
            return ", ".join(f"{n['Node Type']} {n.get('Index Name', '')}".strip()
                             for n in nodes(plan[0]["Plan"])
                             if n.get("Relation Name") == "outcomes")
        return ", ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}",
                                                                 params)
                         if "outcomes" in row[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3, help="0: the set-up only (which "
                        "needs no lock)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rudi-bench-labelled"))
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL database: the store "
                        "in its schema --schema (else SQLite in the workdir)")
    parser.add_argument("--schema", default="rudi_bench_labelled")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    engine, ids = _store(args)
    with engine.connect() as conn:
        table = ensure_inputs_table(conn, ids["model"], INPUTS)
        outcomes = conn.execute(select(pt.outcomes.c.id).order_by(pt.outcomes.c.id.desc())
                                .limit(1)).scalar_one()
    hi = mc.epoch_us(END)
    lo = mc.epoch_us(END - timedelta(days=30))
    print(f"set-up {time.perf_counter() - started:.0f} s; {engine.dialect.name}: "
          f"{args.rows:,} predictions over {args.days} days, {outcomes:,} outcomes")
    if not args.repeat:
        return
    body = mc.labelled_window
    runs: dict[str, list[tuple[float, float, int]]] = {"lookup": [], "join": []}
    plans = {}
    for _ in range(args.repeat):
        for name, window in (("lookup", body), ("join", _joined)):
            mc.labelled_window = window  # _outcome_reads' queries build on this one
            plans[name] = _outcome_reads(engine, table, lo, hi)
            load = os.getloadavg()[0]
            begin = time.perf_counter()
            with engine.connect() as conn:
                mc.read_windows(conn)
                n = len(conn.execute(window(select(
                    table.c[PREFIX + "seg"], table.c.score, pt.outcomes.c.outcome),
                    table, lo, hi)).all())
            fetched = time.perf_counter() - begin
            with engine.connect() as conn:  # the same window counted in the database
                mc.read_windows(conn)
                conn.execute(mc.labelled_window(select(
                    table.c[PREFIX + "seg"], func.count(), func.sum(pt.outcomes.c.outcome))
                    .group_by(table.c[PREFIX + "seg"]), table, lo, hi)).all()
            runs[name].append((fetched, time.perf_counter() - begin - fetched, n))
            print(f"  {name}: {fetched:.2f} s, {n:,} rows; counted {runs[name][-1][1]:.2f} s "
                  f"(load {load:.1f})", flush=True)
    mc.labelled_window = body
    for name, times in runs.items():
        print(f"{name:6}: best of {args.repeat} {min(t[0] for t in times):5.2f} s for "
              f"{times[0][2]:,} labelled cases fetched, {min(t[1] for t in times):5.2f} s "
              f"counted per seg; outcomes read by: {plans[name]}")
    engine.dispose()


if __name__ == "__main__":
    main()
