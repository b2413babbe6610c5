"""What each dashboard page shows, read from the results store (and built into plotly figures).

Every page is computed from stored rows only, as the run report is, so the dashboard shows what
was recorded and nothing else. Figures go to the page as JSON and are drawn by the plotly.js
the dashboard serves itself (no CDN).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from markupsafe import Markup
from pydantic import ValidationError
from sklearn.metrics import auc, precision_recall_curve, roc_curve
from sqlalchemy.engine import Connection, Engine

from rudikit.config import Monitoring
from rudikit.evaluation.location_cells import PREFIX as CELL_METRICS
from rudikit.reports.group_figures import AUDIT_METRICS, audit_figures
from rudikit.store.queries import evaluations as evaluations_q
from rudikit.store.queries import fairness as fairness_q
from rudikit.store.queries import lists as lists_q
from rudikit.store.queries import monitoring as monitoring_q
from rudikit.store.queries import predictions as predictions_q
from rudikit.store.queries import production as production_q
from rudikit.store.queries import runs as runs_q
from rudikit.store.queries.production import live_deployment

#: Curves drawn with at most this many points (the shape is kept; the page stays light).
MAX_CURVE_POINTS = 400
#: Days of production traffic shown.
TRAFFIC_DAYS = 60
SEVERITY_ORDER = {"critical": 0, "warning": 1}


class NotFound(Exception):
    """A page asked for something the store does not hold (the message says what)."""


@dataclass
class Chart:
    id: str
    title: str
    spec: Markup  # the figure as JSON, safe inside <script type="application/json">


def chart(key: str, fig: go.Figure, height: int | None = None) -> Chart:
    fig.update_layout(margin={"t": 50, "l": 60, "r": 20, "b": 50}, template="plotly_white",
                      legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
                      **({"height": height} if height else {}))
    title = fig.layout.title.text or ""
    # "<" only occurs inside JSON strings, where \u003c is the same character
    return Chart(key, title, Markup(fig.to_json().replace("<", "\\u003c")))


def _params(value: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in (value or {}).items())


def _day(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d}"


def _run_config(conn: Connection) -> dict[str, Any]:
    """The configuration of the newest run (the project as last run)."""
    return runs_q.newest_run_config(conn) or {}


def deployed(conn: Connection) -> dict[str, Any] | None:
    live = live_deployment(conn)
    return dict(live) if live is not None else None


# --- 1. model groups over time and the selection ---------------------------------------------

def metric_choices(conn: Connection) -> list[tuple[str, str]]:
    rows = evaluations_q.metric_choices(conn)
    return [(m, p) for m, p in rows if m != "train_seconds"
            and not m.startswith(("frontier_", CELL_METRICS))]


def default_metric(conn: Connection) -> tuple[str, str]:
    wanted = _run_config(conn).get("evaluation", {}).get("selection", {}).get("metric")
    choices = metric_choices(conn)
    for metric, parameter in choices:
        if metric == (wanted or "roc_auc"):
            return metric, parameter
    return choices[0] if choices else ("roc_auc", "")


def requirement_verdicts(conn: Connection, models: pd.DataFrame, live: dict[str, Any] | None
                         ) -> list[dict[str, Any]]:
    """The fairness requirement verdicts of the newest selected model and of the live
    deployment's model (once when they are the same)."""
    shown: list[tuple[str, int]] = []
    selected = models[models["selected"]] if len(models) else models
    if len(selected):
        newest = selected.sort_values(["run_id", "id"]).iloc[-1]
        shown.append((f"Chosen by run {newest['run_id']}: model {newest['id']} (group "
                      f"#{newest['model_group_id']})", int(newest["id"])))
    if live is not None:
        title = f"Live deployment {live['id']}: model {live['model_id']}"
        if shown and shown[0][1] == live["model_id"]:
            shown[0] = (f"{shown[0][0]}, live as deployment {live['id']}", shown[0][1])
        else:
            shown.append((title, int(live["model_id"])))
    out = []
    for title, model_id in shown:
        statuses = fairness_q.model_requirement_statuses(conn, model_id)
        out.append({"title": title, "model_id": model_id, "statuses": statuses,
                    "counts": fairness_q.status_counts(statuses)})
    return out


def overview(engine: Engine, metric: str | None, parameter: str | None) -> dict[str, Any]:
    """Evaluations of every model group across runs, splits and as-of dates, and which model
    each run selected (and why)."""
    with engine.connect() as conn:
        choices = metric_choices(conn)
        if metric is None or (metric, parameter or "") not in choices:
            metric, parameter = default_metric(conn)
        parameter = parameter or ""
        models = runs_q.models_overview(conn)
        evals = evaluations_q.metric_values(conn, metric, parameter)
        live = deployed(conn)
        verdicts = requirement_verdicts(conn, models, live)
    if not len(models):
        return {"empty": True, "metric": metric, "parameter": parameter, "choices": choices}
    if not len(evals):
        evals = pd.DataFrame(columns=["model_id", "value", "lower", "upper"])
    frame = models.merge(evals, left_on="id", right_on="model_id", how="left")
    frame["when"] = frame["test_start"].fillna(frame["run_started"])
    label = f"{metric}" + (f" @ {parameter}" if parameter else "")
    fig = go.Figure()
    for group_id, part in frame.sort_values("when").groupby("model_group_id", sort=True):
        part = part.dropna(subset=["value"])
        if not len(part):
            continue
        fig.add_trace(go.Scatter(
            x=part["when"], y=part["value"], mode="lines+markers",
            name=f"#{group_id} {part['algorithm'].iloc[0]}",
            error_y={"type": "data", "symmetric": False,
                     "array": (part["upper"] - part["value"]).fillna(0),
                     "arrayminus": (part["value"] - part["lower"]).fillna(0)},
            customdata=np.c_[part["id"], part["split"], part["run_id"]],
            hovertemplate="model %{customdata[0]}, split %{customdata[1]}, run "
                          "%{customdata[2]}<br>%{x|%Y-%m-%d}: %{y:.3f}<extra></extra>"))
    fig.update_layout(title=f"{label} by model group over test periods (95% intervals)",
                      xaxis_title="start of the test period (as-of date)", yaxis_title=label)
    groups = []
    for group_id, part in frame.groupby("model_group_id", sort=True):
        values = part["value"].dropna()
        latest = part.sort_values(["when", "id"]).iloc[-1]
        groups.append({
            "id": int(group_id), "algorithm": part["algorithm"].iloc[0],
            "params": _params(part["hyperparameters"].iloc[0]), "models": len(part),
            "mean": values.mean() if len(values) else None,
            "min": values.min() if len(values) else None,
            "max": values.max() if len(values) else None,
            "latest": latest["value"], "latest_lower": latest["lower"],
            "latest_upper": latest["upper"],
            "selected": bool(part["selected"].any()),
            "deployed": live is not None and live["model_group_id"] == group_id})
    groups.sort(key=lambda g: -np.inf if g["mean"] is None else -g["mean"])
    selections = [{"run_id": int(r.run_id), "model_id": int(r.id),
                   "group": int(r.model_group_id), "algorithm": r.algorithm, "split": r.split,
                   "reason": r.selection_reason, "run_started": r.run_started}
                  for r in frame[frame["selected"]].sort_values("run_id", ascending=False)
                  .itertuples()]
    rows = [{"id": int(r.id), "group": int(r.model_group_id), "algorithm": r.algorithm,
             "run_id": int(r.run_id), "split": r.split, "test": f"{_day(r.test_start)} to "
             f"{_day(r.test_end)}", "value": r.value, "lower": r.lower, "upper": r.upper,
             "selected": bool(r.selected)}
            for r in frame.sort_values(["run_id", "id"], ascending=[False, True]).itertuples()]
    return {"empty": False, "metric": metric, "parameter": parameter, "label": label,
            "choices": choices, "over_time": chart("over-time", fig, 460), "groups": groups,
            "selections": selections, "models": rows, "deployed": live, "verdicts": verdicts}


# --- 2. one model ----------------------------------------------------------------------------


def _thin(*arrays: np.ndarray) -> list[np.ndarray]:
    n = len(arrays[0])
    if n <= MAX_CURVE_POINTS:
        return list(arrays)
    keep = np.unique(np.linspace(0, n - 1, MAX_CURVE_POINTS).astype(int))
    return [a[keep] for a in arrays]


def model_detail(engine: Engine, model_id: int) -> dict[str, Any]:
    """A model's metrics with intervals, ROC and PR curves from its stored test predictions,
    and its feature importances."""
    with engine.connect() as conn:
        model = runs_q.model_detail(conn, model_id)
        if model is None:
            raise NotFound(f"there is no model {model_id} in the store")
        evals = evaluations_q.evaluations_of_model(conn, model_id)
        preds = predictions_q.scores_frame(conn, [model_id])
        imps = evaluations_q.feature_importances(conn, [model_id])
        live = deployed(conn)
    charts = []
    labelled = preds.dropna(subset=["label"]) if len(preds) else preds
    if len(labelled) and labelled["label"].nunique() == 2:
        y, score = labelled["label"].astype(int), labelled["score"]
        fpr, tpr, _ = roc_curve(y, score)
        area = auc(fpr, tpr)
        precision, recall, _ = precision_recall_curve(y, score)
        fpr, tpr = _thin(fpr, tpr)
        recall, precision = _thin(recall, precision)
        roc = go.Figure([go.Scatter(x=fpr, y=tpr, name=f"model {model_id} (area {area:.3f})"),
                         go.Scatter(x=[0, 1], y=[0, 1], name="chance",
                                    line={"dash": "dot", "color": "grey"})])
        roc.update_layout(title=f"ROC curve ({len(labelled):,} test predictions)",
                          xaxis_title="False positive rate", yaxis_title="True positive rate")
        pr = go.Figure([go.Scatter(x=recall, y=precision, name=f"model {model_id}"),
                        go.Scatter(x=[0, 1], y=[y.mean()] * 2, name="prevalence",
                                   line={"dash": "dot", "color": "grey"})])
        pr.update_layout(title="Precision-recall curve", xaxis_title="Recall",
                         yaxis_title="Precision")
        charts += [chart("roc", roc, 420), chart("pr", pr, 420)]
    if len(imps):
        ordered = imps.sort_values("importance")
        bar = go.Figure(go.Bar(x=ordered["importance"], y=ordered["feature"], orientation="h",
                               error_x={"type": "data", "array": ordered["std"].fillna(0)}))
        bar.update_layout(title=f"Feature importance ({imps['method'].iloc[0]})",
                          xaxis_title="importance")
        charts.append(chart("importance", bar, 140 + 26 * len(imps)))
    return {"model": dict(model), "params": _params(model["hyperparameters"]),
            "evaluations": [dict(e) for e in evals], "charts": charts,
            "importances": imps.to_dict("records") if len(imps) else [],
            "n_predictions": len(preds),
            "deployed": live is not None and live["model_id"] == model_id}


# --- 3. fairness -----------------------------------------------------------------------------


def fairness_models(conn: Connection) -> list[dict[str, Any]]:
    """Models with a fairness audit, newest first."""
    return fairness_q.audited_models(conn)


def _row_status(cells: pd.DataFrame) -> str:
    """A group's status over its metrics: the metrics judged unfair, else those inconclusive,
    else the first metric's status (reference, ok, insufficient data, ...)."""
    for verdict in ("unfair", "inconclusive"):
        hit = cells.loc[cells["status"] == verdict, "metric"].map(AUDIT_METRICS)
        if len(hit):
            return f"{verdict}: {', '.join(hit)}"
    return str(cells["status"].iloc[0])


def fairness(engine: Engine, model_id: int | None) -> dict[str, Any]:
    """Group metrics, disparities and requirement results of one model (default: the deployed
    model, else the newest selected one, else the newest audited one)."""
    with engine.connect() as conn:
        models = fairness_models(conn)
        live = deployed(conn)
        if not models:
            return {"empty": True, "models": []}
        ids = [m["id"] for m in models]
        if model_id is None:
            selected = [m["id"] for m in models if m["selected"]]
            model_id = (live["model_id"] if live and live["model_id"] in ids
                        else selected[0] if selected else ids[0])
        elif model_id not in ids:
            raise NotFound(f"model {model_id} has no fairness audit in the store")
        audits = fairness_q.audits(conn, [model_id])
        requirements = fairness_q.requirements(conn, [model_id])
    key = audits[audits["metric"].isin(list(AUDIT_METRICS))]
    tables = []
    for attribute, part in key.groupby("attribute", sort=False):
        rows = []
        for group, g in part.groupby("group_value", sort=False):
            cells = {m: g[g["metric"] == m].iloc[0].to_dict() for m in AUDIT_METRICS
                     if (g["metric"] == m).any()}
            first = g.iloc[0]
            rows.append({"group": group, "n": int(first["n"]), "status": _row_status(g),
                         "reference": first["reference_group"], "cells": cells})
        tables.append({"attribute": attribute, "rows": rows})
    figures = audit_figures(audits.assign(model_id=model_id), model_id) if len(audits) else []
    return {"empty": False, "models": models, "model_id": model_id,
            "model": next(m for m in models if m["id"] == model_id),
            "selection": audits["selection"].iloc[0] if len(audits) else "",
            "metrics": AUDIT_METRICS, "tables": tables,
            "requirements": [dict(r) | {"status": fairness_q.requirement_status(r)}
                             for r in requirements],
            "charts": [chart(f"audit-{i}", fig) for i, fig in enumerate(figures)],
            "deployed": live}


# --- 4. production monitoring ----------------------------------------------------------------


def _thresholds(conn: Connection) -> Monitoring:
    try:
        return Monitoring.model_validate(_run_config(conn).get("monitoring") or {})
    except ValidationError:
        return Monitoring()


def traffic(conn: Connection) -> dict[str, Any]:
    """Requests, predictions and outcomes: totals and per day over the last days with data."""
    totals = production_q.traffic_totals(conn)
    positives = production_q.flagged_count(conn)
    last = production_q.last_request_time(conn)
    result: dict[str, Any] = {"totals": totals, "flagged": positives, "chart": None}
    if last is None:
        return result
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    since = (last - timedelta(days=TRAFFIC_DAYS)).replace(hour=0, minute=0, second=0,
                                                           microsecond=0)
    series = production_q.daily_traffic(conn, since)
    days = sorted(set().union(*series.values()))
    fig = go.Figure([go.Bar(x=days, y=[counts.get(d, 0) for d in days], name=name)
                     for name, counts in series.items()])
    fig.update_layout(title=f"Production traffic per day (last {TRAFFIC_DAYS} days with data)",
                      barmode="group", yaxis_title="count", xaxis_type="category")
    result["chart"] = chart("traffic", fig, 360)
    result["days"] = [{"day": d, **{k: v.get(d, 0) for k, v in series.items()}}
                      for d in reversed(days)]
    return result


def monitoring(engine: Engine) -> dict[str, Any]:
    """The newest monitor run: its alerts (critical first), drift per feature, realised
    performance per segment; the history of alert counts; production traffic."""
    with engine.connect() as conn:
        bounds = _thresholds(conn)
        page: dict[str, Any] = {"traffic": traffic(conn), "bounds": bounds,
                                "deployed": deployed(conn)}
        run = monitoring_q.last_finished(conn)
        if run is None:
            return {**page, "run": None}
        found = monitoring_q.alerts_of(conn, run["id"])
        figures = monitoring_q.figures(conn, run["id"], ["drift", "performance"])
        history = monitoring_q.alert_counts(conn)
    ordered = sorted((dict(a) for a in found),
                     key=lambda a: (SEVERITY_ORDER.get(a["severity"], 2), a["kind"],
                                    a["subject"]))
    charts = []
    drift = (figures[(figures["section"] == "drift") & (figures["metric"] == "psi")
                     & (figures["segment"] == "")].sort_values("value", ascending=False)
             if len(figures) else figures)
    if len(drift):
        colours = ["#b2182b" if v >= bounds.psi_critical else "#ef8a62"
                   if v >= bounds.psi_warning else "#4575b4" for v in drift["value"].fillna(0)]
        fig = go.Figure(go.Bar(x=drift["subject"], y=drift["value"], marker_color=colours,
                               customdata=drift["n"],
                               hovertemplate="%{x}: PSI %{y:.3f} (n=%{customdata})"
                                             "<extra></extra>"))
        for level, name in ((bounds.psi_warning, "warning"), (bounds.psi_critical, "critical")):
            fig.add_hline(y=level, line_dash="dot", annotation_text=f"{name} {level:g}")
        fig.update_layout(title="Drift per feature: population stability index (PSI) against "
                                "training", yaxis_title="PSI")
        charts.append(chart("drift", fig, 400))
    performance = (figures[figures["section"] == "performance"] if len(figures)
                   else figures)
    segments: list[dict[str, Any]] = []
    metric_names: list[str] = []
    if len(performance):
        # the monitor stores the confusion counts and the ROC curve too; the page shows these
        shown = ["precision", "recall", "f1", "roc_auc"]
        performance = performance[performance["metric"].isin(shown) | ~performance[
            "metric"].isin(["n", "positives", "tp", "fp", "fn", "tn", "average_precision",
                            "roc_curve"])]
        metric_names = list(dict.fromkeys(performance["metric"]))
        for (subject, segment), part in performance.groupby(["subject", "segment"], sort=False):
            values = {r["metric"]: r for r in part.to_dict("records")}
            segments.append({"subject": subject, "segment": segment or "all",
                             "values": values, "n": int(part["n"].max())
                             if part["n"].notna().any() else None})
        main = "precision" if "precision" in metric_names else metric_names[0]
        part = performance[performance["metric"] == main]
        fig = go.Figure(go.Bar(x=[s or "all" for s in part["segment"]], y=part["value"],
                               customdata=part["n"], text=part["value"].round(3),
                               hovertemplate="%{x}: %{y:.3f} (n=%{customdata})"
                                             "<extra></extra>"))
        fig.update_layout(title=f"Realised {main} per segment in the window",
                          yaxis_title=main, xaxis_type="category")
        charts.append(chart("performance", fig, 380))
    if len(history) > 1:
        fig = go.Figure([go.Bar(x=history["finished_at"], y=history["n_critical"],
                                name="critical", marker_color="#b2182b"),
                         go.Bar(x=history["finished_at"], y=history["n_warning"],
                                name="warning", marker_color="#ef8a62")])
        fig.update_layout(title="Alerts per monitor run", barmode="stack",
                          yaxis_title="alerts")
        charts.append(chart("alert-history", fig, 320))
    return {**page, "run": dict(run), "alerts": ordered,
            "drift": drift.to_dict("records") if len(drift) else [],
            "segments": segments, "metric_names": metric_names, "charts": charts}


# --- 5. reviews ------------------------------------------------------------------------------


def review_history(engine: Engine, start: datetime, end: datetime, decisions: dict[str, str]
                   ) -> list[dict[str, Any]]:
    """Reviews recorded for the list of one day, newest first, each with its decision in
    words, whether a later review corrects it (``corrected_by``) and which it corrects."""
    rows = lists_q.reviews_between(engine, start, end)
    corrected_by = {r["supersedes"]: r["id"] for r in rows if r["supersedes"] is not None}
    return [{**r, "decision_label": decisions.get(r["outcome"]) or r["outcome"].replace(
                 "_", " "), "corrected_by": corrected_by.get(r["id"])} for r in rows]
