"""Replaying a month of real records through the prediction service as if it were production:
each record is POSTed to ``/predict`` (in batches), then its true outcome to ``/outcomes``.

This is how a force rehearses monitoring and retraining before going live, and how the
stop-and-search example exercises the whole loop on its last real month. Against a running
service give its URL and a token; otherwise :func:`local_service` starts ``rudi serve`` on a free
loopback port in this process with a temporary admin token (revoked afterwards).
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from rudikit.config import Project
from rudikit.features.labels import make_label
from rudikit.service.auth import create_token, revoke_token


class ReplayError(RuntimeError):
    pass


@dataclass
class ReplaySummary:
    month: str
    observations: int
    scored: int
    replayed: int  # already stored from an earlier replay (idempotent)
    outcomes: int


def month_rows(project: Project, frame: pd.DataFrame, month: str | None
               ) -> tuple[str, pd.DataFrame, np.ndarray]:
    """The labelled rows of ``month`` (YYYY-MM; default: the last month in the data) and their
    labels."""
    y, keep = make_label(frame, project.label)
    data = frame.loc[keep].reset_index(drop=True)
    y = y[keep]
    when = pd.to_datetime(data[project.data.knowledge_date], utc=True)
    months = when.dt.tz_convert(None).dt.to_period("M").astype("string")
    chosen = month or months.dropna().max()
    rows = (months == chosen).fillna(False).to_numpy()
    if not rows.any():
        raise ReplayError(f"--month: no labelled records in {chosen!r} (the data covers "
                          f"{months.min()} to {months.max()})")
    return str(chosen), data.loc[rows].reset_index(drop=True), y[rows]


def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if math.isnan(value) else float(value)
    return str(value)


def observations(data: pd.DataFrame, columns: list[str], id_column: str
                 ) -> list[dict[str, Any]]:
    return [{"observation_id": str(row[id_column]),
             **{c: _json_value(row[c]) for c in columns}}
            for row in data[[id_column, *columns]].to_dict("records")]


def replay(client: httpx.Client, project: Project, data: pd.DataFrame, y: np.ndarray,
           columns: list[str], month: str, *, batch: int = 500, outcomes: bool = True,
           tick: Callable[[int], None] | None = None) -> ReplaySummary:
    """POST the rows to ``/predict`` in batches, then each outcome to ``/outcomes``."""
    obs = observations(data, columns, project.data.entity_id)
    scored = replayed = sent = 0
    for start in range(0, len(obs), batch):
        body = {"observations": obs[start:start + batch]}
        response = client.post("/predict", json=body)
        if response.status_code != 200:
            raise ReplayError(f"POST /predict answered {response.status_code}: "
                              f"{response.text[:500]}")
        answer = response.json()
        stored = sum(bool(p.get("replayed")) for p in answer.get("predictions", []))
        replayed += stored
        scored += len(body["observations"]) - stored
        if tick:
            tick(len(body["observations"]))
    if outcomes:
        for o, label in zip(obs, y, strict=True):
            response = client.post("/outcomes", json={"observation_id": o["observation_id"],
                                                      "outcome": int(label)})
            if response.status_code not in (200, 201):
                raise ReplayError(f"POST /outcomes answered {response.status_code}: "
                                  f"{response.text[:500]}")
            sent += 1
            if tick:
                tick(1)
    return ReplaySummary(month, len(obs), scored, replayed, sent)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def local_service(project_dir: Path, database_url: str | None, schema: str | None,
                  engine: Any, by: str) -> Iterator[httpx.Client]:
    """``rudi serve`` on a free loopback port in a background thread, and a client holding a
    temporary admin token that is revoked when the block ends."""
    import uvicorn

    from rudikit.service.app import create_app
    from rudikit.service.settings import ServiceSettings

    app = create_app(ServiceSettings(project_dir=project_dir.resolve(),
                                     database_url=database_url, schema=schema))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    token_id, token = create_token(engine, "admin", "replay (temporary)", by)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise ReplayError("the local service did not start")
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(30)
        revoke_token(engine, token_id, by)
