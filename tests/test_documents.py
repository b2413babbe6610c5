"""The documents people read: a past run's report frozen as written, readable fairness charts
with many groups, the comparison with baselines, figures formatted one way, and the data
card's profile plots from the stored snapshot statistics."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from rudikit.data.profile import profile_frame
from rudikit.evaluation import display
from rudikit.reports import run_report
from rudikit.reports.cards import render_html
from rudikit.reports.data_card import build_data_card
from rudikit.reports.group_figures import MANY, TOP, audit_figures, disparity_figures
from rudikit.reports.profile_figures import distribution_figure, missing_figure
from rudikit.reports.run_figures import asof_figure, runs_figure
from rudikit.reports.run_report import write_run_report_and_cards
from rudikit.run.develop import run_project
from rudikit.store import list_tables, results
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from rudikit.store.queries import snapshots as snapshots_q
from tests.conftest import example_config, write_project
from tests.test_list_simulation_report import loop_simulation, table_cells

METRICS = ("precision", "tpr", "fpr", "pprev")


def _audit(groups: int, small: set[int], seed: int = 0) -> pd.DataFrame:
    """A stored-audit-like frame of one crossed attribute: ``groups`` groups, those in
    ``small`` resting on 10 cases, the rest on 100 + 10 * i."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(groups):
        den = 10 if i in small else 100 + 10 * i
        for metric in METRICS:
            num = int(rng.integers(0, den + 1))
            rows.append({"model_id": 1, "attribute": "force:ethnicity",
                         "group_value": f"force-{i:02d}:group", "metric": metric,
                         "value": num / den, "lower": max(0, num / den - 0.1),
                         "upper": min(1, num / den + 0.1), "numerator": float(num),
                         "denominator": float(den), "n": den,
                         "status": "insufficient data" if i in small else "ok",
                         "reference_group": "force-00:group", "disparity_ratio": 0.5 + i / 20,
                         "difference_pp": 1.0, "p_value": 0.5})
    return pd.DataFrame(rows)


def test_many_groups_make_a_sorted_dot_plot_with_intervals_hollow_small_cells_and_a_fold(
        ) -> None:
    small = {3, 4, 40}
    audit = _audit(45, small)
    fig, = audit_figures(audit, 1, min_size=50)
    assert all(trace.type == "scatter" and trace.mode == "markers" for trace in fig.data)
    # one panel per metric, the groups on one shared axis: the 30 largest and "other"
    assert len({trace.xaxis for trace in fig.data}) == len(METRICS)
    order = list(fig.layout.yaxis.categoryarray)
    largest = audit.groupby("group_value")["n"].max().sort_values(ascending=False).index[:TOP]
    assert set(order) == set(largest) | {f"other ({45 - TOP} groups)"}
    for trace in fig.data:
        assert trace.error_x.array is not None  # every dot has its interval
        hollow = trace.marker.symbol == "circle-open"
        named = [g for g in trace.y if not g.startswith("other")]
        cells = audit[audit["group_value"].isin(named)]
        assert (cells["denominator"] < 50).all() == hollow or not named
    # the folded row pools numerators and denominators (by hand), with a Wilson interval
    folded = audit[~audit["group_value"].isin(largest) & (audit["metric"] == "precision")]
    num, den = folded["numerator"].sum(), folded["denominator"].sum()
    x = next(xv for trace in fig.data if trace.xaxis == "x"
             for xv, yv in zip(trace.x, trace.y, strict=True) if yv.startswith("other"))
    assert x == pytest.approx(num / den)
    # sorted by the first panel's value
    first = {yv: xv for trace in fig.data if trace.xaxis == "x"
             for xv, yv in zip(trace.x, trace.y, strict=True)}
    values = [first[g] for g in order if g in first]
    assert values == sorted(values)


def test_a_few_groups_stay_bars_and_a_small_cell_is_hollow_and_marked_too_few() -> None:
    fig, = audit_figures(_audit(MANY - 7, {1}), 1, min_size=50)
    for trace in fig.data:
        assert trace.type == "bar"
        assert list(trace.text) == ["too few" if g == "force-01:group" else ""
                                    for g in trace.x]
        colours = list(trace.marker.color)
        assert colours[1] == "rgba(255,255,255,0)" and colours[0] != colours[1]
    assert {trace.name for trace in fig.data} == {"precision", "recall",
                                                  "false positive rate", "selection rate"}


def test_the_ratio_dot_plot_has_labelled_log_ticks_only() -> None:
    fig, = disparity_figures(_audit(35, set()), 1)
    for axis in (fig.layout.xaxis, fig.layout.xaxis2):
        assert axis.type == "log" and axis.minor.ticks == "" and axis.minor.showgrid is False
        assert list(axis.tickvals) == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert all(trace.mode == "markers" for trace in fig.data)


def test_one_run_is_not_a_trend_and_splits_are_not_joined() -> None:
    models = pd.DataFrame({"id": [1, 2], "model_group_id": [7, 7], "algorithm": ["lr", "lr"],
                           "split": ["jan", "feb"], "selected": [True, False],
                           "test_start": pd.to_datetime(["2020-01-01", "2020-02-01"])})
    config = {"evaluation": {"selection": {"metric": "roc_auc", "split": "jan"}},
              "splits": [{"name": "jan", "kind": "temporal"}, {"name": "feb", "kind": "temporal"}]}
    history = pd.DataFrame({"run_id": [1, 1], "model_id": [1, 2], "model_group_id": [7, 7],
                            "split": ["jan", "feb"], "parameter": ["", ""],
                            "value": [0.6, 0.7], "lower": [0.5, 0.6], "upper": [0.7, 0.8]})
    assert runs_figure(history, models, config, "jan") is None  # a single run
    fig = asof_figure(history, models, config, 1)
    assert [trace.mode for trace in fig.data] == ["markers"]  # two splits' models: not joined
    two = pd.concat([history, history.assign(run_id=2)])
    assert runs_figure(two, models, config, "jan").data[0].mode == "lines+markers"


def test_figures_are_formatted_for_people() -> None:
    assert display.count(1204.0) == "1,204" and display.count(np.int64(12)) == "12"
    assert display.threshold(0.22266169341231598) == "0.223"
    assert display.threshold(0.25) == "0.25" and display.threshold(10.0) == "10"
    assert display.when(pd.Timestamp("2026-12-03 21:14:05.123456", tz="UTC")) == \
        "2026-12-03 21:14 UTC"
    assert display.when(pd.Timestamp("2026-12-03")) == "2026-12-03"
    assert display.interval(0.61234, 0.58, 0.641) == "0.612 [0.580, 0.641]"
    assert display.number(float("nan")) == display.MISSING
    assert display.metric_name("tpr") == "recall" == display.metric_name("recall_at_k")
    assert display.settings({"C": 1.0, "fallback_threshold": 0.22266169341231598,
                             "n": 5}) == "C=1.0, fallback_threshold=0.223, n=5"
    # what a frozen page stores: JSON, with a verdict (a dataclass) kept as its fields
    from rudikit.store.queries.fairness import RequirementStatus

    stored = display.plain({"at": pd.Timestamp("2020-01-01 10:00:00.5"), "gap": np.float64(
        np.nan), "verdicts": [RequirementStatus("r", "met", 1, {"met": 1}, "ok")]})
    assert stored == {"at": "2020-01-01 10:00", "gap": None, "verdicts": [
        {"name": "r", "status": "met", "results": 1, "counts": {"met": 1}, "summary": "ok"}]}
    # the requirements' aliases (rudi.yaml's words) and the report names agree
    from rudikit.fairness.requirements import METRIC_ALIASES
    for word, code in METRIC_ALIASES.items():
        if word in ("recall", "selection_rate", "precision"):
            assert display.metric_name(code) == word.replace("_", " ")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """One quick run: a baseline and a logistic regression, the fairness operating point a
    score threshold (as in the stop-and-search example), no mitigation."""
    fairness = {k: v for k, v in example_config()["fairness"].items()
                if k not in ("mitigation", "intersections", "requirements")}
    data = example_config()["data"] | {"sources": [{
        "name": "searches", "kind": "synthetic_stop_search", "seed": 3, "rows_per_month": 700}]}
    folder = write_project(tmp_path_factory.mktemp("docs") / "proj", data=data,
                           evaluation=example_config()["evaluation"] | {"bootstrap": 0},
                           fairness=fairness | {"attributes": ["officer_defined_ethnicity"],
                                                "reference_groups": {
                                                    "officer_defined_ethnicity": "White"}},
                           models=[{"algorithm": "rate_by_category", "selectable": False,
                                    "params": {"column": "object_of_search"}},
                                   {"algorithm": "logistic_regression", "params": {"C": [1.0]}}])
    return folder, run_project(folder, write_report=write_run_report_and_cards).run_id


def test_the_comparison_shows_the_baseline_with_its_list_figures(small_run) -> None:
    folder, run_id = small_run
    engine = open_store(None, folder)
    page = (folder / ".rudi" / "reports" / f"run-{run_id}.html").read_text(encoding="utf-8")
    rows = {r[1].split(":")[0]: r for r in table_cells(page, "comparisons")[1:]}
    assert set(rows) == {"chosen", "baseline"}
    with engine.connect() as conn:
        models = pd.DataFrame(conn.execute(select(t.models.c.id, t.model_groups.c.algorithm)
                                           .join(t.model_groups)).mappings().all())
        preds = pd.DataFrame(conn.execute(select(t.predictions)).mappings().all())
        evals = pd.DataFrame(conn.execute(select(t.evaluations).where(
            t.evaluations.c.metric.like("list%"))).mappings().all())
    baseline = int(models.loc[models["algorithm"] == "rate_by_category", "id"].iloc[0])
    mine = preds[preds["model_id"] == baseline].sort_values("id")
    # the threshold operating point: the lists are the top 10% (evaluation.top_pct), k = 10
    precision, _, _ = loop_simulation(mine["score"].to_numpy(), np.zeros(len(mine)),
                                      mine["label"].to_numpy(), 10, seed=0)
    assert rows["baseline"][4] == f"{precision:.3f} (10 of 100)"
    stored = evals[evals["model_id"] == baseline].set_index(["metric", "parameter"])["value"]
    rates = rows["baseline"][5].removeprefix("officer_defined_ethnicity: ").split(", ")
    assert rates and rates != [""]
    for part in rates:
        group, _, rate = part.rpartition(" ")
        parameter = f"officer_defined_ethnicity={group}"
        share, pool = stored[("list_share", parameter)], stored[("list_pool_share", parameter)]
        assert rate == f"{share * 10 / (pool * 100):.3f}"
    assert "simulated at the top 10 of 100" in page


def _without_build_line(page: str) -> str:
    return re.sub(r'<p class="sub" id="built">.*?</p>', "", page)


def test_a_past_report_is_rebuilt_byte_for_byte_after_reviews_and_a_later_run(
        small_run, tmp_path, monkeypatch) -> None:
    folder, run_id = small_run
    engine = open_store(None, folder)
    written = (folder / ".rudi" / "reports" / f"run-{run_id}.html").read_text(encoding="utf-8")
    ranked = table_cells(written, "ranked-list")[1:]
    with engine.connect() as conn:
        group = conn.execute(select(t.models.c.model_group_id).where(
            (t.models.c.run_id == run_id) & t.models.c.selected)).scalar_one()
    for row in ranked[:3]:
        list_tables.record_review(engine, row[1], "2020-03-01", reviewer="sgt",
                                  outcome="no_action", agreement="disagree",
                                  model_group_id=int(group))
    # a later run of the project (what it holds does not matter to run 1's page)
    with results.run(engine, "stop-search-success", "later", {}, 0, "synthetic") as later:
        assert later.id > run_id
    # the rebuild reads what was frozen: nothing is recomputed from the store
    monkeypatch.setattr(run_report, "run_context", lambda *a: pytest.fail("recomputed"))
    rebuilt = run_report.write_run_report(engine, run_id, tmp_path).read_text(encoding="utf-8")
    assert _without_build_line(rebuilt) == _without_build_line(written)
    assert re.search(r'id="built">This copy built \d{4}-\d\d-\d\d \d\d:\d\d UTC', rebuilt)
    assert not re.search(r"\d\d:\d\d:\d\d\.\d{6}", re.sub(r"<script.*?</script>", "", rebuilt,
                                                          flags=re.S))


def test_snapshot_profiles_are_stored_and_drawn_on_the_data_card(small_run) -> None:
    folder, run_id = small_run
    engine = open_store(None, folder)
    snapshot_id = snapshots_q.snapshot_ids(engine, run_id)[0]
    stored = snapshots_q.profiles(engine, [snapshot_id])
    card = build_data_card(engine, snapshot_id)  # no project folder: from the store alone
    # the stored profile is the data's: recompute from the same synthetic source
    from rudikit.config import load_project
    from rudikit.data.sources import load_source

    project = load_project(folder)
    frame = load_source(project.data.sources[0], folder, "data.sources[0]").frame
    again = pd.DataFrame(profile_frame(frame))
    pd.testing.assert_frame_equal(stored[again.columns].reset_index(drop=True), again,
                                  check_dtype=False)
    ethnicity = stored.set_index("column_name").loc["officer_defined_ethnicity"]
    assert ethnicity["missing"] == frame["officer_defined_ethnicity"].isna().sum()
    counts = frame["officer_defined_ethnicity"].value_counts()
    assert dict(zip(ethnicity["summary"]["values"], ethnicity["summary"]["counts"],
                    strict=True)) == counts.to_dict()
    figures = [f for s in card.sections for f in s.figures]
    titles = [f.layout.title.text for f in figures]
    assert any(t.startswith("Share of rows missing") for t in titles)
    assert any(t.startswith("Distribution of each column") for t in titles)
    page = render_html(card)
    assert page.count("plotly.js v") == 1 and len(page) < 5_000_000


def test_missingness_is_drawn_per_snapshot_of_the_source() -> None:
    a = pd.DataFrame(profile_frame(pd.DataFrame({"x": [1.0, None, 3.0, None],
                                                 "y": ["a", "b", None, "a"]}))).assign(
        snapshot_id=1)
    b = pd.DataFrame(profile_frame(pd.DataFrame({"x": [1.0, 2.0, 3.0, None],
                                                 "y": ["a", "b", "c", "a"]}))).assign(
        snapshot_id=2)
    fig = missing_figure(pd.concat([a, b]), ["x", "y"], {1: "snapshot 1", 2: "snapshot 2"})
    shares = {trace.name: dict(zip(trace.y, trace.x, strict=True)) for trace in fig.data}
    assert shares == {"snapshot 1": {"x": 0.5, "y": 0.25}, "snapshot 2": {"x": 0.25, "y": 0.0}}
    dist = distribution_figure(b, ["x", "y"])
    bars = {trace.xaxis: trace for trace in dist.data}
    assert dict(zip(bars["x2"].y, bars["x2"].x, strict=True)) == {"a": 2, "b": 1, "c": 1}


def test_a_frozen_page_and_column_profiles_round_trip_through_the_store(store) -> None:
    """On SQLite and PostgreSQL: the first build is stored and every later one reads it back
    (the builder is not called again), figures included; profiles land with their snapshot."""
    import plotly.graph_objects as go

    from rudikit.reports.frozen import frozen_context

    url, schema = store
    engine = open_store(url, schema=schema)
    with results.run(engine, "p", "h", {}, 0, "synthetic") as run:
        frame = pd.DataFrame({"n": [1.5, None, 2.5], "c": ["a", "a", None]})
        snapshot = results.record_snapshot(
            engine, run.id, source="s", kind="csv", location="/x", files=1, rows=3, bad_rows=0,
            warnings=0, checksum="0" * 64, min_date=None, max_date=None,
            profiles=profile_frame(frame))
    calls: list[int] = []

    def build(page):  # type: ignore[no-untyped-def]
        calls.append(1)
        return {"when": pd.Timestamp("2020-01-02 03:04:05.6", tz="UTC"), "gap": float("nan"),
                "chart": page.add(go.Figure(go.Scatter(x=[0.1, 0.2], y=[1, 2], name="a")))}

    with results.run(engine, "p", "h", {}, 0, "synthetic") as running:
        frozen_context(engine, running.id, "run", build)
        frozen_context(engine, running.id, "run", build)
        assert len(calls) == 2  # a run in progress is built afresh, never frozen
    first = frozen_context(engine, run.id, "run", build)
    again = frozen_context(engine, run.id, "run", build)
    assert len(calls) == 3
    assert first["when"] == again["when"] == "2020-01-02 03:04 UTC" and again["gap"] is None
    assert first["chart"].html == again["chart"].html and 'id="figure-1"' in again["chart"].html
    assert first["frozen_at"] == again["frozen_at"]
    stored = snapshots_q.profiles(engine, [snapshot]).set_index("column_name")
    assert stored.loc["n", "missing"] == 1 and stored.loc["c", "summary"] == {
        "values": ["a"], "counts": [2], "other": 0}
    engine.dispose()
