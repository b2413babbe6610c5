"""Reports stay small whatever the row count: curves thinned to what a chart shows,
histograms binned before they are drawn, plotly.js inlined once per page."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from sklearn.metrics import roc_auc_score
from test_dashboard_browser import browser  # noqa: F401 - a fixture

from rudikit.evaluation.curves import MAX_POINTS, simplify, thin_roc
from rudikit.evaluation.metrics import MetricValue
from rudikit.reports.page import PlotlyPage, lean_template
from rudikit.reports.run_report import write_run_report
from rudikit.store import results
from rudikit.store.engine import open_store
from tests.conftest import example_config

ROWS = 100_000  # per model: 200,000 stored predictions


def _segment_distances(points: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Distance of every point to the nearest segment of the kept polyline, by brute force
    over all segments (an oracle independent of the split order of :func:`simplify`)."""
    a, b = points[kept[:-1]], points[kept[1:]]
    d = b - a
    rel = points[:, None, :] - a[None, :, :]
    length = np.maximum((d * d).sum(axis=1), 1e-300)
    t = np.clip((rel * d[None]).sum(axis=2) / length, 0, 1)
    return np.linalg.norm(rel - t[..., None] * d[None], axis=2).min(axis=1)


def test_simplify_keeps_the_ends_and_every_point_within_the_tolerance() -> None:
    rng = np.random.default_rng(4)
    x = np.sort(rng.random(3000))
    points = np.c_[x, np.sin(6 * x) + rng.normal(0, 0.01, len(x))]
    keep = simplify(points, tolerance=0.01, max_points=3000)
    assert keep[0] == 0 and keep[-1] == len(x) - 1 and np.all(np.diff(keep) > 0)
    scaled = (points - points.min(axis=0)) / np.ptp(points, axis=0)
    assert _segment_distances(scaled, keep).max() <= 0.01
    assert 10 < len(keep) < 1000  # a real reduction, not the input


def test_simplify_stops_at_the_point_budget_keeping_the_largest_deviations() -> None:
    x = np.linspace(0, 1, 2001)
    y = np.zeros_like(x)
    y[[500, 1000, 1500]] = [1.0, -0.5, 0.25]  # three spikes, then flat
    assert simplify(np.c_[x, y], tolerance=0.0, max_points=2).tolist() == [0, 2000]
    assert len(simplify(np.c_[x, y], tolerance=0.0, max_points=50)) == 50
    # the budget goes to the spikes first: their peaks are among the first points kept
    assert {500, 1000, 1500} <= set(simplify(np.c_[x, y], tolerance=0.0, max_points=9))


def test_simplify_refuses_what_it_cannot_draw() -> None:
    with pytest.raises(ValueError, match="max_points must be at least 2"):
        simplify(np.zeros((5, 2)), max_points=1)
    with pytest.raises(ValueError, match="finite"):
        simplify(np.array([[0, 0], [0.5, np.nan], [1, 1]]))


def test_thinned_roc_curve_of_a_million_rows_keeps_the_auc() -> None:
    rng = np.random.default_rng(7)
    y = rng.random(1_000_000) < 0.2
    score = 1 / (1 + np.exp(-(rng.normal(size=len(y)) + 1.2 * y)))
    fpr, tpr = thin_roc(y, score)
    assert len(fpr) <= MAX_POINTS and (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(y, score), abs=1e-3)


def test_lean_template_keeps_the_styles_of_what_is_drawn() -> None:
    fig = go.Figure([go.Bar(x=[1], y=[2]), go.Scatter(x=[1], y=[2])])
    full = fig.layout.template
    before = len(fig.to_json())
    lean_template(fig)
    kept = fig.layout.template
    assert set(kept.data.to_plotly_json()) == {"bar", "scatter"}
    assert kept.data.bar == full.data.bar and kept.layout.xaxis == full.layout.xaxis
    assert kept.layout.colorway == full.layout.colorway and kept.layout.polar.bgcolor is None
    assert len(fig.to_json()) < before / 2


def test_a_page_inlines_plotly_once() -> None:
    page = PlotlyPage()
    html = "".join(page.add(go.Figure(go.Scatter(x=[i], y=[i]))).html for i in range(3))
    assert html.count("plotly.js v") == 1 and html.count("Plotly.newPlot(") == 3
    assert len(html) < 2_100_000  # plotly.js (4.8 MB) goes in gzipped


def test_a_page_draws_its_figures_in_chromium_offline(browser, tmp_path: Path) -> None:  # noqa: F811
    """The gzipped plotly.js inflates in a real browser, with no network, and every figure is
    drawn, including a label that holds "</script>"."""
    page = PlotlyPage()
    figures = [go.Figure(go.Bar(x=["a", "b"], y=[1, 2]), layout={"title": "</script> bars"}),
               go.Figure(go.Scatter(x=np.arange(50.0), y=np.arange(50.0) ** 2))]
    body = "".join(page.add(f).html for f in figures)
    path = tmp_path / "page.html"
    path.write_text(f"<!doctype html><html><head></head><body>{body}</body></html>",
                    encoding="utf-8")
    context = browser.new_context(offline=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.goto(path.as_uri())
    tab.wait_for_function("document.querySelectorAll('.plotly-graph-div .main-svg').length >= 2",
                          timeout=30_000)
    assert tab.locator("#figure-1 .bars path").count() == 2  # one bar per category
    assert tab.locator("#figure-2 .scatterlayer .trace").count() == 1
    assert "</script> bars" in tab.locator("#figure-1 .gtitle").text_content()
    assert errors == []
    context.close()


def _figures(html: str) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    """(traces, layout) of every plotly figure on a page, as the browser receives them."""
    decoder = json.JSONDecoder()
    out = []
    for match in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', html):
        traces, end = decoder.raw_decode(html, match.end())
        layout, _ = decoder.raw_decode(html, re.compile(r",\s*").match(html, end).end())
        out.append((traces, layout))
    return out


def _values(field: Any) -> np.ndarray:
    """A trace's array: plotly sends numpy arrays as base64 typed arrays."""
    if isinstance(field, dict):
        return np.frombuffer(base64.b64decode(field["bdata"]), dtype=field["dtype"])
    return np.asarray(field)


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, dict[int, Any]]:
    """A run of two models with 100,000 test predictions each, written through the store's
    writers (one with distinct scores, one with scores rounded to 3 decimals: many ties)."""
    folder = tmp_path_factory.mktemp("big-report")
    engine = open_store(None, folder)
    config = json.loads(json.dumps(example_config(), default=str))  # as a run stores it
    rng = np.random.default_rng(11)
    y = (rng.random(ROWS) < 0.2).astype(int)
    scores = {"logistic_regression": 1 / (1 + np.exp(-(rng.normal(size=ROWS) + 1.3 * y))),
              "lightgbm": np.round(1 / (1 + np.exp(-(rng.normal(size=ROWS) + 0.8 * y))), 3)}
    stored = {}
    with results.run(engine, "big", "hash", config, 0, "synthetic") as run:
        for algorithm, score in scores.items():
            group = results.get_or_create_model_group(engine, "big", algorithm, {}, {}, "y")
            model = results.FittedModel(
                run.id, group, "last_month", ROWS, ROWS, ("2019-12-01", "2020-01-31"),
                ("2020-02-01", "2020-02-29"), "0" * 64, "none", 1.0)
            auc = roc_auc_score(y, score)
            model_id = results.record_model(
                engine, model, entity_ids=np.arange(ROWS).astype(str), as_of=None, score=score,
                label=y, metrics=[MetricValue("roc_auc", "", auc, auc, auc, ROWS)],
                importances=[])
            stored[model_id] = (y, score)
        results.mark_selected(engine, model_id, "test")
    return write_run_report(engine, run.id, folder / "reports"), run.id, stored


def test_run_report_of_200k_rows_per_model_stays_under_5_mb(big_run) -> None:
    path, _, _ = big_run
    html = path.read_text(encoding="utf-8")
    assert path.stat().st_size < 5_000_000
    assert html.count("plotly.js v") == 1  # once, whatever the number of figures
    figures = _figures(html)
    assert len(figures) == html.count("Plotly.newPlot(") >= 4
    for traces, _ in figures:
        for trace in traces:
            assert len(_values(trace.get("x", []))) <= MAX_POINTS, trace.get("name")


def test_drawn_roc_curves_keep_the_auc_of_every_row(big_run) -> None:
    path, _, stored = big_run
    roc = next(traces for traces, layout in _figures(path.read_text(encoding="utf-8"))
               if layout["title"]["text"].startswith("ROC curves"))
    drawn = [t for t in roc if t["name"] != "chance"]
    assert len(drawn) == len(stored)
    for trace, (y, score) in zip(drawn, stored.values(), strict=True):
        fpr, tpr = _values(trace["x"]), _values(trace["y"])
        assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(y, score), abs=1e-3)


def test_score_histogram_is_binned_counts_of_every_row(big_run) -> None:
    path, _, stored = big_run
    traces = next(traces for traces, layout in _figures(path.read_text(encoding="utf-8"))
                  if layout["title"]["text"].startswith("Score distribution"))
    y, score = list(stored.values())[-1]  # the selected model's
    for trace, value in zip(traces, (0, 1), strict=True):
        assert trace["type"] == "bar" and len(_values(trace["y"])) == 50
        mine = score[y == value]
        # oracle: the bin of each row looked up among 0.02-wide edges (the last bin holds 1)
        bins = np.minimum(np.searchsorted(np.linspace(0, 1, 51), mine, side="right") - 1, 49)
        counts = pd.Series(bins).value_counts()
        expected = counts.reindex(range(50), fill_value=0).to_numpy() / len(mine)
        np.testing.assert_allclose(_values(trace["y"]), expected, atol=1e-6)
