"""The results store on SQLite and PostgreSQL: migrations, history, transactions."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, inspect, select

from rudikit.evaluation.metrics import MetricValue
from rudikit.store import results
from rudikit.store import tables as t
from rudikit.store.engine import open_store

EXPECTED = {"runs", "model_groups", "models", "predictions", "evaluations",
            "feature_importances", "data_snapshots", "alembic_version"}


def count(engine, table) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def fitted(run_id: int, group_id: int) -> results.FittedModel:
    return results.FittedModel(run_id, group_id, "s", 10, 3, (None, None), (None, None),
                               "ab" * 32, "/tmp/x.skops", 0.5)


def test_migrations_create_the_schema_and_are_idempotent(store) -> None:
    url, schema = store
    engine = open_store(url, schema=schema)
    names = set(inspect(engine).get_table_names(schema=schema))
    assert names >= EXPECTED
    open_store(url, schema=schema)  # a second open upgrades nothing and breaks nothing


def test_history_is_kept_and_model_groups_are_shared(store) -> None:
    url, schema = store
    engine = open_store(url, schema=schema)
    ids = []
    for _ in range(2):  # the same configuration run twice
        run = results.start_run(engine, "p", "h", {"a": 1}, 0, "synthetic")
        group = results.get_or_create_model_group(engine, "p", "lightgbm", {"n": 5},
                                                  {"categorical": ["x"]}, "y")
        model = results.record_model(
            engine, fitted(run, group), entity_ids=np.array(["a", "b", "c"]), as_of=None,
            score=np.array([0.9, 0.2, 0.2]), label=np.array([1, 0, 1]),
            metrics=[MetricValue("roc_auc", "", 0.75, 0.5, 1.0, 3)],
            importances=[("x", "permutation_roc_auc", 0.1, 0.01, 0.02)])
        results.finish_run(engine, run, "finished")
        ids.append((run, group, model))
    assert ids[0][0] != ids[1][0] and ids[0][2] != ids[1][2]
    assert ids[0][1] == ids[1][1]  # same group, two models
    assert count(engine, t.runs) == 2 and count(engine, t.models) == 2
    assert count(engine, t.predictions) == 6
    with engine.connect() as conn:
        ranks = conn.execute(select(t.predictions.c.rank_abs).where(
            t.predictions.c.model_id == ids[0][2]).order_by(t.predictions.c.id)).scalars().all()
        assert ranks == [1, 2, 2]  # tied scores share a rank
        run = conn.execute(select(t.runs).where(t.runs.c.id == ids[0][0])).mappings().one()
        assert run["status"] == "finished" and run["library_versions"]["scikit-learn"]


def test_a_failed_write_leaves_nothing_half_stored(store) -> None:
    url, schema = store
    engine = open_store(url, schema=schema)
    run = results.start_run(engine, "p", "h", {}, 0, "real")
    group = results.get_or_create_model_group(engine, "p", "lr", {}, {}, "y")
    before = {tbl.name: count(engine, tbl) for tbl in (t.models, t.predictions, t.evaluations)}
    with pytest.raises(ValueError):
        # a bad label fails after the model row was inserted inside the transaction
        results.record_model(engine, fitted(run, group), entity_ids=np.array(["a", "b"]),
                             as_of=None, score=np.array([0.1, 0.2]),
                             label=np.array([0, "x"], dtype=object), metrics=[], importances=[])
    after = {tbl.name: count(engine, tbl) for tbl in (t.models, t.predictions, t.evaluations)}
    assert after == before
