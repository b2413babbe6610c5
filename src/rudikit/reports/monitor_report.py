"""The monitoring report: one HTML page per `rudi monitor` run, read back from the store.

Alerts first, then inputs, drift (training vs production shares), realised performance overall
and per segment (stations, objects of search) against what the test data promised, fairness on
production outcomes, list stability, and the retraining decisions and deployments since. For a
temporal project the production lists take the place of drift and realised performance
(:mod:`rudikit.reports.monitor_lists`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from sqlalchemy.engine import Engine

from rudikit.reports.location_map import cell_map_figure
from rudikit.reports.monitor_lists import list_sections
from rudikit.reports.page import PlotlyPage, environment
from rudikit.store.queries import monitoring as monitoring_q
from rudikit.store.queries import production as production_q

SEVERITY_ORDER = {"critical": 0, "warning": 1}


def read_monitor_results(engine: Engine, monitor_run_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        run = monitoring_q.monitor_run(conn, monitor_run_id)
        if run is None:
            raise ValueError(f"no monitor run {monitor_run_id} in the store")
        data: dict[str, Any] = {"run": dict(run)}
        data["metrics"] = monitoring_q.figures(conn, monitor_run_id)
        data["alerts"] = pd.DataFrame(monitoring_q.alerts_of(conn, monitor_run_id),
                                      columns=monitoring_q.ALERT_COLUMNS)
        data["periods"] = monitoring_q.source_periods_of(conn, monitor_run_id)
        data["history"] = monitoring_q.project_history(conn, run["project"])
        data["decisions"] = pd.DataFrame(production_q.retrain_decisions(conn),
                                         columns=production_q.AUDIT_COLUMNS)
        data["deployments"] = pd.DataFrame(production_q.deployments(conn),
                                           columns=production_q.DEPLOYMENT_COLUMNS)
    return data


def _pivot(metrics: pd.DataFrame, section: str) -> pd.DataFrame:
    part = metrics[metrics["section"] == section]
    if part.empty:
        return pd.DataFrame()
    wide = part.drop_duplicates(["subject", "segment", "metric"]).set_index(
        ["subject", "segment", "metric"])["value"].unstack("metric")
    wide = wide.reindex(part[["subject", "segment"]].drop_duplicates().itertuples(
        index=False, name=None))
    if "n" not in wide:  # performance rows carry their case count as the metric "n"
        wide["n"] = part.groupby(["subject", "segment"], sort=False)["n"].max()
    return wide.reset_index()


def drift_table(metrics: pd.DataFrame) -> pd.DataFrame:
    wide = _pivot(metrics, "drift")
    if wide.empty:
        return wide
    return wide.sort_values("psi", ascending=False, na_position="last")


def bucket_changes(metrics: pd.DataFrame, min_change: float = 0.02) -> pd.DataFrame:
    """Buckets whose share moved by ``min_change`` or more: "age_range 10-17: 19.9% in training,
    10.7% in production"."""
    wide = _pivot(metrics, "drift_bucket")
    if wide.empty:
        return wide
    wide["change"] = wide["production_share"] - wide["reference_share"]
    moved = wide[wide["change"].abs() >= min_change]
    return moved.reindex(moved["change"].abs().sort_values(ascending=False).index)


def drift_figures(table: pd.DataFrame, metrics: pd.DataFrame, run: dict[str, Any],
                  page: PlotlyPage, top: int = 3) -> list[Any]:
    figs = []
    if table.empty:
        return figs
    shown = table.dropna(subset=["psi"])
    fig = go.Figure(go.Bar(x=shown["subject"], y=shown["psi"], marker_color=[
        "#a01c1c" if v >= 0.25 else "#d08a00" if v >= 0.1 else "#4a7bd0"
        for v in shown["psi"]]))
    fig.update_layout(title="Population stability index per input (and the score)",
                      yaxis_title="PSI", height=380)
    figs.append(page.add(fig))
    buckets = metrics[metrics["section"] == "drift_bucket"]
    for feature in shown["subject"].head(top):
        part = buckets[buckets["subject"] == feature].set_index(["segment", "metric"])[
            "value"].unstack("metric").reindex(
            buckets.loc[buckets["subject"] == feature, "segment"].drop_duplicates())
        fig = go.Figure([
            go.Bar(name="training", x=part.index, y=part["reference_share"]),
            go.Bar(name="production", x=part.index, y=part["production_share"])])
        fig.update_layout(title=f"{feature}: share of cases per value", barmode="group",
                          yaxis_tickformat=".0%", height=360)
        figs.append(page.add(fig))
    return figs


def performance_figures(metrics: pd.DataFrame, segments: list[str], page: PlotlyPage
                        ) -> tuple[list[Any], dict[str, pd.DataFrame]]:
    figs, tables = [], {}
    curve = metrics[(metrics["section"] == "performance") & (metrics["metric"] == "roc_curve")]
    if not curve.empty and curve.iloc[0]["details"]:
        points = curve.iloc[0]["details"]
        fig = go.Figure(go.Scatter(x=points["fpr"], y=points["tpr"], mode="lines",
                                   name="production"))
        fig.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot",
                                                                  "color": "#999"})
        fig.update_layout(title="ROC curve on production outcomes",
                          xaxis_title="false positive rate", yaxis_title="true positive rate",
                          height=380)
        figs.append(page.add(fig))
    wide = _pivot(metrics, "performance")
    expected = _pivot(metrics, "expected")
    for column in segments:
        part = wide[wide["subject"] == column] if not wide.empty else pd.DataFrame()
        if part.empty:
            continue
        tables[column] = part
        fig = go.Figure(go.Bar(x=part["segment"], y=part["precision"], name="realised",
                               text=[f"n={n:,.0f}" for n in part["n"]]))
        if not expected.empty and "precision" in expected:
            fig.add_hline(y=float(expected["precision"].iloc[0]), line_dash="dash",
                          annotation_text="test precision")
        fig.update_layout(title=f"Realised precision per {column}", yaxis_tickformat=".0%",
                          height=380)
        figs.append(page.add(fig))
    over_time = metrics[metrics["section"] == "precision_at_k"]
    if not over_time.empty:
        fig = go.Figure(go.Scatter(x=over_time["segment"], y=over_time["value"],
                                   mode="lines+markers", name=over_time["subject"].iloc[0]))
        fig.update_layout(title=f"Precision of the {over_time['subject'].iloc[0]} per period",
                          yaxis_tickformat=".0%", xaxis_type="category", height=340)
        figs.append(page.add(fig))
    return figs, tables


def stability_figure(metrics: pd.DataFrame, page: PlotlyPage) -> Any | None:
    part = metrics[metrics["section"] == "stability"]
    if part.empty:
        return None
    fig = go.Figure([go.Scatter(x=g["segment"], y=g["value"], mode="lines+markers", name=m)
                     for m, g in part.groupby("metric")])
    fig.update_layout(title="Each list against the one before it", yaxis_range=[-0.05, 1.05],
                      xaxis_type="category", height=340)
    return page.add(fig)


def input_figure(periods: pd.DataFrame, page: PlotlyPage) -> Any | None:
    if periods.empty:
        return None
    fig = go.Figure([go.Bar(x=g["period"], y=g["row_count"], name=s)
                     for s, g in periods.sort_values("period").groupby("source")])
    fig.update_layout(title="Rows per period in each source", height=320)
    return page.add(fig)


def production_cells(metrics: pd.DataFrame) -> pd.DataFrame:
    """``cell``, ``searches``, ``success_rate`` of the window (section ``location``)."""
    wide = _pivot(metrics, "location")
    if wide.empty:
        return pd.DataFrame(columns=["cell", "searches", "success_rate"])
    return wide.rename(columns={"subject": "cell"})[["cell", "searches", "success_rate"]]


def write_monitor_report(engine: Engine, monitor_run_id: int, directory: str | Path,
                         segments: list[str] | None = None) -> Path:
    """Render the report of one monitor run; returns the file written."""
    data = read_monitor_results(engine, monitor_run_id)
    metrics = data["metrics"]
    page = PlotlyPage()
    alert_rows = sorted(data["alerts"].to_dict("records"),
                        key=lambda a: (SEVERITY_ORDER.get(a["severity"], 9), a["id"]))
    drift = drift_table(metrics)
    if segments is None:
        perf = metrics[metrics["section"] == "performance"]
        segments = [s for s in dict.fromkeys(perf["subject"]) if s != "all"]
    figures = {
        "inputs": input_figure(data["periods"], page),
        "drift": drift_figures(drift, metrics, data["run"], page),
    }
    figures["performance"], segment_tables = performance_figures(metrics, segments, page)
    lists = list_sections(metrics, page)  # a temporal project's production lists
    figures["stability"] = stability_figure(metrics, page)
    cell_map = cell_map_figure(production_cells(metrics), "Production searches by H3 cell")
    figures["location"] = page.add(cell_map) if cell_map is not None else None
    overall = _pivot(metrics, "performance")
    overall = overall[overall["subject"] == "all"] if not overall.empty else overall
    expected = _pivot(metrics, "expected")
    fairness = metrics[metrics["section"] == "fairness"]
    html = environment().get_template("monitor_report.html.j2").render(
        run=data["run"], alerts=alert_rows, drift=drift.to_dict("records"),
        changes=bucket_changes(metrics).head(30).to_dict("records"),
        overall=overall.to_dict("records")[0] if not overall.empty else None,
        expected=expected.to_dict("records")[0] if not expected.empty else None,
        segments={k: v.to_dict("records") for k, v in segment_tables.items()},
        fairness=fairness.to_dict("records"), figures=figures, lists=lists,
        decisions=data["decisions"].to_dict("records"),
        deployments=data["deployments"].to_dict("records"),
        history=data["history"].to_dict("records"))
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"monitor-{monitor_run_id}.html"
    path.write_text(html, encoding="utf-8")
    return path
