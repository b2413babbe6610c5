"""Storing every answer before it is sent: group commits on the event loop.

Request handlers hand a job (a scored request, or an outcome) to :class:`StoreWriter` and wait.
A drain task writes every job queued at that moment in ONE transaction, commits, and only then
wakes the handlers, which answer. So nothing is answered that is not committed (a crash loses
nothing that was answered), while concurrent requests share one commit (one fsync) instead of
paying one each. Jobs that arrive during a commit form the next group.

The hot path talks to the drivers directly (sqlite3; asyncpg for PostgreSQL) rather than
through SQLAlchemy: per statement that is several times cheaper, and a writer thread was
measured to lose more to GIL hand-offs with the event loop than it saved. The values are
written in the formats SQLAlchemy reads back (the rest of rudikit reads these tables with
SQLAlchemy Core). SQLite runs in WAL mode with ``synchronous=NORMAL`` by default: a committed
transaction survives a crash of the server process (tested with SIGKILL). With
``synchronous=FULL`` every group commit is also fsynced (survives a power cut); that commit runs
in a helper thread so the loop keeps parsing and scoring meanwhile. Several worker processes on
one SQLite file take turns through a file lock; checkpoints run in a background thread.
PostgreSQL commits are durable as configured on the server (fsync by default).

Idempotency is decided inside the write: an ``observation_id`` already stored with the same
payload gets the stored answer back; with a different payload the request is a 409 and nothing
of it is stored. A unique key taken meanwhile by another writer (lane or worker) makes the
group retry, and the retry sees the stored row.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from rudikit.service.errors import ApiError
from rudikit.service.schemas import Observation
from rudikit.store.production_tables import production_predictions
from rudikit.store.queries.production import stored_prediction

log = logging.getLogger("rudikit.service")
P = production_predictions


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

ANSWER_FIELDS = ("id", "observation_id", "request_id", "model_id", "deployment_id", "score",
                 "decision", "threshold", "ignored_fields", "created_at", "payload_hash")
REQUEST_FIELDS = ("id", "endpoint", "token_id", "deployment_id", "model_id", "n_observations",
                  "n_new", "latency_ms", "received_at")
PREDICTION_FIELDS = ("observation_id", "request_id", "deployment_id", "model_id", "features",
                     "payload_hash", "ignored_fields", "score", "threshold", "decision",
                     "created_at")
OUTCOME_FIELDS = ("prediction_id", "observation_id", "outcome", "token_id", "recorded_at")


def utc(stamp: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def answer(row: dict[str, Any], replayed: bool, predicted_at: str | None = None
           ) -> dict[str, Any]:
    """A stored (or about to be stored) prediction as the API returns it."""
    return {
        "observation_id": row["observation_id"], "request_id": row["request_id"],
        "model_id": row["model_id"], "deployment_id": row["deployment_id"],
        "score": float(row["score"]), "decision": bool(row["decision"]),
        "threshold": float(row["threshold"]), "ignored_fields": row["ignored_fields"] or [],
        "replayed": replayed,
        "predicted_at": predicted_at or utc(row["created_at"]).isoformat(),
    }


# --- jobs and results ------------------------------------------------------------------------


@dataclass
class PredictJob:
    request_id: str
    token_id: int
    deployment_id: int
    model_id: int
    threshold: float
    received_at: datetime
    decided_at: datetime
    latency_ms: float
    observations: list[Observation]
    scores: list[float]
    single: bool


@dataclass
class PredictResult:
    predictions: list[dict[str, Any]]
    n_new: int


@dataclass
class OutcomeJob:
    observation_id: str | None
    request_id: str | None
    outcome: int
    token_id: int


@dataclass
class OutcomeResult:
    body: dict[str, Any]
    created: bool


class StoreUnavailable(ApiError):
    def __init__(self) -> None:
        super().__init__(503, "the results store is unavailable, so nothing was stored and no "
                              "answer is given; retry later")


# --- drivers ---------------------------------------------------------------------------------


class SqliteBackend:
    """sqlite3 in autocommit mode with explicit BEGIN IMMEDIATE / COMMIT."""

    def __init__(self, path: str, durable: bool):
        self.path = path
        self.durable = durable
        self.conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock_path = None if path == ":memory:" else path + ".writer-lock"
        self._lock_file: Any = None
        self._checkpointer: threading.Thread | None = None
        self._stop = threading.Event()

    async def open(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="rudi-sqlite-commit")
        if self.conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
            conn.execute("PRAGMA foreign_keys=ON")
            # checkpoints run in the background (see _checkpoints), not inside our commits,
            # where they were measured to triple the cost of a commit
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self.conn = conn
        if self._lock_path and self._lock_file is None:
            self._lock_file = open(self._lock_path, "a+b")  # noqa: SIM115 - held for life
        if self._checkpointer is None and self.path != ":memory:":
            self._stop.clear()
            self._checkpointer = threading.Thread(target=self._checkpoints, daemon=True,
                                                  name="rudi-sqlite-checkpoint")
            self._checkpointer.start()

    def _checkpoints(self, every: float = 1.0) -> None:
        """Copy the WAL back into the database once a second, on a connection of its own.
        PASSIVE never blocks the writer or readers; the WAL file is reused once copied."""
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            while not self._stop.wait(every):
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._stop.set()
            await asyncio.get_running_loop().run_in_executor(None, self._checkpointer.join)
            self._checkpointer = None
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def reset(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.execute("ROLLBACK")
            self._unlock()

    async def discard(self) -> None:
        """Undo the open transaction after a failed statement."""
        await self.reset()

    def _unlock(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)

    async def begin(self, transaction: bool = True) -> None:
        """Take the cross-process writer lock (waiting off the loop when another worker holds
        it), then SQLite's write lock."""
        await self.open()
        if self._lock_file is not None:
            fd = self._lock_file.fileno()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                await asyncio.get_running_loop().run_in_executor(
                    self._executor, fcntl.flock, fd, fcntl.LOCK_EX)
        assert self.conn is not None
        self.conn.execute("BEGIN IMMEDIATE")

    async def finish(self, requests: list[dict[str, Any]], predictions: list[dict[str, Any]]
                     ) -> None:
        """Insert the group's rows and commit."""
        if requests:
            self.insert_requests(requests)
        if predictions:
            self.insert_predictions(predictions)
        await self.commit()

    async def commit(self) -> None:
        assert self.conn is not None
        try:
            if self.durable:  # the fsync happens off the loop
                await asyncio.get_running_loop().run_in_executor(
                    self._executor, self.conn.execute, "COMMIT")
            else:
                self.conn.execute("COMMIT")
        finally:
            self._unlock()

    def _rows(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        assert self.conn is not None
        out = []
        for values in self.conn.execute(sql, params):
            row = dict(zip(ANSWER_FIELDS, values, strict=True))
            row["decision"] = bool(row["decision"])
            row["created_at"] = datetime.fromisoformat(row["created_at"]).replace(tzinfo=UTC)
            if row["ignored_fields"] is not None:
                row["ignored_fields"] = orjson.loads(row["ignored_fields"])
            out.append(row)
        return out

    async def by_observation(self, ids: list[str]) -> list[dict[str, Any]]:
        marks = ",".join("?" * len(ids))
        return self._rows(f"SELECT {', '.join(ANSWER_FIELDS)} FROM production_predictions "
                          f"WHERE observation_id IN ({marks})", ids)

    async def by_request(self, request_id: str) -> list[dict[str, Any]]:
        return self._rows(f"SELECT {', '.join(ANSWER_FIELDS)} FROM production_predictions "
                          "WHERE request_id = ? LIMIT 2", [request_id])

    async def outcome_of(self, prediction_id: int) -> tuple[int, datetime] | None:
        assert self.conn is not None
        found = self.conn.execute("SELECT outcome, recorded_at FROM outcomes WHERE "
                                  "prediction_id = ?", [prediction_id]).fetchone()
        return None if found is None else (found[0], datetime.fromisoformat(found[1]))

    _last_stamp: tuple[datetime | None, str] = (None, "")

    def _stamp(self, value: datetime) -> str:
        """SQLAlchemy's storage format for DateTime on SQLite (UTC wall time); the rows of one
        request share their time, so the last one is remembered."""
        if self._last_stamp[0] is not value:
            self._last_stamp = (value, f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}")
        return self._last_stamp[1]

    def insert_requests(self, rows: list[dict[str, Any]]) -> None:
        assert self.conn is not None
        self.conn.executemany(
            f"INSERT INTO requests ({', '.join(REQUEST_FIELDS)}) VALUES "
            f"({','.join('?' * len(REQUEST_FIELDS))})",
            [(r["id"], r["endpoint"], r["token_id"], r["deployment_id"], r["model_id"],
              r["n_observations"], r["n_new"], r["latency_ms"], self._stamp(r["received_at"]))
             for r in rows])

    #: rows per INSERT statement: one multi-row VALUES statement costs SQLite ~30% less per
    #: row than executemany's one statement per row (11 columns x 64 rows < 999 parameters)
    ROWS_PER_INSERT = 64

    def insert_predictions(self, rows: list[dict[str, Any]]) -> None:
        assert self.conn is not None
        dumps = orjson.dumps
        values = [(r["observation_id"], r["request_id"], r["deployment_id"], r["model_id"],
                   dumps(r["features"]).decode(), r["payload_hash"],
                   None if r["ignored_fields"] is None else dumps(r["ignored_fields"]).decode(),
                   r["score"], r["threshold"], 1 if r["decision"] else 0,
                   self._stamp(r["created_at"])) for r in rows]
        marks = "(" + ",".join("?" * len(PREDICTION_FIELDS)) + ")"
        head = f"INSERT INTO production_predictions ({', '.join(PREDICTION_FIELDS)}) VALUES "
        step = self.ROWS_PER_INSERT
        for start in range(0, len(values), step):
            chunk = values[start:start + step]
            self.conn.execute(head + ",".join([marks] * len(chunk)),
                              [value for row in chunk for value in row])

    async def insert_outcome(self, row: dict[str, Any]) -> None:
        assert self.conn is not None
        self.conn.execute(
            f"INSERT INTO outcomes ({', '.join(OUTCOME_FIELDS)}) VALUES (?,?,?,?,?)",
            (row["prediction_id"], row["observation_id"], row["outcome"], row["token_id"],
             self._stamp(row["recorded_at"])))


class PostgresBackend:
    """asyncpg: its protocol is compiled, so a round trip costs the event loop a few
    microseconds (psycopg's asyncio waiting cost ~20% of the loop's time here). A group of
    predictions (the usual case) is one round trip and no BEGIN/COMMIT: ONE statement, atomic on
    its own, inserting the requests and their predictions (a stored observation_id makes it fail
    whole; then a SELECT of the stored ids decides replays and conflicts, see
    ``StoreWriter._insert_optimistically``); each table's rows travel as one JSON parameter the
    server expands (~1 us a row to encode; binary arrays through unnest measured no faster). A
    group with outcomes runs in an explicit transaction."""

    ANSWERS = (f"SELECT {', '.join(ANSWER_FIELDS)} FROM production_predictions "
               "WHERE observation_id = ANY($1::text[])")
    BY_REQUEST = (f"SELECT {', '.join(ANSWER_FIELDS)} FROM production_predictions "
                  "WHERE request_id = $1 LIMIT 2")
    INSERT = (f"WITH r AS (INSERT INTO requests ({', '.join(REQUEST_FIELDS)}) SELECT "
              f"{', '.join(REQUEST_FIELDS)} FROM json_populate_recordset(NULL::requests, $1))"
              f" INSERT INTO production_predictions ({', '.join(PREDICTION_FIELDS)}) SELECT "
              f"{', '.join(PREDICTION_FIELDS)} FROM "
              "json_populate_recordset(NULL::production_predictions, $2)")

    def __init__(self, dsn: str, schema: str | None):
        self.dsn = dsn
        self.schema = schema
        self.conn: Any = None
        self.transaction: Any = None

    async def open(self) -> None:
        if self.conn is None or self.conn.is_closed():
            import asyncpg

            settings = {"search_path": self.schema} if self.schema else {}
            self.conn = await asyncpg.connect(self.dsn, server_settings=settings)

    async def close(self) -> None:
        self.transaction = None
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await self.conn.close(timeout=5)
            self.conn = None

    async def reset(self) -> None:
        await self.close()  # whatever was open is rolled back; reconnect for the next try

    async def discard(self) -> None:
        """After a failed statement outside a transaction: nothing is open, and the
        connection stays usable."""
        if self.transaction is not None:
            await self.reset()

    async def begin(self, transaction: bool = True) -> None:
        await self.open()
        self.transaction = None
        if transaction:
            self.transaction = self.conn.transaction()
            await self.transaction.start()

    async def finish(self, requests: list[dict[str, Any]], predictions: list[dict[str, Any]]
                     ) -> None:
        """Insert the group's rows and commit."""
        if requests or predictions:
            await self.conn.execute(self.INSERT, orjson.dumps(requests).decode(),
                                    orjson.dumps(predictions).decode())
        if self.transaction is not None:
            transaction, self.transaction = self.transaction, None
            await transaction.commit()

    async def analyze(self) -> None:
        """Refresh the planner's statistics of the production tables, on a connection of its
        own. Cached plans are made for the tables as they were: made on an empty store they
        scanned whole tables once these had grown (down to 20 requests/s); ANALYZE replaces
        them. Autovacuum does this too where it is on; here it is not left to chance."""
        import asyncpg

        settings = {"search_path": self.schema} if self.schema else {}
        conn = await asyncpg.connect(self.dsn, server_settings=settings)
        try:
            await conn.execute("ANALYZE requests, production_predictions, outcomes")
        finally:
            await conn.close(timeout=5)

    @staticmethod
    def _answer_rows(records: Sequence[Any]) -> list[dict[str, Any]]:
        out = []
        for record in records:
            row = dict(zip(ANSWER_FIELDS, record, strict=True))
            if row["ignored_fields"] is not None:
                row["ignored_fields"] = orjson.loads(row["ignored_fields"])
            out.append(row)
        return out

    async def by_observation(self, ids: list[str]) -> list[dict[str, Any]]:
        return self._answer_rows(await self.conn.fetch(self.ANSWERS, ids))

    async def by_request(self, request_id: str) -> list[dict[str, Any]]:
        return self._answer_rows(await self.conn.fetch(self.BY_REQUEST, request_id))

    async def outcome_of(self, prediction_id: int) -> tuple[int, datetime] | None:
        found = await self.conn.fetchrow("SELECT outcome, recorded_at FROM outcomes WHERE "
                                         "prediction_id = $1", prediction_id)
        return None if found is None else (found[0], found[1])

    async def insert_outcome(self, row: dict[str, Any]) -> None:
        await self.conn.execute(
            f"INSERT INTO outcomes ({', '.join(OUTCOME_FIELDS)}) VALUES ($1, $2, $3, $4, $5)",
            *(row[f] for f in OUTCOME_FIELDS))


def make_backend(engine: Engine, schema: str | None = None, durable: bool = True
                 ) -> SqliteBackend | PostgresBackend:
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


# --- the writer ------------------------------------------------------------------------------


class StoreWriter:
    """Group-committing writer (see the module docstring). Use from one event loop.

    SQLite has one writer at a time, so one lane. PostgreSQL gets ``lanes`` connections: while
    one group waits for its commit (the server's fsync), the next group is already being
    written on another connection, and the server flushes concurrent commits together."""

    def __init__(self, engine: Engine, *, schema: str | None = None, durable: bool = True,
                 max_jobs: int = 512, lanes: int = 3,
                 on_commit: Callable[[int, float], None] | None = None):
        first = make_backend(engine, schema, durable)
        count = lanes if isinstance(first, PostgresBackend) else 1
        self.backends = [first] + [make_backend(engine, schema, durable)
                                   for _ in range(count - 1)]
        self.max_jobs = max_jobs
        self.on_commit = on_commit
        self._pending: list[tuple[PredictJob | OutcomeJob, asyncio.Future[Any]]] = []
        self._idle: list[SqliteBackend | PostgresBackend] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._open = False
        self._inserted = 0  # predictions stored by this writer
        self._next_analyze = 1000  # PostgreSQL: refresh statistics at 1k, 2k, 4k ... rows

    async def start(self) -> None:
        for backend in self.backends:
            await backend.open()
        self._idle = list(self.backends)
        self._open = True

    async def stop(self) -> None:
        self._open = False
        while self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._tasks, return_exceptions=True)
        for backend in self.backends:
            await backend.close()

    @property
    def alive(self) -> bool:
        return self._open

    async def submit(self, job: PredictJob | OutcomeJob) -> Any:
        """Queue ``job``; return its result once committed (or an ApiError to raise)."""
        if not self._open:
            raise StoreUnavailable()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((job, future))
        if self._idle:
            task = loop.create_task(self._drain(self._idle.pop()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self, backend: SqliteBackend | PostgresBackend) -> None:
        """Write groups on ``backend`` while jobs are waiting, then give the lane back."""
        try:
            while self._pending:
                batch = self._take_group()
                started = time.perf_counter()
                try:
                    results = await self.write([job for job, _ in batch], backend)
                except BaseException as exc:  # cancelled: nobody gets a false answer
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(StoreUnavailable())
                    if not isinstance(exc, Exception):
                        raise
                    continue
                if self.on_commit is not None:
                    self.on_commit(len(batch), time.perf_counter() - started)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._idle.append(backend)

    def _take_group(self) -> list[tuple[PredictJob | OutcomeJob, asyncio.Future[Any]]]:
        """The pending jobs for one group, in order, up to ``max_jobs``. A prediction whose
        observation_id is already in the group waits for the next one, so one group never
        inserts an id twice (and then meets the first as stored: a replay or a 409)."""
        group: list[tuple[PredictJob | OutcomeJob, asyncio.Future[Any]]] = []
        later: list[tuple[PredictJob | OutcomeJob, asyncio.Future[Any]]] = []
        ids: set[str] = set()
        for item in self._pending:
            job = item[0]
            if len(group) >= self.max_jobs:
                later.append(item)
            elif isinstance(job, PredictJob):
                mine = [o.observation_id for o in job.observations]
                if ids.isdisjoint(mine):
                    ids.update(mine)
                    group.append(item)
                else:
                    later.append(item)
            else:
                group.append(item)
        self._pending = later
        return group

    async def write(self, jobs: list[PredictJob | OutcomeJob],
                    backend: SqliteBackend | PostgresBackend | None = None) -> list[Any]:
        """Write ``jobs`` in one transaction; retried once (a concurrent writer may have stored
        the same observation: the retry sees it), then job by job so one bad job cannot fail
        the others. A job that still fails gets :class:`StoreUnavailable`."""
        backend = backend or self.backends[0]
        for attempt in range(2):
            try:
                return await self._transaction(jobs, backend)
            except CONCURRENT_WRITE_ERRORS as exc:
                log.warning("group commit of %d jobs met a concurrent write (%s); retrying",
                            len(jobs), type(exc).__name__)
                await backend.reset()
            except Exception:
                log.exception("group commit of %d jobs failed (attempt %d)", len(jobs),
                              attempt + 1)
                await backend.reset()
        results: list[Any] = []
        for job in jobs:
            try:
                results.extend(await self._transaction([job], backend))
            except Exception:
                log.exception("storing one job failed")
                await backend.reset()
                results.append(StoreUnavailable())
        return results

    async def _transaction(self, jobs: list[PredictJob | OutcomeJob],
                           backend: SqliteBackend | PostgresBackend) -> list[Any]:
        if all(isinstance(j, PredictJob) for j in jobs):
            optimistic = await self._insert_optimistically(jobs, backend)  # type: ignore[arg-type]
            if optimistic is not None:
                return optimistic
        # a group of predictions alone needs no explicit transaction on PostgreSQL: its rows go
        # in one (atomic) statement
        await backend.begin(any(isinstance(j, OutcomeJob) for j in jobs))
        try:
            results: list[Any] = [None] * len(jobs)
            predict = [(i, j) for i, j in enumerate(jobs) if isinstance(j, PredictJob)]
            rows: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
            if predict:
                ids = [o.observation_id for _, job in predict for o in job.observations]
                stored = {}
                for start in range(0, len(ids), 500):
                    for row in await backend.by_observation(ids[start:start + 500]):
                        stored[row["observation_id"]] = row
                rows = _decide(predict, stored, results)
            for i, job in enumerate(jobs):
                if isinstance(job, OutcomeJob):
                    results[i] = await self._outcome(backend, job)
            await backend.finish(*rows)
        except BaseException:
            await backend.reset()
            raise
        self._counted(backend, len(rows[1]))
        return results

    async def _insert_optimistically(self, jobs: list[PredictJob],
                                     backend: SqliteBackend | PostgresBackend
                                     ) -> list[Any] | None:
        """Insert the group as if none of its observation ids were stored, which is the usual
        case: no look-up first (on PostgreSQL one round trip and ~30% of the server's CPU per
        group less). The unique key on ``observation_id`` catches a stored id; then nothing of
        the group is kept and None says: decide against the store."""
        results: list[Any] = [None] * len(jobs)
        rows = _decide(list(enumerate(jobs)), {}, results)
        await backend.begin(False)
        try:
            await backend.finish(*rows)
        except DUPLICATE_KEY_ERRORS:
            await backend.discard()
            return None
        except BaseException:
            await backend.reset()
            raise
        self._counted(backend, len(rows[1]))
        return results

    def _counted(self, backend: SqliteBackend | PostgresBackend, inserted: int) -> None:
        """Count stored predictions; on PostgreSQL refresh statistics at 1k, 2k, 4k ... rows."""
        self._inserted += inserted
        if isinstance(backend, PostgresBackend) and self._inserted >= self._next_analyze:
            self._next_analyze = 2 * self._inserted
            self._background(backend.analyze())

    def _background(self, work: Any) -> None:
        """Run ``work`` beside the groups; a failure is logged, not raised."""
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("background store maintenance failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _outcome(self, backend: SqliteBackend | PostgresBackend, job: OutcomeJob) -> Any:
        if job.observation_id is not None:
            found = await backend.by_observation([job.observation_id])
            what, field_name = f"observation_id {job.observation_id!r}", "observation_id"
        else:
            assert job.request_id is not None
            found = await backend.by_request(job.request_id)
            what, field_name = f"request_id {job.request_id!r}", "request_id"
        if not found:
            return ApiError(404, f"no stored prediction has {what}")
        if len(found) > 1:
            msg = (f"request {job.request_id} scored several observations; send the outcome "
                   "with observation_id")
            return ApiError(422, msg, [{"field": "request_id", "loc": ["body", "request_id"],
                                        "msg": msg, "type": "ambiguous"}])
        prediction = found[0]
        prior = await backend.outcome_of(prediction["id"])
        if prior is not None:
            if prior[0] != job.outcome:
                msg = (f"the prediction for {what} already has outcome {prior[0]} (recorded "
                       f"{utc(prior[1]).isoformat()}); a different outcome is refused")
                return ApiError(409, msg, [{"field": field_name, "loc": ["body", field_name],
                                            "msg": msg, "type": "conflict"}])
            recorded_at, created = utc(prior[1]), False
        else:
            recorded_at, created = datetime.now(UTC), True
            await backend.insert_outcome({
                "prediction_id": prediction["id"], "observation_id": prediction["observation_id"],
                "outcome": job.outcome, "token_id": job.token_id, "recorded_at": recorded_at})
        return OutcomeResult({
            "observation_id": prediction["observation_id"],
            "request_id": prediction["request_id"], "outcome": job.outcome,
            "recorded_at": recorded_at.isoformat(), "already_recorded": not created,
            "decision_correct": bool(prediction["decision"]) == bool(job.outcome),
            "prediction": answer(prediction, replayed=True),
        }, created)


def _decide(jobs: list[tuple[int, PredictJob]], stored: dict[str, dict[str, Any]],
            results: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Decide each job against what is ``stored``: a job with an observation stored under a
    different payload is a 409 (nothing of it is stored); otherwise stored observations are
    replayed and the others are new. Fills ``results``; returns the request and prediction
    rows to insert."""
    request_rows: list[dict[str, Any]] = []
    prediction_rows: list[dict[str, Any]] = []
    for index, job in jobs:
        answers: list[dict[str, Any]] = []
        new: list[dict[str, Any]] = []
        conflicts: list[tuple[int, dict[str, Any]]] = []
        predicted_at = job.decided_at.isoformat()
        for k, (obs, score) in enumerate(zip(job.observations, job.scores, strict=True)):
            prior = stored.get(obs.observation_id)
            if prior is not None:
                if prior["payload_hash"] == obs.payload_hash:
                    answers.append(answer(prior, replayed=True))
                else:
                    conflicts.append((k, prior))
                continue
            row = {"observation_id": obs.observation_id, "request_id": job.request_id,
                   "deployment_id": job.deployment_id, "model_id": job.model_id,
                   "features": obs.raw, "payload_hash": obs.payload_hash,
                   "ignored_fields": _storable(obs.ignored), "score": score,
                   "threshold": job.threshold, "decision": score >= job.threshold,
                   "created_at": job.decided_at}
            new.append(row)
            answers.append(answer(row, False, predicted_at))
        if conflicts:
            results[index] = _conflict(job, conflicts)
            continue
        for row in new:  # a later job in this group sees these as stored
            stored[row["observation_id"]] = row
        prediction_rows.extend(new)
        request_rows.append({
            "id": job.request_id, "endpoint": "/predict", "token_id": job.token_id,
            "deployment_id": job.deployment_id, "model_id": job.model_id,
            "n_observations": len(job.observations), "n_new": len(new),
            "latency_ms": job.latency_ms, "received_at": job.received_at})
        results[index] = PredictResult(answers, len(new))
    return request_rows, prediction_rows


def _storable(names: list[str]) -> list[str] | None:
    """Ignored field names as stored and answered: PostgreSQL text cannot hold NUL, so a NUL
    in an (unused) field name becomes U+FFFD."""
    if not names:
        return None
    if any("\x00" in name for name in names):
        return [name.replace("\x00", "\ufffd") for name in names]
    return names


def _conflict(job: PredictJob, conflicts: list[tuple[int, dict[str, Any]]]) -> ApiError:
    errors = []
    for k, prior in conflicts:
        loc = ["observation_id"] if job.single else ["observations", k, "observation_id"]
        errors.append({
            "field": "observation_id" if job.single else f"observations[{k}].observation_id",
            "loc": ["body", *loc],
            "msg": f"observation_id {prior['observation_id']!r} was predicted before (request "
                   f"{prior['request_id']}) with a different payload",
            "type": "conflict"})
    ids = ", ".join(repr(prior["observation_id"]) for _, prior in conflicts)
    return ApiError(409, f"observation_id {ids} already predicted with a different payload; "
                         "nothing was stored (a new observation needs a new observation_id)",
                    errors)


def read_prediction(engine: Engine, key: str) -> dict[str, Any] | None:
    """A stored prediction by observation id (or the id of a single-observation request),
    with its features and outcome (SQLAlchemy; off the hot path)."""
    row = stored_prediction(engine, key, ANSWER_FIELDS)
    if row is None:
        return None
    body = answer(dict(row), replayed=False)
    body["features"] = row["features"]
    body["outcome"] = row["outcome"]
    body["outcome_recorded_at"] = (utc(row["outcome_recorded_at"]).isoformat()
                                   if row["outcome_recorded_at"] is not None else None)
    return body
