"""The run report: one self-contained HTML page per run, built from the results store only.

Reading from the store (not from the objects in memory) means any past run's report can be
rebuilt, and what the page says is exactly what was recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import escape
from sklearn.metrics import precision_recall_curve, roc_curve
from sqlalchemy import select
from sqlalchemy.engine import Engine

from rudikit.store import tables as t

TEMPLATES = Path(__file__).parent / "templates"

#: Columns of the metric table: (metric, parameter template, heading). ``{pct}`` and ``{k}`` are
#: filled with the run's first top-% and top-k settings.
KEY_METRICS = [
    ("roc_auc", "", "ROC AUC"),
    ("average_precision", "", "Avg precision"),
    ("precision_at_k", "{pct}_pct", "Precision@{pct}%"),
    ("recall_at_k", "{pct}_pct", "Recall@{pct}%"),
    ("precision_at_k", "{k}_abs", "Precision@{k}"),
    ("precision", "{t}", "Precision@{t}"),
    ("recall", "{t}", "Recall@{t}"),
    ("f1", "{t}", "F1@{t}"),
    ("brier", "", "Brier"),
]


def environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES),
                       autoescape=select_autoescape(["html", "j2"]))


@dataclass
class Figure:
    title: str
    html: str


def figure_html(fig: go.Figure, first: bool) -> str:
    """Plotly's JS is inlined once per page, so the report works with no internet access."""
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
                      margin={"t": 50})
    return fig.to_html(full_html=False, include_plotlyjs=bool(first),
                       config={"displaylogo": False})


def _read(engine: Engine, run_id: int) -> dict[str, pd.DataFrame]:
    with engine.connect() as conn:
        run = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).mappings().one_or_none()
        if run is None:
            raise ValueError(f"run {run_id} is not in the store")
        models = pd.DataFrame(conn.execute(
            select(t.models, t.model_groups.c.algorithm, t.model_groups.c.hyperparameters)
            .join(t.model_groups, t.models.c.model_group_id == t.model_groups.c.id)
            .where(t.models.c.run_id == run_id).order_by(t.models.c.id)).mappings().all())
        ids = models["id"].tolist() if len(models) else []
        evals = pd.DataFrame(conn.execute(select(t.evaluations).where(
            t.evaluations.c.model_id.in_(ids))).mappings().all())
        preds = pd.DataFrame(conn.execute(select(
            t.predictions.c.model_id, t.predictions.c.score, t.predictions.c.label).where(
            t.predictions.c.model_id.in_(ids))).mappings().all())
        imps = pd.DataFrame(conn.execute(select(t.feature_importances).where(
            t.feature_importances.c.model_id.in_(ids))).mappings().all())
        snaps = pd.DataFrame(conn.execute(select(t.data_snapshots).where(
            t.data_snapshots.c.run_id == run_id)).mappings().all())
        audits = pd.DataFrame(conn.execute(select(t.fairness_audits).where(
            t.fairness_audits.c.model_id.in_(ids))).mappings().all())
        reqs = pd.DataFrame(conn.execute(select(t.fairness_requirements).where(
            t.fairness_requirements.c.model_id.in_(ids))).mappings().all())
    return {"run": pd.DataFrame([dict(run)]), "models": models, "evaluations": evals,
            "predictions": preds, "importances": imps, "snapshots": snaps, "audits": audits,
            "requirements": reqs}


def _short(row: pd.Series) -> str:
    return f"#{row['model_group_id']} {row['algorithm']}"


def _label(row: pd.Series) -> str:
    """Group id and algorithm, with the hyperparameters in small print (HTML)."""
    params = ", ".join(f"{k}={v}" for k, v in (row["hyperparameters"] or {}).items())
    return _short(row) + (f" <span class='params'>{escape(params)}</span>" if params else "")


def _fmt(value: Any, lower: Any = None, upper: Any = None) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    text = f"{value:.3f}"
    if lower is not None and upper is not None and not pd.isna(lower):
        text += f" <span class='ci'>[{lower:.3f}, {upper:.3f}]</span>"
    return text


def metric_table(models: pd.DataFrame, evals: pd.DataFrame, config: dict[str, Any]
                 ) -> tuple[list[str], list[dict[str, Any]]]:
    ev = config.get("evaluation", {})
    fill = {"pct": f"{ev.get('top_pct', [10])[0]:g}" if ev.get("top_pct") else "10",
            "k": str(ev.get("top_k", [100])[0]) if ev.get("top_k") else "100",
            "t": f"{ev.get('thresholds', [0.5])[0]:g}" if ev.get("thresholds") else "0.5"}
    columns = [(m, p.format(**fill), h.format(**fill)) for m, p, h in KEY_METRICS]
    headings = ["Model group", "Split", "Train s"] + [h for _, _, h in columns]
    rows = []
    by_model = {mid: g for mid, g in evals.groupby("model_id")} if len(evals) else {}
    for _, model in models.iterrows():
        ev_rows = by_model.get(model["id"], pd.DataFrame(columns=["metric", "parameter"]))
        cells = []
        for metric, parameter, _ in columns:
            hit = ev_rows[(ev_rows["metric"] == metric) & (ev_rows["parameter"] == parameter)]
            cells.append(_fmt(*hit.iloc[0][["value", "lower", "upper"]]) if len(hit) else "n/a")
        rows.append({"label": _label(model), "split": model["split"],
                     "seconds": f"{model['train_seconds']:.2f}", "cells": cells,
                     "selected": bool(model["selected"])})
    return headings, rows


def curve_figures(models: pd.DataFrame, preds: pd.DataFrame, split: str) -> list[go.Figure]:
    roc, pr = go.Figure(), go.Figure()
    for _, model in models[models["split"] == split].iterrows():
        rows = preds[preds["model_id"] == model["id"]]
        if rows["label"].nunique() < 2:
            continue
        fpr, tpr, _ = roc_curve(rows["label"], rows["score"])
        precision, recall, _ = precision_recall_curve(rows["label"], rows["score"])
        name = _short(model) + (" (chosen)" if model["selected"] else "")
        width = 4 if model["selected"] else 1.5
        roc.add_trace(go.Scatter(x=fpr, y=tpr, name=name, line={"width": width}))
        pr.add_trace(go.Scatter(x=recall, y=precision, name=name, line={"width": width}))
    roc.add_trace(go.Scatter(x=[0, 1], y=[0, 1], name="chance", line={"dash": "dot",
                                                                      "color": "grey"}))
    roc.update_layout(title=f"ROC curves, split {split!r}", xaxis_title="False positive rate",
                      yaxis_title="True positive rate", height=480)
    pr.update_layout(title=f"Precision-recall curves, split {split!r}", xaxis_title="Recall",
                     yaxis_title="Precision", height=480)
    return [roc, pr]


def importance_figure(imps: pd.DataFrame, model_id: int) -> go.Figure | None:
    rows = imps[imps["model_id"] == model_id].sort_values("importance") if len(imps) else imps
    if not len(rows):
        return None
    fig = go.Figure(go.Bar(x=rows["importance"], y=rows["feature"], orientation="h",
                           error_x={"type": "data", "array": rows["std"].fillna(0)}))
    fig.update_layout(title="Permutation importance of the selected model (drop in ROC AUC)",
                      height=120 + 28 * len(rows), xaxis_title="Drop in ROC AUC when shuffled")
    return fig


AUDIT_METRICS = {"precision": "Precision", "tpr": "Recall (TPR)", "fpr": "False positive rate",
                 "pprev": "Selection rate"}


def audit_figures(audits: pd.DataFrame, model_id: int) -> list[go.Figure]:
    """Per attribute: the key group metrics with their 95% intervals; groups too small to
    compare are drawn hollow."""
    rows = audits[audits["model_id"] == model_id] if len(audits) else audits
    figures = []
    for attribute, part in (rows.groupby("attribute", sort=False) if len(rows) else []):
        fig = go.Figure()
        for metric, title in AUDIT_METRICS.items():
            m = part[part["metric"] == metric]
            if not len(m):
                continue
            small = m["status"].str.contains("insufficient")
            fig.add_trace(go.Bar(
                x=m["group_value"], y=m["value"], name=title,
                error_y={"type": "data", "symmetric": False,
                         "array": (m["upper"] - m["value"]).fillna(0),
                         "arrayminus": (m["value"] - m["lower"]).fillna(0)},
                marker_pattern_shape=np.where(small, "/", ""),
                customdata=np.c_[m["n"], m["status"], m["disparity_ratio"]],
                hovertemplate="%{x}: %{y:.3f}<br>n=%{customdata[0]}, %{customdata[1]}"
                              "<br>ratio to reference %{customdata[2]:.2f}<extra></extra>"))
        fig.update_layout(barmode="group", height=420, yaxis_title="rate",
                          title=f"Group metrics by {attribute} (hatched: fewer rows than the "
                                "minimum group size, not compared)")
        figures.append(fig)
    return figures


def frontier_figure(evals: pd.DataFrame, model_id: int) -> go.Figure | None:
    rows = evals[(evals["model_id"] == model_id)
                 & evals["metric"].isin(["frontier_largest_gap", "frontier_objective"])]
    if not len(rows):
        return None
    wide = rows.pivot_table(index="parameter", columns="metric", values="value").reset_index()
    base = wide[wide["parameter"] == "unmitigated"]
    curve = wide[wide["parameter"] != "unmitigated"].sort_values("frontier_largest_gap")
    fig = go.Figure(go.Scatter(x=curve["frontier_largest_gap"], y=curve["frontier_objective"],
                               mode="lines+markers+text", text=curve["parameter"],
                               textposition="top center", name="per-group thresholds"))
    fig.add_trace(go.Scatter(x=base["frontier_largest_gap"], y=base["frontier_objective"],
                             mode="markers", marker={"size": 14, "symbol": "x"},
                             name="unmitigated"))
    fig.update_layout(title="Fairness-performance frontier of the mitigation (test rows)",
                      xaxis_title="largest gap between groups", yaxis_title="objective",
                      height=440)
    return fig


def requirement_table(models: pd.DataFrame, reqs: pd.DataFrame, split: str
                      ) -> tuple[list[str], list[dict[str, Any]]]:
    if not len(reqs):
        return [], []
    names = list(dict.fromkeys(reqs["name"]))
    rows = []
    for _, model in models[models["split"] == split].iterrows():
        mine = reqs[reqs["model_id"] == model["id"]].set_index("name")
        cells = [{"passed": bool(mine.loc[n, "passed"]), "text": mine.loc[n, "summary"]}
                 if n in mine.index else {"passed": None, "text": "n/a"} for n in names]
        rows.append({"label": _label(model), "selected": bool(model["selected"]),
                     "cells": cells})
    return names, rows


def write_run_report(engine: Engine, run_id: int, directory: str | Path) -> Path:
    """Write ``run-<id>.html`` into ``directory`` and return its path."""
    data = _read(engine, run_id)
    run = data["run"].iloc[0]
    config = run["config"]
    models, evals = data["models"], data["evaluations"]
    split = (config.get("evaluation", {}).get("selection", {}).get("split")
             or config["splits"][0]["name"])
    headings, rows = metric_table(models, evals, config)
    figures: list[Figure] = []
    if len(models):
        for fig in curve_figures(models, data["predictions"], split):
            figures.append(Figure(fig.layout.title.text, figure_html(fig, not figures)))
    selected = models[models["selected"]] if len(models) else models
    chosen = None
    if len(selected):
        row = selected.iloc[0]
        chosen = {"label": _label(row), "reason": row["selection_reason"], "id": row["id"],
                  "artefact": row["artefact_hash"]}
        fig = importance_figure(data["importances"], int(row["id"]))
        if fig is not None:
            figures.append(Figure("Feature importance", figure_html(fig, not figures)))
    fairness_figures: list[Figure] = []
    if chosen is not None:
        for fig in audit_figures(data["audits"], chosen["id"]):
            fairness_figures.append(Figure(fig.layout.title.text,
                                           figure_html(fig, not figures and not fairness_figures)))
    mitigated = models[models["algorithm"].str.startswith("mitigated_")] if len(models) else models
    if len(mitigated):
        fig = frontier_figure(evals, int(mitigated.iloc[0]["id"]))
        if fig is not None:
            fairness_figures.append(Figure(fig.layout.title.text, figure_html(
                fig, not figures and not fairness_figures)))
    req_names, req_rows = requirement_table(models, data["requirements"], split)
    html = environment().get_template("run_report.html.j2").render(
        run=run, config=config, headings=headings, rows=rows, figures=figures, chosen=chosen,
        snapshots=data["snapshots"].to_dict("records"), split=split,
        req_names=req_names, req_rows=req_rows, fairness_figures=fairness_figures,
        fairness=config.get("fairness", {}),
        rationale=config.get("rationale", {}),
    )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"run-{run_id}.html"
    path.write_text(html, encoding="utf-8")
    return path
