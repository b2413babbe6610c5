"""The results store on SQLite and PostgreSQL: migrations, history, transactions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, insert, inspect, select

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


def test_bulk_writes_store_the_rows_sqlalchemy_inserts_would(store, monkeypatch) -> None:
    """Predictions, evaluations and reasons go in by COPY (PostgreSQL) or executemany (SQLite):
    the stored rows equal those SQLAlchemy's ``insert`` stores for the same values, missing
    labels, dates and metric bounds included, over more rows than one SQLite batch, and the
    predictions and reasons each in two parts (the predictions' first of two SQLite batches)."""
    monkeypatch.setattr(results, "CHUNK_ROWS", results.BATCH_ROWS + 3)
    url, schema = store
    engine = open_store(url, schema=schema)
    run = results.start_run(engine, "p", "h", {}, 0, "real")
    group = results.get_or_create_model_group(engine, "p", "lr", {}, {}, "y")
    n = results.BATCH_ROWS + 7
    rng = np.random.default_rng(0)
    entity = np.array([f"e{i}" for i in range(n)], dtype=object)
    as_of = np.datetime64("2020-01-01T00:00") + rng.integers(0, 10**6, n).astype(
        "timedelta64[m]")
    as_of[3] = np.datetime64("NaT")
    score = rng.random(n)
    label = rng.integers(0, 2, n).astype(float)
    label[5] = np.nan
    metrics = [MetricValue("roc_auc", "", 0.7, 0.6, 0.8, n),
               MetricValue("precision", "0.5", float("nan"), None, None, n)]
    bulk = results.record_model(engine, fitted(run, group), entity_ids=entity, as_of=as_of,
                                score=score, label=label, metrics=metrics, importances=[])
    oracle = results.record_model(engine, fitted(run, group), entity_ids=entity[:0],
                                  as_of=as_of[:0], score=score[:0], label=label[:0],
                                  metrics=[], importances=[])
    rank_abs, rank_pct = results.ranks(score)
    created = results.now()
    with engine.begin() as conn:  # the oracle: SQLAlchemy's insert of one dict per row
        conn.execute(insert(t.predictions), [
            {"model_id": oracle, "entity_id": str(e), "as_of_date": None if np.isnat(d)
             else d.astype("datetime64[us]").item(), "score": float(s),
             "label": None if np.isnan(y) else int(y), "rank_abs": int(ra), "rank_pct": float(rp)}
            for e, d, s, y, ra, rp in zip(entity, as_of, score, label, rank_abs, rank_pct,
                                          strict=True)])
        conn.execute(insert(t.evaluations), [
            {"model_id": oracle, "metric": m.metric, "parameter": m.parameter,
             "value": None if np.isnan(m.value) else m.value, "lower": m.lower,
             "upper": m.upper, "n": m.n, "created_at": created} for m in metrics])
    reasons = pd.DataFrame({"row": [0, 0, 3, n - 1], "feature": ["a", "b", "a", "c"],
                            "contribution": [0.5, -0.25, 1.0, 0.125],
                            "value": ["x", None, "1.5", "y"], "rank": [1, 2, 1, 1]})
    monkeypatch.setattr(results, "CHUNK_ROWS", 3)  # the reasons in two parts too
    assert results.record_individual_importances(engine, bulk, "coefficient", entity, as_of,
                                                 reasons) == 4
    with engine.begin() as conn:
        conn.execute(insert(t.individual_importances), [
            {"model_id": oracle, "entity_id": str(entity[r]), "as_of_date": None
             if np.isnat(as_of[r]) else as_of[r].astype("datetime64[us]").item(),
             "feature": f, "method": "coefficient", "contribution": c,
             "value": None if pd.isna(v) else v, "rank": k}
            for r, f, c, v, k in reasons.itertuples(index=False)])

    def stored(table, model_id: int, skip: tuple[str, ...] = ()) -> list[tuple]:  # type: ignore[no-untyped-def]
        columns = [c for c in table.c if c.name not in ("id", "model_id", *skip)]
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(*columns).where(
                table.c.model_id == model_id).order_by(table.c.id))]

    predictions = stored(t.predictions, bulk)
    assert len(predictions) == n and predictions == stored(t.predictions, oracle)
    assert predictions[3][1] is None and predictions[5][3] is None
    # the oracle's train_seconds row came first, from its own (empty) record_model
    assert sorted(stored(t.evaluations, bulk, ("created_at",)), key=repr) == sorted(
        stored(t.evaluations, oracle, ("created_at",)), key=repr)
    reasons_stored = stored(t.individual_importances, bulk)
    assert reasons_stored == stored(t.individual_importances, oracle)
    assert reasons_stored[1][5] is None  # a missing value is NULL, not the text 'NaN'
    assert reasons_stored[2][1] is None  # row 3 has no date
