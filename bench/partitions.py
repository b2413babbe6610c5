"""Benchmark: PostgreSQL stores with monthly partitions (migration 0013) against the same store
unpartitioned (migrated to 0012 only), in one run.

Set-up (timed once each, not interleaved): two schemas on the server, each given the same
``--rows`` production predictions spread evenly over ``--days`` days (a time input 3 hours
before scoring in each), written by one INSERT ... SELECT from generate_series.

Timed, interleaved and repeated (``--repeat``; the best and the median printed):

* window (timed): the monitor's read of a 30-day window by the cases' time input
  (:func:`rudikit.monitoring.production.read_predictions` with ``time_field``);
* window (scored): the same by when the cases were scored;
* window (timed, no bound): the timed window's queries as they were before the created_at
  bound (``prediction_id_range`` and ``prediction_chunk``): what either store costs without it;
* dashboard: the dashboard's production traffic per day over its last 60 days
  (:func:`rudikit.store.queries.production.daily_traffic`);
* inserts: ``--batches`` groups of 50 predictions written by the service's PostgreSQL writer
  (:class:`rudikit.service.writer.postgres.PostgresBackend`, one request per group).

Run: ``.venv/bin/python bench/partitions.py [--rows 1000000] [--repeat 5]`` with
``RUDI_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``); the schemas are
dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Engine

from rudikit.monitoring.production import read_predictions
from rudikit.service.writer.backend import make_backend
from rudikit.store.engine import MIGRATIONS, create_store_engine, open_store
from rudikit.store.partitions import ensure_months
from rudikit.store.queries.production import (
    CaseWindow,
    daily_traffic,
    prediction_chunk,
    prediction_id_range,
)

END = datetime.now(UTC).replace(microsecond=0)


def _store(url: str, schema: str, partitioned: bool, days: int) -> Engine:
    """A store with monthly partitions over the ``days`` before :data:`END` (as stores opened
    over those months would have), or one migrated to 0012 only."""
    if partitioned:
        engine = open_store(url, schema=schema)
        ensure_months(engine, "production_predictions",
                      [END - timedelta(days=d) for d in range(days + 1)])
        return engine
    engine = create_store_engine(url, schema=schema)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0012")
    return engine


def _fill(engine: Engine, rows: int, days: int) -> dict[str, int]:
    """The parent rows and ``rows`` predictions over ``days`` days up to :data:`END`."""
    with engine.begin() as conn:
        run = conn.execute(text(
            "INSERT INTO runs (project, config_hash, config, code_version, library_versions, "
            "seed, data_origin, status, started_at) VALUES ('b', 'h', '{}', 'v', '{}', 0, "
            "'synthetic', 'finished', now()) RETURNING id")).scalar_one()
        group = conn.execute(text(
            "INSERT INTO model_groups (group_key, project, algorithm, hyperparameters, "
            "features, label, created_at) VALUES ('k', 'b', 'lr', '{}', '{}', 'y', now()) "
            "RETURNING id")).scalar_one()
        model = conn.execute(text(
            "INSERT INTO models (run_id, model_group_id, split, train_rows, test_rows, "
            "artefact_hash, artefact_path, train_seconds, selected, created_at) VALUES "
            "(:run, :group, 's', 1, 1, 'h', 'x', 0, false, now()) RETURNING id"),
            {"run": run, "group": group}).scalar_one()
        token = conn.execute(text(
            "INSERT INTO api_tokens (name, role, token_hash, created_by, created_at) VALUES "
            "('t', 'predict', 'h', 'me', now()) RETURNING id")).scalar_one()
        deployment = conn.execute(text(
            "INSERT INTO deployed_models (model_group_id, model_id, threshold, deployed_by, "
            "reason, deployed_at, live) VALUES (:group, :model, 0.5, 'me', 'r', now(), true) "
            "RETURNING id"), {"group": group, "model": model}).scalar_one()
        conn.execute(text(
            "INSERT INTO requests (id, endpoint, token_id, deployment_id, model_id, "
            "n_observations, n_new, latency_ms, received_at) VALUES ('r0', '/predict', "
            ":token, :deployment, :model, 1, 1, 1, now())"),
            {"token": token, "deployment": deployment, "model": model})
        conn.execute(text(
            "INSERT INTO production_predictions (observation_id, request_id, deployment_id, "
            "model_id, features, payload_hash, score, threshold, decision, created_at) "
            "SELECT 'o' || i, 'r0', :deployment, :model, json_build_object('when', "
            "to_char(t - interval '3 hours', 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), 'station', "
            "'s' || (i % 40), 'age', 18 + i % 60), 'h', (i % 997) / 997.0, 0.5, "
            "(i % 997) >= 498, t FROM (SELECT i, CAST(:end AS timestamptz) - (i * "
            ":days / CAST(:rows AS float)) * interval '1 day' AS t "
            "FROM generate_series(1, :rows) i) s"),
            {"deployment": deployment, "model": model, "end": END, "days": days,
             "rows": rows})
        conn.execute(text("ANALYZE production_predictions"))
    return {"model": model, "token": token, "deployment": deployment}


def _window(engine: Engine, ids: dict[str, int], time_field: str | None) -> int:
    return sum(chunk.num_rows for chunk in read_predictions(
        engine, [ids["model"]], time_field=time_field, start=END - timedelta(days=30),
        end=END))


class _Unbounded(CaseWindow):
    """A timed window without the lower bound on created_at (the query before partitions)."""

    def sql(self, dialect: str) -> str:
        return super().sql(dialect).replace(" AND p.created_at >= :lo", "")


def _unbounded(engine: Engine, ids: dict[str, int]) -> int:
    window = _Unbounded("when", END - timedelta(days=30), END)
    lo, hi = prediction_id_range(engine, [ids["model"]], window)
    with engine.connect() as conn:
        return sum(len((prediction_chunk(conn, [ids["model"]], start, start + 500_000, window)
                        or "").splitlines()) for start in range(lo, hi, 500_000))


def _inserts(engine: Engine, schema: str, ids: dict[str, int], batches: int, tag: str
             ) -> None:
    """``batches`` groups of 50 predictions through the service's writer."""
    backend: Any = make_backend(engine, schema)

    async def write() -> None:
        await backend.open()
        try:
            for b in range(batches):
                now = datetime.now(UTC)
                request = f"{tag}{b:08d}"[:32]
                await backend.begin(transaction=False)
                await backend.finish(
                    [{"id": request, "endpoint": "/predict", "token_id": ids["token"],
                      "deployment_id": ids["deployment"], "model_id": ids["model"],
                      "n_observations": 50, "n_new": 50, "latency_ms": 1.0,
                      "received_at": now.isoformat()}],
                    [{"observation_id": f"{request}-{k}", "request_id": request,
                      "deployment_id": ids["deployment"], "model_id": ids["model"],
                      "features": {"when": now.isoformat(), "station": "s1", "age": 30},
                      "payload_hash": "h", "ignored_fields": None, "score": 0.3,
                      "threshold": 0.5, "decision": False, "created_at": now.isoformat()}
                     for k in range(50)])
        finally:
            await backend.close()

    asyncio.run(write())


def _timed(function: Callable[[], Any]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=730, help="days the rows are spread over")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs of each")
    parser.add_argument("--batches", type=int, default=200, help="groups of 50 per insert run")
    args = parser.parse_args()
    url = os.environ.get("RUDI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    suffix = uuid.uuid4().hex[:8]
    kinds = {"partitioned": True, "unpartitioned": False}
    schemas = {kind: f"rudi_bench_{kind}_{suffix}" for kind in kinds}
    engines: dict[str, Engine] = {}
    ids: dict[str, dict[str, int]] = {}
    try:
        for kind, partitioned in kinds.items():
            engines[kind] = _store(url, schemas[kind], partitioned, args.days)
            seconds = _timed(lambda k=kind: ids.__setitem__(k, _fill(engines[k], args.rows,
                                                                    args.days)))
            print(f"fill {kind}: {args.rows:,} rows in {seconds:.1f} s", flush=True)
        checks = {kind: (_window(e, ids[kind], "when"), _window(e, ids[kind], None))
                  for kind, e in engines.items()}
        assert len(set(checks.values())) == 1, f"the stores disagree: {checks}"
        print(f"window rows (timed, scored): {checks['partitioned']}")
        tasks: dict[str, Callable[[str], Any]] = {
            "window (timed)": lambda k: _window(engines[k], ids[k], "when"),
            "window (scored)": lambda k: _window(engines[k], ids[k], None),
            "window (timed, no bound)": lambda k: _unbounded(engines[k], ids[k]),
            "dashboard": lambda k: daily_traffic(engines[k], END - timedelta(days=60)),
            "inserts": lambda k: _inserts(engines[k], schemas[k], ids[k], args.batches,
                                          f"{k[0]}{uuid.uuid4().hex[:8]}"),
        }
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeat):  # interleaved, so a busy spell hits both kinds alike
            for task, run in tasks.items():
                for kind in kinds:
                    times.setdefault((task, kind), []).append(_timed(lambda r=run, k=kind: r(k)))
        print(f"{args.rows:,} rows over {args.days} days; best (median) of {args.repeat} "
              "interleaved runs; ratio = unpartitioned / partitioned (>1: partitioned faster)")
        for task in tasks:
            part, flat = times[(task, "partitioned")], times[(task, "unpartitioned")]
            print(f"{task:24} partitioned {min(part):8.3f} s ({statistics.median(part):.3f})"
                  f"  unpartitioned {min(flat):8.3f} s ({statistics.median(flat):.3f})"
                  f"  ratio {min(flat) / min(part):5.2f}x "
                  f"(median {statistics.median(flat) / statistics.median(part):.2f}x)")
    finally:
        for kind, engine in engines.items():
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schemas[kind]}" CASCADE'))
            engine.dispose()


if __name__ == "__main__":
    main()
