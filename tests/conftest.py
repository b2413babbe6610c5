"""Shared fixtures: where the real data lives, results stores on SQLite and PostgreSQL, source
databases on PostgreSQL and MariaDB, and how the tests are spread over pytest-xdist workers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from sqlalchemy import text

#: joblib's core count, and so ``execution.workers: auto``: one process per test, because
#: pytest-xdist already runs a test on every core (a test that wants workers names them).
os.environ.setdefault("LOKY_MAX_CPU_COUNT", "1")
#: pytest-xdist's workers inherit COLUMNS=80, which `rudi`'s console honours (a user's
#: `COLUMNS=80 rudi run > out.txt`); the tests read the CLI's output at its piped width of
#: 160, as without xdist. A test of the 80-column view sets the width itself.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

REPO = Path(__file__).resolve().parents[1]
#: The real datasets: RUDI_DATA_DIR when set (as the examples' ``rudi.yaml`` read it), else
#: ../shared/data beside the repository, where CI keeps them.
SHARED_DATA = Path(os.environ.get("RUDI_DATA_DIR") or REPO.parent / "shared" / "data")
EXAMPLE = REPO / "examples" / "stop_search" / "rudi.yaml"
REQUIRE_DATA = "RUDI_REQUIRE_DATA"


def missing_data(path: Path) -> NoReturn:
    """Skip a test whose real data is absent, or fail it when RUDI_REQUIRE_DATA=1 (CI), so a
    lost ../shared/data cannot pass as a green run of skips."""
    message = (f"real data not found at {path} (CI keeps ../shared beside the repository; "
               "RUDI_DATA_DIR names another folder)")
    if os.environ.get(REQUIRE_DATA) == "1":
        pytest.fail(f"{message}; {REQUIRE_DATA}=1 makes this a failure", pytrace=False)
    pytest.skip(f"{message}; set {REQUIRE_DATA}=1 to make this a failure")


class SharedData:
    """The data folder (:data:`SHARED_DATA`); ``shared_data / "part/file"`` is the path,
    which must exist (else ``missing_data``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __truediv__(self, relative: str) -> Path:
        path = self.root / relative
        if not path.exists():
            missing_data(path)
        return path


@pytest.fixture(scope="session")
def shared_data() -> SharedData:
    """The one way a test reaches the real datasets."""
    if not SHARED_DATA.is_dir():
        missing_data(SHARED_DATA)
    return SharedData(SHARED_DATA)


@contextmanager
def own_postgres_schema() -> Iterator[tuple[str, str]]:
    """(url, schema) of a schema of the test's own on the PostgreSQL server of
    RUDI_TEST_POSTGRES, dropped afterwards (dispose the test's engines first). Skipped when
    the variable is not set; when it is, a server that is down is a failure, not a skip."""
    url = os.environ.get("RUDI_TEST_POSTGRES")
    if not url:
        pytest.skip("RUDI_TEST_POSTGRES is not set, so there is no PostgreSQL server to test "
                    "against (.ci/run sets it to postgresql://postgres@127.0.0.1:5432/test)")
    schema = f"rudi_test_{uuid.uuid4().hex[:12]}"
    try:
        yield url, schema
    finally:
        from rudikit.store.engine import create_store_engine

        engine = create_store_engine(url)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """(url, schema) of an empty results store: SQLite, or a PostgreSQL schema of the test's
    own (:func:`own_postgres_schema`)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rudi.db'}", None
        return
    with own_postgres_schema() as (url, schema):
        yield url, schema


#: The database servers a ``kind: sql`` source is tested against, and the variable naming each.
SQL_SERVERS = {"postgres": "RUDI_TEST_POSTGRES", "mariadb": "RUDI_TEST_MARIADB"}


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("mariadb", marks=pytest.mark.mariadb)])
def sql_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(url, table name) on a database server for ``kind: sql`` sources: PostgreSQL and MariaDB,
    each whenever its variable is set (a server that is down is then a failure, not a skip).
    The table is the test's own, dropped afterwards."""
    variable = SQL_SERVERS[request.param]
    url = os.environ.get(variable)
    if not url:
        pytest.skip(f"{variable} is not set, so there is no {request.param} server to test "
                    "against (.ci/run sets it)")
    table = f"rudi_test_{uuid.uuid4().hex[:12]}"
    yield url, table
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


def squeezed(text: str) -> str:
    """Without whitespace: to find a message in terminal output, which wraps long lines (and
    paths) anywhere."""
    return "".join(text.split())


def stored_runs(db: Path) -> int:
    """How many runs the SQLite results store at ``db`` holds (0 when it was never created)."""
    from sqlalchemy import func, inspect, select

    from rudikit.store.engine import create_store_engine
    from rudikit.store.tables import runs

    if not db.exists():
        return 0
    engine = create_store_engine(f"sqlite:///{db}")
    try:
        if not inspect(engine).has_table("runs"):
            return 0
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(runs)).scalar_one()
    finally:
        engine.dispose()


def copy_sqlite(source: Path, dest: Path) -> str:
    """Copy the SQLite store at ``source`` to ``dest`` (through SQLite's backup API, so what
    is still in the write-ahead log comes along); returns its URL. Tests that write start from
    a copy of a store built once per module or session instead of building it again."""
    import sqlite3

    dest.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(dest) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    return f"sqlite:///{dest}"


def selected_model(engine: Any, folder: Path) -> tuple[Any, Any, Any]:
    """The run's selected model: its stored row, its stored test scores (a frame of
    ``entity_id`` and ``score``) and its pipeline loaded from its artefact."""
    import pandas as pd
    from sqlalchemy import select

    from rudikit.models.artefacts import load_artefact
    from rudikit.store import tables as t

    with engine.connect() as conn:
        chosen = conn.execute(select(t.models).where(t.models.c.selected)).mappings().one()
        stored = pd.DataFrame(conn.execute(select(
            t.predictions.c.entity_id, t.predictions.c.score).where(
            t.predictions.c.model_id == chosen["id"])).all(), columns=["entity_id", "score"])
    return chosen, stored, load_artefact(chosen["artefact_path"], chosen["artefact_hash"], folder)


def deployed_parents(engine: Any, when: Any, threshold: float = 0.5,
                     observations: int = 1) -> dict[str, int]:
    """A run, model, live deployment (at ``threshold``), token and request ``r1`` (of
    ``observations``), all dated ``when``: what production predictions written as the service
    writes them hang on."""
    from sqlalchemy import insert

    from rudikit.store import production_tables as pt
    from rudikit.store import results
    from rudikit.store import tables as t

    run = results.start_run(engine, "p", "h", {}, 0, "synthetic")
    group = results.get_or_create_model_group(engine, "p", "lr", {}, {}, "y")
    with engine.begin() as conn:
        model = conn.execute(insert(t.models).values(
            run_id=run, model_group_id=group, split="s", train_rows=1, test_rows=1,
            artefact_hash="h", artefact_path="x", train_seconds=0.0, selected=False,
            created_at=when).returning(t.models.c.id)).scalar_one()
        token = conn.execute(insert(pt.api_tokens).values(
            name="t", role="predict", token_hash="h", created_by="me", created_at=when
        ).returning(pt.api_tokens.c.id)).scalar_one()
        deployment = conn.execute(insert(pt.deployed_models).values(
            model_group_id=group, model_id=model, threshold=threshold, deployed_by="me",
            reason="r", deployed_at=when, live=True).returning(pt.deployed_models.c.id)
        ).scalar_one()
        conn.execute(insert(pt.requests).values(
            id="r1", endpoint="/predict", token_id=token, deployment_id=deployment,
            model_id=model, n_observations=observations, n_new=observations, latency_ms=1.0,
            received_at=when))
    return {"model": model, "group": group, "token": token, "deployment": deployment}


def case_rows(n: int, seed: int = 0, sorted_days: bool = True) -> Any:
    """A small case data set (``case_id``, ``date`` over 90 days, ``x1``, ``x2``, ``kind``,
    ``outcome``) whose outcome follows x1, x2 squared and kind "a". ``sorted_days`` False
    leaves the rows out of date order (a refit must keep the loaded order)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=(2, n))
    kind = rng.choice(["a", "b", "c"], n)
    logit = 1.2 * x1 - 0.8 * x2 ** 2 + np.where(kind == "a", 0.8, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    day = rng.integers(0, 90, n)
    day = np.sort(day) if sorted_days else day
    return pd.DataFrame({"case_id": [f"c{i}" for i in range(n)],
                         "date": pd.Timestamp("2021-01-01", tz="UTC")
                         + pd.to_timedelta(day, unit="D"),
                         "x1": x1, "x2": x2, "kind": kind, "outcome": y})


def example_config() -> dict:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def write_project(folder: Path, **overrides: object) -> Path:
    """A small, fast project on the synthetic generator (overrides replace top-level sections).
    The example's refit after choice and group size are off unless an override brings them:
    each grid model is then the model selected and a source's own columns are the inputs
    (tests/test_refit.py and tests/test_group_size.py test those two)."""
    config = example_config()
    config["evaluation"]["selection"].pop("refit", None)
    config["features"].pop("group_size", None)
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
def cpdb_loaded(shared_data: SharedData) -> object:
    """The real Chicago CPDB files, loaded and linked once per test session (about 8 s; under
    xdist once per worker, so its users share the xdist group "cpdb")."""
    from rudikit.data.cpdb.tables import load_cpdb

    shared_data / "eis/chicago_cpdb/final-profiles.csv.gz"  # noqa: B018 - present, or skip/fail
    return load_cpdb(shared_data.root)


# --- pytest-xdist: which tests share a worker -----------------------------------------------


def _shared_fixture(item: pytest.Item) -> bool:
    """Whether the test uses a module- or session-scoped fixture of ours (built once per
    worker, so its users should run on one worker)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    for name in info.names_closure:
        if name == "shared_data":  # cheap
            continue
        for definition in info.name2fixturedefs.get(name, ()):
            if definition.scope in ("module", "session") and definition.baseid.startswith(
                    "tests"):
                return True
    return False


class _GroupSuffix:
    """pytest-xdist's loadgroup sends a group to one worker by the ``@group`` suffix it adds to
    each test's node id, but pytest-xdist 3.8 writes it to ``Node._nodeid``, which pytest 9.2
    no longer reads (the id is ``Node._id``): every test was then handed out on its own and
    each worker built the shared fixtures again (pytest-xdist issue 1386, fix pending in
    PR 1388). Added here, after xdist's hook, only where it is still missing."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        if not getattr(config.option, "loadgroup", False):  # set on xdist workers only
            return
        from _pytest.nodeid import NodeId

        for item in items:
            names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                            for m in item.iter_markers("xdist_group")})
            suffixed = item.nodeid.rfind("@") > item.nodeid.rfind("]")  # xdist's own rule
            if names and not suffixed and hasattr(item, "_id"):
                item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(names)}")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_GroupSuffix(), "rudi-xdist-group-suffix")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``--dist loadgroup``: the CPDB users share one worker (one load of the real files),
    and each module whose tests share an expensive fixture stays on one worker; every other
    test is handed out on its own, which balances the two workers."""
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        if "cpdb_loaded" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("cpdb"))
        elif _shared_fixture(item) or getattr(getattr(item, "module", None),
                                                        "XDIST_SHARED_CACHE", False):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
