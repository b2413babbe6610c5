"""The writer's PostgreSQL backend. Commits are durable as configured on the server (fsync by
default)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from rudikit.service.storage import (
    ANSWER_FIELDS,
    OUTCOME_FIELDS,
    PREDICTION_FIELDS,
    REQUEST_FIELDS,
)


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
