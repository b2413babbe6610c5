"""Helpers shared by the service tests (no tests here): a small trained project, stores with a
deployed model and tokens, observations, row counts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import example_config, write_project
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from rudikit.config import load_project
from rudikit.service.auth import ROLES, create_token
from rudikit.service.deploy import deploy
from rudikit.store import production_tables as pt
from rudikit.store import results
from rudikit.store import tables as t
from rudikit.store.engine import open_store

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Artefact:
    algorithm: str
    path: str
    digest: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Trained:
    folder: Path
    features: dict[str, Any]
    artefacts: dict[str, Artefact]


_TRAINED: dict[str, Trained] = {}


def trained(factory: pytest.TempPathFactory) -> Trained:
    """A project with a LightGBM and a per-category-rate model, trained once per test session
    (a couple of seconds)."""
    if "project" in _TRAINED:
        return _TRAINED["project"]
    from rudikit.run.develop import run_project

    evaluation = example_config()["evaluation"]
    evaluation["bootstrap"] = 0
    folder = write_project(factory.mktemp("service-project"), evaluation=evaluation, models=[
        {"algorithm": "lightgbm", "params": {"n_estimators": 40, "num_leaves": 15}},
        {"algorithm": "rate_by_category", "params": {"column": "object_of_search"}},
    ])
    run = run_project(folder)
    engine = open_store(None, folder)
    artefacts: dict[str, Artefact] = {}
    with engine.connect() as conn:
        for m in run.models:
            if m.split != "last_month":
                continue
            row = conn.execute(select(t.models).where(t.models.c.id == m.model_id)
                               ).mappings().one()
            # absolute: the tests register it in stores of other projects
            artefacts[m.algorithm] = Artefact(m.algorithm, str(folder / row["artefact_path"]),
                                              row["artefact_hash"], m.params)
    engine.dispose()
    project = load_project(folder)
    _TRAINED["project"] = Trained(folder, project.features.model_dump(mode="json"), artefacts)
    return _TRAINED["project"]


def register(engine: Engine, project: Trained, algorithm: str = "lightgbm",
             artefact_path: str | None = None, digest: str | None = None) -> tuple[int, int]:
    """Record a fitted model of ``algorithm`` in ``engine``'s store as a run would (model group
    and model rows pointing at the artefact); return (model group id, model id)."""
    artefact = project.artefacts[algorithm]
    run = results.start_run(engine, "service-test", "hash", {}, 0, "synthetic")
    group = results.get_or_create_model_group(engine, "service-test", algorithm,
                                              artefact.params, project.features, "label")
    model = results.record_model(
        engine,
        results.FittedModel(run, group, "last_month", 100, 3, (None, None), (None, None),
                            digest or artefact.digest, artefact_path or artefact.path, 0.1),
        entity_ids=np.array(["a", "b", "c"]), as_of=None, score=np.array([0.1, 0.5, 0.9]),
        label=np.array([0, 1, 1]), metrics=[], importances=[])
    results.finish_run(engine, run, "finished")
    return group, model


@dataclass
class ServiceStore:
    url: str
    schema: str | None
    engine: Engine
    group_id: int
    model_id: int
    tokens: dict[str, str]  # role -> token
    token_ids: dict[str, int]


def service_store(url: str, schema: str | None, project: Trained, threshold: float = 0.5,
                  algorithm: str = "lightgbm") -> ServiceStore:
    """A store with a deployed model and one token per role."""
    engine = open_store(url, schema=schema)
    group, model = register(engine, project, algorithm)
    deploy(engine, group, reason="tests", by="pytest", threshold=threshold)
    tokens, ids = {}, {}
    for role in ROLES:
        ids[role], tokens[role] = create_token(engine, role, f"{role} client", "pytest")
    return ServiceStore(url, schema, engine, group, model, tokens, ids)


def observation(oid: str, **changes: Any) -> dict[str, Any]:
    """A valid stop-and-search observation for the test project's features."""
    row: dict[str, Any] = {
        "observation_id": oid, "type": "Person search", "gender": "Male",
        "age_range": "18-24", "officer_defined_ethnicity": "White",
        "legislation": "Misuse of Drugs Act 1971 (section 23)",
        "object_of_search": "Controlled drugs", "force": "metropolitan",
        "part_of_a_policing_operation": False, "latitude": 51.5, "longitude": -0.12,
        "datetime": "2020-01-05T13:20:00+00:00",
    }
    row.update(changes)
    return row


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


PRODUCTION = (pt.requests, pt.production_predictions, pt.outcomes, pt.deployed_models,
              pt.api_tokens, pt.audit_log)


def counts(engine: Engine) -> dict[str, int]:
    """Rows per production table."""
    with engine.connect() as conn:
        return {tbl.name: conn.execute(select(func.count()).select_from(tbl)).scalar_one()
                for tbl in PRODUCTION}


# Not a speed claim: the longest a test waits for a server before calling it hung, so that a
# broken test cannot hold CI forever. A busy machine is slow, never a failure.
HANG_GUARD = 600.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """``rudi serve`` in a subprocess on a free loopback port (killed on exit)."""

    def __init__(self, folder: Path, url: str, schema: str | None, workers: int = 1):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "RUDI_DATABASE_URL": url}
        if schema:
            env["RUDI_DATABASE_SCHEMA"] = schema
        else:
            env.pop("RUDI_DATABASE_SCHEMA", None)
        self.log = folder / f"serve-{self.port}.log"
        self.handle = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rudikit.cli", "serve", str(folder), "--port",
             str(self.port), "--workers", str(workers), "--log-level", "warning"],
            env=env, stdout=self.handle, stderr=subprocess.STDOUT, cwd=REPO)

    def wait_ready(self) -> None:
        """Until /health answers; a server that exits is a failure, a slow one is not."""
        deadline = time.monotonic() + HANG_GUARD
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(self.base + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server hung: not ready after {HANG_GUARD} s: "
                             f"{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.handle.close()
