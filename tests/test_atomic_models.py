"""Each stored model is one transaction: its row, predictions, evaluations (a refit's marker
included), fairness audits and an ensemble's members land together or not at all, on SQLite and
PostgreSQL. A database trigger makes one of those writes fail, as a constraint violation or a
crash would, in the middle of a real ``rudi run``; the oracle is the store itself: no model is
left without the rest of its rows, and the models stored before the failure are whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
import yaml
from conftest import write_project
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from rudikit.run.develop import run_project
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from rudikit.store.queries.evaluations import REFIT_OF

SPLIT = {"name": "r", "kind": "random", "test_size": 0.2, "validation_size": 0.2, "seed": 4}
GRID = [{"algorithm": "rate_by_category", "params": {"column": "object_of_search"}},
        {"algorithm": "logistic_regression", "params": {"C": [0.1, 1.0]}}]
#: The injected failure as raised: through SQLAlchemy, or from psycopg's COPY (predictions and
#: evaluations on PostgreSQL), which SQLAlchemy does not wrap.
FAILED = (DBAPIError, psycopg.Error)
ENSEMBLE = {"algorithm": "ensemble", "params": {"members": 2, "method": "probability_average"}}


def _project(folder: Path, models: list[dict[str, Any]], refit: bool = False) -> Path:
    """A small case project (audited at the example's operating point, no mitigation)."""
    selection = {"metric": "roc_auc"} | ({"refit": "train_and_validation"} if refit else {})
    write_project(folder, models=models, splits=[SPLIT],
                  evaluation={"bootstrap": 0, "selection": selection})
    config = yaml.safe_load((folder / "rudi.yaml").read_text(encoding="utf-8"))
    config["data"]["sources"][0]["rows_per_month"] = 300
    config["fairness"].pop("mitigation", None)
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return folder


def _fail_inserts(engine: Engine, table: str, when: str) -> None:
    """Every insert into ``table`` for which the SQL condition ``when`` holds fails."""
    name = f"fail_{table}"
    if engine.dialect.name == "sqlite":
        statements = [f"CREATE TRIGGER {name} BEFORE INSERT ON {table} WHEN {when} "
                      "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"]
    else:
        statements = [f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                      f"IF {when} THEN RAISE EXCEPTION 'injected failure'; END IF; "
                      "RETURN NEW; END $$",
                      f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW "
                      f"EXECUTE FUNCTION {name}()"]
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def _failing_run(store: tuple[str, str | None], folder: Path, table: str, when: str
                 ) -> dict[str, pd.DataFrame]:
    """Run the project at ``folder`` with inserts into ``table`` failing when ``when`` holds;
    the run must fail with the injected error. Returns the stored tables."""
    url, schema = store
    engine = open_store(url, schema=schema)
    _fail_inserts(engine, table, when)
    with pytest.raises(FAILED, match="injected failure"):
        run_project(folder, url=url, schema=schema)
    with engine.connect() as conn:
        found = {tbl.name: pd.DataFrame(conn.execute(select(tbl)).mappings().all(),
                                        columns=list(tbl.c.keys()))
                 for tbl in (t.runs, t.model_groups, t.models, t.predictions, t.evaluations,
                             t.fairness_audits, t.fairness_requirements, t.ensemble_members)}
    engine.dispose()
    return found


def _assert_whole(stored: dict[str, pd.DataFrame]) -> None:
    """The run failed, and every model it stored has its predictions (one per test row),
    evaluations, audits and requirement results."""
    assert stored["runs"]["status"].tolist() == ["failed"]
    models = stored["models"].set_index("id")
    predictions = stored["predictions"].groupby("model_id").size()
    assert predictions.to_dict() == models["test_rows"].to_dict()
    for table in ("evaluations", "fairness_audits", "fairness_requirements"):
        assert set(stored[table]["model_id"]) == set(models.index), table


def _algorithms(stored: dict[str, pd.DataFrame]) -> list[str]:
    groups = stored["model_groups"].set_index("id")["algorithm"]
    return [groups[g] for g in stored["models"].sort_values("id")["model_group_id"]]


def test_a_fit_whose_audit_fails_to_store_leaves_no_rows_and_earlier_fits_are_whole(
        store: tuple[str, str | None], tmp_path: Path) -> None:
    folder = _project(tmp_path / "proj", GRID)
    # the third fit's audit fails, after its model row, predictions and evaluations were sent
    stored = _failing_run(store, folder, "fairness_audits", "(SELECT count(*) FROM models) >= 3")
    _assert_whole(stored)
    assert _algorithms(stored) == ["rate_by_category", "logistic_regression"]


def test_an_ensemble_whose_members_fail_to_store_is_not_stored(
        store: tuple[str, str | None], tmp_path: Path) -> None:
    folder = _project(tmp_path / "proj", [*GRID, ENSEMBLE])
    stored = _failing_run(store, folder, "ensemble_members", "1 = 1")
    _assert_whole(stored)
    assert _algorithms(stored) == ["rate_by_category"] + ["logistic_regression"] * 2
    assert stored["ensemble_members"].empty


def test_a_refit_whose_marker_fails_to_store_is_not_stored_as_a_plain_model(
        store: tuple[str, str | None], tmp_path: Path) -> None:
    folder = _project(tmp_path / "proj", GRID, refit=True)
    stored = _failing_run(store, folder, "evaluations", f"NEW.metric = '{REFIT_OF}'")
    _assert_whole(stored)
    # the grid only: no model trained on the training and validation rows
    assert _algorithms(stored) == ["rate_by_category"] + ["logistic_regression"] * 2
    assert stored["models"]["train_rows"].nunique() == 1
