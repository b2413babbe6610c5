"""The writer's SQLite backend.

SQLite runs in WAL mode with ``synchronous=NORMAL`` by default: a committed transaction
survives a crash of the server process (tested with SIGKILL). With ``synchronous=FULL`` every
group commit is also fsynced (survives a power cut); that commit runs in a helper thread so
the loop keeps parsing and scoring meanwhile. Several worker processes on one SQLite file take
turns through a file lock; checkpoints run in a background thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import orjson

from rudikit.service.storage import (
    ANSWER_FIELDS,
    OUTCOME_FIELDS,
    PREDICTION_FIELDS,
    REQUEST_FIELDS,
)


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
