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
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from rudikit.config import Monitoring
from rudikit.reports.run_report import AUDIT_METRICS, audit_figures
from rudikit.service.deploy import live_deployment
from rudikit.store import production_tables as pt
from rudikit.store import tables as t
from rudikit.store.list_tables import entity_reviews
from rudikit.store.monitoring_tables import alerts, monitor_metrics, monitor_runs

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


def _records(conn: Connection, query: Any) -> pd.DataFrame:
    return pd.DataFrame(conn.execute(query).mappings().all())


def _params(value: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in (value or {}).items())


def _day(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d}"


def _run_config(conn: Connection) -> dict[str, Any]:
    """The configuration of the newest run (the project as last run)."""
    config = conn.execute(select(t.runs.c.config).order_by(t.runs.c.id.desc()).limit(1)
                          ).scalar_one_or_none()
    return config or {}


def deployed(conn: Connection) -> dict[str, Any] | None:
    live = live_deployment(conn)
    return dict(live) if live is not None else None


# --- 1. model groups over time and the selection ---------------------------------------------

MODEL_COLUMNS = (t.models.c.id, t.models.c.run_id, t.models.c.model_group_id, t.models.c.split,
                 t.models.c.test_start, t.models.c.test_end, t.models.c.train_rows,
                 t.models.c.test_rows, t.models.c.selected, t.models.c.selection_reason,
                 t.models.c.created_at, t.model_groups.c.algorithm,
                 t.model_groups.c.hyperparameters)


def metric_choices(conn: Connection) -> list[tuple[str, str]]:
    rows = conn.execute(select(t.evaluations.c.metric, t.evaluations.c.parameter).distinct()
                        .order_by(t.evaluations.c.metric, t.evaluations.c.parameter)).all()
    return [(m, p) for m, p in rows if m != "train_seconds" and not m.startswith("frontier_")]


def default_metric(conn: Connection) -> tuple[str, str]:
    wanted = _run_config(conn).get("evaluation", {}).get("selection", {}).get("metric")
    choices = metric_choices(conn)
    for metric, parameter in choices:
        if metric == (wanted or "roc_auc"):
            return metric, parameter
    return choices[0] if choices else ("roc_auc", "")


def overview(engine: Engine, metric: str | None, parameter: str | None) -> dict[str, Any]:
    """Evaluations of every model group across runs, splits and as-of dates, and which model
    each run selected (and why)."""
    with engine.connect() as conn:
        choices = metric_choices(conn)
        if metric is None or (metric, parameter or "") not in choices:
            metric, parameter = default_metric(conn)
        parameter = parameter or ""
        models = _records(conn, select(*MODEL_COLUMNS, t.runs.c.started_at.label("run_started"))
                          .join(t.model_groups, t.model_groups.c.id == t.models.c.model_group_id)
                          .join(t.runs, t.runs.c.id == t.models.c.run_id)
                          .order_by(t.models.c.id))
        evals = _records(conn, select(t.evaluations.c.model_id, t.evaluations.c.value,
                                      t.evaluations.c.lower, t.evaluations.c.upper)
                         .where(t.evaluations.c.metric == metric,
                                t.evaluations.c.parameter == parameter))
        live = deployed(conn)
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
            "selections": selections, "models": rows, "deployed": live}


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
        model = conn.execute(select(*MODEL_COLUMNS, t.models.c.artefact_hash,
                                    t.models.c.train_start, t.models.c.train_end,
                                    t.models.c.train_seconds)
                             .join(t.model_groups,
                                   t.model_groups.c.id == t.models.c.model_group_id)
                             .where(t.models.c.id == model_id)).mappings().one_or_none()
        if model is None:
            raise NotFound(f"there is no model {model_id} in the store")
        evals = conn.execute(select(t.evaluations).where(t.evaluations.c.model_id == model_id)
                             .order_by(t.evaluations.c.metric, t.evaluations.c.parameter)
                             ).mappings().all()
        preds = _records(conn, select(t.predictions.c.score, t.predictions.c.label)
                         .where(t.predictions.c.model_id == model_id))
        imps = _records(conn, select(t.feature_importances)
                        .where(t.feature_importances.c.model_id == model_id)
                        .order_by(t.feature_importances.c.rank))
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
    ids = select(t.fairness_audits.c.model_id).distinct().scalar_subquery()
    rows = conn.execute(select(*MODEL_COLUMNS)
                        .join(t.model_groups, t.model_groups.c.id == t.models.c.model_group_id)
                        .where(t.models.c.id.in_(ids)).order_by(t.models.c.id.desc())
                        ).mappings().all()
    return [dict(r) for r in rows]


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
        audits = _records(conn, select(t.fairness_audits)
                          .where(t.fairness_audits.c.model_id == model_id)
                          .order_by(t.fairness_audits.c.id))
        requirements = conn.execute(select(t.fairness_requirements).where(
            t.fairness_requirements.c.model_id == model_id).order_by(
            t.fairness_requirements.c.id)).mappings().all()
    key = audits[audits["metric"].isin(list(AUDIT_METRICS))]
    tables = []
    for attribute, part in key.groupby("attribute", sort=False):
        rows = []
        for group, g in part.groupby("group_value", sort=False):
            cells = {m: g[g["metric"] == m].iloc[0].to_dict() for m in AUDIT_METRICS
                     if (g["metric"] == m).any()}
            first = g.iloc[0]
            rows.append({"group": group, "n": int(first["n"]), "status": first["status"],
                         "reference": first["reference_group"], "cells": cells})
        tables.append({"attribute": attribute, "rows": rows})
    figures = audit_figures(audits.assign(model_id=model_id), model_id) if len(audits) else []
    return {"empty": False, "models": models, "model_id": model_id,
            "model": next(m for m in models if m["id"] == model_id),
            "selection": audits["selection"].iloc[0] if len(audits) else "",
            "metrics": AUDIT_METRICS, "tables": tables,
            "requirements": [dict(r) for r in requirements],
            "charts": [chart(f"audit-{i}", fig) for i, fig in enumerate(figures)],
            "deployed": live}


# --- 4. production monitoring ----------------------------------------------------------------


def _thresholds(conn: Connection) -> Monitoring:
    try:
        return Monitoring.model_validate(_run_config(conn).get("monitoring") or {})
    except ValidationError:
        return Monitoring()


def _daily(conn: Connection, column: Any, since: datetime) -> dict[str, int]:
    day = func.date(column)
    return {str(d): int(n) for d, n in conn.execute(
        select(day, func.count()).where(column >= since).group_by(day))}


def traffic(conn: Connection) -> dict[str, Any]:
    """Requests, predictions and outcomes: totals and per day over the last days with data."""
    totals = {name: conn.execute(select(func.count()).select_from(table)).scalar_one()
              for name, table in (("requests", pt.requests),
                                  ("predictions", pt.production_predictions),
                                  ("outcomes", pt.outcomes))}
    positives = conn.execute(select(func.count()).where(
        pt.production_predictions.c.decision.is_(True))).scalar_one()
    last = conn.execute(select(func.max(pt.requests.c.received_at))).scalar_one()
    result: dict[str, Any] = {"totals": totals, "flagged": positives, "chart": None}
    if last is None:
        return result
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    since = (last - timedelta(days=TRAFFIC_DAYS)).replace(hour=0, minute=0, second=0,
                                                           microsecond=0)
    series = {"requests": _daily(conn, pt.requests.c.received_at, since),
              "predictions": _daily(conn, pt.production_predictions.c.created_at, since),
              "outcomes": _daily(conn, pt.outcomes.c.recorded_at, since)}
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
        run = conn.execute(select(monitor_runs).order_by(monitor_runs.c.finished_at.desc(),
                                                         monitor_runs.c.id.desc()).limit(1)
                           ).mappings().one_or_none()
        if run is None:
            return {**page, "run": None}
        found = conn.execute(select(alerts).where(alerts.c.monitor_run_id == run["id"])
                             ).mappings().all()
        figures = _records(conn, select(monitor_metrics).where(
            monitor_metrics.c.monitor_run_id == run["id"],
            monitor_metrics.c.section.in_(["drift", "performance"])))
        history = _records(conn, select(monitor_runs.c.id, monitor_runs.c.finished_at,
                                        monitor_runs.c.n_critical, monitor_runs.c.n_warning)
                           .order_by(monitor_runs.c.finished_at))
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


def reviews_for(engine: Engine, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Reviews recorded for the list of one day, newest first."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(entity_reviews).where(entity_reviews.c.review_date >= start,
                                         entity_reviews.c.review_date < end)
            .order_by(entity_reviews.c.id.desc())).mappings()]


def production_features(engine: Engine, observation_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The inputs of scored requests, to show beside a request-scored list."""
    table = pt.production_predictions
    with engine.connect() as conn:
        return {r.observation_id: r.features for r in conn.execute(
            select(table.c.observation_id, table.c.features)
            .where(table.c.observation_id.in_(observation_ids)))}
