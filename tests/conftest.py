"""Shared fixtures: where the real data lives, and results stores on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
EXAMPLE = REPO / "examples" / "stop_search" / "rudi.yaml"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (CI keeps ../shared beside the "
                    "repository)")
    return SHARED_DATA


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """(url, schema) of an empty results store. PostgreSQL runs whenever RUDI_TEST_POSTGRES is
    set (and then a server that is down is a failure, not a skip); each test gets its own
    schema, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rudi.db'}", None
        return
    url = os.environ.get("RUDI_TEST_POSTGRES")
    if not url:
        pytest.skip("RUDI_TEST_POSTGRES is not set, so there is no PostgreSQL server to test "
                    "against (.ci/run sets it to postgresql://postgres@127.0.0.1:5432/test)")
    schema = f"rudi_test_{uuid.uuid4().hex[:12]}"
    yield url, schema
    from rudikit.store.engine import create_store_engine

    engine = create_store_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def example_config() -> dict:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def write_project(folder: Path, **overrides: object) -> Path:
    """A small, fast project on the synthetic generator (overrides replace top-level sections)."""
    config = example_config()
    config["data"]["sources"] = [{"name": "searches", "kind": "synthetic_stop_search",
                                  "seed": 3, "rows_per_month": 1500}]
    config["models"] = [
        {"algorithm": "rate_by_category", "params": {"column": "object_of_search"}},
        {"algorithm": "logistic_regression", "params": {"C": [1.0]}},
        {"algorithm": "lightgbm", "params": {"n_estimators": 60, "num_leaves": 15}},
    ]
    config["evaluation"]["bootstrap"] = 100
    config.update(overrides)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def cpdb_loaded() -> tuple[object, float]:
    """The real Chicago CPDB files, loaded and linked once per test session (about 8 s), with
    the seconds the load took."""
    import time

    from rudikit.data.cpdb.tables import load_cpdb

    if not (SHARED_DATA / "eis" / "chicago_cpdb" / "final-profiles.csv.gz").exists():
        pytest.skip(f"CPDB files not found under {SHARED_DATA} (CI keeps ../shared beside the "
                    "repository)")
    started = time.perf_counter()
    data = load_cpdb(SHARED_DATA)
    return data, time.perf_counter() - started
