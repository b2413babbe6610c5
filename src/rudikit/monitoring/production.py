"""Reading production predictions (with their outcomes) out of the store, in chunks.

Each chunk is a ``pyarrow.Table``: ``prediction_id``, ``observation_id``, ``score``,
``decision``, ``outcome`` (null until one arrives), ``event_time`` and one column per stored
input field.

Hand-written for speed: the database itself writes each chunk as one newline-delimited JSON
text (every row an object holding the prediction's columns and its stored inputs), and Arrow's
multi-threaded JSON reader parses it. Fetching rows through the DB-API and SQLAlchemy's type
processing instead cost about 10 us per row (the timestamps above all), two minutes for ten
million predictions (``bench/monitor.py``).
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
from sqlalchemy.engine import Engine

from rudikit.store.queries.production import (
    CaseWindow,
    prediction_chunk,
    prediction_id_range,
)

UTC_US = pa.timestamp("us", tz="UTC")

def parse_times(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Timestamps (UTC) from ISO 8601 text or timestamps; unparseable values become null."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_timestamp(values.type):
        parsed = values if values.type.tz else pc.assume_timezone(values, "UTC")
        return pc.cast(parsed, UTC_US)
    textual = pc.cast(values, pa.string())
    try:  # ISO 8601 with a zone offset (what the service stores), in C++
        return pc.cast(textual, UTC_US)
    except pa.ArrowInvalid:  # anything else (no offset, odd values): pandas, value by value
        return pa.array(pd.to_datetime(textual.to_pandas(), utc=True, errors="coerce",
                                       format="ISO8601"), UTC_US)


def _read_json(data: bytes) -> pa.Table:
    """Arrow's reader; when clients sent one input with mixed types (``true`` here, ``"yes"``
    there) it refuses, and that chunk is parsed row by row with the odd inputs kept as text."""
    options = pajson.ReadOptions(block_size=max(1 << 20, min(len(data) + 1, 1 << 26)))
    try:
        return pajson.read_json(io.BytesIO(data), read_options=options)
    except pa.ArrowInvalid:
        rows = [orjson.loads(line) for line in data.split(b"\n") if line]
        inputs = pd.DataFrame.from_records([r.pop("f") or {} for r in rows])
        fields = {}
        for name in inputs.columns:
            try:
                fields[name] = pa.array(inputs[name].tolist())
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                fields[name] = pa.array([None if v is None else str(v)
                                         for v in inputs[name].tolist()], pa.string())
        table = pa.Table.from_pylist(rows)
        struct = pa.StructArray.from_arrays(list(fields.values()), list(fields)) if fields \
            else pa.array([{}] * len(rows))
        return table.append_column("f", struct)


def _table(data: bytes, time_field: str | None) -> pa.Table:
    raw = _read_json(data)
    n = raw.num_rows
    created = pc.cast(pc.multiply(pc.cast(raw.column("c"), pa.float64()), 1e6), pa.int64())
    created = pc.cast(created, UTC_US)
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "prediction_id": pc.cast(raw.column("i"), pa.int64()),
        "observation_id": pc.cast(raw.column("o"), pa.string()),
        "score": pc.cast(raw.column("s"), pa.float64()),
        "decision": pc.cast(raw.column("d"), pa.bool_()),
        "outcome": pc.cast(raw.column("y"), pa.int8()),
    }
    inputs = raw.column("f")
    fields = ({f.name: pc.struct_field(inputs, f.name) for f in inputs.type}
              if pa.types.is_struct(inputs.type) else {})
    event = created
    if time_field and time_field in fields:
        # parsed once here; readers of the field (datetime parts, retraining) get timestamps
        fields[time_field] = parse_times(fields[time_field])
        event = pc.if_else(pc.is_null(fields[time_field]), created, fields[time_field])
    columns["event_time"] = event
    columns.update({k: v for k, v in fields.items() if k not in columns})
    return pa.table(columns) if n else pa.table({})


def read_predictions(engine: Engine, model_ids: list[int], *, time_field: str | None = None,
                     start: datetime | None = None, end: datetime | None = None,
                     chunk_rows: int = 500_000) -> Iterator[pa.Table]:
    """Production predictions of ``model_ids`` whose event time (the ``time_field`` input when
    given and parseable, else when it was scored) is in ``(start, end]``, in chunks of at most
    ``chunk_rows`` ids, in id order. With both ``start`` and ``end`` the window is a predicate
    of the queries (a little wider, as the database parses times its own way), so only the
    window's rows are read; the exact window is applied here."""
    if not model_ids:
        return
    window = None if start is None or end is None else CaseWindow(time_field, _utc(start),
                                                                   _utc(end))
    lo, hi = prediction_id_range(engine, model_ids, window)
    for blob in _prefetched(engine, list(model_ids), lo, hi, chunk_rows, window):
        if blob:
            table = _table(blob.encode(), time_field)
            mask = None
            if start is not None:
                mask = pc.greater(table["event_time"], pa.scalar(_utc(start), UTC_US))
            if end is not None:
                upper = pc.less_equal(table["event_time"], pa.scalar(_utc(end), UTC_US))
                mask = upper if mask is None else pc.and_(mask, upper)
            if mask is not None:
                table = table.filter(mask)
            if table.num_rows:
                yield table


def _prefetched(engine: Engine, model_ids: list[int], lo: int, hi: int, chunk_rows: int,
                window: CaseWindow | None, workers: int = 2) -> Iterator[str | None]:
    """Each chunk's text, in order, with the next ones already being written by the database
    on ``workers`` threads of their own (the drivers release the GIL while the database works),
    so building the text and parsing it overlap."""
    starts = list(range(lo, hi, chunk_rows))
    queues: list[queue.Queue[tuple[str, Any]]] = [queue.Queue(maxsize=1)
                                                   for _ in range(workers)]
    stop = threading.Event()

    def produce(worker: int) -> None:
        out = queues[worker]
        try:
            with engine.connect() as conn:
                for begin in starts[worker::workers]:
                    if stop.is_set():
                        return
                    blob = prediction_chunk(conn, model_ids, begin, begin + chunk_rows, window)
                    out.put(("chunk", blob))
        except BaseException as exc:  # handed to the consumer, raised there
            out.put(("error", exc))

    threads = [threading.Thread(target=produce, args=(w,), daemon=True)
               for w in range(min(workers, len(starts)))]
    for thread in threads:
        thread.start()
    try:
        for i in range(len(starts)):
            kind, value = queues[i % workers].get()
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        for worker, thread in enumerate(threads):
            while thread.is_alive():  # unblock a producer waiting to put, then let it end
                with contextlib.suppress(queue.Empty):
                    queues[worker].get(timeout=0.1)
            thread.join()


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
