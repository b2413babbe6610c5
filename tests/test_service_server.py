"""The service as deployed: ``rudi serve`` (uvicorn) on a loopback port, on SQLite and
PostgreSQL. Concurrent clients get every request stored exactly once, and a server killed with
SIGKILL under load has stored every request it answered."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from test_service_support import (
    HANG_GUARD,
    LiveServer,
    auth,
    counts,
    observation,
    service_store,
    trained,
)

from rudikit.store import production_tables as pt

CLIENTS = 16


def test_16_concurrent_clients_2000_requests_2000_stored_predictions(
        store: tuple[str, str | None], tmp_path_factory: pytest.TempPathFactory,
        tmp_path: Path) -> None:
    url, schema = store
    concurrent_clients(url, schema, trained(tmp_path_factory), tmp_path, workers=1)


def test_two_worker_processes_share_one_sqlite_store(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """Two uvicorn workers take turns writing the SQLite file; /metrics adds both up."""
    concurrent_clients(f"sqlite:///{tmp_path / 'rudi.db'}", None, trained(tmp_path_factory),
                       tmp_path, workers=2)


def concurrent_clients(url: str, schema: str | None, project: Any, folder: Path,
                       workers: int) -> None:
    """16 threads send 2,000 single observations; every one is answered and stored once."""
    s = service_store(url, schema, project)
    server = LiveServer(folder, url, schema, workers=workers)
    statuses: list[int] = []
    answers: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(base_url=server.base, headers=auth(s.tokens["predict"]),
                          timeout=HANG_GUARD) as http:
            for i in range(2000 // CLIENTS):
                oid = f"c{k}-{i}"
                r = http.post("/predict", json=observation(oid, latitude=50 + i / 1000))
                with lock:
                    statuses.append(r.status_code)
                    if r.status_code == 200:
                        answers[oid] = r.json()

    try:
        server.wait_ready()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        metrics = httpx.get(server.base + "/metrics", headers=auth(s.tokens["analyst"])).text
        assert ('rudi_http_requests_total{endpoint="/predict",method="POST",status="200"} '
                '2000.0') in metrics
    finally:
        server.stop()
    assert statuses == [200] * 2000
    assert len(answers) == 2000
    stored = counts(s.engine)
    assert stored["production_predictions"] == 2000 and stored["requests"] == 2000
    with s.engine.connect() as conn:
        rows = conn.execute(select(pt.production_predictions.c.observation_id,
                                   pt.production_predictions.c.score,
                                   pt.production_predictions.c.request_id)).all()
    assert {r.observation_id: (r.score, r.request_id) for r in rows} == {
        oid: (a["score"], a["request_id"]) for oid, a in answers.items()}
    s.engine.dispose()


def test_a_server_killed_under_load_has_stored_every_answered_request(
        store: tuple[str, str | None], tmp_path_factory: pytest.TempPathFactory,
        tmp_path: Path) -> None:
    url, schema = store
    s = service_store(url, schema, trained(tmp_path_factory))
    answered: dict[str, dict[str, Any]] = {}
    sent: dict[str, dict[str, Any]] = {}
    unexpected: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    server = LiveServer(tmp_path, url, schema)

    def client(k: int) -> None:
        with httpx.Client(base_url=server.base, headers=auth(s.tokens["predict"]),
                          timeout=HANG_GUARD) as http:
            for i in range(100_000):  # bounded; ends when the server dies
                if stop.is_set():
                    return
                body = (observation(f"k{k}-{i}", latitude=50 + i / 1000) if i % 5 else
                        {"observations": [observation(f"k{k}-{i}-{j}") for j in range(5)]})
                try:
                    r = http.post("/predict", json=body)
                except httpx.HTTPError:
                    return  # the server is gone
                with lock:
                    if r.status_code == 200:
                        reply = r.json()
                        for p in reply.get("predictions", [reply]):
                            answered[p["observation_id"]] = p
                    else:
                        unexpected.append(f"{r.status_code}: {r.text}")
                    for o in body.get("observations", [body]):
                        sent[o["observation_id"]] = o

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(CLIENTS)]
    try:
        server.wait_ready()
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + HANG_GUARD  # 300 answers, however slow the machine
        while len(answered) < 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(server.process.pid, signal.SIGKILL)  # no shutdown, no flush, nothing
        server.process.wait(10)
        for thread in threads:
            thread.join(30)
        stop.set()
    finally:
        stop.set()
        server.stop()
    assert server.process.returncode == -signal.SIGKILL
    assert unexpected == []
    assert len(answered) >= 300
    with s.engine.connect() as conn:
        stored = {r.observation_id: r for r in conn.execute(select(
            pt.production_predictions.c.observation_id, pt.production_predictions.c.score,
            pt.production_predictions.c.request_id, pt.production_predictions.c.decision))}
        request_ids = set(conn.execute(select(pt.requests.c.id)).scalars())
    missing = sorted(set(answered) - set(stored))
    assert missing == [], f"{len(missing)} answered predictions are not in the store"
    for oid, reply in answered.items():
        row = stored[oid]
        assert (row.score, row.request_id, row.decision) == (
            reply["score"], reply["request_id"], reply["decision"])
        assert row.request_id in request_ids
    # restarted on the same store, it answers the same observations from the store
    again = LiveServer(tmp_path, url, schema)
    try:
        again.wait_ready()
        with httpx.Client(base_url=again.base, headers=auth(s.tokens["predict"]),
                          timeout=HANG_GUARD) as http:
            for oid in sorted(answered)[:20]:
                r = http.post("/predict", json=sent[oid])
                assert r.status_code == 200, r.text
                assert r.json()["replayed"] is True
                assert r.json()["score"] == answered[oid]["score"]
            r = http.get(f"/predictions/{sorted(answered)[0]}",
                         headers=auth(s.tokens["analyst"]))
            assert r.status_code == 200
    finally:
        again.stop()
    s.engine.dispose()
