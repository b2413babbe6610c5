"""The run report's charts: top-k curves, metrics over time (across runs and per as-of date),
score distributions and the fairness charts, checked against the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from rudikit.evaluation.metrics import precision_at_k, recall_at_k
from rudikit.reports.group_figures import AUDIT_METRICS, disparity_figures
from rudikit.reports.run_figures import (
    asof_figure,
    composition_figure,
    runs_figure,
    top_k_curves,
)
from rudikit.reports.run_report import read_run_results, write_run_report_and_cards
from rudikit.run.develop import run_project
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from tests.conftest import example_config, write_project


def test_top_k_curves_equal_precision_and_recall_at_k_with_ties() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    score = np.round(rng.random(500) * 0.6 + y * 0.3, 1)  # few distinct values: many ties
    curve = top_k_curves(y, score)
    assert curve["k"].iloc[-1] == 500 and len(curve) == len(np.unique(score))
    for row in curve.itertuples():
        assert row.precision == pytest.approx(precision_at_k(y, score, int(row.k)))
        assert row.recall == pytest.approx(recall_at_k(y, score, int(row.k)))
    assert curve["pct"].iloc[-1] == 100 and curve["recall"].iloc[-1] == 1


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """Two runs of a project with two temporal splits: tested from January, and from
    February."""
    evaluation = example_config()["evaluation"] | {"bootstrap": 50,
                                                   "selection": {"metric": "roc_auc",
                                                                 "split": "february"}}
    models = [{"algorithm": "rate_by_category", "params": {"column": "object_of_search"}},
              {"algorithm": "logistic_regression", "params": {"C": [1.0]}}]
    folder = write_project(tmp_path_factory.mktemp("report") / "proj", evaluation=evaluation,
                           models=models, splits=[
                               {"name": "february", "kind": "temporal",
                                "test_start": "2020-02-01"},
                               {"name": "january", "kind": "temporal",
                                "test_start": "2020-01-01"}])
    run_project(folder)
    return folder, run_project(folder, write_report=write_run_report_and_cards).run_id


def _evaluations(folder: Path, metric: str) -> pd.DataFrame:
    with open_store(None, folder).connect() as conn:
        return pd.DataFrame(conn.execute(
            select(t.evaluations.c.value, t.models.c.run_id, t.models.c.model_group_id,
                   t.models.c.split, t.models.c.test_start)
            .join(t.models, t.evaluations.c.model_id == t.models.c.id)
            .where((t.evaluations.c.metric == metric) & (t.evaluations.c.parameter == "")))
            .mappings().all())


def test_report_has_every_chart(two_runs) -> None:
    folder, run_id = two_runs
    html = (folder / ".rudi" / "reports" / f"run-{run_id}.html").read_text()
    assert html.count("plotly.js v") == 1
    for title in ("ROC curves, split 'february'", "Precision-recall curves",
                  "Precision and recall in the top k, split 'february'",
                  "Score distribution by label", "Permutation importance",
                  "roc_auc across runs, split 'february'", "roc_auc per as-of date",
                  "Group metrics by gender", "Disparity by officer_defined_ethnicity",
                  "List composition by group (threshold=0.25)",
                  "Fairness-performance frontier"):
        assert title in html, title


def test_metrics_over_time_are_the_stored_evaluations(two_runs) -> None:
    folder, run_id = two_runs
    data = read_run_results(open_store(None, folder), run_id)
    config, models = data["run"].iloc[0]["config"], data["models"]
    stored = _evaluations(folder, "roc_auc")
    plain = models[~models["algorithm"].str.startswith("mitigated_")]
    fig = runs_figure(data["history"], plain, config, "february")
    for trace in fig.data:
        group = int(trace.name.split()[0].lstrip("#"))
        mine = stored[(stored["model_group_id"] == group) & (stored["split"] == "february")]
        assert list(trace.x) == ["run 1", "run 2"]
        np.testing.assert_allclose(trace.y, mine.sort_values("run_id")["value"])
    fig = asof_figure(data["history"], plain, config, run_id)
    this_run = stored[stored["run_id"] == run_id]
    for trace in fig.data:
        group = int(trace.name.split()[0].lstrip("#"))
        mine = this_run[this_run["model_group_id"] == group].sort_values("test_start")
        assert [pd.Timestamp(x).month for x in trace.x] == [1, 2]  # January, then February
        np.testing.assert_allclose(trace.y, mine["value"])


def test_fairness_charts_are_the_stored_audit(two_runs) -> None:
    folder, run_id = two_runs
    data = read_run_results(open_store(None, folder), run_id)
    chosen = int(data["models"][data["models"]["selected"]].iloc[0]["id"])
    audits = data["audits"][data["audits"]["model_id"] == chosen]
    fig = composition_figure(data["audits"], chosen)
    population, share = fig.data
    ppr = audits[(audits["metric"] == "ppr") & ~audits["attribute"].str.contains(":")]
    np.testing.assert_allclose(share.y, ppr["value"])
    for attribute in ppr["attribute"].unique():
        in_attribute = [x.startswith(f"{attribute}: ") for x in population.x]
        assert sum(np.asarray(population.y)[in_attribute]) == pytest.approx(1)
        assert sum(np.asarray(share.y)[in_attribute]) == pytest.approx(1)  # the whole list
    gender = next(f for f in disparity_figures(data["audits"], chosen)
                  if f.layout.title.text.startswith("Disparity by gender,"))
    # every compared group (ok, unfair or inconclusive) of every metric drawn, nothing else
    # (since verdicts need the metric's own denominator, a metric may have no compared group)
    compared = audits[(audits["attribute"] == "gender")
                      & audits["status"].isin(["ok", "unfair", "inconclusive"])]
    titles = dict(AUDIT_METRICS)
    drawn = {trace.name: trace for trace in gender.data}
    expected = {titles[m] for m in compared["metric"].unique() if m in titles}
    assert drawn and set(drawn) == expected
    for metric, rows in compared.groupby("metric"):
        if metric in titles:
            np.testing.assert_allclose(drawn[titles[metric]].y, rows["disparity_ratio"])
