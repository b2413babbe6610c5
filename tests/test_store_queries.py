"""The store's read API (``rudikit.store.queries``) on SQLite and PostgreSQL: each query function
reads back rows written by the real writers, and no module outside ``rudikit.store`` runs SQL
reads of its own."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert

from rudikit.evaluation.metrics import MetricValue
from rudikit.service import audit
from rudikit.service.auth import create_token, revoke_token
from rudikit.store import list_tables, results
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from rudikit.store.monitoring_tables import alerts, monitor_metrics, monitor_runs, source_periods
from rudikit.store.production_tables import (
    deployed_models,
    outcomes,
    production_predictions,
    requests,
)
from rudikit.store.queries import evaluations as ev
from rudikit.store.queries import fairness as fq
from rudikit.store.queries import lists as lq
from rudikit.store.queries import monitoring as mq
from rudikit.store.queries import predictions as pq
from rudikit.store.queries import production as prq
from rudikit.store.queries import runs as rq
from rudikit.store.queries import snapshots as sq
from rudikit.store.queries import tokens as tq

SRC = Path(__file__).resolve().parents[1] / "src" / "rudikit"
DAY = datetime(2020, 3, 1, tzinfo=UTC)


@dataclass
class Stored:
    engine: object
    runs: list[int]
    group: int
    other_group: int
    models: list[int]  # run 1: model of group, model of other group; run 2: model of group
    snapshots: list[int]
    token: int
    deployments: list[int]
    monitor_runs: list[int]
    review: int


def _naive(value: object) -> pd.Timestamp:
    """A stored timestamp as naive UTC (PostgreSQL returns aware ones, SQLite naive)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_convert(None) if stamp.tzinfo else stamp


def _metrics(value: float) -> list[MetricValue]:
    return [MetricValue("roc_auc", "", value, value - 0.1, value + 0.1, 3),
            MetricValue("precision_at_k", "2_abs", value / 2, None, None, 3),
            MetricValue("precision_at_k", "2_abs@2020-03-01", value / 4, None, None, 3)]


def _fairness(value: float) -> pd.DataFrame:
    return pd.DataFrame([{
        "attribute": "sex", "group": g, "metric": "precision", "value": v, "lower": None,
        "upper": None, "numerator": 1, "denominator": 2, "reference_group": "m",
        "disparity_ratio": v / 0.5, "difference_pp": (v - 0.5) * 100, "p_value": None,
        "fair": True, "n": 2, "status": "ok"} for g, v in (("m", 0.5), ("f", value / 2))])


@dataclass
class _Requirement:
    name: str
    metric: str
    max_gap_pp: float


@dataclass
class _Result:
    requirement: _Requirement
    passed: bool
    units_met: int
    units_evaluated: int
    summary: str
    outcomes: list


def _fit(engine, run_id: int, group: int, value: float) -> int:  # type: ignore[no-untyped-def]
    fitted = results.FittedModel(run_id, group, "s", 10, 3, (None, None), (DAY, DAY),
                                 "ab" * 32, f"/tmp/m{run_id}-{group}.skops", 0.5)
    model = results.record_model(
        engine, fitted, entity_ids=np.array(["a", "b", "c"]),
        as_of=np.array([DAY, DAY, DAY + timedelta(days=1)]), score=np.array([0.9, 0.2, 0.5]),
        label=np.array([1, 0, 1]), metrics=_metrics(value),
        importances=[("x", "permutation_roc_auc", value, 0.01, 0.02),
                     ("y", "permutation_roc_auc", value / 2, 0.01, 0.2)],
        audits=[results.Audit("top 2", _fairness(value), [
            _Result(_Requirement("gap", "precision", 10.0), True, 1, 1, "fine", [])])])
    results.record_individual_importances(
        engine, model, "shap", np.array(["a", "b", "c"]),
        np.array([DAY, DAY, DAY + timedelta(days=1)]),
        pd.DataFrame({"row": [0, 0, 1], "feature": ["x", "y", "x"],
                      "contribution": [0.3, -0.1, 0.2], "value": ["1", "2", "3"],
                      "rank": [1, 2, 1]}))
    return model


@pytest.fixture
def stored(store) -> Stored:  # type: ignore[no-untyped-def]
    url, schema = store
    engine = open_store(url, schema=schema)
    config = {"evaluation": {"selection": {"metric": "roc_auc"}}}
    runs = [results.start_run(engine, "p", "h", config | {"n": i}, 0, "synthetic")
            for i in (1, 2)]
    results.start_run(engine, "other", "h", {"n": 3}, 0, "synthetic")
    group = results.get_or_create_model_group(engine, "p", "lightgbm", {"n": 5},
                                              {"categorical": ["x"]}, "y")
    other = results.get_or_create_model_group(engine, "p", "logistic_regression", {"C": 1.0},
                                               {"categorical": ["x"]}, "y")
    models = [_fit(engine, runs[0], group, 0.7), _fit(engine, runs[0], other, 0.6),
              _fit(engine, runs[1], group, 0.8)]
    results.mark_selected(engine, models[0], "best")
    snapshots = [results.record_snapshot(engine, r, source="src", kind="csv", location="x",
                                         files=1, rows=10 * r, bad_rows=0, warnings=0,
                                         checksum=f"c{r}", min_date=DAY, max_date=DAY)
                 for r in runs]
    list_tables.record_list_stability(engine, runs[1], [
        {"kind": "seeds", "parameter": "0/1", "k": 2, "metric": "jaccard", "value": 0.5},
        {"kind": "consecutive", "parameter": "x", "k": 2, "metric": "jaccard", "value": 0.25}])
    list_tables.record_rank_changes(engine, runs[1], pd.DataFrame({
        "entity_id": ["a", "b"], "as_of_date": [DAY, DAY], "horizon": ["day", "day"],
        "previous_date": [DAY - timedelta(days=1)] * 2, "rank": [1, 2],
        "previous_rank": [2, None], "change": [1, None]}), model_group_id=group)
    review = list_tables.record_review(engine, "a", DAY, reviewer="sam", outcome="none",
                                       agreement="agree", model_group_id=group)
    token, _ = create_token(engine, "predict", "app", "admin")
    spare, _ = create_token(engine, "analyst", "old", "admin")
    revoke_token(engine, spare, "admin")
    with engine.begin() as conn:
        deployments = [conn.execute(insert(deployed_models).values(
            model_group_id=g, model_id=m, threshold=0.5, deployed_by="me", reason="why",
            deployed_at=DAY, live=live).returning(deployed_models.c.id)).scalar_one()
            for g, m, live in ((other, models[1], False), (group, models[2], True))]
        conn.execute(insert(requests).values(
            id="r1", endpoint="predict", token_id=token, deployment_id=deployments[1],
            model_id=models[2], n_observations=2, n_new=2, latency_ms=1.0, received_at=DAY))
        ids = [conn.execute(insert(production_predictions).values(
            observation_id=o, request_id="r1", deployment_id=deployments[1], model_id=models[2],
            features={"x": o}, payload_hash="h", score=s, threshold=0.5, decision=s >= 0.5,
            created_at=DAY + timedelta(hours=h)).returning(production_predictions.c.id)
            ).scalar_one() for o, s, h in (("o1", 0.8, 1), ("o2", 0.3, 2))]
        conn.execute(insert(outcomes).values(prediction_id=ids[0], observation_id="o1",
                                             outcome=1, token_id=token, recorded_at=DAY))
        audit.record(conn, "me", "retrain_rejected", "group", {"why": "worse"})
        audit.record(conn, "me", "deploy", "deployment 1", {})
        monitors = [conn.execute(insert(monitor_runs).values(
            project=p, deployment_id=deployments[1], model_group_id=group, model_id=models[2],
            n_predictions=2, n_outcomes=1, n_critical=c, n_warning=1,
            started_at=DAY, finished_at=DAY + timedelta(days=d)).returning(monitor_runs.c.id)
            ).scalar_one() for p, c, d in (("p", 1, 2), ("p", 0, 3), ("other", 2, 1))]
        conn.execute(insert(monitor_metrics), [
            {"monitor_run_id": monitors[0], "section": s, "subject": sub, "segment": "",
             "metric": m, "value": v, "n": 2}
            for s, sub, m, v in (("performance", "all", "precision", 0.5),
                                 ("expected", "test", "precision", 0.6),
                                 ("drift", "x", "psi", 0.3), ("drift", "y", "psi", 0.1),
                                 ("inputs", "src", "rows", 10.0))])
        conn.execute(insert(alerts), [
            {"monitor_run_id": monitors[0], "kind": k, "subject": "x", "metric": "psi",
             "value": 0.3, "bound": 0.2, "severity": sev, "window": "w", "message": "m",
             "created_at": DAY} for k, sev in (("drift", "warning"), ("freshness", "critical"))])
        conn.execute(insert(source_periods), [
            {"monitor_run_id": r, "source": "src", "period": p, "row_count": n,
             "checksum": f"{r}{p}", "recorded_at": DAY}
            for r, p, n in ((monitors[0], "2020-01", 5), (monitors[1], "2020-01", 6),
                            (monitors[1], "2020-02", 7))])
    yield Stored(engine, runs, group, other, models, snapshots, token, deployments, monitors,
                 review)
    engine.dispose()


def test_runs(stored: Stored) -> None:
    e, (r1, r2), m = stored.engine, stored.runs, stored.models
    assert rq.run(e, r1)["config"]["n"] == 1 and rq.run(e, 999) is None
    assert rq.run_config(e, r2)["n"] == 2 and rq.run_config(e, 999) is None
    assert rq.newest_run_config(e) == {"n": 3}
    assert rq.ids(e, t.runs) == [r1, r2, r2 + 1]
    models = rq.run_models(e, r1)
    assert models["id"].tolist() == m[:2]
    assert models["algorithm"].tolist() == ["lightgbm", "logistic_regression"]
    assert models["group_features"].iloc[0] == {"categorical": ["x"]}
    assert rq.models_of_run(e, r2)["id"].tolist() == [m[2]]
    assert rq.models_of_group(e, stored.group)["id"].tolist() == [m[0], m[2]]
    groups = rq.run_groups(e, r1)
    assert groups["selected"].tolist() == [True, False]
    assert groups["hyperparameters"].tolist() == [{"n": 5}, {"C": 1.0}]
    assert rq.selected_group(e, r1) == stored.group and rq.selected_group(e, r2) is None
    assert rq.model(e, m[1])["model_group_id"] == stored.other_group
    assert rq.model(e, 999) is None
    assert rq.model_group(e, stored.group)["algorithm"] == "lightgbm"
    with e.connect() as conn:
        key = rq.model_group(conn, stored.other_group)["group_key"]
        assert rq.model_group_id(conn, key) == stored.other_group
        assert rq.model_group_id(conn, "nope") is None
    assert rq.deployable_model(e, stored.group)["id"] == m[0]  # selected beats newer
    assert rq.deployable_model(e, stored.group, m[2])["id"] == m[2]
    assert rq.deployable_model(e, stored.group, m[1]) is None
    overview = rq.models_overview(e)
    assert overview["id"].tolist() == m and overview["run_started"].notna().all()
    detail = rq.model_detail(e, m[2])
    assert detail["algorithm"] == "lightgbm" and detail["artefact_hash"] == "ab" * 32
    assert rq.model_detail(e, 999) is None
    assert sorted(tuple(r) for r in rq.group_hyperparameters(e, r1)) == sorted(
        [(stored.group, {"n": 5}), (stored.other_group, {"C": 1.0})])


def test_evaluations(stored: Stored) -> None:
    e, m = stored.engine, stored.models
    evals = ev.evaluations_of_models(e, m[:2])
    assert len(evals) == 8 and set(evals["model_id"]) == set(m[:2])  # with train_seconds
    rows = ev.evaluations_of_model(e, m[0])
    assert [(r["metric"], r["parameter"]) for r in rows] == [
        ("precision_at_k", "2_abs"), ("precision_at_k", "2_abs@2020-03-01"), ("roc_auc", ""),
        ("train_seconds", "")]
    assert rows[2]["value"] == pytest.approx(0.7) and rows[2]["lower"] == pytest.approx(0.6)
    assert ev.metric_choices(e) == [("precision_at_k", "2_abs"),
                                    ("precision_at_k", "2_abs@2020-03-01"), ("roc_auc", ""),
                                    ("train_seconds", "")]
    values = ev.metric_values(e, "roc_auc", "").sort_values("model_id")
    assert values["value"].tolist() == pytest.approx([0.7, 0.6, 0.8])
    history = ev.project_metric_history(e, "p", stored.runs[0], "roc_auc")
    assert sorted(history["model_id"]) == m[:2] and set(history["split"]) == {"s"}
    assert len(ev.project_metric_history(e, "p", stored.runs[1], "roc_auc")) == 3
    history = ev.group_metric_history(e, stored.group, "roc_auc", "")
    assert history["run_id"].tolist() == stored.runs
    assert history["value"].tolist() == pytest.approx([0.7, 0.8])
    top = ev.top_k_precision(e, [m[0]], 2)
    assert sorted(top["parameter"]) == ["2_abs", "2_abs@2020-03-01"]
    assert ev.top_k_precision(e, [m[0]], 20).empty
    imps = ev.feature_importances(e, [m[2], m[0]])
    assert imps["model_id"].tolist() == [m[0], m[0], m[2], m[2]]
    assert imps["feature"].tolist() == ["x", "y", "x", "y"]
    assert imps["importance"].tolist() == pytest.approx([0.7, 0.35, 0.8, 0.4])


def test_predictions(stored: Stored, monkeypatch: pytest.MonkeyPatch) -> None:
    e, m = stored.engine, stored.models
    rows = pq.scores_frame(e, [m[0]])
    assert sorted(zip(rows["score"], rows["label"], strict=True)) == [
        (0.2, 0), (0.5, 1), (0.9, 1)]
    # fetched in chunks smaller than the rows: every row, typed, an unknown label NaN
    typed = pq.scores_frame(e, m, chunk=2)
    assert len(typed) == 9 and typed.dtypes.tolist() == [np.int64, np.float64, np.float64]
    assert sorted(typed["model_id"].unique().tolist()) == sorted(m)
    assert list(pq.scores_frame(e, []).columns) == ["model_id", "score", "label"]
    monkeypatch.setattr(pq, "IDS_PER_QUERY", 2)  # the ids over several queries: the same rows
    assert sorted(pq.scores_frame(e, m).itertuples(index=False, name=None)) == sorted(
        typed.itertuples(index=False, name=None))
    preds = pq.model_predictions(e, m[0])
    assert sorted(preds["entity_id"]) == ["a", "b", "c"] and len(preds.columns) == 4
    top = pq.top_predictions(e, m[0], 2)
    assert top["entity_id"].tolist() == ["a", "c"] and top["rank_abs"].tolist() == [1, 2]
    reasons = pq.reasons(e, m[0])
    assert sorted(zip(reasons["entity_id"], reasons["feature"], strict=True)) == [
        ("a", "x"), ("a", "y"), ("b", "x")]
    assert pq.reasons(e, m[0], ["b"])["contribution"].tolist() == [0.2]
    lists = pq.group_lists(e, stored.group)
    assert len(lists) == 6 and {r.model_id for r in lists} == {m[0], m[2]}
    dates = pq.group_list_dates(e, stored.group)
    assert sorted(_naive(d) for d in dates) == [pd.Timestamp("2020-03-01"),
                                                pd.Timestamp("2020-03-02")]
    start, end = DAY, DAY + timedelta(days=1)
    assert sorted(pq.models_scoring(e, stored.group, start, end)) == [m[0], m[2]]
    assert pq.models_scoring(e, stored.group, end + timedelta(days=1),
                             end + timedelta(days=2)) == []
    assert sorted(tuple(r) for r in pq.entity_scores(e, m[0], start, end)) == [
        ("a", 0.9), ("b", 0.2)]


def test_snapshots(stored: Stored) -> None:
    e, (r1, r2), (s1, s2) = stored.engine, stored.runs, stored.snapshots
    assert sq.snapshot(e, s2)["rows"] == 10 * r2 and sq.snapshot(e, 999) is None
    assert sq.snapshots_of_run(e, r1)["id"].tolist() == [s1]
    assert sq.snapshot_ids(e, r2) == [s2]
    assert sq.source_history(e, "p", "src", s2)["checksum"].tolist() == [f"c{r1}", f"c{r2}"]
    assert sq.source_history(e, "p", "src", s1)["id"].tolist() == [s1]
    assert sq.source_history(e, "other", "src", s2).empty


def test_fairness(stored: Stored) -> None:
    e, m = stored.engine, stored.models
    audits = fq.audits(e, [m[0]])
    assert audits["group_value"].tolist() == ["m", "f"]
    assert audits["value"].tolist() == pytest.approx([0.5, 0.7 / 2])  # model 0's roc_auc 0.7
    assert len(fq.audits(e, m)) == 6
    reqs = fq.requirements(e, [m[1]])
    assert [(r["name"], r["passed"], r["model_id"]) for r in reqs] == [("gap", True, m[1])]
    # a run's verdicts: the two models of the first run, none of the second run's
    of_run = fq.run_requirements(e, stored.runs[0])
    assert of_run["model_id"].tolist() == m[:2] and (of_run["name"] == "gap").all()
    assert fq.run_requirements(e, stored.runs[1])["model_id"].tolist() == [m[2]]
    audited = fq.audited_models(e)
    assert [a["id"] for a in audited] == m[::-1] and audited[0]["algorithm"] == "lightgbm"


def test_lists(stored: Stored) -> None:
    e, r2 = stored.engine, stored.runs[1]
    stability = lq.stability(e, r2)
    assert stability["kind"].tolist() == ["seeds", "consecutive"]
    assert stability["value"].tolist() == pytest.approx([0.5, 0.25])
    changes = lq.changes(e, r2)
    assert changes["entity_id"].tolist() == ["a", "b"] and changes["rank"].tolist() == [1, 2]
    assert lq.changes(e, r2, top=1)["entity_id"].tolist() == ["a"]  # what the report reads
    from rudikit.reports.temporal_report import rank_change_summary

    before = f"{DAY - timedelta(days=1):%Y-%m-%d}"
    # top 2: b is new to it, a moved up one place; top 1: a was not in the earlier top 1
    for k, moved in [(2, "1"), (1, "n/a")]:
        when, summary = rank_change_summary(e, r2, k)
        assert f"{when:%Y-%m-%d}" == f"{DAY:%Y-%m-%d}"
        assert summary == [{"horizon": "day", "previous_date": before, "entered": 1,
                            "median_change": moved}]
    assert lq.stability(e, stored.runs[0]).empty
    rows = lq.reviews(e, ("entity_id", "reviewer", "agreement"))
    assert [tuple(r) for r in rows] == [("a", "sam", "agree")]
    assert list_tables.load_reviews(e)["reviewer"].tolist() == ["sam"]
    found = lq.reviews_between(e, DAY, DAY + timedelta(days=1))
    assert [r["id"] for r in found] == [stored.review]
    assert lq.reviews_between(e, DAY + timedelta(days=1), DAY + timedelta(days=2)) == []
    assert lq.prior_review(e, "a", DAY, DAY + timedelta(days=1)).reviewer == "sam"
    assert lq.prior_review(e, "b", DAY, DAY + timedelta(days=1)) is None
    assert lq.review_time(e, stored.review) is not None


def test_tokens(stored: Stored) -> None:
    e = stored.engine
    row = tq.token(e, stored.token)
    assert row["name"] == "app" and row["role"] == "predict" and len(row["token_hash"]) == 64
    assert tq.token(e, 999) is None
    found = tq.token_by_hash(e, row["token_hash"])
    assert (found["id"], found["name"], found["revoked_at"]) == (stored.token, "app", None)
    assert tq.token_by_hash(e, "0" * 64) is None
    listed = tq.tokens(e)
    assert [r["name"] for r in listed] == ["app", "old"] and "token_hash" not in listed[0]
    assert listed[1]["revoked_by"] == "admin"


def test_production(stored: Stored) -> None:
    e, (old, live), m = stored.engine, stored.deployments, stored.models
    with e.connect() as conn:
        assert prq.live_deployment(conn)["id"] == live
    assert prq.previous_deployment(e, live)["id"] == old
    assert prq.previous_deployment(e, old) is None
    deployments = prq.deployments(e)
    assert [(d["id"], d["algorithm"]) for d in deployments] == [
        (live, "lightgbm"), (old, "logistic_regression")]
    assert list(deployments[0]) == prq.DEPLOYMENT_COLUMNS
    assert prq.deployed_model_ids(e) == [m[1], m[2]]
    decisions = prq.retrain_decisions(e)
    assert [d["action"] for d in decisions] == ["retrain_rejected"]
    assert list(decisions[0]) == prq.AUDIT_COLUMNS
    assert prq.has_production_predictions(e, live) and not prq.has_production_predictions(e, old)
    scores = prq.production_scores(e, live, DAY, DAY + timedelta(hours=1, minutes=30))
    assert [tuple(r) for r in scores] == [("o1", 0.8)]
    first, last = prq.production_span(e, live)
    assert (_naive(first), _naive(last)) == (pd.Timestamp("2020-03-01 01:00"),
                                             pd.Timestamp("2020-03-01 02:00"))
    assert prq.production_span(e, old) == (None, None)
    assert prq.production_features(e, ["o2", "zz"]) == {"o2": {"x": "o2"}}
    found = prq.stored_prediction(e, "o1", ("observation_id", "score"))
    assert (found["score"], found["outcome"], found["features"]) == (0.8, 1, {"x": "o1"})
    assert prq.stored_prediction(e, "r1", ("observation_id",)) is None  # two observations
    assert prq.stored_prediction(e, "nope", ("observation_id",)) is None
    assert prq.traffic_totals(e) == {"requests": 1, "predictions": 2, "outcomes": 1}
    assert prq.flagged_count(e) == 1
    assert _naive(prq.last_request_time(e)) == pd.Timestamp("2020-03-01")
    assert prq.daily_traffic(e, DAY - timedelta(days=1)) == {
        "requests": {"2020-03-01": 1}, "predictions": {"2020-03-01": 2},
        "outcomes": {"2020-03-01": 1}}
    lo, hi = prq.prediction_id_range(e, [m[2]])
    assert hi - lo == 2 and prq.prediction_id_range(e, [m[0]]) == (-1, 0)
    with e.connect() as conn:
        blob = prq.prediction_chunk(conn, [m[2]], lo, hi)
        assert prq.prediction_chunk(conn, [m[0]], lo, hi) is None
    lines = [json.loads(line) for line in blob.splitlines()]
    assert [(x["o"], x["s"], x["y"]) for x in lines] == [("o1", 0.8, 1), ("o2", 0.3, None)]


def test_newest_case_time_reads_the_time_input_with_its_offset(stored: Stored) -> None:
    e, (_, live), m = stored.engine, stored.deployments, stored.models
    two_am = pd.Timestamp("2020-03-01 02:00", tz="UTC")
    # no time input, or one that does not parse ("o1", "o2"): when the cases were scored
    assert pd.Timestamp(prq.newest_case_time(e, [m[2]], None)) == two_am
    assert pd.Timestamp(prq.newest_case_time(e, [m[2]], "x")) == two_am
    assert prq.newest_case_time(e, [m[0]], "when") is None
    assert prq.newest_case_time(e, [], "when") is None
    with e.begin() as conn:  # later in text, earlier in time: 00:00+05:00 is 19:00 UTC
        for o, when in (("w1", "2019-05-01T23:30:00-02:00"), ("w2", "2019-05-02T00:00:00+05:00"),
                        ("w3", None)):
            conn.execute(insert(production_predictions).values(
                observation_id=o, request_id="r1", deployment_id=live, model_id=m[1],
                features={"when": when}, payload_hash="h", score=0.5, threshold=0.5,
                decision=True, created_at=DAY - timedelta(days=400)))
    newest = prq.newest_case_time(e, [m[1]], "when")
    assert newest.tzinfo is not None
    assert pd.Timestamp(newest) == pd.Timestamp("2019-05-02 01:30", tz="UTC")
    assert pd.Timestamp(prq.newest_case_time(e, [m[1], m[2]], "when")) == two_am


def test_monitoring(stored: Stored) -> None:
    e, (a, b, c) = stored.engine, stored.monitor_runs
    assert mq.monitor_run(e, a)["n_critical"] == 1 and mq.monitor_run(e, 999) is None
    assert mq.latest_of_project(e, "p")["id"] == b and mq.latest_of_project(e, "x") is None
    assert mq.last_finished(e)["id"] == b
    found = mq.alerts_of(e, a)
    assert [r["severity"] for r in found] == ["warning", "critical"]
    assert list(found[0]) == mq.ALERT_COLUMNS and mq.alerts_of(e, b) == []
    figures = mq.figures(e, a)
    assert len(figures) == 5
    assert set(mq.figures(e, a, ["drift"])["subject"]) == {"x", "y"}
    assert list(mq.figures(e, b).columns) == list(monitor_metrics.c.keys())
    headline = mq.headline_figures(e, a)
    assert sorted((h.section, h.metric, h.value) for h in headline) == [
        ("drift", "psi", 0.1), ("drift", "psi", 0.3), ("expected", "precision", 0.6),
        ("performance", "precision", 0.5)]
    periods = mq.source_periods_of(e, b)
    assert periods["period"].tolist() == ["2020-01", "2020-02"]
    assert mq.source_periods_of(e, c).columns.tolist() == list(source_periods.c.keys())
    assert [tuple(r) for r in mq.last_digests(e, "src")] == [
        ("2020-01", 6, f"{b}2020-01"), ("2020-02", 7, f"{b}2020-02")]
    assert mq.last_digests(e, "none") == []
    assert mq.project_history(e, "p")["id"].tolist() == [a, b]
    assert mq.project_history(e, "x").columns.tolist() == list(monitor_runs.c.keys())
    counts = mq.alert_counts(e)
    assert counts["id"].tolist() == [c, a, b] and counts["n_critical"].tolist() == [2, 1, 0]
    assert [r["id"] for r in mq.passes_of_groups(e, [stored.group])] == [c, b, a]
    assert mq.passes_of_groups(e, [stored.other_group]) == []


# --- The read API is the only one ------------------------------------------------------------

#: Modules outside ``rudikit.store`` allowed to call SQLAlchemy's ``select``/``text``, and why.
#: Not results-store reads, so not here: the SQL strings of the service's writer
#: backends (service/storage.py: replay checks on the sqlite3/asyncpg connection inside the
#: write transaction, the hot path), DuckDB feature SQL (features/asof/sql.py) and the COMPAS
#: source database read with pandas (data/compas.py).
ALLOWED: dict[str, str] = {
    "data/sql.py": "reads a force's own source database (the `sql` source kind), never the "
                   "results store",
}


def _sql_calls(path: Path, root: Path = SRC) -> list[str]:
    """``select(...)``/``text(...)`` calls of SQLAlchemy in one module (by import)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            names |= {a.asname or a.name for a in node.names if a.name in ("select", "text")}
        elif isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names
                        if a.name.startswith("sqlalchemy")}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in names:
            found.append(f"{path.relative_to(root)}:{node.lineno} {func.id}(")
        elif (isinstance(func, ast.Attribute) and func.attr in ("select", "text")
              and isinstance(func.value, ast.Name) and func.value.id in modules):
            found.append(f"{path.relative_to(root)}:{node.lineno} {func.value.id}.{func.attr}(")
    return found


def test_no_sql_reads_outside_the_store() -> None:
    found = [call for path in sorted(SRC.rglob("*.py"))
             if "store" not in path.relative_to(SRC).parts[:1]
             and str(path.relative_to(SRC)) not in ALLOWED
             for call in _sql_calls(path)]
    assert found == [], "read the store through rudikit.store.queries:\n" + "\n".join(found)


def test_the_guard_sees_both_import_styles(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text("from sqlalchemy import select as s, text\nimport sqlalchemy as sa\n"
                      "import numpy as np\ns(1)\ntext('x')\nsa.select(2)\nnp.select([], [])\n",
                      encoding="utf-8")
    assert [c.split(" ")[1] for c in _sql_calls(module, tmp_path)] == [
        "s(", "text(", "sa.select("]


def test_driver_rows_bind_parameters_as_sqlalchemy_does() -> None:
    """The raw-cursor readers run the query through SQLAlchemy: a date compared on SQLite (stored
    as text) and an IN list behave as ``conn.execute`` does, in chunks or whole."""
    from sqlalchemy import Column, DateTime, Integer, MetaData, Table, create_engine, select

    from rudikit.store.queries.common import driver_chunks, driver_rows

    table = Table("events", MetaData(), Column("id", Integer), Column("at", DateTime))
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(table), [{"id": i, "at": datetime(2020, 1, 1) + timedelta(days=i)}
                                     for i in range(5)])
    query = select(table.c.id).where(table.c.at <= datetime(2020, 1, 3),
                                     table.c.id.in_([0, 2, 4])).order_by(table.c.id)
    with engine.connect() as conn:
        assert [r.id for r in conn.execute(query)] == [0, 2]
        assert driver_rows(conn, query) == [(0,), (2,)]
        assert list(driver_chunks(conn, query, 1)) == [[(0,)], [(2,)]]
