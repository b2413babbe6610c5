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


def test_plain_values_for_json_and_numeric_columns() -> None:
    import math

    import numpy as np
    import pandas as pd

    from rudikit.store.results import plain

    value = plain({"a": np.float64(0.25), "b": [np.int64(3), np.bool_(True), float("nan")],
                   1: (pd.NA, float("inf"), "text", None)})
    assert value == {"a": 0.25, "b": [3, True, None], "1": [None, None, "text", None]}
    assert type(value["b"][0]) is int and type(value["b"][1]) is bool
    assert plain(np.float32(-math.inf)) is None and plain(pd.NaT) is None


def test_boolean_text_is_read_the_same_by_the_loader_and_the_encoder() -> None:
    import pandas as pd

    from rudikit.data.police_uk import _to_bool
    from rudikit.features.encoding import _bool_value

    text = ["True", "false", "1.0", "0", "yes", "N", "maybe", None]
    loaded, bad = _to_bool(pd.Series(text, dtype="string"))
    encoded = [_bool_value(v) for v in text]
    for value, enc in zip(loaded.tolist(), encoded, strict=True):
        assert (value is pd.NA and enc != enc) or float(value) == enc
    assert bad.tolist() == [False] * 6 + [True, False]
