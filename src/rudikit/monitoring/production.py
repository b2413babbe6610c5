"""Reading production predictions (with their outcomes) out of the store, in chunks.

Each chunk is a ``pyarrow.Table``: ``prediction_id``, ``observation_id``, ``score``,
``decision``, ``outcome`` (null until one arrives), ``event_time`` and one column per stored
input field. The inputs are stored as JSON text; a chunk's texts are parsed in one call to
Arrow's multi-threaded JSON reader (about 5x faster than a Python loop of ``json.loads`` into a
DataFrame, which matters at ten million predictions).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
from sqlalchemy import Text, cast, select
from sqlalchemy.engine import Engine

from rudikit.store.production_tables import outcomes, production_predictions

P = production_predictions
RESERVED = ("prediction_id", "observation_id", "score", "decision", "outcome", "created_at",
            "event_time")


def _parse_features(texts: list[str], n: int) -> pa.Table:
    if not n:
        return pa.table({})
    data = "\n".join(texts).encode()
    options = pajson.ReadOptions(block_size=max(1 << 20, min(len(data) + 1, 1 << 26)))
    table = pajson.read_json(io.BytesIO(data), read_options=options)
    keep = [c for c in table.column_names if c not in RESERVED]
    return table.select(keep)


def _event_time(features: pa.Table, created: pa.Array, time_field: str | None) -> pa.Array:
    """The knowledge date the observation carries (when it happened), else when it was
    scored."""
    created_ts = pc.cast(created, pa.timestamp("us", tz="UTC"))
    if not time_field or time_field not in features.column_names:
        return created_ts
    column = features.column(time_field)
    if pa.types.is_timestamp(column.type):
        parsed = column
    else:
        parsed = pc.cast(column, pa.string())
        try:
            parsed = pc.strptime(parsed, format="%Y-%m-%dT%H:%M:%S%z", unit="us",
                                 error_is_null=True)
        except pa.ArrowInvalid:
            parsed = pa.nulls(len(column), pa.timestamp("us", tz="UTC"))
    if parsed.type.tz is None:
        parsed = pc.assume_timezone(parsed, "UTC")
    parsed = pc.cast(parsed, pa.timestamp("us", tz="UTC"))
    if isinstance(parsed, pa.ChunkedArray):
        parsed = parsed.combine_chunks()
    return pc.if_else(pc.is_null(parsed), created_ts, parsed)


def read_predictions(engine: Engine, model_ids: list[int], *, time_field: str | None = None,
                     start: datetime | None = None, end: datetime | None = None,
                     chunk_rows: int = 500_000) -> Iterator[pa.Table]:
    """Production predictions of ``model_ids`` whose event time is in ``(start, end]``, in
    chunks of at most ``chunk_rows`` (prediction id order)."""
    query = (select(P.c.id, P.c.observation_id, P.c.score, P.c.decision, outcomes.c.outcome,
                    P.c.created_at, cast(P.c.features, Text))
             .select_from(P.outerjoin(outcomes, outcomes.c.prediction_id == P.c.id))
             .where(P.c.model_id.in_(model_ids)).order_by(P.c.id))
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(query)
        for rows in result.partitions(chunk_rows):
            ids, obs, score, decision, outcome, created, texts = zip(*rows, strict=True)
            features = _parse_features(list(texts), len(rows))
            created_arr = pa.array([_utc(c) for c in created], pa.timestamp("us", tz="UTC"))
            event = _event_time(features, created_arr, time_field)
            base = pa.table({
                "prediction_id": pa.array(ids, pa.int64()),
                "observation_id": pa.array(obs, pa.string()),
                "score": pa.array(score, pa.float64()),
                "decision": pa.array(decision, pa.bool_()),
                "outcome": pa.array(outcome, pa.int8()),
                "event_time": event,
            })
            for name in features.column_names:
                base = base.append_column(name, features.column(name))
            mask = None
            if start is not None:
                mask = pc.greater(base["event_time"], pa.scalar(_utc(start),
                                                                pa.timestamp("us", tz="UTC")))
            if end is not None:
                upper = pc.less_equal(base["event_time"],
                                      pa.scalar(_utc(end), pa.timestamp("us", tz="UTC")))
                mask = upper if mask is None else pc.and_(mask, upper)
            if mask is not None:
                base = base.filter(mask)
            if base.num_rows:
                yield base


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

